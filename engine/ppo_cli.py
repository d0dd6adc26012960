"""``python -m engine ppo ...`` (contract): run a PPO job in this process.

Every leaf of :class:`~engine.ppo_config.PPOConfig` is a flag (``kl_coef`` -> ``--kl-coef``) whose
help is the field's docstring, so the CLI, the Runs page form and the run record share one source.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

from engine.config import ConfigError
from engine.ppo_config import (
    BASE_PRECISIONS,
    KL_ESTIMATORS,
    REWARD_NORMS,
    SECTION_TYPES,
    PPOConfig,
    field_docs,
)

log = logging.getLogger(__name__)

CHOICES = {"KLEstimator": KL_ESTIMATORS, "RewardNorm": REWARD_NORMS, "BasePrecision": BASE_PRECISIONS}


def _none_or(kind: type):
    def parse(text: str):
        return None if text.lower() in ("none", "") else kind(text)

    parse.__name__ = f"{kind.__name__} or none"
    return parse


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per PPOConfig leaf; defaults are suppressed so only given flags override."""
    for section, section_cls in SECTION_TYPES.items():
        group = parser.add_argument_group(section)
        docs = field_docs(section_cls)
        for f in dataclasses.fields(section_cls):
            kind = str(f.type)
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            kwargs: dict[str, Any] = {
                "default": argparse.SUPPRESS,
                "help": f"{docs.get(f.name, '')} (default: {default})",
            }
            if kind == "bool":
                kwargs["action"] = argparse.BooleanOptionalAction
            elif kind in CHOICES:
                kwargs["choices"] = CHOICES[kind]
            elif kind.startswith("tuple"):
                kwargs["nargs"] = "*"
            elif kind in ("float", "int", "str"):
                kwargs["type"] = {"float": float, "int": int, "str": str}[kind]
            elif kind in ("float | None", "int | None"):
                kwargs["type"] = _none_or(float if kind.startswith("float") else int)
            else:
                raise AssertionError(f"no CLI type for {f.name}: {kind}")
            group.add_argument(_flag(f.name), dest=f.name, **kwargs)


def config_from_args(args: argparse.Namespace, base: PPOConfig | None = None) -> PPOConfig:
    """``base`` (default PPOConfig()) with the flags that were given."""
    leaves = {
        f.name: getattr(args, f.name)
        for section_cls in SECTION_TYPES.values()
        for f in dataclasses.fields(section_cls)
        if hasattr(args, f.name)
    }
    return (base or PPOConfig()).replace(**leaves)


def config_to_argv(config: PPOConfig | None) -> list[str]:
    """Flags that rebuild ``config`` from the defaults (only the leaves that differ)."""
    if config is None:
        return []
    argv: list[str] = []
    default = PPOConfig().to_dict()
    for section, values in config.to_dict().items():
        for name, value in values.items():
            if value == default[section][name]:
                continue
            if isinstance(value, bool):
                argv.append(_flag(name) if value else "--no-" + name.replace("_", "-"))
            elif isinstance(value, list | tuple):
                argv += [_flag(name), *map(str, value)]
            else:
                argv += [
                    _flag(name),
                    "none" if value is None else repr(value) if isinstance(value, float) else str(value),
                ]
    return argv


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
    add_config_arguments(parser)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from engine.jobs import new_run_id, run_dir_of, run_job

    given = {f.name for s in SECTION_TYPES.values() for f in dataclasses.fields(s) if hasattr(args, f.name)}
    if args.resume:
        if args.run_id and args.run_id != args.resume:
            raise ConfigError("--resume names the run to continue; do not also give a different --run-id")
        if given - {"steps"}:
            raise ConfigError(
                f"a resumed run keeps its settings; only --steps may be raised (got {sorted(given)})"
            )
        config = config_from_args(args) if "steps" in given else None
        run_dir = run_dir_of(args.resume, args.runs_dir)
        return run_job(config, run_dir, resume=True, progress=not args.no_progress)
    config = config_from_args(args)
    run_dir = run_dir_of(args.run_id or new_run_id(), args.runs_dir)
    log.info("run %s -> %s", run_dir.name, Path(run_dir))
    return run_job(config, run_dir, resume=False, progress=not args.no_progress)
