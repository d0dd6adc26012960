"""Staged rows buffered per step until the whole source is read: :class:`StepBuffer`, and the
per-prompt sample index of a step's rows (:func:`with_sample_idx`).

A stream may interleave steps (prime-rl appends episodes as they finish; a JSONL export may hold
any order), so staged rows are buffered per step and, once more than ``SPILL_ROWS`` are held, every
buffered step is spilled to a Parquet chunk on disk. At the end each step's chunks are read back
as that step's rows: peak memory is one batch plus one step, never the whole source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.config import ConfigError

SPILL_ROWS = 200_000  # staged rows held in memory before the step buffers spill to disk


class StepBuffer:
    """Staged rows buffered per step; spilled to Parquet chunks under ``spill_dir`` past ``spill_rows``
    (default :data:`SPILL_ROWS`, read when the buffer is made)."""

    def __init__(self, spill_dir: Path, spill_rows: int | None = None) -> None:
        self.spill_dir = spill_dir
        self.spill_rows = SPILL_ROWS if spill_rows is None else spill_rows
        self._held: dict[int, list[pa.Table]] = {}
        self._held_rows = 0
        self._chunks: dict[int, list[Path]] = {}
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        steps = table.column("step")
        distinct = pc.unique(steps).to_pylist()
        for step in distinct:
            part = table if len(distinct) == 1 else table.filter(pc.equal(steps, step))
            self._held.setdefault(int(step), []).append(part)
        self._held_rows += table.num_rows
        self.rows += table.num_rows
        if self._held_rows > self.spill_rows:
            self.spill()

    def spill(self) -> None:
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        for step, parts in self._held.items():
            chunks = self._chunks.setdefault(step, [])
            path = self.spill_dir / f"step-{step}-{len(chunks)}.parquet"
            pq.write_table(pa.concat_tables(parts, promote_options="permissive"), path, compression="lz4")
            chunks.append(path)
        self._held, self._held_rows = {}, 0

    @property
    def steps(self) -> list[int]:
        return sorted(set(self._held) | set(self._chunks))

    def take(self, step: int) -> pa.Table:
        """All staged rows of ``step`` (its spilled chunks first, in arrival order)."""
        parts = [pq.read_table(p) for p in self._chunks.pop(step, [])] + self._held.pop(step, [])
        for p in self.spill_dir.glob(f"step-{step}-*.parquet"):
            p.unlink()
        return pa.concat_tables(parts, promote_options="permissive")


def with_sample_idx(table: pa.Table) -> pa.Table:
    """Fill ``sample_idx`` (0, 1, ... within each prompt of the step, in arrival order) when absent."""
    if "sample_idx" in table.column_names and table.column("sample_idx").null_count == 0:
        return table
    ids = table.column("prompt_id").to_numpy(zero_copy_only=False)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.r_[True, sorted_ids[1:] != sorted_ids[:-1]] if len(ids) else np.zeros(0, bool)
    positions = np.arange(len(ids))
    group_start = np.maximum.accumulate(np.where(starts, positions, 0)) if len(ids) else positions
    idx = np.empty(len(ids), np.int64)
    idx[order] = positions - group_start
    if idx.max(initial=0) > np.iinfo(np.int16).max:
        raise ConfigError("a prompt has more than 32767 samples in one step; map prompt_id to a finer id")
    column = pa.array(idx.astype(np.int16))
    if "sample_idx" in table.column_names:
        return table.set_column(table.schema.get_field_index("sample_idx"), "sample_idx", column)
    return table.append_column("sample_idx", column)
