"""Importers: rollouts of runs made elsewhere (TRL, verl, NeMo-RL, prime-rl, W&B tables, plain
tables) -> the run store's layout, so the analysis pages read them like the engine's own runs.

``import_run(fmt, path, ...)`` is what ``python -m engine import FORMAT PATH`` and the Import page
call; ``preview`` gives the first staged rows and the column mapping for the page. Each format is
one module exposing ``files(path, fmt)`` and ``stage(files, ctx)`` (ctx: a ``common.Staging``);
``engine.importers.common`` holds the streaming, mapping and atomic-write machinery.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.config import ConfigError
from engine.importers.common import ImportResult, Progress, Staging, parse_mapping, run_import

FORMATS = {
    "trl": "engine.importers.trl",
    "wandb-table": "engine.importers.wandb_table",
    "verl": "engine.importers.verl",
    "nemo-rl": "engine.importers.nemo_rl",
    "prime-rl": "engine.importers.prime_rl",
    "jsonl": "engine.importers.table",
    "parquet": "engine.importers.table",
    "csv": "engine.importers.table",
}

__all__ = ["FORMATS", "ImportResult", "import_run", "parse_mapping", "preview"]


def _module(fmt: str) -> ModuleType:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown import format {fmt!r}; formats: {', '.join(FORMATS)}")
    return importlib.import_module(FORMATS[fmt])


def import_run(
    fmt: str,
    path: Path | str,
    *,
    runs_dir: Path | None = None,
    run_id: str | None = None,
    mapping: Mapping[str, list[str]] | None = None,
    replace: bool = False,
    progress_factory: Callable[[int], Progress] | None = None,
) -> ImportResult:
    """Import the rollouts at ``path`` (a file or a directory) as run ``run_id`` under ``runs_dir``."""
    from engine.paths import runs_dir as default_runs_dir

    module, path = _module(fmt), Path(path).expanduser()
    files = module.files(path, fmt)
    ctx = Staging(mapping=dict(mapping or {}))
    config = {"format": fmt, "source_path": str(path.resolve()), "files": len(files), "mapping": ctx.mapping}

    def staged(progress: Progress | None):
        ctx.progress = progress
        yield from module.stage(files, ctx)
        config["mapping"] = ctx.used.get("mapping", ctx.mapping)  # the mapping the files were read with

    return run_import(
        fmt,
        path,
        staged,
        total_bytes=sum(f.stat().st_size for f in files),
        runs_dir=Path(runs_dir) if runs_dir else default_runs_dir(),
        run_id=run_id,
        config=config,
        replace=replace,
        progress_factory=progress_factory,
        warnings=ctx.warnings,
    )


def preview(
    fmt: str, path: Path | str, mapping: Mapping[str, list[str]] | None = None, rows: int = 20
) -> tuple[Any, dict[str, list[str]], list[str]]:
    """(first staged rows as a DataFrame, the mapping used, warnings), reading only the first batch."""
    module, path = _module(fmt), Path(path).expanduser()
    files = module.files(path, fmt)
    ctx = Staging(mapping=dict(mapping or {}))
    batches = module.stage(files[:1], ctx)
    try:
        first = next((b for b in batches if b.num_rows), None)
    finally:
        batches.close()
    if first is None:
        raise ConfigError(f"{files[0]}: no rollout rows found")
    frame = first.slice(0, rows).to_pandas()
    return frame, ctx.used.get("mapping", {}), ctx.warnings
