"""The import pipeline: a format's staged batches -> one store file per step, written under a
temporary directory that is renamed into place at the very end (an interrupted import leaves
nothing behind).

:func:`import_run` is what ``python -m engine import FORMAT PATH`` and the Import page call;
:func:`preview` gives the first staged rows and the column mapping for the page. The format module
(:data:`engine.importers.formats.FORMATS`) finds the files and stages their rows; the rows are
buffered per step (:mod:`engine.importers.steps`), their rewards made finite, and each step written
through the store's :class:`~engine.store.writer.RunWriter`.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from engine.config import ConfigError
from engine.importers.formats import FORMATS
from engine.importers.staging import (
    COUNTS,
    NON_FINITE_REWARDS,
    REPLACED_CHARACTERS,
    SKIPPED_ROWS,
    Progress,
    Staging,
)
from engine.importers.steps import StepBuffer, with_sample_idx
from engine.runs.layout import RUN_FILE, RUN_ID_MAX, check_run_id
from engine.store.writer import RunWriter, atomic_write_json

log = logging.getLogger(__name__)


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
    repeated_files: int = 0
    """Source files left out because they repeat the previous file's rows (TRL re-logging)."""
    skipped_rows: int = 0
    """Rows missing a prompt or a response, left out (``skip_bad_rows``)."""
    non_finite_rewards: int = 0
    """NaN / inf rewards, stored as empty."""
    replaced_characters: int = 0
    """Lone surrogates in the source texts, stored as U+FFFD."""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 3), "rows_per_s": round(self.rows_per_s)}


def _module(fmt: str) -> ModuleType:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown import format {fmt!r}; formats: {', '.join(FORMATS)}")
    return importlib.import_module(FORMATS[fmt].module)


def import_run(
    fmt: str,
    path: Path | str,
    *,
    runs_dir: Path | None = None,
    run_id: str | None = None,
    mapping: Mapping[str, list[str]] | None = None,
    replace: bool = False,
    skip_bad_rows: bool = False,
    progress_factory: Callable[[int], Progress] | None = None,
) -> ImportResult:
    """Import the rollouts at ``path`` (a file or a directory) as run ``run_id`` under ``runs_dir``.

    A row without a prompt or a response stops the import with its file and line, unless
    ``skip_bad_rows`` (then it is left out and counted).
    """
    from engine.paths import runs_dir as default_runs_dir

    module, path = _module(fmt), Path(path).expanduser()
    if run_id is not None:
        check_run_id(run_id)
    files = module.files(path, fmt)
    ctx = Staging(mapping=dict(mapping or {}), skip_bad_rows=skip_bad_rows)
    config = {"format": fmt, "source_path": str(path.resolve()), "files": len(files), "mapping": ctx.mapping}

    def staged(progress: Progress | None) -> Iterator[pa.Table]:
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
        ctx=ctx,
        replace=replace,
        progress_factory=progress_factory,
    )


def preview(
    fmt: str, path: Path | str, mapping: Mapping[str, list[str]] | None = None, rows: int = 20
) -> tuple[Any, dict[str, list[str]], list[str]]:
    """(first staged rows as a DataFrame, the mapping used, warnings), reading only the first batch.

    Rows missing a prompt or a response are left out of the preview (the import names them)."""
    module, path = _module(fmt), Path(path).expanduser()
    files = module.files(path, fmt)
    ctx = Staging(mapping=dict(mapping or {}), skip_bad_rows=True)
    batches = module.stage(files[:1], ctx)
    try:
        first = next((b for b in batches if b.num_rows), None)
    finally:
        batches.close()
    if first is None:
        raise ConfigError(f"{files[0]}: no rollout rows found")
    frame = first.slice(0, rows).to_pandas()
    return frame, ctx.used.get("mapping", {}), ctx.warnings


def _finite_rewards(table: pa.Table, ctx: Staging) -> pa.Table:
    """The rewards with NaN and +-inf made empty, counted in ``ctx``: a step's mean, a page's slider
    bounds and the failure-mode queries need finite numbers. A step whose rewards are all empty in
    the source is an error the user can fix by mapping another column."""
    reward = table.column("reward")
    if len(reward) and reward.null_count == len(reward):
        raise ConfigError("every reward is empty; map reward to a numeric column with --map reward=COLUMN")
    finite = pc.is_finite(reward)  # null where the reward is null
    n_bad = len(reward) - reward.null_count - (pc.sum(finite).as_py() or 0)
    if not n_bad:
        return table
    ctx.counts[NON_FINITE_REWARDS] += n_bad
    kept = pc.if_else(finite, reward, pa.scalar(None, reward.type))
    return table.set_column(table.schema.get_field_index("reward"), "reward", kept)


def count_warnings(ctx: Staging) -> list[str]:
    """One line for the user per thing the import repaired or left out (the format modules word
    their own, e.g. TRL's repeated files)."""
    counts = ctx.counts
    lines = []
    if counts[SKIPPED_ROWS]:
        lines.append(f"left out {counts[SKIPPED_ROWS]} rows with no prompt or no response (--skip-bad-rows)")
    if counts[NON_FINITE_REWARDS]:
        lines.append(f"{counts[NON_FINITE_REWARDS]} rewards were NaN or infinite: stored as empty")
    if counts[REPLACED_CHARACTERS]:
        lines.append(
            f"{counts[REPLACED_CHARACTERS]} lone surrogates (half of a UTF-16 pair, e.g. an emoji cut "
            "in two) in the texts: stored as U+FFFD"
        )
    return lines


def run_import(
    fmt: str,
    path: Path,
    staged: Callable[[Progress | None], Iterator[pa.Table]],
    *,
    total_bytes: int,
    runs_dir: Path,
    run_id: str | None,
    config: Mapping[str, Any],
    ctx: Staging,
    replace: bool = False,
    progress_factory: Callable[[int], Progress] | None = None,
) -> ImportResult:
    """Stage every batch, then write one store file per step under a temp dir, renamed at the end.

    ``staged(progress)`` yields staged tables and reports into ``ctx``; ``progress_factory(total_bytes)``
    makes the progress callback (a tqdm bar on the CLI, ``st.progress`` in the app).
    """
    start = time.perf_counter()
    run_id = check_run_id(run_id or default_run_id(path))
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
            table = _finite_rewards(with_sample_idx(buffer.take(step)), ctx)
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
        warnings=[*ctx.warnings, *count_warnings(ctx)],
        **{name: ctx.counts[name] for name in COUNTS},
    )
    log.info("imported %d rows over %d steps into %s in %.1f s", result.rows, n_steps, target, seconds)
    return result


def default_run_id(path: Path | str) -> str:
    """``import-<source name>``: the file or directory name, made a valid run id (ASCII letters,
    digits, '-', '_'; cut to the run id's length limit)."""
    try:
        name = Path(path).expanduser().resolve().name
    except (OSError, ValueError):  # a name the OS refuses: the id still comes from its text
        name = Path(path).name
    stem = name.split(".")[0] or "run"
    safe = "".join(c if (c.isascii() and c.isalnum()) or c in "-_" else "-" for c in stem)
    return f"import-{safe}"[:RUN_ID_MAX]
