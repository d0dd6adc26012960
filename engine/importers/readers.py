"""Reading source files in bounded batches: JSONL, CSV and Parquet tables, JSONL records one by one,
and finding a format's files under a path.

Readers report the bytes they consume through ``ctx.progress`` and count what they repair in
``ctx.counts`` (a :class:`~engine.importers.staging.Staging`). A file pyarrow's fast JSON reader
cannot finish is read on line by line from the first record it did not yield, never twice.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.config import ConfigError, shown_path
from engine.importers.staging import REPLACED_CHARACTERS, Progress, Staging

log = logging.getLogger(__name__)

BATCH_BYTES = 16 << 20  # bytes of source text per parsed batch
JSON_LINES_SUFFIXES = (".jsonl", ".json", ".ndjson")
_SURROGATE = re.compile("[\ud800-\udfff]")  # a code point JSON can escape but UTF-8 cannot encode


def json_dumps(obj: Any) -> str:
    """The JSON text the store keeps for an object (``extras``, a column of mixed types)."""
    return json.dumps(obj, ensure_ascii=False, default=str)


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


def without_surrogates(value: Any, ctx: Staging) -> Any:
    """``value`` (parsed JSON) with every lone surrogate in its texts replaced by U+FFFD, counted in
    ``ctx``: half of a UTF-16 pair (``"\\ud83d"``, an emoji cut at a token boundary) is valid JSON
    but cannot be stored as UTF-8, and one cut character should not stop the import of a run."""
    if isinstance(value, str):
        fixed, n = _SURROGATE.subn("\ufffd", value)
        ctx.counts[REPLACED_CHARACTERS] += n
        return fixed
    if isinstance(value, list):
        return [without_surrogates(v, ctx) for v in value]
    if isinstance(value, dict):
        return {without_surrogates(k, ctx): without_surrogates(v, ctx) for k, v in value.items()}
    return value


def has_surrogate_escape(text: bytes) -> bool:
    """Whether JSON ``text`` may hold a surrogate escape (only then is it worth a walk)."""
    return b"\\ud" in text or b"\\uD" in text


def jsonl_records(path: Path, ctx: Staging) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) of each non-empty line; a malformed line is a ConfigError
    naming the file and the line; lone surrogates become U+FFFD (:func:`without_surrogates`)."""
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            ctx.report(len(line))
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
            if has_surrogate_escape(line):
                obj = without_surrogates(obj, ctx)
            yield number, obj


def _counting_reader(path: Path, progress: Progress | None) -> CountingReader:
    """``path`` opened for one of pyarrow's streaming readers (an empty file is an error)."""
    if path.stat().st_size == 0:
        raise ConfigError(f"{path} is empty")
    return CountingReader(path, progress)


def jsonl_batches(path: Path, ctx: Staging) -> Iterator[pa.Table]:
    """Tables of a JSONL file, ``BATCH_BYTES`` of text at a time (pyarrow's streaming reader).

    Where pyarrow cannot go on (a malformed line, a field whose type changes after the first
    blocks, a surrogate escape), the rest of the file is read line by line, starting after the
    records already yielded: a malformed line is then reported with its number, and a file that is
    only irregular is read as Python objects (slower, same result).
    """
    import pyarrow.json as pj

    reader_file = _counting_reader(path, ctx.progress)
    taken = 0  # records already yielded by the fast pass
    try:
        for table in reader_file.tables(
            pj.open_json(reader_file, read_options=pj.ReadOptions(block_size=BATCH_BYTES))
        ):
            taken += table.num_rows
            yield table
        return
    except pa.ArrowInvalid as exc:
        log.info("%s: pyarrow stopped after %d records (%s); reading on line by line", path, taken, exc)
    finally:
        reader_file.close()
    # Undo the progress of the fast pass: jsonl_records reports every line, the skipped ones too.
    if reader_file.reported:
        ctx.report(-reader_file.reported)
    rest = itertools.islice(jsonl_records(path, ctx), taken, None)
    yield from records_batches(rest, _objects_table)


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


def _objects_table(records: list[tuple[int, Any]]) -> pa.Table:
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


def csv_batches(path: Path, ctx: Staging) -> Iterator[pa.Table]:
    import pyarrow.csv as pcsv

    reader_file = _counting_reader(path, ctx.progress)
    try:
        yield from reader_file.tables(
            pcsv.open_csv(reader_file, read_options=pcsv.ReadOptions(block_size=BATCH_BYTES))
        )
    except pa.ArrowInvalid as exc:
        raise ConfigError(f"{path}: not a readable CSV file: {exc}") from None
    finally:
        reader_file.close()


def parquet_batches(path: Path, ctx: Staging) -> Iterator[pa.Table]:
    """Tables of a Parquet file, one row-group-sized batch at a time; progress in bytes on disk."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ConfigError(f"{path}: not a readable Parquet file: {exc}") from None
    size, rows = path.stat().st_size, max(parquet.metadata.num_rows, 1)
    for batch in parquet.iter_batches(batch_size=65_536):
        ctx.report(int(size * batch.num_rows / rows))
        yield pa.Table.from_batches([batch])


def table_batches(path: Path, ctx: Staging) -> Iterator[pa.Table]:
    """Batches of a ``.jsonl`` / ``.json`` (lines) / ``.parquet`` / ``.csv`` file, by suffix."""
    suffix = path.suffix.lower()
    if suffix in JSON_LINES_SUFFIXES:
        return jsonl_batches(path, ctx)
    if suffix == ".parquet":
        return parquet_batches(path, ctx)
    if suffix in (".csv", ".tsv"):
        return csv_batches(path, ctx)
    raise ConfigError(f"{path}: unknown file type {suffix!r} (expected .jsonl, .parquet or .csv)")


def row_location(path: Path, index: int) -> str:
    """Where source row ``index`` (0-based, in reading order) of ``path`` is, for a message:
    ``path:LINE`` in a JSON-lines file (blank lines hold no row), ``path: row N`` otherwise."""
    if path.suffix.lower() in JSON_LINES_SUFFIXES and not path.name.endswith(".table.json"):
        with open(path, "rb") as fh:
            nonblank = (number for number, line in enumerate(fh, start=1) if line.strip())
            line = next(itertools.islice(nonblank, index, None), None)
        if line is not None:
            return f"{path}:{line}"
    return f"{path}: row {index + 1}"


def find_files(path: Path, patterns: Iterable[str], what: str) -> list[Path]:
    """The files under ``path`` (or ``path`` itself) matching any of ``patterns``, sorted; a clear
    error when there are none or the path cannot be read (too long a name, no permission)."""
    path = Path(path).expanduser()
    patterns = list(patterns)
    try:
        exists, is_file = path.exists(), path.is_file()
        found = (
            set() if is_file or not exists else {p for g in patterns for p in path.rglob(g) if p.is_file()}
        )
    except OSError as exc:
        raise ConfigError(f"cannot read {shown_path(path)}: {exc.strerror or exc}") from None
    if not exists:
        raise ConfigError(f"{shown_path(path)} does not exist")
    if is_file:
        return [path]
    if not found:
        raise ConfigError(f"{path} holds no {what} (looked for {', '.join(patterns)})")
    return sorted(found)
