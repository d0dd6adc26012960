"""``python -m engine demo build|figures``: regenerate the shipped demo runs, print their figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.cli import command_group


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = command_group(
        subparsers, "demo", "demo_command", help="the shipped demo runs: rebuild them, print their figures"
    )
    build = sub.add_parser(
        "build",
        help="train the demo runs on the built-in world (minutes on 2 CPU cores) into data/demo_runs",
        description="Each demo run is a real PPO run from a recorded config and seed; see engine/demo.py.",
    )
    build.add_argument("--out", type=Path, default=None, help="default: data/demo_runs")
    build.add_argument("--only", nargs="*", default=None, help="run ids to build (default: all)")
    build.add_argument("--no-progress", action="store_true")
    build.set_defaults(func=_build)
    figures = sub.add_parser(
        "figures", help="what each demo run shows (gold gain, entropy fall, RM accuracy)"
    )
    figures.add_argument("run_dirs", nargs="*", type=Path, help="default: every shipped demo run")
    figures.set_defaults(func=_figures)


def _build(args: argparse.Namespace) -> int:
    from engine.config import ConfigError
    from engine.demo import build_demo, demo_figures, demo_specs
    from engine.paths import demo_runs_dir

    specs = demo_specs()
    if args.only:
        unknown = sorted(set(args.only) - {s.run_id for s in specs})
        if unknown:
            raise ConfigError(f"unknown demo runs {unknown}; the demo runs are {[s.run_id for s in specs]}")
        specs = [s for s in specs if s.run_id in args.only]
    out = args.out or demo_runs_dir()
    out.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        run_dir = build_demo(spec, out, progress=not args.no_progress)
        print(json.dumps({"run_id": spec.run_id, **demo_figures(run_dir)}), flush=True)
    return 0


def _figures(args: argparse.Namespace) -> int:
    from engine.demo import demo_figures
    from engine.paths import demo_runs_dir

    run_dirs = args.run_dirs or sorted(p for p in demo_runs_dir().glob("demo-*") if p.is_dir())
    print(json.dumps({p.name: demo_figures(p) for p in run_dirs}, indent=2))
    return 0
