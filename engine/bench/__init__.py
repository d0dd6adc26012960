"""Benchmarks: ``python -m engine bench {ppo,sampling,store} ...`` (contract).

Each benchmark is a module ``engine.bench.<name>`` exposing ``add_arguments(parser)`` and
``main(args)``; it is imported only when registered or run, and a module that is not written yet
is simply left out of the command line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from types import ModuleType

log = logging.getLogger(__name__)

BENCHMARKS = {
    "ppo": "PPO iteration throughput",
    "sampling": "sampling and per-token signal throughput",
    "store": "rollout store write and query speed",
}


def _load(name: str) -> ModuleType | None:
    module_name = f"{__name__}.{name}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # the module exists but one of its imports is missing
            raise
        log.debug("benchmark %s not available yet", name)
        return None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks (print one JSON object with --json)")
    bench_sub = parser.add_subparsers(dest="benchmark", metavar="<benchmark>", required=True)
    for name, help_text in BENCHMARKS.items():
        module = _load(name)
        if module is None:
            continue
        sub = bench_sub.add_parser(name, help=help_text)
        module.add_arguments(sub)
        sub.set_defaults(func=_runner(name))


def _runner(name: str):
    def run(args: argparse.Namespace) -> int:
        module = _load(name)
        assert module is not None  # registered only when importable
        return int(module.main(args) or 0)

    return run
