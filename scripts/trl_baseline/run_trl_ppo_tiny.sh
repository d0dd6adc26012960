#!/usr/bin/env bash
# The "tiny-ppo-cpu" work (engine/bench/ppo.py) done by TRL's PPOTrainer: the baseline that
# `python -m engine bench ppo` is compared with. TRL is not a project dependency: it is installed into
# its own environment ($VENV, made on first use, about 90 s) and run there (about 40 s).
#   bash run_trl_ppo_tiny.sh            # 6 iterations, writes /tmp/trl_ppo_tiny.json
#   ITERS=10 OUT=/tmp/x.json bash run_trl_ppo_tiny.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${VENV:-/tmp/trlvenv}"
ITERS="${ITERS:-6}"
OUT="${OUT:-/tmp/trl_ppo_tiny.json}"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  # torch first (CPU wheel), so nothing pulls a CUDA build
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q trl==0.29.1 peft==0.21.2 transformers==5.23.0 \
    accelerate==1.15.0 tokenizers==0.23.3 datasets==5.2.0
fi

export TRL_EXPERIMENTAL_SILENCE=1
TIMELOG="${OUT%.json}.time.log"
RUNLOG="${OUT%.json}.log"
/usr/bin/time -v "$VENV/bin/python" "$HERE/trl_ppo_tiny.py" --iterations "$ITERS" --out "$OUT" \
  > "$RUNLOG" 2> "$TIMELOG"   # stderr: python warnings + the /usr/bin/time -v report

# merge /usr/bin/time -v numbers into the JSON
"$VENV/bin/python" - "$OUT" "$TIMELOG" <<'EOF'
import json, re, sys
out, tl = sys.argv[1], open(sys.argv[2]).read()
d = json.load(open(out))
m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tl)
w = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", tl)
u = re.search(r"User time \(seconds\): ([\d.]+)", tl)
s = re.search(r"System time \(seconds\): ([\d.]+)", tl)
if m:
    d["peak_rss_mib_time_v"] = int(m.group(1)) / 1024.0
if w:
    parts = [float(x) for x in w.group(1).split(":")]
    secs = 0.0
    for p in parts:
        secs = secs * 60 + p
    d["process_wall_s_time_v"] = secs
if u and s:
    d["cpu_user_s"], d["cpu_sys_s"] = float(u.group(1)), float(s.group(1))
json.dump(d, open(out, "w"), indent=2, default=str)
print(f"median {d['median_s_per_iteration']:.3f} s/iter | gen {d['rollout_tokens_per_s_generation']:.0f} tok/s | "
      f"end-to-end {d['rollout_tokens_per_s_end_to_end']:.0f} tok/s | peak RSS {d.get('peak_rss_mib_time_v', float('nan')):.0f} MiB | "
      f"process wall {d.get('process_wall_s_time_v', float('nan')):.1f} s")
EOF
