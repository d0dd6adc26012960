"""``python -m engine world build|check|info``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("world", help="build or check the built-in toy world")
    sub = parser.add_subparsers(dest="world_command", metavar="<world command>", required=True)

    build = sub.add_parser(
        "build",
        help="rebuild the world's data and models from a seed (a few minutes on 2 CPU cores)",
        description="Generate prompts, SFT data and preference pairs, train the SFT checkpoints "
        "(one per epoch) and the reward model, and write them to data/world/ (or --out).",
    )
    from engine.world_tools.build import WorldConfig

    for f in fields(WorldConfig):
        build.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=type(f.default),
            default=f.default,
            help=f"(default {f.default})",
        )
    build.add_argument("--out", type=Path, default=None, help="output directory (default: data/world)")
    build.set_defaults(func=_build)

    check = sub.add_parser(
        "check",
        help="measure the practitioner's phenomena (W1..W7, and min-p as a measurement) on the shipped artifacts",
        description="Sample the shipped checkpoints and measure W1 (SFT entropy falls with epochs), "
        "W2 (data range), W3 (RM accuracy), W6 (temperature), W7 (reward normalisation), and W4/W5 "
        "(PPO works / over-optimisation) unless --quick. Exit code 0 only if every measured check holds.",
    )
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--quick", action="store_true", help="skip the PPO checks W4 and W5")
    check.add_argument("--seed", type=int, default=0, help="sampling seed")
    check.set_defaults(func=_check)

    info = sub.add_parser("info", help="print a summary of the built world")
    info.set_defaults(func=_info)


def _build(args: argparse.Namespace) -> int:
    from engine.paths import world_dir
    from engine.world_tools.build import WorldConfig, build_world

    config = WorldConfig(**{f.name: getattr(args, f.name) for f in fields(WorldConfig)})
    manifest = build_world(args.out or world_dir(), config)
    print(json.dumps({k: manifest[k] for k in ("policy_params", "rm_params", "build_seconds")}))
    return 0


def _check(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from engine.world import load_world
    from engine.world_tools.check import CHECK_NAMES, MEASURED, run_checks

    world = load_world()
    with tqdm(total=len(CHECK_NAMES), desc="world check", file=sys.stderr) as bar:
        results = run_checks(world, quick=args.quick, seed=args.seed, progress=lambda name: bar.update(1))
    if args.json:
        print(json.dumps(results))
    else:
        for name, r in results.items():
            if name == "cpu":
                print(f"cpu  {r['value']}  {r['detail']}")
                continue
            status = (
                "measured" if name in MEASURED else "skip" if r["ok"] is None else "ok" if r["ok"] else "FAIL"
            )
            print(f"{name} {status:4} {r['value']}  {r['detail']}")
    return 0 if all(r["ok"] is not False for r in results.values()) else 1


def _info(args: argparse.Namespace) -> int:
    from engine.world import load_world

    print(json.dumps(load_world().summary(), indent=2))
    return 0
