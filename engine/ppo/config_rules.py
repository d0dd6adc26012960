"""The validation rules of a run configuration: each section of :mod:`engine.ppo.config` checks its
fields by a table, field -> :class:`Rule`, in ``__post_init__``; a rule says what a field needs ("an
integer >= 1") and the message is always "<field> must be <needs>, got <value>". Checks that relate
several fields follow the table in the section's ``__post_init__``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.config import ConfigError


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Rule:
    """What a field's value must satisfy (``ok``) and how the message says it (``needs``)."""

    ok: Callable[[Any], bool]
    needs: str


def int_at_least(low: int, why: str = "") -> Rule:
    """An integer (not a bool) >= ``low``; ``why`` is appended to the message, e.g. " (0 = off)"."""
    return Rule(
        lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= low, f"an integer >= {low}{why}"
    )


def one_of(choices: tuple) -> Rule:
    return Rule(lambda x: x in choices, f"one of {choices}")


def or_none(rule: Rule) -> Rule:
    return Rule(lambda x: x is None or rule.ok(x), f"{rule.needs} or None")


NUMBER = Rule(finite, "a number")
POSITIVE = Rule(lambda x: finite(x) and x > 0, "> 0")
NON_NEGATIVE = Rule(lambda x: finite(x) and x >= 0, ">= 0")
UNIT_INTERVAL = Rule(lambda x: finite(x) and 0 <= x <= 1, "in [0, 1]")


def validate(config: Any, rules: dict[str, Rule]) -> None:
    """Raise a :class:`ConfigError` naming the first field of ``config`` that breaks its rule."""
    for name, rule in rules.items():
        value = getattr(config, name)
        check(rule.ok(value), f"{name} must be {rule.needs}, got {value!r}")
