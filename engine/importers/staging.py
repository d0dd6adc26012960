"""What a format module reads with and reports back while it stages rows: :class:`Staging`.

A format module exposes ``files(path, fmt)`` and ``stage(files, ctx)``; ``stage`` yields *staged*
tables (store columns plus ``extras``) and records in ``ctx`` what the user should hear about: the
mapping it really used, warnings, and counts of what it repaired or left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Progress = Callable[[int], None]  # called with the number of source bytes (or rows) just consumed

# ctx.counts keys, each a field of the ImportResult (0 when nothing happened)
REPEATED_FILES = "repeated_files"  # files that repeat the previous file's rows (TRL re-logging)
SKIPPED_ROWS = "skipped_rows"  # rows missing a required field, left out under skip_bad_rows
NON_FINITE_REWARDS = "non_finite_rewards"  # NaN / inf rewards stored as empty
REPLACED_CHARACTERS = "replaced_characters"  # lone surrogates in a text, stored as U+FFFD
COUNTS = (REPEATED_FILES, SKIPPED_ROWS, NON_FINITE_REWARDS, REPLACED_CHARACTERS)


@dataclass
class Staging:
    """What a format module's ``stage(paths, ctx)`` reads with and reports back.

    Read: the user's column ``mapping``, a ``progress`` callback, ``skip_bad_rows`` (leave out a row
    missing a required field instead of stopping). Reported: ``used`` (``used["mapping"]``: the
    mapping the files were really read with; other keys: columns seen), ``warnings`` for the user,
    ``counts`` (the :data:`COUNTS` keys) and ``rows_read`` (source rows read so far per file, so a
    bad row is named by its line).
    """

    mapping: Mapping[str, list[str]]
    progress: Progress | None = None
    skip_bad_rows: bool = False
    used: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    rows_read: dict[Path, int] = field(default_factory=dict)

    def fixed_fields(self, fmt: str, mapping: dict[str, list[str]]) -> None:
        """For a format whose fields are fixed: warn that ``--map`` is ignored, record ``mapping`` as used."""
        if self.mapping:
            self.warnings.append(f"--map is ignored for {fmt} (its fields are fixed)")
        self.used.setdefault("mapping", mapping)

    def report(self, nbytes: int) -> None:
        """Pass ``nbytes`` of consumed source to the progress callback, if there is one."""
        if self.progress is not None:
            self.progress(nbytes)
