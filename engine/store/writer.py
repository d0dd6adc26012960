"""Write path of the run store: append-only Parquet, one file per logged step, atomic renames.

The training process is the only writer of its run directory and the UI only reads, so every file
is written under a hidden temp name in the same directory and then ``os.replace``-d into place: a
reader never sees half a file and a killed job loses at most the step in flight.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.config import ConfigError
from engine.runs.layout import (
    METRICS_DIR,
    PROBES_DIR,
    ROLLOUTS_DIR,
    RUN_FILE,
    atomic_write_json,
    eval_file,
    new_temp_file,
    write_error,
)
from engine.store import schema
from engine.store.derived import list_means, prompt_collapsed, repeat_shares

log = logging.getLogger(__name__)

# Measured on a 10k-row step with 32-token lists: dictionary-encoding the per-token float lists costs
# 4x the write time for nothing, so only the repetitive string columns get a dictionary (a list column
# is named by its leaf path: plain ``tokens`` matched nothing, and plain token strings made a
# drill-down decode them ~3x slower and the files 6% bigger); LZ4 writes
# 1.5x faster than zstd-1 for files 20% bigger, and DuckDB decompresses it faster too.
# Rows are written sorted by prompt in row groups of 2048 (one DuckDB vector): the row-group min/max
# statistics of prompt_id then let a prompt drill-down skip ~all of a step file's per-token lists.
_TOKENS_LEAF = "tokens.list.element"
PARQUET_OPTIONS: dict[str, Any] = {
    "row_group_size": 2048,
    "compression": "lz4",
    "use_dictionary": ["run_id", "prompt_id", "prompt_family", "prompt", "checkpoint", "key", _TOKENS_LEAF],
}

Rows = pa.Table | Sequence[Mapping[str, Any]] | Mapping[str, Any]


def atomic_write_table(table: pa.Table, path: Path) -> Path:
    """Write ``table`` to ``path`` through a hidden temp file in the same directory + ``os.replace``;
    a failed write removes the temp file and raises :class:`~engine.runs.layout.RunWriteError`."""
    try:
        fd, tmp = new_temp_file(path)
    except OSError as exc:
        raise write_error(path, exc) from exc
    os.close(fd)
    try:
        # Min/max of the per-token values prune nothing (queries filter on scalar columns) and
        # cost ~10% of the write: statistics for the scalar columns only.
        scalars = [f.name for f in table.schema if not pa.types.is_nested(f.type)]
        pq.write_table(table, tmp, write_statistics=scalars, **PARQUET_OPTIONS)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk, a read-only directory
            raise write_error(path, exc) from exc
        raise
    return path


def _list_array(values: Any, dtype: pa.DataType) -> pa.Array:
    """A list<dtype> array from an Arrow array, a list of numpy arrays (fast path) or nested lists."""
    list_type = pa.list_(dtype)
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return values.cast(list_type)
    if len(values) and all(isinstance(v, np.ndarray) or v is None for v in values):
        # Concatenate once and build offsets: no per-element Python conversion.
        lengths = np.fromiter((0 if v is None else len(v) for v in values), np.int64, len(values))
        offsets = np.zeros(len(values) + 1, np.int32)
        np.cumsum(lengths, out=offsets[1:])
        present = [v for v in values if v is not None]
        flat = np.concatenate(present) if present else np.array([])
        mask = pa.array([v is None for v in values]) if len(present) < len(values) else None
        flat_arr = pa.array(flat.astype(dtype.to_pandas_dtype(), copy=False), type=dtype)
        return pa.ListArray.from_arrays(pa.array(offsets), flat_arr, mask=mask)
    return pa.array(list(values), type=list_type)


def _columns_of(rows: Rows) -> dict[str, Any]:
    """Column name -> values, from any of the accepted row shapes."""
    if isinstance(rows, pa.Table):
        return {name: rows.column(name) for name in rows.column_names}
    if isinstance(rows, Mapping):
        return dict(rows)
    if isinstance(rows, Sequence) and not isinstance(rows, str | bytes):
        names: dict[str, None] = {}
        for row in rows:
            names.update(dict.fromkeys(row))
        return {name: [row.get(name) for row in rows] for name in names}
    raise ConfigError(
        f"rollout rows must be a pyarrow.Table, a list of dicts or a dict of lists, got {type(rows)}"
    )


def to_rollout_table(rows: Rows, *, run_id: str, step: int) -> pa.Table:
    """Rows -> a table with exactly ROLLOUT_SCHEMA: missing columns become nulls, derived ones are filled.

    ``run_id`` and ``step`` are filled in when absent; ``length`` defaults to the number of tokens,
    ``mean_entropy`` to the mean of ``entropy`` and ``repeat_share`` to the share of repeated token
    trigrams, ``prompt_collapsed`` to whether all samples of the row's prompt share one response.
    Unknown columns are rejected (they are typos).
    """
    columns = _columns_of(rows)
    unknown = sorted(set(columns) - set(schema.ROLLOUT_SCHEMA.names))
    if unknown:
        raise ConfigError(f"unknown rollout columns {unknown}; the schema is {schema.ROLLOUT_SCHEMA.names}")
    missing = [name for name in schema.REQUIRED_ROLLOUT_COLUMNS if name not in columns]
    if missing:
        raise ConfigError(f"rollout rows lack required columns {missing}")
    n = len(columns["prompt_id"])
    if any(len(v) != n for v in columns.values()):
        lengths = {k: len(v) for k, v in columns.items()}
        raise ConfigError(f"rollout columns have different lengths: {lengths}")

    arrays: dict[str, pa.Array] = {}
    for field in schema.ROLLOUT_SCHEMA:
        values = columns.get(field.name)
        if values is None:
            continue
        if pa.types.is_list(field.type):
            arrays[field.name] = _list_array(values, field.type.value_type)
        elif isinstance(values, pa.ChunkedArray | pa.Array):
            arrays[field.name] = values.cast(field.type)
        else:
            arrays[field.name] = pa.array(values, type=field.type, from_pandas=True)

    if "run_id" not in arrays:
        arrays["run_id"] = pa.array(np.full(n, run_id, dtype=object), type=pa.string())
    if "step" not in arrays:
        arrays["step"] = pa.array(np.full(n, step, np.int32))
    elif n and (pc.min(arrays["step"]).as_py() != step or pc.max(arrays["step"]).as_py() != step):
        raise ConfigError(f"rows of step {step} carry other step values in their 'step' column")
    if "length" not in arrays:
        source = arrays.get("tokens", arrays.get("token_ids"))
        if source is not None:
            arrays["length"] = pc.list_value_length(source).cast(pa.int32())
    if "mean_entropy" not in arrays and "entropy" in arrays:
        arrays["mean_entropy"] = list_means(arrays["entropy"])
    if "repeat_share" not in arrays:
        source = arrays.get("token_ids", arrays.get("tokens"))
        if source is not None:
            arrays["repeat_share"] = repeat_shares(source)
    if "prompt_collapsed" not in arrays:
        arrays["prompt_collapsed"] = prompt_collapsed(
            arrays["run_id"], arrays["prompt_id"], arrays["response"]
        )

    table_columns = [arrays.get(f.name, pa.nulls(n, type=f.type)) for f in schema.ROLLOUT_SCHEMA]
    table = pa.Table.from_arrays(
        [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in table_columns],
        schema=schema.ROLLOUT_SCHEMA,
    )
    return _sorted_by_prompt(table)


def _sorted_by_prompt(table: pa.Table) -> pa.Table:
    """Rows ordered by (prompt_id, sample_idx); a table already in that order is returned as is."""
    keys = [("prompt_id", "ascending"), ("sample_idx", "ascending")]
    order = pc.sort_indices(table.select(["prompt_id", "sample_idx"]), sort_keys=keys)
    if np.array_equal(order.to_numpy(), np.arange(table.num_rows)):
        return table
    return table.take(order)


def metrics_table(metrics: Mapping[str, float], *, run_id: str, step: int) -> pa.Table:
    keys = list(metrics)
    return pa.Table.from_arrays(
        [
            pa.array([run_id] * len(keys), type=pa.string()),
            pa.array(np.full(len(keys), step, np.int32)),
            pa.array(keys, type=pa.string()),
            pa.array([float(metrics[k]) for k in keys], type=pa.float64()),
        ],
        schema=schema.METRIC_SCHEMA,
    )


class RunWriter:
    """The job's handle on its run directory: creates it, appends per-step rollouts and metrics."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.run_id = self.run_dir.name

    @classmethod
    def create(
        cls,
        run_dir: Path,
        *,
        kind: str,
        config: dict,
        seed: int | None,
        source: str = "",
        overwrite: bool = False,
    ) -> RunWriter:
        """Start a new run; with ``overwrite`` an existing run directory is emptied first."""
        run_dir = Path(run_dir)
        if kind not in schema.RUN_KINDS:
            raise ConfigError(f"run kind must be one of {schema.RUN_KINDS}, got {kind!r}")
        if (run_dir / RUN_FILE).exists():
            if not overwrite:
                raise ConfigError(
                    f"run directory {run_dir} already holds a run; pick another name or overwrite"
                )
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "run_id": run_dir.name,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "kind": kind,
            "config": config,
            "seed": seed,
            "source": source,
        }
        atomic_write_json(record, run_dir / RUN_FILE)
        log.info("created %s run %s", kind, run_dir)
        return cls(run_dir)

    @classmethod
    def open(cls, run_dir: Path) -> RunWriter:
        """An existing run (to resume it)."""
        run_dir = Path(run_dir)
        if not (run_dir / RUN_FILE).is_file():
            raise ConfigError(f"no run at {run_dir} (missing {RUN_FILE})")
        return cls(run_dir)

    def write_rollouts(self, step: int, rows: Rows) -> Path:
        """Write the rollouts of ``step`` (replacing any earlier file of the same step)."""
        table = to_rollout_table(rows, run_id=self.run_id, step=step)
        return atomic_write_table(table, self.run_dir / ROLLOUTS_DIR / schema.step_file_name(step))

    def write_probes(self, step: int, rows: Rows) -> Path:
        """Write the probe rows of ``step`` (the fixed probe prompts, rollout schema)."""
        table = to_rollout_table(rows, run_id=self.run_id, step=step)
        return atomic_write_table(table, self.run_dir / PROBES_DIR / schema.step_file_name(step))

    def write_metrics(self, step: int, metrics: Mapping[str, float]) -> Path:
        table = metrics_table(metrics, run_id=self.run_id, step=step)
        return atomic_write_table(table, self.run_dir / METRICS_DIR / schema.step_file_name(step))

    def logged_steps(self) -> list[int]:
        """Steps with a rollout or a metrics file, ascending."""
        steps = {s for s, _ in schema.step_files(self.run_dir / ROLLOUTS_DIR)}
        steps |= {s for s, _ in schema.step_files(self.run_dir / METRICS_DIR)}
        return sorted(steps)

    def drop_steps_after(self, step: int) -> None:
        """Remove rollouts and metrics of steps > ``step`` (resuming from the checkpoint of ``step``)."""
        for sub in (ROLLOUTS_DIR, PROBES_DIR, METRICS_DIR):
            for s, path in schema.step_files(self.run_dir / sub):
                if s > step:
                    path.unlink(missing_ok=True)
                    log.info("resume: dropped %s", path)


def write_eval(run_dir: Path, name: str, table: pa.Table | Rows, *, append: bool = False) -> Path:
    """Write ``evals/<name>.parquet`` (derived per-checkpoint results); ``append`` keeps earlier rows."""
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"eval name must be letters, digits, '-' or '_', got {name!r}")
    if not isinstance(table, pa.Table):
        columns = _columns_of(table)
        table = pa.table({k: list(v) if not isinstance(v, pa.Array) else v for k, v in columns.items()})
    path = eval_file(run_dir, name)
    if append and path.exists():
        table = pa.concat_tables([pq.read_table(path), table], promote_options="permissive")
    return atomic_write_table(table, path)
