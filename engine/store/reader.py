"""DuckDB over the vetted Parquet files: pooled cursors with views of the full store schema.

A single in-memory DuckDB database serves the process. A query checks a cursor (a separate
connection with its own temp views) out of a small pool, so concurrent Streamlit sessions never
share one, and gets back one whose views already cover the same files when it can: binding 100 step
files costs ~10 ms, 5-10% of a page query. DuckDB 2.0 streams results, and a cursor holding a result
read only in part (``fetchone``) refuses the relational API that binds the views
(``ResourceInUseException``): a cursor goes back to the pool with its result dropped. The
``rollouts`` and ``metrics`` views always carry every schema column (absent ones as typed NULLs),
so queries work on imports without e.g. ``gold`` and on runs with no steps yet.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa

from engine.store.files import RunDirs, Scan, scan
from engine.store.schema import METRIC_SCHEMA, ROLLOUT_SCHEMA

T = TypeVar("T")

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
    cur: duckdb.DuckDBPyConnection,
    name: str,
    raw: str,
    files: list,
    layouts: set[tuple[str, ...]],
    schema: pa.Schema,
) -> None:
    """Temp view ``name`` with exactly ``schema``'s columns over ``files`` (of the given column layouts),
    through the view ``raw`` of the files as they are."""
    if not files:
        typed_nulls = ", ".join(f'CAST(NULL AS {_duck_type(f.type)}) AS "{f.name}"' for f in schema)
        cur.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {typed_nulls} WHERE false")
        return
    present = set().union(*layouts)
    # A file from another tool may lack run_id: it is then the name of the run directory.
    fill_run_id = any("run_id" not in layout for layout in layouts)
    # The relation API takes the file list as data, so paths never get spliced into SQL text.
    # union_by_name opens every footer at bind time (3x slower), so only when the layouts differ.
    relation = cur.read_parquet([str(f) for f in files], union_by_name=len(layouts) > 1, filename=fill_run_id)
    # A relation's view lands in the shared catalog, not among the cursor's temp views: hence a name
    # of the cursor's own (one shared name let concurrent queries read each other's files).
    relation.create_view(raw)
    columns = []
    for f in schema:
        value = f'"{f.name}"' if f.name in present else "NULL"
        if f.name == "run_id" and fill_run_id:
            value = f"coalesce({value}, regexp_extract(filename, '([^/\\\\]+)[/\\\\][^/\\\\]+[/\\\\][^/\\\\]+$', 1))"
        columns.append(f'CAST({value} AS {_duck_type(f.type)}) AS "{f.name}"')
    cur.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {', '.join(columns)} FROM {raw}")


def _stamp(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except OSError:  # gone since the scan: the query will say so
        return (str(path), -1, -1)
    return (str(path), stat.st_mtime_ns, stat.st_size)


def _views_key(found: Scan) -> tuple:
    """Changes when the views would bind differently: other files, or a file rewritten (types may differ)."""
    return (
        tuple(_stamp(p) for p in found.rollout_files),
        tuple(sorted(found.rollout_layouts)),
        tuple(_stamp(p) for p in found.probe_files),
        tuple(sorted(found.probe_layouts)),
        tuple(_stamp(p) for p in found.metric_files),
        tuple(sorted(found.metric_layouts)),
    )


class _Cursor:
    """A connection of the shared database with ``rollouts``, ``probes`` (the fixed probe prompts,
    rollout schema) and ``metrics`` views over some files."""

    def __init__(self) -> None:
        self.con = _database().cursor()
        self.raw = {name: f"{name}_raw_{uuid.uuid4().hex[:12]}" for name in ("rollouts", "probes", "metrics")}
        self.key: tuple | None = None  # what the views cover; None: not (fully) created

    def bind(self, found: Scan, key: tuple) -> None:
        if key == self.key:
            return
        self.key = None
        for name, files, layouts, schema in (
            ("rollouts", found.rollout_files, found.rollout_layouts, ROLLOUT_SCHEMA),
            ("probes", found.probe_files, found.probe_layouts, ROLLOUT_SCHEMA),
            ("metrics", found.metric_files, found.metric_layouts, METRIC_SCHEMA),
        ):
            _create_view(self.con, name, self.raw[name], files, layouts, schema)
        self.key = key

    def close(self) -> None:
        for raw in self.raw.values():
            self.con.execute(f"DROP VIEW IF EXISTS {raw}")
        self.con.close()


_POOL_SIZE = 4
_idle: list[_Cursor] = []  # most recently used last
_idle_lock = threading.Lock()


def _checkout(key: tuple) -> _Cursor:
    with _idle_lock:
        for i in range(len(_idle) - 1, -1, -1):
            if _idle[i].key == key:
                return _idle.pop(i)
        if _idle:
            return _idle.pop()
    return _Cursor()


def _checkin(cursor: _Cursor) -> None:
    # The caller may have left rows unread (fetchone): DuckDB keeps that result open on the cursor, and
    # the next query to take it, for another listing, could not bind its views. Drop the rest.
    cursor.con.abort()
    with _idle_lock:
        _idle.append(cursor)
        evicted = _idle.pop(0) if len(_idle) > _POOL_SIZE else None
    if evicted is not None:
        evicted.close()


# A job deletes step files while a page may read them (``--resume`` drops the steps past its last
# checkpoint) and a file can vanish between the listing and DuckDB opening it: DuckDB then raises an
# IOException. The query is re-run on a fresh listing; only a failure on an unchanged listing is real.
_ATTEMPTS = 3


class StoreQuery:
    """The query side of a pooled cursor: ``execute`` re-binds the views to a fresh listing and runs
    the query again when a file of the listing vanished while it ran."""

    def __init__(
        self, cursor: _Cursor, run_dirs: RunDirs, steps: tuple[int, int] | None, found: Scan
    ) -> None:
        self._cursor, self._run_dirs, self._steps = cursor, run_dirs, steps
        self.found, self._key = found, _views_key(found)

    def bind(self) -> None:
        """The views over the current listing (done before the first query, to fail early)."""
        self._retrying(lambda: None)

    def execute(self, sql: str, params: list | None = None) -> duckdb.DuckDBPyConnection:
        """``DuckDBPyConnection.execute``; read the result inside the ``store_cursor`` block (DuckDB
        streams it, and the cursor's unread rows are dropped when it goes back to the pool)."""
        return self._retrying(lambda: self._cursor.con.execute(sql, params))

    def _retrying(self, run: Callable[[], T]) -> T:
        for attempt in range(_ATTEMPTS):
            try:
                self._cursor.bind(self.found, self._key)  # a no-op while the views cover this listing
                return run()
            except duckdb.IOException:
                found = scan(self._run_dirs, self._steps)
                key = _views_key(found)
                if attempt == _ATTEMPTS - 1 or key == self._key:  # the same files: a real IO error
                    raise
                self.found, self._key = found, key
        raise AssertionError("unreachable")


@contextmanager
def store_cursor(
    run_dirs: RunDirs, steps: tuple[int, int] | None = None
) -> Iterator[tuple[StoreQuery, Scan]]:
    """A cursor with views ``rollouts`` and ``metrics`` over ``run_dirs`` (steps in [lo, hi] if given),
    for this query alone (it goes back to the pool after it). Its ``execute`` survives files that
    vanish while it runs (see ``StoreQuery``)."""
    found = scan(run_dirs, steps)
    cursor = _checkout(_views_key(found))
    try:
        query = StoreQuery(cursor, run_dirs, steps, found)
        query.bind()
        yield query, query.found
    finally:
        _checkin(cursor)
