"""Finding and vetting the Parquet files of run directories before DuckDB reads them.

A run directory can hold a half-copied or foreign Parquet file (a user dropped one in, a disk filled
up). One bad file must not break a page, so every file's footer is read once, checked against the
schema, and skipped with a warning the page shows. Footers are cached by (path, mtime, size), so a
live run only pays for its new files.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.runs.layout import EVALS_DIR, METRICS_DIR, PROBES_DIR, ROLLOUTS_DIR, RUN_FILE, STATUS_FILE
from engine.store.schema import METRIC_SCHEMA, REQUIRED_ROLLOUT_COLUMNS, ROLLOUT_SCHEMA, step_files

log = logging.getLogger(__name__)

RunDirs = Path | str | Iterable[Path | str]


@dataclass(frozen=True)
class FileCheck:
    """The outcome of vetting one file: its columns and row count, or why it is skipped."""

    columns: tuple[str, ...] = ()
    num_rows: int = 0
    problem: str | None = None


@dataclass
class Scan:
    """The usable files of some run directories, and a warning per file that was skipped."""

    rollout_files: list[Path] = field(default_factory=list)
    probe_files: list[Path] = field(default_factory=list)
    metric_files: list[Path] = field(default_factory=list)
    rollout_columns: set[str] = field(default_factory=set)
    rollout_layouts: set[tuple[str, ...]] = field(default_factory=set)
    """Distinct column lists of the rollout files: one means no schema unification is needed."""
    metric_layouts: set[tuple[str, ...]] = field(default_factory=set)
    probe_layouts: set[tuple[str, ...]] = field(default_factory=set)
    n_rollouts: int = 0
    warnings: list[str] = field(default_factory=list)


_cache: dict[tuple[str, int, int], FileCheck] = {}
_cache_lock = threading.Lock()


def _expected_type_ok(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Loose type check: lists must stay lists and strings strings; numeric widths may differ."""
    if pa.types.is_list(expected) or pa.types.is_large_list(expected):
        return pa.types.is_list(actual) or pa.types.is_large_list(actual) or pa.types.is_null(actual)
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual) or pa.types.is_null(actual)
    return not (pa.types.is_list(actual) or pa.types.is_string(actual) or pa.types.is_struct(actual))


def check_file(path: Path, schema: pa.Schema, required: Iterable[str]) -> FileCheck:
    """Read the footer of ``path`` (cached) and check it can be read as ``schema``."""
    try:
        stat = path.stat()
    except OSError as exc:
        return FileCheck(problem=f"{path}: cannot stat ({exc})")
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    try:
        meta = pq.read_metadata(path)
        file_schema = meta.schema.to_arrow_schema()
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a broken footer
        result = FileCheck(problem=f"{path.name} in {path.parent}: not a readable Parquet file ({exc})")
    else:
        missing = [c for c in required if c not in file_schema.names]
        wrong = [
            f"{f.name} is {file_schema.field(f.name).type}"
            for f in schema
            if f.name in file_schema.names and not _expected_type_ok(file_schema.field(f.name).type, f.type)
        ]
        if missing or wrong:
            result = FileCheck(
                problem=f"{path.name} in {path.parent}: not a store file "
                f"(missing columns {missing}{', ' if wrong else ''}{', '.join(wrong)})"
            )
        else:
            result = FileCheck(columns=tuple(file_schema.names), num_rows=meta.num_rows)
    with _cache_lock:
        _cache[key] = result
    return result


def as_run_dirs(run_dirs: RunDirs) -> list[Path]:
    if isinstance(run_dirs, str | Path):
        return [Path(run_dirs)]
    return [Path(d) for d in run_dirs]


def scan(run_dirs: RunDirs, steps: tuple[int, int] | None = None) -> Scan:
    """Vetted rollout and metric files of ``run_dirs`` (optionally only steps in [lo, hi])."""
    result = Scan()
    for run_dir in as_run_dirs(run_dirs):
        if not run_dir.is_dir():
            result.warnings.append(f"run directory {run_dir} does not exist")
            continue
        for sub, schema, required, bucket in (
            (ROLLOUTS_DIR, ROLLOUT_SCHEMA, ("step", *REQUIRED_ROLLOUT_COLUMNS), result.rollout_files),
            (PROBES_DIR, ROLLOUT_SCHEMA, ("step", *REQUIRED_ROLLOUT_COLUMNS), result.probe_files),
            (METRICS_DIR, METRIC_SCHEMA, METRIC_SCHEMA.names, result.metric_files),
        ):
            for step, path in step_files(run_dir / sub):
                if steps is not None and not steps[0] <= step <= steps[1]:
                    continue
                check = check_file(path, schema, required)
                if check.problem:
                    # Returned, not logged: every query scans, so a log line here repeated each
                    # warning once per query (``store summary`` printed it three times).
                    result.warnings.append(f"skipped {check.problem}")
                    continue
                bucket.append(path)
                if sub == ROLLOUTS_DIR:
                    result.rollout_columns.update(check.columns)
                    result.rollout_layouts.add(check.columns)
                    result.n_rollouts += check.num_rows
                elif sub == PROBES_DIR:
                    result.probe_layouts.add(check.columns)
                else:
                    result.metric_layouts.add(check.columns)
    return result


def fingerprint(run_dirs: RunDirs) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of every file a query could read: a cache key that changes when a run grows."""
    out = []
    for run_dir in as_run_dirs(run_dirs):
        for sub in (ROLLOUTS_DIR, PROBES_DIR, METRICS_DIR, EVALS_DIR):
            directory = run_dir / sub
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*.parquet")):
                try:
                    stat = path.stat()
                except OSError:  # removed between glob and stat (resume drops steps)
                    continue
                out.append((str(path), stat.st_mtime_ns, stat.st_size))
        for name in (RUN_FILE, STATUS_FILE):
            path = run_dir / name
            if path.is_file():
                stat = path.stat()
                out.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(out)
