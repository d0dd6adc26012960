"""``python -m engine real build``: the real world (SmolLM2 and its tasks with checkers); ``python -m
engine real check [--run RUN] --json`` (contract): what a PPO run on it shows, R1-R4
(:mod:`engine.real_tools.check`)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from engine.cli import command_group


def register(subparsers) -> None:
    sub = command_group(
        subparsers,
        "real",
        "real_command",
        metavar="<real command>",
        help="build the real world: SmolLM2's task sets and reward model; check what a PPO run on it shows",
    )
    register_check(sub)
    build = sub.add_parser(
        "build",
        help="make the task sets and a reward model trained on SmolLM2's own samples (minutes on 2 CPU cores)",
        description="Write the real world's training and held-out task sets, sample SmolLM2's answers "
        "(chat template, T = 1), label within-prompt pairs with the checkers plus label noise, train a "
        "Bradley-Terry reward model (LoRA on the top layers and a scalar head), measure it against the "
        "checkers on held-out prompts, and write it all to data/real/ (or --out). Reproducible from --seed.",
    )
    from engine.real_tools.build import RealBuildConfig

    for f in fields(RealBuildConfig):
        many = isinstance(f.default, tuple)  # rm_families: names given one after another
        build.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=str if many else type(f.default),
            nargs="+" if many else None,
            default=None if f.name != "seed" else f.default,
            help=f"(default {' '.join(f.default) if many else f.default})",
        )
    build.add_argument("--out", type=Path, default=None, help="output directory (default: data/real)")
    build.add_argument(
        "--quick",
        action="store_true",
        help="a smoke build: two tasks per family, a few short answers, one epoch",
    )
    build.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from engine.models import set_threads_from_env
    from engine.paths import data_dir
    from engine.real_tools.build import QUICK, RealBuildConfig, build_real

    set_threads_from_env()
    given = {
        f.name: tuple(value) if isinstance(value, list) else value
        for f in fields(RealBuildConfig)
        if (value := getattr(args, f.name)) is not None
    }
    config = RealBuildConfig(**((QUICK if args.quick else {}) | given))
    manifest = build_real(args.out or data_dir() / "real", config)
    accuracy = manifest["rm"]["held_out_pair_accuracy"]["all"]
    print(
        json.dumps(
            {
                "rm_held_out_pair_accuracy": accuracy,
                **manifest["counts"],
                "build_s": manifest["timings"]["build_s"],
            }
        )
    )
    return 0


def register_check(sub: argparse._SubParsersAction) -> None:
    from engine.real_tools.check import DEMO_RUN, N_PROMPTS, N_SAMPLES

    check = sub.add_parser(
        "check",
        help="what a PPO run on the real world shows: held-out accuracy, entropy, pass@k, RM agreement",
        description="Sample the run's start (its base policy) and its last checkpoint on the real world's "
        "held-out tasks and measure R1 (checker accuracy), R2 (token entropy), R3 (pass@1, pass@k), "
        "and R4 (RM-checker agreement on the run's first vs last rollouts); beside the same run rewarded by the "
        "checker itself, rm_cost (what the learned RM costs in R1). Exit code 0 when R1 meets its goal.",
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
        "--checker-run",
        default=None,
        help="the same run with the checker itself as the reward (reward_model gold), sampled beside RUN "
        "for what the learned RM costs (default: RUN-checker when it exists, e.g. demo-smollm2-checker)",
    )
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
            checker_run=args.checker_run,
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
        for key in ("cpu", "R1", "R2", "R3", "R4", "rm_cost"):
            entry = report[key]
            mark = {True: "ok  ", False: "FAIL", None: "    "}[entry["ok"]]
            print(f"{mark} {key}: {entry['detail']}")
    return 0 if report["R1"]["ok"] else 1
