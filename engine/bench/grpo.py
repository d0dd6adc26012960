"""``python -m engine bench grpo --json`` (contract): the engine's GRPO against TRL's GRPOTrainer on the
protocol "tiny-grpo-cpu", back to back in one run.

The work, the same on both sides (one optimizer step): the world's SFT epoch-3 policy (a plain HF GPT-2
directory with its word-level tokenizer) with a fresh LoRA adapter, r = 16, alpha = 32, on c_attn and
c_proj; 16 of the world's PPO prompts x 4 samples x exactly 32 new tokens, temperature 1 (the engine
samples with ``stop_at_eos`` off, TRL with ``min_new_tokens`` 32: every response is 32 tokens in the
generation, the reward and the loss on both sides; only the engine may sample EOS inside one, and the
bench stops if TRL's generations are not all 32 long); GRPO advantages (r - group mean) / (group std +
1e-4); loss type dapo; ``num_iterations`` 1; beta (the KL loss coefficient) 0; the batch in 4 chunks
with gradients accumulated, then one AdamW step (lr 1e-4, gradient norm clipped at 1); fp32 on the CPU. The reward is the world's RM
(:func:`engine.reward.load_reward_model`) on the prompt's and the response's token ids: the engine
calls it as it always does, TRL through a reward function (``scripts/trl_baseline/trl_grpo_tiny.py``)
that calls the same code on the prompt ids followed by the completion ids.

What each side does beyond that work is its own cost, and counted: the engine logs every rollout with
its per-token signals into a run store (a temporary directory); neither side takes the reference
log-probs (at beta 0 TRL has no reference pass, and the engine's ``kl_metric_every`` is 0: its KL
metrics, which are all the reference pass would feed, are not logged); TRL decodes the completions to text, computes the
entropy of every token for its metrics, and runs its Trainer's loop. The engine has no probes, no
entropy-after-update pass and no gold judge here (``probe_every`` 0, ``measure_entropy_change`` off).

Each side runs in its own process, started by this one, and its peak RSS is that process's
``ru_maxrss`` at the end of its timed steps: the same measure on both sides. Each side then runs one
more step, recorded by torch's profiler for its matrix products, which are timed alone afterwards
(:mod:`engine.bench.matmul_floor`): ``matmul`` gives each side's products (count, GFLOP, seconds alone)
and ``matmul_floor_ratio`` the engine's products' seconds over TRL's step, the ratio the engine would
reach if nothing but its matrix products took time. TRL runs in its own environment
(``scripts/trl_baseline/setup_trl_venv.sh``: made at ``--trl-venv`` on first use, about 90 s; TRL is not a
project dependency). The first step of each side is a warm-up, discarded; the figures are the medians of
the others, in wall-clock seconds and in the process's CPU seconds (the steadier figure on a shared
machine, with one thread). Each side reports where its step goes: the engine's phases (generation, reference log-probs
and RM, update, logging) and TRL's (``model.generate``, the reward function, the rest of the rollout, and
the update: the chunks' forward and backward passes and the optimizer step).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from engine.config import ConfigError, SamplingConfig
from engine.ppo.config import ModelConfig, PPOConfig, PPOHyperConfig, RunConfig

PROTOCOL = "tiny-grpo-cpu"
SFT_EPOCH = 3
PROMPTS_PER_STEP = 16
SAMPLES_PER_PROMPT = 4
NEW_TOKENS = 32
CHUNKS = 4  # gradient-accumulation chunks per optimizer step (engine num_minibatches, TRL's accumulation)
STEPS = 5  # the first is a warm-up
SEED = 0
TARGET_RATIO = 0.4  # the target: at most 0.4x TRL's seconds per step, no more peak memory
REPO = Path(__file__).resolve().parents[2]
TRL_DIR = REPO / "scripts" / "trl_baseline"
DEFAULT_TRL_VENV = "/tmp/trlvenv"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=STEPS, help="steps per side, the first a warm-up (>= 2)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads on both sides (default: torch's)"
    )
    parser.add_argument("--skip-trl", action="store_true", help="the engine side only (no TRL environment)")
    parser.add_argument(
        "--trl-venv",
        default=DEFAULT_TRL_VENV,
        help="the TRL environment, made on first use (default: %(default)s)",
    )
    parser.add_argument(
        "--prompts-per-step",
        type=int,
        default=PROMPTS_PER_STEP,
        help="protocol: %(default)s (smaller for tests)",
    )
    parser.add_argument(
        "--samples-per-prompt", type=int, default=SAMPLES_PER_PROMPT, help="protocol: %(default)s"
    )
    parser.add_argument("--new-tokens", type=int, default=NEW_TOKENS, help="protocol: %(default)s")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def protocol_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What both sides read (written to a JSON file for the TRL script): the world's model directories,
    its PPO prompts, the sizes and the algorithm's settings."""
    from engine.models import LORA_TARGETS, resolve_source
    from engine.world import load_world

    world = load_world()
    sizes = (args.prompts_per_step, args.samples_per_prompt, args.new_tokens)
    return {
        "protocol": PROTOCOL if sizes == (PROMPTS_PER_STEP, SAMPLES_PER_PROMPT, NEW_TOKENS) else "custom",
        "policy_dir": str(resolve_source(world.policy_source(SFT_EPOCH))),
        "reward_model_dir": str(resolve_source(world.rm_source)),
        "prompts": [p.text for p in world.prompts(split="ppo")],
        "prompts_per_step": args.prompts_per_step,
        "samples_per_prompt": args.samples_per_prompt,
        "new_tokens": args.new_tokens,
        "steps": args.steps,
        "chunks": CHUNKS,
        "threads": args.threads,
        "seed": SEED,
        "temperature": 1.0,
        "loss_type": "dapo",
        "num_iterations": 1,
        "kl_loss_coef": 0.0,
        "kl_metric_every": 0,  # the engine's: no reference pass, as TRL at beta 0
        "scale_rewards": True,
        "cliprange": 0.2,
        "learning_rate": 1e-4,
        "max_grad_norm": 1.0,
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_targets": LORA_TARGETS["gpt2"],
    }


def engine_config(s: dict[str, Any]) -> PPOConfig:
    """The engine's run config for the settings (validated: a bad size is a ConfigError here)."""
    return PPOConfig(
        model=ModelConfig(
            policy=s["policy_dir"],
            reward_model=s["reward_model_dir"],
            lora_r=s["lora_r"],
            lora_alpha=s["lora_alpha"],
        ),
        sampling=SamplingConfig(
            temperature=s["temperature"], max_new_tokens=s["new_tokens"], stop_at_eos=False
        ),
        ppo=PPOHyperConfig(
            algorithm="grpo",
            loss_type=s["loss_type"],
            num_iterations=s["num_iterations"],
            kl_loss_coef=s["kl_loss_coef"],
            scale_rewards=s["scale_rewards"],
            cliprange=s["cliprange"],
            learning_rate=s["learning_rate"],
            max_grad_norm=s["max_grad_norm"],
            num_minibatches=s["chunks"],
        ),
        run=RunConfig(
            steps=s["steps"],
            prompts_per_step=s["prompts_per_step"],
            samples_per_prompt=s["samples_per_prompt"],
            seed=s["seed"],
            probe_every=0,
            measure_entropy_change=False,
            kl_metric_every=s["kl_metric_every"],
        ),
    )


def engine_side(s: dict[str, Any]) -> dict[str, Any]:
    """The engine's steps on the settings, in this process: per-step seconds by phase."""
    import peft
    import torch
    import transformers

    from engine.bench.matmul_floor import matmul_floor, record_products
    from engine.ppo.build import PromptItem, Sources, build_trainer
    from engine.store import RunWriter

    if s["threads"]:
        torch.set_num_threads(s["threads"])
    logging.getLogger("engine").setLevel(logging.WARNING)
    config = engine_config(s)
    prompts = [PromptItem(f"p{i:04d}", "world", text) for i, text in enumerate(s["prompts"])]
    sources = Sources(s["policy_dir"], s["reward_model_dir"], prompts, judge=None)
    per_step = []
    with tempfile.TemporaryDirectory(prefix="bench-grpo-") as tmp:
        writer = RunWriter.create(Path(tmp) / "run", kind="ppo", config=config.to_dict(), seed=s["seed"])
        trainer = build_trainer(config, writer, sources=sources, device="cpu")
        for step in range(1, s["steps"] + 1):
            start, start_cpu = time.perf_counter(), time.process_time()
            result = trainer.iteration(step)
            trainer.log_step(result)
            total = time.perf_counter() - start
            m = result.metrics
            phases = m["time/rollout"] + m["time/score"] + m["time/update"] + m["time/rows"]
            per_step.append(
                {
                    "step": step,
                    "total_s": total,
                    "cpu_s": time.process_time() - start_cpu,
                    "generation_s": m["time/rollout"],
                    "ref_and_reward_s": m["time/score"],
                    "update_s": m["time/update"],
                    # rollout rows built, then written to the store (after the step's own clock stops)
                    "logging_s": m["time/rows"] + total - m["time/step"],
                    "other_s": m["time/step"] - phases,
                }
            )
        peak_rss_mb = peak_rss_mb_so_far()
        extra = s["steps"] + 1  # one more step, recorded (after the peak: the recording takes memory)
        products = record_products(lambda: trainer.log_step(trainer.iteration(extra)))
    return {
        "engine": "engine.ppo.trainer.PPOTrainer (algorithm grpo)",
        "per_step": per_step,
        "peak_rss_mb": peak_rss_mb,
        "matmul": matmul_floor(products),
        "base_precision": trainer.base_precision,
        "trainable_parameters": sum(p.numel() for p in trainer.trainable_parameters()),
        "threads": torch.get_num_threads(),
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
    }


@dataclass
class Measured:
    """A side's process: its exit code, peak RSS and wall time."""

    returncode: int
    peak_rss_mb: float
    wall_s: float


def peak_rss_mb_so_far() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_measured(cmd: list[str], log_path: Path) -> Measured:
    """Run ``cmd`` (output into ``log_path``) and measure its peak RSS from its own rusage."""
    start = time.perf_counter()
    with log_path.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's rusage, not all children's
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(proc.returncode, usage.ru_maxrss / 1024.0, time.perf_counter() - start)


def last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "(no output)"


def run_side(name: str, cmd: list[str], tmp: Path) -> tuple[dict[str, Any], Measured]:
    """One side's process: (its result JSON, its measurements); a failure is one clear error line."""
    out, log_path = tmp / f"{name}.json", tmp / f"{name}.log"
    measured = run_measured([*cmd, "--out", str(out)], log_path)
    if measured.returncode != 0 or not out.is_file():
        raise ConfigError(f"the {name} side failed (exit {measured.returncode}): {last_line(log_path)}")
    return json.loads(out.read_text()), measured


class Sides(NamedTuple):
    """Both sides of a bench measured back to back: each one's result JSON and process measurements
    (the TRL side's None with ``--skip-trl``) and the load average before, between and after."""

    engine: dict[str, Any]
    engine_proc: Measured
    trl: dict[str, Any] | None
    trl_proc: Measured | None
    load: dict[str, tuple[float, float, float]]


def run_sides(
    settings: dict[str, Any], engine_module: str, trl_script: str, *, trl_venv: str, skip_trl: bool
) -> Sides:
    """Run the engine side (``python -m engine_module``, see :func:`side_process`) and then TRL's
    (``scripts/trl_baseline/<trl_script>`` in its own environment) on the same ``settings``, each in a
    process of its own so that each peak RSS is its own."""
    load = {"before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-sides-") as tmp_dir:
        tmp = Path(tmp_dir)
        settings_path = tmp / "settings.json"
        settings_path.write_text(json.dumps(settings))
        log.info("engine side: %s", engine_module)
        engine, engine_proc = run_side(
            "engine", [sys.executable, "-m", engine_module, "--settings", str(settings_path)], tmp
        )
        load["after_engine"] = os.getloadavg()
        trl = trl_proc = None
        if not skip_trl:
            ensure_trl_venv(trl_venv, tmp)
            log.info("TRL side: %s", trl_script)
            trl_cmd = [str(Path(trl_venv) / "bin" / "python"), str(TRL_DIR / trl_script)]
            trl, trl_proc = run_side("trl", [*trl_cmd, "--settings", str(settings_path)], tmp)
            load["after_trl"] = os.getloadavg()
    return Sides(engine, engine_proc, trl, trl_proc, load)


def ensure_trl_venv(venv: str, tmp: Path) -> None:
    """Make (or check) the TRL environment at ``venv``."""
    log_path = tmp / "trl-setup.log"
    log.info("TRL environment at %s (made on first use, about 90 s)", venv)
    with log_path.open("w") as out:
        done = subprocess.run(
            ["bash", str(TRL_DIR / "setup_trl_venv.sh"), venv],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise ConfigError(f"setting up the TRL environment at {venv} failed: {last_line(log_path)}")


def medians(per_step: list[dict[str, float]], warmup: int = 1) -> dict[str, float]:
    """The median of each timing over the steps after the warm-up."""
    measured = per_step[warmup:]
    keys = [k for k in measured[0] if k.endswith("_s")]
    return {k: statistics.median(step[k] for step in measured) for k in keys}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        return ""


def main(args: argparse.Namespace) -> int:
    from engine.models.precision import cpu_kind

    if args.steps < 2:
        raise ConfigError("--steps must be >= 2 (the first is a warm-up)")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    settings = protocol_settings(args)
    config = engine_config(settings)  # bad sizes stop here, before any process starts
    engine, engine_proc, trl, trl_proc, load = run_sides(
        settings, "engine.bench.grpo", "trl_grpo_tiny.py", trl_venv=args.trl_venv, skip_trl=args.skip_trl
    )
    if trl is not None and set(trl["generated_tokens_per_completion"]) != {args.new_tokens}:
        raise ConfigError(  # not the same work: no comparison
            f"the TRL side sampled {sorted(set(trl['generated_tokens_per_completion']))} tokens per "
            f"completion, not {args.new_tokens}"
        )

    split = medians(engine["per_step"])
    trl_split = medians(trl["per_step"]) if trl else None
    seconds, cpu_seconds = split.pop("total_s"), split.pop("cpu_s")
    trl_seconds = trl_split.pop("total_s") if trl_split else None
    trl_cpu_seconds = trl_split.pop("cpu_s") if trl_split else None
    ratio = seconds / trl_seconds if trl_seconds else None
    peak, trl_peak = engine["peak_rss_mb"], trl["peak_rss_mb"] if trl else None
    floor = engine["matmul"]["seconds"]
    result = {
        "protocol": settings["protocol"],
        "engine": engine["engine"],
        "baseline": trl["engine"] if trl else None,
        "device": "cpu",
        "cpu": {"kind": cpu_kind(), "model": cpu_model(), "cpus": os.cpu_count()},
        "seconds_per_step": seconds,
        "trl_seconds_per_step": trl_seconds,
        "seconds_per_step_ratio": ratio,
        # CPU seconds of the step's process (all threads): less moved by other work on a shared machine
        "cpu_seconds_per_step": cpu_seconds,
        "trl_cpu_seconds_per_step": trl_cpu_seconds,
        "cpu_seconds_ratio": cpu_seconds / trl_cpu_seconds if trl_cpu_seconds else None,
        "peak_rss_mb": peak,
        "trl_peak_rss_mb": trl_peak,
        "target": f"seconds_per_step_ratio <= {TARGET_RATIO} and peak_rss_mb <= trl_peak_rss_mb",
        "target_met": (ratio <= TARGET_RATIO and peak <= trl_peak) if trl else None,
        # the step's matrix products timed alone, each side's recorded in one more step
        "matmul": {"engine": engine["matmul"], "trl": trl["matmul"] if trl else None},
        # the ratio the engine would reach if everything but its matrix products took no time
        "matmul_floor_ratio": floor / trl_seconds if trl_seconds else None,
        "split_seconds": split,
        "trl_split_seconds": trl_split,
        "steps": args.steps,
        "warmup_steps_discarded": 1,
        "per_step": engine["per_step"],
        "trl_per_step": trl["per_step"] if trl else None,
        "trl_generated_tokens_per_completion": trl["generated_tokens_per_completion"] if trl else None,
        "process_wall_s": {"engine": engine_proc.wall_s, "trl": trl_proc.wall_s if trl_proc else None},
        # each process's peak over its whole life, the recorded step included
        "process_peak_rss_mb": {
            "engine": engine_proc.peak_rss_mb,
            "trl": trl_proc.peak_rss_mb if trl_proc else None,
        },
        "base_precision": engine["base_precision"],
        "trainable_parameters": {
            "engine": engine["trainable_parameters"],
            "trl": trl["trainable_parameters"] if trl else None,
        },
        "threads": {"engine": engine["threads"], "trl": trl["threads"] if trl else None},
        "trl_config": trl["trl_config"] if trl else None,
        "settings": {
            **{k: v for k, v in settings.items() if k != "prompts"},
            "prompt_pool": len(settings["prompts"]),
            "optimizer_steps_per_step": config.optimizer_steps_per_iteration,
            "sequences_per_step": config.run.batch_size,
        },
        "load_average": load,
        "versions": {"engine": engine["versions"], "trl": trl["versions"] if trl else None},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    elif trl:
        print(
            f"{result['protocol']}: engine {seconds:.3f} s/step, TRL {trl_seconds:.3f} s/step (ratio {ratio:.2f}, "
            f"target {TARGET_RATIO}); peak RSS {peak:.0f} MiB vs {trl_peak:.0f} MiB; the engine's matrix "
            f"products alone {floor:.3f} s/step (ratio {floor / trl_seconds:.2f}), TRL's "
            f"{trl['matmul']['seconds']:.3f} s/step"
        )
    else:
        print(
            f"{result['protocol']}: engine {seconds:.3f} s/step (its matrix products alone {floor:.3f}), "
            f"peak RSS {peak:.0f} MiB"
        )
    return 0


def side_process(side: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """The body of a bench's engine-side process (started through :func:`run_side`): settings JSON
    in, ``side(settings)``'s result JSON out; ``bench grpo`` and ``bench ppo --protocol smollm2-cpu``
    each run their side this way, so it is measured in a process of its own, as TRL's is."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--settings", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = side(json.loads(Path(args.settings).read_text()))
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    side_process(engine_side)
