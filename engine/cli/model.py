"""``python -m engine model prepare NAME [--verify]``: convert a named model source into its local
cache now (it otherwise happens on first use), or check a cache byte for byte."""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli import command_group


def register(subparsers: argparse._SubParsersAction) -> None:
    from engine.models.gguf_cache import GGUF_SOURCES

    sub = command_group(subparsers, "model", "model_command", help="prepare a named model source (smollm2)")
    prepare = sub.add_parser(
        "prepare",
        help="convert a named model source into its local cache once (later loads take seconds)",
        description="Named sources: "
        + "; ".join(f"{name}: {source.describe()}" for name, source in GGUF_SOURCES.items())
        + ". The cache lives in WORKBENCH_MODEL_CACHE (default ~/.cache/ppo-entropy-workbench/models).",
    )
    prepare.add_argument("name", choices=sorted(GGUF_SOURCES), help="the named source")
    prepare.add_argument(
        "--verify", action="store_true", help="hash every cached file against its recorded sha256 (~2 s)"
    )
    prepare.add_argument("--json", action="store_true", help="print the cache's manifest as JSON")
    prepare.set_defaults(func=_prepare)


def _prepare(args: argparse.Namespace) -> int:
    from engine.models.gguf_cache import MANIFEST, ensure_cached, named_source

    entry = ensure_cached(args.name, verify=args.verify)
    manifest = json.loads((entry / MANIFEST).read_text())
    if args.json:
        json.dump({"path": str(entry), **manifest}, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"{named_source(args.name).describe()}: {entry}")
    return 0
