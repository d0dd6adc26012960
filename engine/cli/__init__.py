"""Command line: ``python -m engine <command> ...`` (contract).

One module per command, each exposing ``register(subparsers)``; :data:`COMMANDS` lists them all and
:func:`build_parser` registers every one (or only the one a command line names). A command module
that fails to import is an error, never a command that silently disappears. Command modules keep
heavy imports (torch, transformers) inside functions where they can.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Any

from engine.config import ConfigError, os_error_message

# command name -> module that registers it
COMMANDS = {
    "world": "engine.cli.world",
    "sample": "engine.cli.sample",
    "ppo": "engine.cli.ppo",
    "jobs": "engine.cli.jobs",
    "store": "engine.cli.store",
    "bench": "engine.cli.bench",
    "import": "engine.cli.import_run",
    "analyse": "engine.cli.analyse",
    "demo": "engine.cli.demo",
    "model": "engine.cli.model",
    "real": "engine.cli.real",
}


def command_group(
    subparsers: argparse._SubParsersAction, name: str, dest: str, metavar: str = "<action>", **kwargs: Any
) -> argparse._SubParsersAction:
    """Register command ``name`` (``kwargs``: help, description) made of sub-commands, one of which
    must be given (its name lands in ``args.<dest>``); returns the subparsers to add them to."""
    parser = subparsers.add_parser(name, **kwargs)
    return parser.add_subparsers(dest=dest, metavar=metavar, required=True)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or only ``command``'s part when it names one: registering a command
    can import what its defaults come from (the world's config pulls torch in), and ``jobs list``
    should not wait seconds for torch it never uses."""
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="PPO Entropy Workbench engine: toy world, sampling signals, PPO jobs, benchmarks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    # every module is imported (cheap), so a broken one fails every command, not just its own
    modules = {name: importlib.import_module(path) for name, path in COMMANDS.items()}
    for name in [command] if command in COMMANDS else list(COMMANDS):
        modules[name].register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # the only top-level options are flags, so the first word that is not one names the command
    command = next((word for word in argv if not word.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
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
    except OSError as exc:  # a file that could not be read or written: the OS's words, not a traceback
        print(f"error: {os_error_message(exc)}", file=sys.stderr)
        return 2
