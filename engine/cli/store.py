"""``python -m engine store ...``: list runs, summarise one, write a synthetic demo run."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from engine.cli import command_group
from engine.config import options

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = command_group(
        subparsers, "store", "store_command", help="rollout store: list runs, summarise, synthetic demo runs"
    )

    ls = sub.add_parser("ls", help="list the runs of the runs directory")
    ls.add_argument("--runs-dir", type=Path, default=None, help="default: WORKBENCH_RUNS_DIR or <repo>/runs")
    ls.set_defaults(func=_ls)

    summary = sub.add_parser("summary", help="per-step summary of a run (reward, entropy, KL, length)")
    summary.add_argument("run_dir", type=Path)
    summary.set_defaults(func=_summary)

    synth = sub.add_parser("synth", help="write a synthetic PPO run (demo data for the analysis pages)")
    synth.add_argument(
        "--runs-dir", type=Path, default=None, help="default: WORKBENCH_RUNS_DIR or <repo>/runs"
    )
    synth.add_argument("--name", default="synthetic-demo")
    synth.add_argument("--steps", type=int, default=12)
    synth.add_argument("--prompts", type=int, default=64)
    synth.add_argument("--samples", type=int, default=8)
    synth.add_argument("--tokens", type=int, default=24)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--overwrite", action="store_true")
    synth.set_defaults(func=_synth)


def _runs_dir(arg: Path | None) -> Path:
    from engine.paths import runs_dir

    return arg or runs_dir()


def _ls(args: argparse.Namespace) -> int:
    from engine.store import runs_frame

    frame = runs_frame(_runs_dir(args.runs_dir))
    print(frame.drop(columns=["run_dir"]).to_string(index=False) if len(frame) else "no runs")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from engine.config import ConfigError
    from engine.store import step_summary, store_warnings

    if not args.run_dir.is_dir():
        raise ConfigError(f"no run directory at {args.run_dir}")
    for warning in store_warnings(args.run_dir):
        log.warning(warning)
    print(step_summary(args.run_dir).to_string(index=False))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from engine.config import ConfigError
    from engine.runs import check_run_id
    from engine.store.synthetic import write_synthetic_run

    if min(args.steps, args.prompts, args.samples, args.tokens) < 1:
        raise ConfigError("--steps, --prompts, --samples and --tokens must all be >= 1")
    run_dir = _runs_dir(args.runs_dir) / check_run_id(args.name)
    write_synthetic_run(
        run_dir, **options(args, "steps", "prompts", "samples", "tokens", "seed", "overwrite")
    )
    log.info("wrote %d rollouts to %s", args.steps * args.prompts * args.samples, run_dir)
    return 0
