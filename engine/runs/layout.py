"""A run directory's names, the one home of every file and folder name in ``runs/<run_id>/``, and its
small JSON files: ``run.json`` (the record: kind, config, seed, source), ``status.json`` (the job's
heartbeat) and ``.lock`` (the owner's flock).

The store's Parquet files (``rollouts/``, ``metrics/``, ``probes/``, ``evals/``) and ``checkpoints/``
live in the same directory; what is inside them is the store's (:mod:`engine.store.schema`). A
directory with rollout files but no record (copied from another tool) is a run too, of unknown kind.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from engine.config import ConfigError
from engine.paths import runs_dir

RUN_FILE = "run.json"
STATUS_FILE = "status.json"
ROLLOUTS_DIR = "rollouts"  # the store's per-step rollout files (engine.store.schema)
METRICS_DIR = "metrics"  # one metrics file per logged step
PROBES_DIR = "probes"  # the fixed probe prompts sampled every few steps (rollout schema, is_probe)
EVALS_DIR = "evals"  # evals/<name>.parquet: evaluations of a run's checkpoints
CHECKPOINTS_DIR = "checkpoints"  # checkpoints/step-N/: adapter, value head, optimizer, trainer state
TRAINER_STATE = "trainer_state.json"  # written last into a checkpoint: its presence means complete
LOCK_FILE = ".lock"
JOB_LOG = "job.log"
EVAL_LOG = "eval.log"


class RunWriteError(ConfigError):
    """A file of a run directory could not be written (a full disk, a read-only directory): reported
    as one line naming the file, never a traceback."""


def write_error(path: Path, exc: OSError) -> RunWriteError:
    """``exc`` (from writing ``path``) as the one-line error the job and the CLI report."""
    return RunWriteError(f"could not write {path}: {exc.strerror or exc}")


def check_run_id(run_id: str) -> str:
    """A run id is a plain directory name; ConfigError otherwise."""
    if not run_id or "/" in run_id or run_id.startswith(".") or run_id != run_id.strip():
        raise ConfigError(f"run id must be a plain name (letters, digits, '-', '_'), got {run_id!r}")
    return run_id


def run_dir_of(run_id: str, root: Path | str | None = None) -> Path:
    """``<runs dir>/<run_id>`` (``root`` defaults to WORKBENCH_RUNS_DIR or ./runs)."""
    return (Path(root) if root is not None else runs_dir()) / check_run_id(run_id)


def eval_file(run_dir: Path, name: str) -> Path:
    """``<run_dir>/evals/<name>.parquet``: one evaluation of a run's checkpoints."""
    return Path(run_dir) / EVALS_DIR / f"{name}.parquet"


def new_run_id(prefix: str = "ppo") -> str:
    return time.strftime(f"{prefix}-%Y%m%d-%H%M%S-") + os.urandom(2).hex()


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when it is missing or not (yet) valid JSON."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def new_temp_file(path: Path) -> tuple[int, Path]:
    """A new, hidden temp file beside ``path`` to be renamed onto it: (descriptor open for writing, path).

    Created with mode 0o666 less the umask, like any other file: ``tempfile.mkstemp``'s 0600 would make
    a run unreadable to the other users of a shared runs directory.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:  # 48 random bits: practically never
            continue


def atomic_write_json(obj: Any, path: Path) -> Path:
    """Write ``obj`` as JSON through a hidden temp file in the same directory + ``os.replace``.

    A failed write (a full disk, a read-only directory) removes its temp file and raises
    :class:`RunWriteError` naming ``path``.
    """
    try:
        fd, tmp = new_temp_file(path)
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from exc
        raise
    return path
