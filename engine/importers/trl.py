"""``trl``: TRL ``GRPOTrainer(log_completions=True)`` completion logs.

TRL v1.9 (trl/trainer/grpo_trainer.py, ``log``) writes
``<output_dir>/completions/completions_{global_step:05d}.parquet`` from the table
``{"step", "prompt", "completion", *<one column per reward function>, *<log_extra columns>,
"advantage"}``. The reward is TRL's: the sum of the reward columns (NaN counting as 0, TRL's
``nansum``; reward weights are not in the file), unless ``--map reward=COL`` (or ``A+B``) picks them.
The reward columns are the numeric columns between ``completion`` and ``advantage`` (TRL writes
the rewards first, then the extra logged columns): name them with ``--map reward=...`` when an
extra logged column is numeric too. Every reward column, the advantage (one per sample) and the
extra columns are kept in ``extras``. Newer layouts with a ``completions/<mode>/`` folder and a
``.jsonl`` variant are read the same way; files under an ``eval`` folder are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from engine.config import ConfigError
from engine.importers.common import Staging, find_files, map_table, table_batches

PATTERNS = ["completions_*.parquet", "completions_*.jsonl"]


def files(path: Path, fmt: str = "trl") -> list[Path]:
    found = find_files(path, PATTERNS, "TRL completion logs (completions/completions_NNNNN.parquet)")
    return (
        [p for p in found if "eval" not in p.relative_to(path).parts[:-1]] if Path(path).is_dir() else found
    )


def reward_columns(table: pa.Table, where: str) -> list[str]:
    names = table.column_names
    for required in ("prompt", "completion"):
        if required not in names:
            raise ConfigError(f"{where}: no {required!r} column; columns found: {names} (is this a TRL log?)")
    end = names.index("advantage") if "advantage" in names else len(names)
    between = names[names.index("completion") + 1 : end]
    numeric = [c for c in between if c != "step" and _numeric(table.schema.field(c).type)]
    if not numeric:
        raise ConfigError(
            f"{where}: no reward columns between 'completion' and 'advantage'; columns found: {names}. "
            "Name them with --map reward=COL (or A+B)"
        )
    return numeric


def _numeric(dtype: pa.DataType) -> bool:
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_null(dtype)


def stage(paths: list[Path], ctx: Staging) -> Iterator[pa.Table]:
    for path in paths:
        for batch in table_batches(path, ctx.progress):
            resolved = {"prompt": ["prompt"], "response": ["completion"]}
            if "step" in batch.column_names:
                resolved["step"] = ["step"]
            if "reward" not in ctx.mapping:
                resolved["reward"] = reward_columns(batch, str(path))
            resolved.update(ctx.mapping)
            ctx.used.setdefault("mapping", resolved)
            yield map_table(batch, resolved, where=str(path), default_step=_step_of(path))


def _step_of(path: Path) -> int | None:
    digits = path.stem.rpartition("_")[2]
    return int(digits) if digits.isdigit() else None
