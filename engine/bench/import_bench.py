"""``python -m engine bench import``: JSONL import throughput and peak memory (protocol import-jsonl).

Generates a JSONL file of ``--rows`` rollouts (verl-like fields: prompt, response, reward, step and
two extra fields; ``--response-chars`` sets the size: the default 1M rows x ~1.1 kB is a 1.1 GB
file), then runs, each in its own process so each peak RSS is its own (``os.wait4``):
``python -m engine import jsonl FILE`` and the baseline ``pandas.read_json(FILE, lines=True)``
(which only parses; it writes nothing). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.config import ConfigError

_PANDAS = "import sys, pandas as pd; frame = pd.read_json(sys.argv[1], lines=True); print(len(frame))"
_IMPORT = "import sys, engine.cli as cli; sys.exit(cli.main(sys.argv[1:]))"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to generate (default 1M)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--samples", type=int, default=8, help="samples per prompt")
    parser.add_argument("--response-chars", type=int, default=1000, help="characters per response")
    parser.add_argument("--file", type=Path, default=None, help="use (or keep) this JSONL file")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas baseline")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")


def write_jsonl(path: Path, rows: int, steps: int, samples: int, response_chars: int, seed: int = 0) -> None:
    """``rows`` rollouts, steps interleaved in blocks (as a concatenated multi-worker dump would be)."""
    rng = random.Random(seed)
    words = [f"tok{i}" for i in range(500)]
    with open(path, "w") as fh:
        for i in range(rows):
            group = i // samples
            response = " ".join(rng.choices(words, k=response_chars // 6))[:response_chars]
            obj = {
                "step": group % steps,
                "prompt": f"Prompt number {group} asks the model a question about topic {group % 97}.",
                "response": response,
                "reward": rng.random(),
                "acc": i % 2,
                "gts": str(group % 10),
            }
            fh.write(json.dumps(obj) + "\n")


def _timed(argv: list[str]) -> tuple[float, int, str]:
    """(seconds, peak RSS in MiB, stdout) of a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise ConfigError(f"{' '.join(argv[:3])} ... failed with exit code {proc.returncode}")
    return time.perf_counter() - start, round(usage.ru_maxrss / 1024), out  # ru_maxrss is KiB on Linux


def main(args: argparse.Namespace) -> int:
    if args.rows < 1 or args.steps < 1:
        raise ConfigError("--rows and --steps must be >= 1")
    root = Path(tempfile.mkdtemp(prefix="import-bench-"))
    path = args.file or root / "rollouts.jsonl"
    try:
        if not path.exists():
            write_jsonl(path, args.rows, args.steps, args.samples, args.response_chars)
        seconds, rss, out = _timed(
            [
                sys.executable,
                "-c",
                _IMPORT,
                "import",
                "jsonl",
                str(path),
                "--runs-dir",
                str(root / "runs"),
                "--json",
            ]
        )
        imported = json.loads(out.strip().splitlines()[-1])
        result: dict[str, Any] = {
            "protocol": "import-jsonl",
            "rows": imported["rows"],
            "steps": imported["steps"],
            "file_mb": round(path.stat().st_size / 2**20, 1),
            "import_s": round(imported["seconds"], 2),
            "import_rows_per_s": round(imported["rows"] / imported["seconds"]),
            "import_process_s": round(seconds, 2),
            "import_peak_rss_mb": rss,
        }
        if not args.no_pandas:
            p_seconds, p_rss, _ = _timed([sys.executable, "-c", _PANDAS, str(path)])
            result |= {
                "pandas_read_json_s": round(p_seconds, 2),
                "pandas_rows_per_s": round(imported["rows"] / p_seconds),
                "pandas_peak_rss_mb": p_rss,
            }
    finally:
        if args.file is None:
            shutil.rmtree(root, ignore_errors=True)
        else:
            shutil.rmtree(root / "runs", ignore_errors=True)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0
