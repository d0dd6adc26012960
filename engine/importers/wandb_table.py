"""``wandb-table``: a W&B table exported as JSON, ``{"columns": [...], "data": [[...], ...]}``.

That is how W&B stores a logged ``wandb.Table`` (``media/table/<key>_<step>_<hash>.table.json``):
- TRL's PPO trainer (trl/experimental/ppo/ppo_trainer.py, ``generate_completions``, TRL v1.9) logs
  ``completions`` with columns ``query``, ``model response``, ``score``; the step is in the file name.
- OpenRLHF (openrlhf/utils/logging_utils.py ``WandbLogger``, commit 3c3be62) logs
  ``train/generated_samples`` with columns ``global_step``, ``text``, ``reward``. ``text`` is the
  decoded prompt and response together, so the prompt is left empty (``--map prompt=COL`` if you
  have one), and the table is cumulative (each log re-logs every earlier row): of several files
  with a step column only the one with the most rows is read.
W&B caps a table's size, so a file is read whole and then processed in batches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from engine.config import ConfigError
from engine.importers.mapping import map_rows, resolve_mapping
from engine.importers.readers import find_files, has_surrogate_escape, json_dumps, without_surrogates
from engine.importers.staging import Staging

DEFAULTS = {
    "prompt": ["query", "prompt"],
    "response": ["model response", "response", "completion", "text"],
    "reward": ["score", "reward"],
    "step": ["global_step", "step"],
}
_FILE_STEP = re.compile(r"_(\d+)_[0-9a-f]+\.table\.json$")
BATCH_ROWS = 50_000


def files(path: Path, fmt: str = "wandb-table") -> list[Path]:
    return find_files(path, ["*.table.json", "*.json"], "W&B table exports (*.table.json)")


def read_table(path: Path, ctx: Staging) -> pa.Table:
    if path.stat().st_size == 0:
        raise ConfigError(f"{path} is empty")
    raw = path.read_bytes()
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a JSON file ({exc})") from None
    if has_surrogate_escape(raw):
        obj = without_surrogates(obj, ctx)
    if (
        not isinstance(obj, dict)
        or not isinstance(obj.get("columns"), list)
        or not isinstance(obj.get("data"), list)
    ):
        found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ConfigError(f"{path}: a W&B table needs 'columns' and 'data' lists; found {found}")
    names = [str(c) for c in obj["columns"]]
    for i, row in enumerate(obj["data"]):
        if not isinstance(row, list) or len(row) != len(names):
            raise ConfigError(
                f"{path}: data row {i} has {len(row) if isinstance(row, list) else 'no'} values for {len(names)} columns"
            )
    columns = {}
    for j, name in enumerate(names):
        values = [row[j] for row in obj["data"]]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array([None if v is None else json_dumps(v) for v in values], pa.string())
    return pa.table(columns) if columns else pa.table({})


def stage(paths: list[Path], ctx: Staging) -> Iterator[pa.Table]:
    tables = [(path, read_table(path, ctx)) for path in paths]
    stepped = [(p, t) for p, t in tables if any(c in t.column_names for c in DEFAULTS["step"])]
    if len(stepped) > 1:
        keep = max(stepped, key=lambda pt: pt[1].num_rows)
        ctx.warnings.append(
            f"{len(stepped)} tables carry a step column (OpenRLHF re-logs every earlier row): read only {keep[0].name}"
        )
        tables = [keep]
    for path, table in tables:
        ctx.report(path.stat().st_size)
        resolved = resolve_mapping(table.column_names, DEFAULTS, ctx.mapping)
        if "prompt" not in resolved:
            table = table.append_column("prompt", pa.array([""] * table.num_rows, pa.string()))
            resolved["prompt"] = ["prompt"]
            ctx.warnings.append(
                f"{path.name}: no prompt column, prompts left empty (one prompt group per step)"
            )
        ctx.used.setdefault("mapping", resolved)
        match = _FILE_STEP.search(path.name)
        for start in range(0, max(table.num_rows, 1), BATCH_ROWS):
            part = table.slice(start, BATCH_ROWS)
            yield map_rows(part, resolved, ctx, path, default_step=int(match.group(1)) if match else 0)
