"""Configuration dataclasses, validated once at construction.

Every config is a frozen dataclass whose fields carry a docstring-like comment; invalid values
raise :class:`ConfigError` naming the field and the bad value. The same dataclasses drive the CLI,
the page forms and the ``config`` column of a run record (see :func:`to_dict`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A setting, path or input that cannot be used, with a message a user can act on."""


GOLD_REWARD = "gold"
"""The reward source (a run's ``reward_model``) that is the world's gold judge itself, no learned RM:
the built-in world's judge, the real world's checker. A run's record says it, so every reader of the
run (the RM accuracy views, ``real check``) knows its ``reward`` column is the judge's score."""


def shown_path(path: object) -> str:
    """``path`` for a message: cut in the middle when it is too long to read."""
    text = str(path)
    return text if len(text) <= 160 else f"{text[:100]}...{text[-40:]} ({len(text)} characters)"


def os_error_message(exc: OSError) -> str:
    """What the OS said and about which file, without Python's exception class (``No space left on
    device (runs/x/status.json)``): a file error as a user reads it, in the CLI and on the pages."""
    where = f" ({shown_path(exc.filename)})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def options(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The parsed command-line options ``names``, as the keyword arguments of the function that
    takes them (here, below the CLI and the benchmarks, so both can use it)."""
    return {name: getattr(args, name) for name in names}


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) config dataclass."""
    return dataclasses.asdict(config)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class SamplingConfig:
    """How tokens are drawn: temperature, then top-k, then top-p, then min-p (the order used everywhere)."""

    temperature: float = 1.0
    """Divides the logits. 0 means greedy decoding (argmax); must be >= 0."""
    top_k: int = 0
    """Keep only the k most likely tokens; 0 keeps all."""
    top_p: float = 1.0
    """Keep the smallest set of tokens whose probability reaches top_p; in (0, 1]."""
    min_p: float = 0.0
    """Keep token t only if p(t) >= min_p * max p (p after temperature; Nguyen et al. 2024); in [0, 1), 0 = off."""
    max_new_tokens: int = 32
    """Response length limit in tokens."""
    stop_at_eos: bool = True
    """End a response at the EOS token (False: always generate max_new_tokens, as in benchmarks)."""

    def __post_init__(self) -> None:
        _check(
            isinstance(self.temperature, int | float)
            and math.isfinite(self.temperature)
            and self.temperature >= 0,
            f"temperature must be a finite number >= 0 (0 = greedy), got {self.temperature!r}",
        )
        _check(
            isinstance(self.top_p, int | float) and 0 < self.top_p <= 1,
            f"top_p must be in (0, 1], got {self.top_p!r}",
        )
        _check(
            isinstance(self.min_p, int | float) and not isinstance(self.min_p, bool) and 0 <= self.min_p < 1,
            f"min_p must be in [0, 1) (0 = no min-p), got {self.min_p!r}",
        )
        _check(
            isinstance(self.top_k, int) and not isinstance(self.top_k, bool) and self.top_k >= 0,
            f"top_k must be an integer >= 0 (0 = no top-k), got {self.top_k!r}",
        )
        _check(
            isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1,
            f"max_new_tokens must be an integer >= 1, got {self.max_new_tokens!r}",
        )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def is_default_distribution(self) -> bool:
        """True when the sampling distribution equals the model distribution (T=1, no truncation)."""
        return self.temperature == 1 and self.top_k == 0 and self.top_p == 1 and self.min_p == 0


def validate_prompt(prompt: str) -> str:
    """Strip a prompt and refuse an empty one."""
    _check(isinstance(prompt, str), f"prompt must be a string, got {type(prompt).__name__}")
    stripped = prompt.strip()
    _check(bool(stripped), "prompt is empty: type at least one word")
    return stripped
