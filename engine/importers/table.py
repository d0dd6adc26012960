"""``jsonl`` / ``parquet`` / ``csv``: any table of rollouts, one row per sample, with a column mapping.

Columns are found by name (``prompt``/``query``/``input``, ``response``/``completion``/``output``,
``reward``/``score``, ``step``/``global_step``, ``prompt_id``/``group_id``/``uid``, ``gold``) or by
``--map FIELD=COLUMN``; a column named like a store column (``entropy``, ``logprob``, ``token_ids``,
``kl`` ...) is taken as that column. Without a step column every row is step 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from engine.importers.mapping import map_rows, resolve_mapping
from engine.importers.readers import find_files, table_batches
from engine.importers.staging import Staging

DEFAULTS = {
    "prompt": ["prompt", "query", "input", "question"],
    "response": ["response", "completion", "output", "model response", "answer"],
    "reward": ["reward", "score", "rewards"],
    "step": ["step", "global_step", "iteration"],
    "prompt_id": ["prompt_id", "group_id", "uid", "prompt_uid"],
    "gold": ["gold", "judge", "gold_score"],
}
PATTERNS = {"jsonl": ["*.jsonl", "*.ndjson"], "parquet": ["*.parquet"], "csv": ["*.csv"]}


def files(path: Path, fmt: str) -> list[Path]:
    return find_files(path, PATTERNS[fmt], f"{fmt} files")


def stage(paths: list[Path], ctx: Staging) -> Iterator[pa.Table]:
    for path in paths:
        for batch in table_batches(path, ctx):
            resolved = resolve_mapping(batch.column_names, DEFAULTS, ctx.mapping)
            ctx.used.setdefault("mapping", resolved)
            yield map_rows(batch, resolved, ctx, path, default_step=0)
