"""``trl``: TRL ``GRPOTrainer(log_completions=True)`` completion logs.

TRL (trl/trainer/grpo_trainer.py, ``log``; v0.29.1 and v1.9) writes
``<output_dir>/completions/completions_{global_step:05d}.parquet`` from the table
``{"step", "prompt", "completion", *<one column per reward function>, *<log_extra columns>,
"advantage"}``. The reward is TRL's: the sum of the reward columns (NaN counting as 0, TRL's
``nansum``; reward weights are not in the file), unless ``--map reward=COL`` (or ``A+B``) picks them.
The reward columns are the numeric columns between ``completion`` and ``advantage`` (TRL writes
the rewards first, then the extra logged columns): name them with ``--map reward=...`` when an
extra logged column is numeric too. Every reward column, the advantage (one per sample) and the
extra columns are kept in ``extras``. Newer layouts with a ``completions/<mode>/`` folder and a
``.jsonl`` variant are read the same way; files under an ``eval`` folder are skipped.

Repeated generations: TRL keeps the last generation batch in ``self._logs`` (deques of
``maxlen=generation_batch_size``) and writes all of it at *every* logging step, with that step's
number. With ``steps_per_generation=2`` and ``logging_steps=1`` (or ``num_iterations > 1``) a
generation is written again at each step it is trained on, and the final log of a run rewrites
the last file. A file whose rows (all columns but ``step``) equal the previous file's is such a
repeat: each generation is imported once, at the step it was first logged, and the repeats counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from engine.config import ConfigError
from engine.importers.mapping import map_rows
from engine.importers.readers import find_files, table_batches
from engine.importers.staging import REPEATED_FILES, Staging

PATTERNS = ["completions_*.parquet", "completions_*.jsonl"]


def files(path: Path, fmt: str = "trl") -> list[Path]:
    """The completion logs under ``path`` (``eval`` folders left out), each folder in step order."""
    found = find_files(path, PATTERNS, "TRL completion logs (completions/completions_NNNNN.parquet)")
    if Path(path).is_dir():
        found = [p for p in found if "eval" not in p.relative_to(path).parts[:-1]]
    return sorted(found, key=lambda p: (p.parent, _step_of(p) or 0, p.name))  # 100000 after 99999


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


def _generation(batches: list[pa.Table]) -> pa.Table | None:
    """A file's rows without its ``step`` column: what a re-logged generation repeats."""
    if not batches:
        return None
    table = pa.concat_tables(batches, promote_options="permissive")
    return table.drop_columns(["step"]) if "step" in table.column_names else table


def stage(paths: list[Path], ctx: Staging) -> Iterator[pa.Table]:
    previous: tuple[Path, pa.Table | None] | None = None  # (folder, rows) of the last file read
    repeats = 0
    for path in paths:
        # One file is one logging step (one generation batch): small enough to hold while comparing.
        batches = list(table_batches(path, ctx))
        rows = _generation(batches)
        if previous is not None and rows is not None and previous[0] == path.parent:
            prev_rows = previous[1]
            if prev_rows is not None and prev_rows.schema == rows.schema and prev_rows.equals(rows):
                repeats += 1
                continue
        previous = (path.parent, rows)
        for batch in batches:
            resolved = {"prompt": ["prompt"], "response": ["completion"]}
            if "step" in batch.column_names:
                resolved["step"] = ["step"]
            if "reward" not in ctx.mapping:
                resolved["reward"] = reward_columns(batch, str(path))
            resolved.update(ctx.mapping)
            ctx.used.setdefault("mapping", resolved)
            yield map_rows(batch, resolved, ctx, path, default_step=_step_of(path))
    if repeats:
        ctx.counts[REPEATED_FILES] += repeats
        ctx.warnings.append(
            f"{repeats} of {len(paths)} files repeat the previous file's rows (TRL writes its last "
            "generation at every logging step): each generation imported once"
        )


def _step_of(path: Path) -> int | None:
    digits = path.stem.rpartition("_")[2]
    return int(digits) if digits.isdigit() else None
