"""DuckDB over the vetted Parquet files: one cursor per query, views with the full store schema.

A single in-memory DuckDB database serves the process; each query takes its own cursor (a separate
connection with its own temp views), so concurrent Streamlit sessions never share a connection.
The ``rollouts`` and ``metrics`` views always carry every schema column (absent ones as typed
NULLs), so queries work on imports without e.g. ``gold`` and on runs with no steps yet.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from engine.store.files import RunDirs, Scan, scan
from engine.store.schema import METRIC_SCHEMA, ROLLOUT_SCHEMA

_db: duckdb.DuckDBPyConnection | None = None
_db_lock = threading.Lock()


def _database() -> duckdb.DuckDBPyConnection:
    global _db
    with _db_lock:
        if _db is None:
            _db = duckdb.connect(":memory:")
            # Footers are re-read on every query otherwise: 100 step files cost ~50 ms per query.
            # The cache validates entries against the file's modification tag, so replaced files
            # (a resumed run rewriting a step) are re-read.
            _db.execute("SET GLOBAL parquet_metadata_cache = true")
        return _db


def _duck_type(dtype: pa.DataType) -> str:
    if pa.types.is_list(dtype):
        return f"{_duck_type(dtype.value_type)}[]"
    return {
        pa.string(): "VARCHAR",
        pa.int16(): "SMALLINT",
        pa.int32(): "INTEGER",
        pa.int64(): "BIGINT",
        pa.float32(): "FLOAT",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
    }[dtype]


def _create_view(
    cur: duckdb.DuckDBPyConnection, name: str, files: list, layouts: set[tuple[str, ...]], schema: pa.Schema
) -> None:
    """View ``name`` with exactly ``schema``'s columns over ``files`` (of the given column layouts)."""
    if not files:
        cur.from_arrow(schema.empty_table()).create_view(name)
        return
    present = set().union(*layouts)
    # A file from another tool may lack run_id: it is then the name of the run directory.
    fill_run_id = any("run_id" not in layout for layout in layouts)
    # The relation API takes the file list as data, so paths never get spliced into SQL text.
    # union_by_name opens every footer at bind time (3x slower), so only when the layouts differ.
    relation = cur.read_parquet([str(f) for f in files], union_by_name=len(layouts) > 1, filename=fill_run_id)
    relation.create_view(f"{name}_raw")
    columns = []
    for f in schema:
        value = f'"{f.name}"' if f.name in present else "NULL"
        if f.name == "run_id" and fill_run_id:
            value = f"coalesce({value}, regexp_extract(filename, '([^/\\\\]+)[/\\\\][^/\\\\]+[/\\\\][^/\\\\]+$', 1))"
        columns.append(f'CAST({value} AS {_duck_type(f.type)}) AS "{f.name}"')
    cur.execute(f"CREATE TEMP VIEW {name} AS SELECT {', '.join(columns)} FROM {name}_raw")


@contextmanager
def store_cursor(
    run_dirs: RunDirs, steps: tuple[int, int] | None = None
) -> Iterator[tuple[duckdb.DuckDBPyConnection, Scan]]:
    """A cursor with views ``rollouts`` and ``metrics`` over ``run_dirs`` (steps in [lo, hi] if given)."""
    found = scan(run_dirs, steps)
    cur = _database().cursor()
    try:
        _create_view(cur, "rollouts", found.rollout_files, found.rollout_layouts, ROLLOUT_SCHEMA)
        _create_view(cur, "metrics", found.metric_files, found.metric_layouts, METRIC_SCHEMA)
        yield cur, found
    finally:
        cur.close()
