"""``python -m engine import FORMAT PATH ...`` and ``python -m engine import signals RUN --model ...``
(contract): bring rollouts of a run made elsewhere into the store, then recompute their per-token
signals with a local model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.cli import command_group
from engine.config import options
from engine.importers.formats import FORMAT_HELP


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = command_group(
        subparsers,
        "import",
        "import_format",
        "<format>",
        help="import rollouts of a run made elsewhere (TRL, verl, NeMo-RL, prime-rl, tables)",
        description="Read a run's rollouts in bounded batches and write them as a store run "
        "(kind=import), under a temporary directory renamed into place at the end.",
    )
    for fmt, help_text in FORMAT_HELP.items():
        p = sub.add_parser(fmt, help=help_text, description=help_text)
        p.add_argument("path", type=Path, help="a file or a directory to search")
        p.add_argument("--run-id", default=None, help="name of the new run (default: import-<source name>)")
        p.add_argument(
            "--runs-dir", type=Path, default=None, help="default: WORKBENCH_RUNS_DIR or <repo>/runs"
        )
        p.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="FIELD=COLUMN",
            help="take a store field from a source column (reward=A+B sums columns); repeatable",
        )
        p.add_argument("--replace", action="store_true", help="replace an existing run of the same id")
        p.add_argument(
            "--skip-bad-rows",
            action="store_true",
            help="leave out (and count) rows with no prompt or no response, instead of stopping at the first",
        )
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.set_defaults(func=_import, import_format=fmt)

    signals = sub.add_parser(
        "signals",
        help="recompute per-token signals of an imported run with a local causal LM",
        description="Teacher-force every stored (prompt, response) through a local causal LM and fill "
        "entropy, max_prob, sampled_prob, n_candidates and logprob (the sampling lab's signals). "
        "Resumes where it stopped; each step file is replaced atomically.",
    )
    signals.add_argument("run", help="run id (in --runs-dir) or a run directory")
    signals.add_argument("--model", required=True, help="local model directory, world:..., or cached HF name")
    signals.add_argument(
        "--runs-dir", type=Path, default=None, help="default: WORKBENCH_RUNS_DIR or <repo>/runs"
    )
    signals.add_argument(
        "--temperature", type=float, default=None, help="default: the run's recorded value, else 1"
    )
    signals.add_argument("--top-k", type=int, default=None, help="default: the run's recorded value, else 0")
    signals.add_argument(
        "--top-p", type=float, default=None, help="default: the run's recorded value, else 1"
    )
    signals.add_argument("--batch-size", type=int, default=16)
    signals.add_argument("--device", default=None, help="cpu / cuda (default: cuda when present)")
    signals.add_argument(
        "--allow-pickle",
        action="store_true",
        help="load pickle .bin weights (unpickling can run code from the file: only for models you trust)",
    )
    signals.add_argument("--json", action="store_true", help="print one JSON object")
    signals.set_defaults(func=_signals)


def _tqdm_factory(desc: str, unit: str = "B"):
    from tqdm.auto import tqdm

    def make(total: int):
        bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr)
        return bar.update

    return make


def _import(args: argparse.Namespace) -> int:
    from engine.importers import import_run, parse_mapping

    result = import_run(
        args.import_format,
        args.path,
        runs_dir=args.runs_dir,
        run_id=args.run_id,
        mapping=parse_mapping(args.map),
        replace=args.replace,
        skip_bad_rows=args.skip_bad_rows,
        progress_factory=_tqdm_factory(f"import {args.import_format}"),
    )
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        left_out = [
            f"{n} {what}"
            for n, what in ((result.repeated_files, "repeated files"), (result.skipped_rows, "bad rows"))
            if n
        ]
        print(
            f"imported {result.rows} rows ({result.steps} steps, {result.prompts} prompts) into "
            f"{result.run_dir} in {result.seconds:.1f} s"
            + (f"; left out {', '.join(left_out)}" if left_out else "")
        )
    return 0


def _signals(args: argparse.Namespace) -> int:
    from engine.importers.signals import recompute_signals, run_dir_of

    result = recompute_signals(
        run_dir_of(args.run, args.runs_dir),
        args.model,
        **options(args, "temperature", "top_k", "top_p", "batch_size", "device", "allow_pickle"),
        progress_factory=_tqdm_factory("signals", unit="rows"),
    )
    print(
        json.dumps(result)
        if args.json
        else f"signals written for {result['rows']} rows of {result['run_dir']}"
    )
    return 0
