"""The command-line codec of :class:`~engine.ppo.config.PPOConfig`: every leaf is a flag (``kl_coef`` ->
``--kl-coef``) whose help is the field's docstring, so the CLI, the Runs page form and the run record
share one source. :func:`config_to_argv` is the inverse of parsing, used to launch a job with a config.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from engine.ppo.config import SECTION_TYPES, PPOConfig, field_choices, field_docs


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
        choices = field_choices(section_cls)
        for f in dataclasses.fields(section_cls):
            kind = str(f.type)
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            kwargs: dict[str, Any] = {
                "default": argparse.SUPPRESS,
                # argparse formats %: a literal one is written %%
                "help": f"{docs.get(f.name, '')} (default: {default})".replace("%", "%%"),
            }
            if kind == "bool":
                kwargs["action"] = argparse.BooleanOptionalAction
            elif f.name in choices:
                kwargs["choices"] = choices[f.name]
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
