"""``python -m engine bench <benchmark> ...`` (contract): each benchmark prints one JSON object with
``--json`` and measures a baseline in the same run."""

from __future__ import annotations

import argparse
import importlib

from engine.bench import BENCHMARKS
from engine.cli import command_group


def register(subparsers: argparse._SubParsersAction) -> None:
    bench_sub = command_group(
        subparsers, "bench", "benchmark", "<benchmark>", help="benchmarks (print one JSON object with --json)"
    )
    for name, (module_name, help_text) in BENCHMARKS.items():
        module = importlib.import_module(f"engine.bench.{module_name}")
        sub = bench_sub.add_parser(name, help=help_text)
        module.add_arguments(sub)
        sub.set_defaults(func=module.main)
