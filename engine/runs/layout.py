"""A run directory's name and its small JSON files: ``runs/<run_id>/`` with ``run.json`` (the record:
kind, config, seed, source), ``status.json`` (the job's heartbeat) and ``.lock`` (the owner's flock).

The store's Parquet files (``rollouts/``, ``metrics/``, ``evals/``) and ``checkpoints/`` live in the
same directory; their layout is the store's (:mod:`engine.store.schema`). A directory with rollout
files but no record (copied from another tool) is a run too, of unknown kind.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.config import ConfigError
from engine.paths import runs_dir

RUN_FILE = "run.json"
STATUS_FILE = "status.json"
ROLLOUTS_DIR = "rollouts"  # the store's per-step rollout files (engine.store.schema)
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


def new_run_id(prefix: str = "ppo") -> str:
    return time.strftime(f"{prefix}-%Y%m%d-%H%M%S-") + os.urandom(2).hex()


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when it is missing or not (yet) valid JSON."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def atomic_write_json(obj: Any, path: Path) -> Path:
    """Write ``obj`` as JSON through a hidden temp file in the same directory + ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=2, default=str)
    os.replace(tmp, path)
    return path
