"""A job's ``status.json`` and the *effective* state of a run, the one definition every page and
command uses.

The job writes ``{state: running|stopped|finished|failed, step, steps, pid, heartbeat, message}``
from a heartbeat thread. A run whose status says ``running`` but whose owner lock is free was killed:
its effective state is ``interrupted``. An imported run has no job: ``imported``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from engine.runs.layout import STATUS_FILE, RunWriteError, atomic_write_json, read_json
from engine.runs.lock import is_live

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0


def read_status(run_dir: Path) -> dict[str, Any] | None:
    return read_json(Path(run_dir) / STATUS_FILE)


def effective_state(run_dir: Path, status: dict[str, Any] | None = None, *, kind: str = "") -> str:
    """The status file's state, corrected for a killed job (``running`` but no live owner -> ``interrupted``).

    Without a status file: ``starting`` while a job holds the lock, ``imported`` for an imported run,
    else ``unknown``.
    """
    status = status if status is not None else read_status(run_dir)
    if status is None:
        if is_live(run_dir):
            return "starting"
        return "imported" if kind == "import" else "unknown"
    state = status.get("state", "unknown")
    if state == "running" and not is_live(run_dir):
        return "interrupted"
    return state


class StatusFile:
    """The job's status.json, refreshed by a heartbeat thread and on every state change."""

    def __init__(self, run_dir: Path, steps: int) -> None:
        self.path = Path(run_dir) / STATUS_FILE
        self.state = {"state": "running", "step": 0, "steps": steps, "pid": os.getpid(), "message": ""}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def update(self, **changes: Any) -> None:
        with self._lock:
            self.state.update(changes)
            self.state["heartbeat"] = time.time()
            atomic_write_json(self.state, self.path)

    def _beat(self) -> None:
        warned = False
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.update()
            except RunWriteError as exc:  # the job's own next write fails too, and reports it
                if not warned:
                    log.warning("heartbeat: %s", exc)
                warned = True

    def __enter__(self) -> StatusFile:
        self.update()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
