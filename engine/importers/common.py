"""What every importer shares: reading files in bounded batches, mapping columns, buffering steps,
and writing the run under a temporary directory that is renamed into place at the very end.

An importer turns its source files into *staged* batches: ``pa.Table`` s whose columns are store
columns (``step``, ``prompt``, ``response``, ``reward``, optional ``prompt_id``, per-token lists ...)
plus ``extras`` (a JSON object string per row holding every source field the store has no column
for, reward components included). ``run_import`` does the rest.

Memory: a stream may interleave steps (prime-rl appends episodes as they finish; a JSONL export may
hold any order), so staged rows are buffered per step and, once more than ``spill_rows`` are held,
every buffered step is spilled to a Parquet chunk under the temporary directory. At the end each
step's chunks are read back and written as that step's file: peak memory is one batch plus one
step, never the whole file.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.config import ConfigError
from engine.runs.layout import RUN_FILE
from engine.store.schema import ROLLOUT_SCHEMA, TOKEN_LIST_COLUMNS
from engine.store.writer import RunWriter, atomic_write_json

log = logging.getLogger(__name__)

# Store fields a column of the source can be mapped to (``--map FIELD=COLUMN``).
TEXT_FIELDS = ("prompt", "response", "prompt_id", "prompt_family", "checkpoint")
NUMBER_FIELDS = ("reward", "gold", "kl", "temperature", "top_p", "top_k", "step", "sample_idx", "rank")
LIST_FIELDS = ("tokens", "token_ids", *TOKEN_LIST_COLUMNS)
MAPPABLE_FIELDS = (*TEXT_FIELDS, *NUMBER_FIELDS, "has_eos", *LIST_FIELDS)
REQUIRED_FIELDS = ("prompt", "response", "reward")

BATCH_BYTES = 16 << 20  # bytes of source text per parsed batch
SPILL_ROWS = 200_000  # staged rows held in memory before the step buffers spill to disk

Progress = Callable[[int], None]  # called with the number of source bytes (or rows) just consumed


@dataclass
class Staging:
    """What a format module's ``stage(paths, ctx)`` reads with and reports back: the user's column
    ``mapping``, a ``progress`` callback, ``used`` (``used["mapping"]``: the mapping the files were
    really read with; other keys: columns seen) and ``warnings`` for the user."""

    mapping: Mapping[str, list[str]]
    progress: Progress | None = None
    used: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def fixed_fields(self, fmt: str, mapping: dict[str, list[str]]) -> None:
        """For a format whose fields are fixed: warn that ``--map`` is ignored, record ``mapping`` as used."""
        if self.mapping:
            self.warnings.append(f"--map is ignored for {fmt} (its fields are fixed)")
        self.used.setdefault("mapping", mapping)


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote (the ``--json`` object of ``python -m engine import``)."""

    run_id: str
    run_dir: str
    format: str
    rows: int
    steps: int
    prompts: int
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 3), "rows_per_s": round(self.rows_per_s)}


def parse_mapping(items: Iterable[str]) -> dict[str, list[str]]:
    """``["reward=score", "reward=a+b"]`` -> ``{"reward": ["a", "b"]}`` (the last one wins)."""
    mapping: dict[str, list[str]] = {}
    for item in items:
        store_field, sep, column = item.partition("=")
        store_field, column = store_field.strip(), column.strip()
        if not sep or not store_field or not column:
            raise ConfigError(f"--map takes FIELD=COLUMN (e.g. reward=score), got {item!r}")
        if store_field not in MAPPABLE_FIELDS:
            raise ConfigError(f"--map: unknown field {store_field!r}; fields: {', '.join(MAPPABLE_FIELDS)}")
        columns = [c.strip() for c in column.split("+")]
        if len(columns) > 1 and store_field != "reward":
            raise ConfigError(f"--map {item!r}: only reward may sum several columns (a+b)")
        mapping[store_field] = columns
    return mapping


def prompt_ids(prompts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A stable short id per prompt text (16 hex chars of blake2b): samples of one prompt share it.

    Hashes each distinct text once (dictionary encoding), not once per row.
    """
    encoded = pc.dictionary_encode(pa.chunked_array([prompts]) if isinstance(prompts, pa.Array) else prompts)
    out = []
    for chunk in encoded.chunks:
        ids = [hashlib.blake2b(t.encode(), digest_size=8).hexdigest() for t in chunk.dictionary.to_pylist()]
        out.append(pa.array(ids, pa.string()).take(chunk.indices))
    return pa.concat_arrays(out) if out else pa.array([], pa.string())


def extras_json(table: pa.Table) -> pa.Array:
    """One JSON object string per row of ``table`` (all its columns); nulls when it has none."""
    if table.num_columns == 0:
        return pa.nulls(table.num_rows, pa.string())
    import duckdb

    con = duckdb.connect()
    try:
        con.register("extras_source", table)
        result = con.sql("SELECT to_json(t) AS j FROM extras_source AS t").to_arrow_table()
    finally:
        con.close()
    return result.column("j").combine_chunks().cast(pa.string())


def json_dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


def _is_number_type(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t) or pa.types.is_boolean(t)


def _is_text_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)


def _is_list_type(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_null(t)


def map_table(
    table: pa.Table,
    mapping: Mapping[str, list[str]],
    *,
    where: str,
    default_step: int | None = None,
) -> pa.Table:
    """A source table -> a staged table, by ``mapping`` (store field -> source columns).

    Type checks name the file, the column and its type. ``reward`` over several columns is their
    sum, NaN counting as 0 (TRL's ``nansum`` of the reward functions). Every source column not
    mapped to a store field, and every component of a summed reward, goes to ``extras``.
    """
    names = table.column_names
    for store_field in REQUIRED_FIELDS:
        if store_field not in mapping:
            raise ConfigError(
                f"{where}: no column for {store_field!r}; columns found: {names}. "
                f"Name one with --map {store_field}=COLUMN"
            )
    for store_field, columns in mapping.items():
        for column in columns:
            if column not in names:
                raise ConfigError(
                    f"{where}: column {column!r} (for {store_field}) is missing; columns found: {names}"
                )
    out: dict[str, pa.Array] = {}
    used: set[str] = set()
    for store_field, columns in mapping.items():
        arrays = [table.column(c).combine_chunks() for c in columns]
        for column, array in zip(columns, arrays, strict=True):
            _check_type(store_field, column, array.type, where)
        if store_field != "reward":  # reward source columns stay in extras under their names
            used.update(columns)
        if store_field == "reward" and len(arrays) > 1:
            stacked = np.stack([a.cast(pa.float64()).to_numpy(zero_copy_only=False) for a in arrays])
            out["reward"] = pa.array(np.nansum(stacked, axis=0), pa.float32())
        elif store_field in LIST_FIELDS:
            out[store_field] = arrays[0]
        elif store_field in NUMBER_FIELDS or store_field == "has_eos":
            out[store_field] = arrays[0].cast(ROLLOUT_SCHEMA.field(store_field).type, safe=False)
        else:
            out[store_field] = arrays[0].cast(pa.string())
    if "step" not in out:
        if default_step is None:
            raise ConfigError(
                f"{where}: no step column; columns found: {names}. Name one with --map step=COLUMN"
            )
        out["step"] = pa.array(np.full(table.num_rows, default_step, np.int32))
    elif out["step"].null_count:
        raise ConfigError(f"{where}: the step column {mapping['step'][0]!r} has empty values")
    if "prompt_id" not in out:
        out["prompt_id"] = prompt_ids(out["prompt"].fill_null(""))
    rest = [c for c in names if c not in used]
    out["extras"] = extras_json(table.select(rest))
    return pa.table(out)


def _check_type(store_field: str, column: str, dtype: pa.DataType, where: str) -> None:
    if store_field in LIST_FIELDS:
        ok, want = _is_list_type(dtype), "a list per row"
    elif store_field in NUMBER_FIELDS or store_field == "has_eos":
        ok, want = _is_number_type(dtype), "numbers"
    else:
        ok, want = _is_text_type(dtype), "text"
    if not ok:
        raise ConfigError(
            f"{where}: column {column!r} (for {store_field}) holds {dtype}, expected {want}; "
            f"map {store_field} to another column with --map {store_field}=COLUMN"
        )


def resolve_mapping(
    columns: list[str], defaults: Mapping[str, list[str]], given: Mapping[str, list[str]]
) -> dict[str, list[str]]:
    """The mapping used for a file: ``given`` wins, then per-field default candidates (first present),
    then any column already named like a store field."""
    mapping: dict[str, list[str]] = {}
    for store_field, candidates in defaults.items():
        present = [c for c in candidates if c in columns]
        if present:
            mapping[store_field] = present[:1]
    for store_field in MAPPABLE_FIELDS:
        taken = {c for cs in mapping.values() for c in cs}
        if store_field not in mapping and store_field in columns and store_field not in taken:
            mapping[store_field] = [store_field]
    mapping.update(given)
    return mapping


class CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read from it. pyarrow's streaming readers read on their
    own I/O threads, so progress is reported from the caller's thread (``report``), once a batch."""

    def __init__(self, path: Path, progress: Progress | None) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._progress = progress
        self.count = 0
        self.reported = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = self._fh.readinto(buffer) or 0
        self.count += n
        return n

    def report(self) -> None:
        if self._progress is not None and self.count > self.reported:
            self._progress(self.count - self.reported)
            self.reported = self.count

    def tables(self, reader: Iterator[pa.RecordBatch]) -> Iterator[pa.Table]:
        """The batches of a pyarrow streaming ``reader`` over this file as tables, reporting progress."""
        for batch in reader:
            self.report()
            yield pa.Table.from_batches([batch])
        self.report()

    def close(self) -> None:
        self._fh.close()
        super().close()


def jsonl_records(path: Path, progress: Progress | None = None) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) of each non-empty line; a malformed line is a ConfigError
    naming the file and the line."""
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if progress is not None:
                progress(len(line))
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise ConfigError(
                    f"{path}:{number}: not a JSON line ({exc.__class__.__name__}: {exc})"
                ) from None
            if not isinstance(obj, dict):
                raise ConfigError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            yield number, obj


def _counting_reader(path: Path, progress: Progress | None) -> CountingReader:
    """``path`` opened for one of pyarrow's streaming readers (an empty file is an error)."""
    if path.stat().st_size == 0:
        raise ConfigError(f"{path} is empty")
    return CountingReader(path, progress)


def jsonl_batches(path: Path, progress: Progress | None = None) -> Iterator[pa.Table]:
    """Tables of a JSONL file, ``BATCH_BYTES`` of text at a time (pyarrow's streaming reader).

    A file pyarrow cannot read (a malformed line, a field whose type changes between lines) is
    read again line by line: the malformed line is then reported with its number, and a file that
    is only irregular is read as Python objects (slower, same result).
    """
    import pyarrow.json as pj

    reader_file = _counting_reader(path, progress)
    try:
        yield from reader_file.tables(
            pj.open_json(reader_file, read_options=pj.ReadOptions(block_size=BATCH_BYTES))
        )
        return
    except pa.ArrowInvalid as exc:
        log.info("%s: pyarrow could not read it (%s); reading it line by line", path, exc)
    finally:
        reader_file.close()
    # Undo the progress of the failed fast pass, then read every line as a Python object.
    if progress is not None and reader_file.reported:
        progress(-reader_file.reported)
    yield from records_batches(jsonl_records(path, progress), lambda records: _objects_table(records, path))


def records_batches(
    records: Iterator[tuple[int, Any]],
    to_table: Callable[[list[tuple[int, Any]]], pa.Table],
    size: int = 20_000,
) -> Iterator[pa.Table]:
    """Group (line, record) pairs ``size`` at a time and convert each group with ``to_table``."""
    chunk: list[tuple[int, Any]] = []
    for item in records:
        chunk.append(item)
        if len(chunk) >= size:
            yield to_table(chunk)
            chunk = []
    if chunk:
        yield to_table(chunk)


def jsonl_rows(
    path: Path, progress: Progress | None, rows_of: Callable[[int, Any], list[dict[str, Any]]]
) -> Iterator[pa.Table]:
    """Staged tables of a JSONL file whose line ``n`` with object ``obj`` gives the rows ``rows_of(n, obj)``."""

    def convert(records: list[tuple[int, Any]]) -> pa.Table:
        rows = [row for line, obj in records for row in rows_of(line, obj)]
        return rows_table(rows) if rows else pa.table({})

    return records_batches(jsonl_records(path, progress), convert)


def _objects_table(records: list[tuple[int, Any]], path: Path) -> pa.Table:
    """JSON objects -> a table; a column whose values do not share one type becomes JSON strings."""
    names: dict[str, None] = {}
    for _, obj in records:
        names.update(dict.fromkeys(obj))
    columns = {}
    for name in names:
        values = [obj.get(name) for _, obj in records]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array([None if v is None else json_dumps(v) for v in values], pa.string())
    return pa.table(columns)


def csv_batches(path: Path, progress: Progress | None = None) -> Iterator[pa.Table]:
    import pyarrow.csv as pcsv

    reader_file = _counting_reader(path, progress)
    try:
        yield from reader_file.tables(
            pcsv.open_csv(reader_file, read_options=pcsv.ReadOptions(block_size=BATCH_BYTES))
        )
    except pa.ArrowInvalid as exc:
        raise ConfigError(f"{path}: not a readable CSV file: {exc}") from None
    finally:
        reader_file.close()


def parquet_batches(path: Path, progress: Progress | None = None) -> Iterator[pa.Table]:
    """Tables of a Parquet file, one row-group-sized batch at a time; progress in bytes on disk."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ConfigError(f"{path}: not a readable Parquet file: {exc}") from None
    size, rows = path.stat().st_size, max(parquet.metadata.num_rows, 1)
    for batch in parquet.iter_batches(batch_size=65_536):
        if progress is not None:
            progress(int(size * batch.num_rows / rows))
        yield pa.Table.from_batches([batch])


def table_batches(path: Path, progress: Progress | None = None) -> Iterator[pa.Table]:
    """Batches of a ``.jsonl`` / ``.json`` (lines) / ``.parquet`` / ``.csv`` file, by suffix."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return jsonl_batches(path, progress)
    if suffix == ".parquet":
        return parquet_batches(path, progress)
    if suffix in (".csv", ".tsv"):
        return csv_batches(path, progress)
    raise ConfigError(f"{path}: unknown file type {suffix!r} (expected .jsonl, .parquet or .csv)")


def find_files(path: Path, patterns: Iterable[str], what: str) -> list[Path]:
    """The files under ``path`` (or ``path`` itself) matching any of ``patterns``, sorted; a clear
    error when there are none."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"{path} does not exist")
    patterns = list(patterns)
    if path.is_file():
        return [path]
    found = sorted({p for pattern in patterns for p in path.rglob(pattern) if p.is_file()})
    if not found:
        raise ConfigError(f"{path} holds no {what} (looked for {', '.join(patterns)})")
    return found


class StepBuffer:
    """Staged rows buffered per step; spilled to Parquet chunks under ``spill_dir`` past ``spill_rows``."""

    def __init__(self, spill_dir: Path, spill_rows: int = SPILL_ROWS) -> None:
        self.spill_dir = spill_dir
        self.spill_rows = spill_rows
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


def _finite_or_null(table: pa.Table) -> pa.Table:
    """The reward as float32; an all-null reward column is an error the user can fix by mapping."""
    reward = table.column("reward")
    if reward.null_count == len(reward) and len(reward):
        raise ConfigError("every reward is empty; map reward to a numeric column with --map reward=COLUMN")
    return table


def run_import(
    fmt: str,
    path: Path,
    staged: Callable[[Progress], Iterator[pa.Table]],
    *,
    total_bytes: int,
    runs_dir: Path,
    run_id: str | None,
    config: Mapping[str, Any],
    replace: bool = False,
    progress_factory: Callable[[int], Progress] | None = None,
    warnings: list[str] | None = None,
) -> ImportResult:
    """Stage every batch, then write one store file per step under a temp dir, renamed at the end.

    ``staged(progress)`` yields staged tables; ``progress_factory(total_bytes)`` makes the progress
    callback (a tqdm bar on the CLI, ``st.progress`` in the app).
    """
    start = time.perf_counter()
    run_id = run_id or default_run_id(path)
    check_run_id(run_id)
    runs_dir = Path(runs_dir)
    target = runs_dir / run_id
    if target.exists() and not replace:
        raise ConfigError(
            f"run {run_id!r} already exists in {runs_dir}; pick another --run-id or pass --replace"
        )
    tmp_root = runs_dir / f".import-{run_id}-{uuid.uuid4().hex[:8]}.tmp"
    tmp_run = tmp_root / run_id  # the run's own name, so run.json and the run_id column are right
    progress = progress_factory(total_bytes) if progress_factory else None
    try:
        writer = RunWriter.create(tmp_run, kind="import", config=dict(config), seed=None, source=str(path))
        buffer = StepBuffer(tmp_root / "chunks")
        for table in staged(progress):
            buffer.add(table)
        if buffer.rows == 0:
            raise ConfigError(f"{path}: no rollout rows found (the files are empty)")
        prompts: set[str] = set()
        for step in buffer.steps:
            table = _finite_or_null(with_sample_idx(buffer.take(step)))
            prompts.update(pc.unique(table.column("prompt_id")).to_pylist())
            writer.write_rollouts(step, table)
        n_steps = len(writer.logged_steps())
        record = json.loads((tmp_run / RUN_FILE).read_text())
        atomic_write_json({**record, "config": dict(config)}, tmp_run / RUN_FILE)  # the mapping as read
        shutil.rmtree(tmp_root / "chunks", ignore_errors=True)
        if target.exists():
            shutil.rmtree(target)  # --replace: only now, once the new run is complete
        os.replace(tmp_run, target)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    seconds = time.perf_counter() - start
    result = ImportResult(
        run_id=run_id,
        run_dir=str(target),
        format=fmt,
        rows=buffer.rows,
        steps=n_steps,
        prompts=len(prompts),
        seconds=seconds,
        warnings=list(warnings or []),
    )
    log.info("imported %d rows over %d steps into %s in %.1f s", result.rows, n_steps, target, seconds)
    return result


def default_run_id(path: Path) -> str:
    """``import-<source name>``: the file or directory name, made safe for a directory name."""
    stem = Path(path).expanduser().resolve().name.split(".")[0] or "run"
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem)
    return f"import-{safe}"


def check_run_id(run_id: str) -> None:
    if not run_id or run_id.startswith(".") or any(c in run_id for c in "/\\") or run_id in ("..",):
        raise ConfigError(f"run id {run_id!r} must be a plain directory name (no '/', not starting with '.')")


def rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Staged rows built in Python (store fields + an ``extras`` dict) -> a staged table.

    ``prompt_id`` defaults to the hash of the prompt text, like ``map_table``.
    """
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    columns: dict[str, pa.Array] = {}
    for name in names:
        values = [row.get(name) for row in rows]
        if name == "extras":
            columns[name] = pa.array([None if v is None else json_dumps(v) for v in values], pa.string())
        else:
            columns[name] = pa.array(values, ROLLOUT_SCHEMA.field(name).type, from_pandas=True)
    if "prompt_id" not in columns or columns["prompt_id"].null_count:
        hashed = prompt_ids(columns["prompt"].fill_null(""))
        given = columns.get("prompt_id")
        columns["prompt_id"] = hashed if given is None else pc.coalesce(given, hashed)
    return pa.table(columns)


def number(value: Any, where: str, name: str) -> float | None:
    """A float from a JSON value (None/NaN stay missing); anything else names the file, line and field."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {name!r} must be a number, got {type(value).__name__} {value!r:.60}")
    return float(value)
