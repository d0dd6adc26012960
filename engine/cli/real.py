"""``python -m engine real build``: the real world (SmolLM2 and its tasks with checkers)."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from engine.cli import command_group


def register(subparsers) -> None:
    sub = command_group(
        subparsers,
        "real",
        "real_command",
        metavar="<real command>",
        help="build the real world: SmolLM2's task sets and reward model",
    )
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
        build.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=type(f.default),
            default=None if f.name != "seed" else f.default,
            help=f"(default {f.default})",
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
        f.name: getattr(args, f.name) for f in fields(RealBuildConfig) if getattr(args, f.name) is not None
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
