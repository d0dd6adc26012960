"""The run-directory layer everything else builds on: run ids and the directory's file names, the
owner lock, status and heartbeat, the effective state of a run and the list of runs. Launching and
stopping jobs sits above, beside the job it starts (:mod:`engine.ppo.launch`).
``from engine.runs import ...`` is the public API."""

from engine.runs.layout import (
    JOB_LOG,
    LOCK_FILE,
    RUN_FILE,
    STATUS_FILE,
    atomic_write_json,
    check_run_id,
    new_run_id,
    read_json,
    run_dir_of,
)
from engine.runs.listing import RunInfo, list_checkpoints, list_runs, reward_is_judge, run_info
from engine.runs.lock import is_live, owner_lock
from engine.runs.status import StatusFile, effective_state, read_status

__all__ = [
    "JOB_LOG",
    "LOCK_FILE",
    "RUN_FILE",
    "STATUS_FILE",
    "RunInfo",
    "StatusFile",
    "atomic_write_json",
    "check_run_id",
    "effective_state",
    "is_live",
    "list_checkpoints",
    "list_runs",
    "new_run_id",
    "owner_lock",
    "read_json",
    "read_status",
    "reward_is_judge",
    "run_dir_of",
    "run_info",
]
