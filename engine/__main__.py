"""Command line: ``python -m engine <command> ...`` (contract).

Each command lives in its own module, which exposes ``register(subparsers)``; this file only
wires them together. Command modules keep heavy imports (torch, transformers) inside functions so
``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from engine.config import ConfigError

# command name -> module that registers it
COMMANDS = {
    "world": "engine.world.cli",
    "sample": "engine.sampling_cli",
    "ppo": "engine.ppo_cli",
    "jobs": "engine.jobs",
    "bench": "engine.bench",
    "store": "engine.store_cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="PPO Entropy Workbench engine: toy world, sampling signals, PPO jobs, benchmarks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for module_name in COMMANDS.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a command whose module is not built yet
            if exc.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
