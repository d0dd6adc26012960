"""``verl``: the rollouts verl dumps with ``trainer.rollout_data_dir``.

verl (verl/trainer/ppo/ray_trainer.py, ``_dump_generations``, commit b178a3c) writes
``<rollout_data_dir>/{global_step}.jsonl``, one JSON object per sample:
``{"input", "output", "gts", "score", "step", *<every reward-extra key, e.g. "acc">}``, where
``input``/``output`` are the decoded prompt and response and ``score`` the summed token-level
score. No group id is written: samples are grouped by prompt text within a step. ``gts`` and the
reward extras are kept in ``extras``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from engine.importers.mapping import map_rows, resolve_mapping
from engine.importers.readers import find_files, jsonl_batches
from engine.importers.staging import Staging

DEFAULTS = {"prompt": ["input"], "response": ["output"], "reward": ["score"], "step": ["step"]}


def files(path: Path, fmt: str = "verl") -> list[Path]:
    found = find_files(path, ["*.jsonl"], "verl rollout dumps ({global_step}.jsonl)")
    if Path(path).is_file():
        return found
    steps = [p for p in found if p.stem.isdigit()]
    return sorted(steps, key=lambda p: int(p.stem)) or found


def stage(paths: list[Path], ctx: Staging) -> Iterator[pa.Table]:
    for path in paths:
        default_step = int(path.stem) if path.stem.isdigit() else None
        for batch in jsonl_batches(path, ctx):
            resolved = resolve_mapping(batch.column_names, DEFAULTS, ctx.mapping)
            ctx.used.setdefault("mapping", resolved)
            yield map_rows(batch, resolved, ctx, path, default_step=default_step)
