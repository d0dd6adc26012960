"""Source columns -> store columns: the ``--map`` syntax, each format's default columns, the typed
conversion of a source table (:func:`map_table`), the per-row check of required fields
(:func:`map_rows`), and rows built in Python (:func:`rows_table`).

A *staged* table has store columns (``step``, ``prompt``, ``response``, ``reward``, ``prompt_id``,
per-token lists ...) plus ``extras``: a JSON object string per row holding every source field the
store has no column for, reward components included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.config import ConfigError
from engine.importers.readers import json_dumps, jsonl_records, records_batches, row_location
from engine.importers.staging import SKIPPED_ROWS, Staging
from engine.store.schema import ROLLOUT_SCHEMA, TOKEN_LIST_COLUMNS

# Store fields a column of the source can be mapped to (``--map FIELD=COLUMN``).
TEXT_FIELDS = ("prompt", "response", "prompt_id", "prompt_family", "checkpoint")
NUMBER_FIELDS = ("reward", "gold", "kl", "temperature", "top_p", "top_k", "step", "sample_idx", "rank")
LIST_FIELDS = ("tokens", "token_ids", *TOKEN_LIST_COLUMNS)
MAPPABLE_FIELDS = (*TEXT_FIELDS, *NUMBER_FIELDS, "has_eos", *LIST_FIELDS)
REQUIRED_FIELDS = ("prompt", "response", "reward")  # a source must have a column for each
REQUIRED_VALUES = ("prompt", "response")  # and a value for each of these in every row


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


def map_rows(
    table: pa.Table,
    mapping: Mapping[str, list[str]],
    ctx: Staging,
    path: Path,
    *,
    default_step: int | None = None,
) -> pa.Table:
    """:func:`map_table` over the next source rows of ``path``, then the per-row check: a row with
    no prompt or no response (a line without the field, or with null) is an error naming the file
    and the line; with ``ctx.skip_bad_rows`` it is left out and counted instead."""
    first = ctx.rows_read.get(path, 0)
    ctx.rows_read[path] = first + table.num_rows
    staged = map_table(table, mapping, where=str(path), default_step=default_step)
    missing = {f: pc.is_null(staged.column(f)) for f in REQUIRED_VALUES}
    bad = pc.or_(*missing.values())
    n_bad = pc.sum(bad).as_py() or 0
    if not n_bad:
        return staged
    if not ctx.skip_bad_rows:
        index = pc.index(bad, True).as_py()
        field = next(f for f, m in missing.items() if m[index].as_py())
        raise ConfigError(
            f"{row_location(path, first + index)}: no {mapping[field][0]!r} (the {field}) in this row; "
            "fix it, or pass --skip-bad-rows to leave such rows out"
        )
    ctx.counts[SKIPPED_ROWS] += n_bad
    return staged.filter(pc.invert(bad))


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


def jsonl_rows(
    path: Path, ctx: Staging, rows_of: Callable[[int, Any], list[dict[str, Any]]]
) -> Iterator[pa.Table]:
    """Staged tables of a JSONL file whose line ``n`` with object ``obj`` gives the rows ``rows_of(n, obj)``."""

    def convert(records: list[tuple[int, Any]]) -> pa.Table:
        rows = [row for line, obj in records for row in rows_of(line, obj)]
        return rows_table(rows) if rows else pa.table({})

    return records_batches(jsonl_records(path, ctx), convert)


def number(value: Any, where: str, name: str) -> float | None:
    """A float from a JSON value (None/NaN stay missing); anything else names the file, line and field."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {name!r} must be a number, got {type(value).__name__} {value!r:.60}")
    return float(value)
