"""``python -m engine ppo ...`` (contract): run a PPO job in this process.

Every leaf of :class:`~engine.ppo.config.PPOConfig` is a flag (``kl_coef`` -> ``--kl-coef``) whose
help is the field's docstring (:func:`engine.ppo.argv.add_config_arguments`), so the CLI, the Runs
page form and the run record share one source.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from engine.config import ConfigError
from engine.ppo.argv import add_config_arguments, config_from_args
from engine.ppo.config import SECTION_TYPES
from engine.ppo.presets import PRESETS, preset_config

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ppo",
        help="run a LoRA PPO job (rollouts + metrics logged to runs/<run_id>/)",
        description="Run PPO in this process. Defaults train the built-in world's SFT policy against its RM.",
    )
    parser.add_argument("--run-id", default=None, help="run directory name (default: ppo-<time>-<random>)")
    parser.add_argument(
        "--runs-dir", default=None, help="runs directory (default: WORKBENCH_RUNS_DIR or ./runs)"
    )
    parser.add_argument(
        "--resume", metavar="RUN_ID", default=None, help="continue RUN_ID from its last checkpoint"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="start from a named config (engine/ppo/presets.py; smollm2-cpu: the real world on SmolLM2 "
        "sized for 2 CPU cores); the flags given with it override it",
    )
    add_config_arguments(parser)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from engine.runs import new_run_id, run_dir_of

    given = {f.name for s in SECTION_TYPES.values() for f in dataclasses.fields(s) if hasattr(args, f.name)}
    if args.resume:
        if args.run_id and args.run_id != args.resume:
            raise ConfigError("--resume names the run to continue; do not also give a different --run-id")
        if given - {"steps"} or args.preset:
            raise ConfigError(
                f"a resumed run keeps its settings; only --steps may be raised (got {sorted(given)})"
            )
        config = config_from_args(args) if "steps" in given else None
        run_dir = run_dir_of(args.resume, args.runs_dir)
    else:
        config = config_from_args(args, preset_config(args.preset) if args.preset else None)
        run_dir = run_dir_of(args.run_id or new_run_id(), args.runs_dir)
        log.info("run %s -> %s", run_dir.name, Path(run_dir))
    # imported after the settings are checked: engine.ppo.job imports torch (seconds), a bad flag is
    # said before it
    from engine.ppo.job import run_job

    return run_job(config, run_dir, resume=bool(args.resume), progress=not args.no_progress)
