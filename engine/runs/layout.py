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
import re
import time
from pathlib import Path
from typing import Any

from engine.config import ConfigError, shown_path
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
# The prompt_selection measurement of a run (engine.ppo.prompt_selection): one row per candidate prompt
# with its mean token entropy and RM-score variance on the starting policy, and whether it was kept.
PROMPT_SELECTION_FILE = "prompt_selection.parquet"

# Preference labels made in the app, the RM refresh's human labeller (engine.runs.labels writes and
# reads them): labels/<name>.parquet, each file written once and atomically, one row per labelled pair.
LABELS_DIR = "labels"
LABEL_CHOICES = ("a", "b", "tie", "skip")  # "a" = response_a is better
LABEL_COLUMNS: dict[str, str] = {
    "prompt_id": "string",  # the rollout's prompt id
    "prompt": "string",  # the prompt text, as the RM reads it
    "response_a": "string",  # two samples of that prompt, as the judge reads them ([EOS] kept)
    "response_b": "string",
    "label": "string",  # one of LABEL_CHOICES
    "step": "int64",  # the PPO step the samples come from
    "labelled_at": "double",  # Unix seconds
}


RUN_ID_MAX = 100  # characters: well inside a file system's 255-byte name, with room for temp names
_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


class RunWriteError(ConfigError):
    """A file of a run directory could not be written (a full disk, a read-only directory): reported
    as one line naming the file, never a traceback."""


def write_error(path: Path, exc: OSError) -> RunWriteError:
    """``exc`` (from writing ``path``) as the one-line error the job and the CLI report."""
    return RunWriteError(f"could not write {shown_path(path)}: {exc.strerror or exc}")


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a plain directory name: 1 to :data:`RUN_ID_MAX` ASCII letters, digits,
    '-', '_' or '.' (not first: no hidden or parent directory); ConfigError otherwise, naming the rule.

    The one rule for every run id (jobs, imports, the pages): a name the file system takes as is on
    every platform, so a bad id is refused here rather than failing as an OSError deep in a write.
    """
    if len(run_id) > RUN_ID_MAX or not _RUN_ID.fullmatch(run_id):
        shown = repr(run_id) if len(run_id) <= 60 else f"{run_id[:40]!r}... ({len(run_id)} characters)"
        raise ConfigError(
            f"run id must be 1-{RUN_ID_MAX} characters, each a letter (a-z, A-Z), a digit, '-', '_' "
            f"or '.' (not first), got {shown}"
        )
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
