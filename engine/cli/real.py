"""``python -m engine real check [--run RUN] --json`` (contract): what a PPO run on the real world
(SmolLM2) shows, R1-R4 (:mod:`engine.real_tools.check`)."""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli import command_group


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = command_group(subparsers, "real", "real_command", help="the real world: SmolLM2 and its tasks")
    register_check(sub)


def register_check(sub: argparse._SubParsersAction) -> None:
    from engine.real_tools.check import DEMO_RUN, N_PROMPTS, N_SAMPLES

    check = sub.add_parser(
        "check",
        help="what a PPO run on the real world shows: held-out accuracy, entropy, pass@k, RM agreement",
        description="Sample the run's start (its base policy) and its last checkpoint on the real world's "
        "held-out tasks and measure R1 (checker accuracy), R2 (token entropy), R3 (pass@1, pass@k), "
        "and R4 (RM-checker agreement on the run's first vs last rollouts). Exit code 0 when R1 meets its goal.",
    )
    check.add_argument(
        "--run", default=DEMO_RUN, help=f"a run id, yours or a shipped demo (default {DEMO_RUN})"
    )
    check.add_argument(
        "--prompts",
        type=int,
        default=N_PROMPTS,
        help=f"held-out tasks, spread over the families (default {N_PROMPTS})",
    )
    check.add_argument(
        "--samples",
        type=int,
        default=N_SAMPLES,
        help=f"samples per task; pass@k up to this k (default {N_SAMPLES})",
    )
    check.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    check.add_argument(
        "--runs-dir", default=None, help="where RUN is looked up first (default WORKBENCH_RUNS_DIR)"
    )
    check.add_argument(
        "--save",
        action="store_true",
        help="keep the samples in the run's evals/real_check.parquet (what the Learn step reads)",
    )
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(func=main_check)


def main_check(args: argparse.Namespace) -> int:
    from engine.cli.analyse import sample_progress
    from engine.real_tools.check import real_check

    with sample_progress("real check") as progress:
        report = real_check(
            args.run,
            runs_root=args.runs_dir,
            prompts=args.prompts,
            samples=args.samples,
            seed=args.seed,
            save=args.save,
            progress=progress,
        )
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        for key in ("cpu", "R1", "R2", "R3", "R4"):
            entry = report[key]
            mark = {True: "ok  ", False: "FAIL", None: "    "}[entry["ok"]]
            print(f"{mark} {key}: {entry['detail']}")
    return 0 if report["R1"]["ok"] else 1
