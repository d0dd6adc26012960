"""Preference labels made in the app: ``runs/<id>/labels/*.parquet`` (the columns are
:data:`~engine.runs.layout.LABEL_COLUMNS`). The app's labelling view appends a file per save; the RM
refresh's ``human`` labeller reads them all, and :func:`preference_pairs` makes them a preference test set
for :func:`engine.ppo.logprob_eval.evaluate_run` (its ``pairs``).

A file is written once, under a hidden temp name in the same directory, then renamed: a reader never
sees half a file, and a page that reloads mid-save loses nothing already saved.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from engine.config import ConfigError
from engine.runs.layout import LABEL_CHOICES, LABEL_COLUMNS, LABELS_DIR


def _schema():
    import pyarrow as pa

    return pa.schema([(name, pa.type_for_alias(kind)) for name, kind in LABEL_COLUMNS.items()])


def append_labels(run_dir: Path | str, rows: Sequence[dict[str, Any]]) -> Path | None:
    """Write ``rows`` (dicts with the label columns; ``labelled_at`` defaults to now) as one new file
    in ``run_dir/labels/``; returns its path, None for no rows. ConfigError for a bad row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        return None
    now = time.time()
    columns: dict[str, list] = {name: [] for name in LABEL_COLUMNS}
    for n, row in enumerate(rows, start=1):
        missing = sorted(set(LABEL_COLUMNS) - {"labelled_at"} - set(row))
        if missing:
            raise ConfigError(f"label {n} lacks {missing}")
        if row["label"] not in LABEL_CHOICES:
            raise ConfigError(f"label {n}: label must be one of {LABEL_CHOICES}, got {row['label']!r}")
        for name in LABEL_COLUMNS:
            columns[name].append(row.get(name, now) if name == "labelled_at" else row[name])
    table = pa.table(columns, schema=_schema())
    folder = Path(run_dir) / LABELS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    # Names sort in the order of the saves (nanoseconds); the random tail keeps two writers apart.
    name = f"labels-{time.time_ns():020d}-{os.urandom(3).hex()}.parquet"
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return folder / name


def read_labels(run_dir: Path | str) -> list[dict[str, Any]]:
    """Every label of the run, oldest file first (an empty list when there are none). Hidden temp
    files of a save in progress are skipped."""
    import pyarrow.parquet as pq

    folder = Path(run_dir) / LABELS_DIR
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob("[!.]*.parquet")) if folder.is_dir() else []:
        rows += pq.read_table(path, schema=_schema()).to_pylist()
    return rows


class PreferencePair(NamedTuple):
    """A labelled pair with an order, as the log-prob evaluation reads it."""

    prompt: str
    chosen: str
    rejected: str


def preference_pairs(rows: Sequence[dict[str, Any]]) -> list[PreferencePair]:
    """The labels of ``rows`` that give an order ("a" or "b"; a tie or a skip gives none) as
    (prompt, chosen, rejected), each pair once (its first label), oldest first."""
    pairs: dict[PreferencePair, None] = {}
    for row in rows:
        if row["label"] in ("a", "b"):
            a, b = row["response_a"], row["response_b"]
            pairs.setdefault(PreferencePair(row["prompt"], *((a, b) if row["label"] == "a" else (b, a))))
    return list(pairs)
