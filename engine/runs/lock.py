"""The owner lock of a run directory: an exclusive ``flock`` on ``runs/<id>/.lock`` held by the job
for its whole life. The kernel drops it when the process dies, even on SIGKILL, so "is a job live in
this run" is always answerable, and a second job (another browser tab) can never write into a live run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from engine.config import ConfigError
from engine.runs.layout import LOCK_FILE, STATUS_FILE, read_json, write_error


@contextlib.contextmanager
def owner_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's exclusive lock; ConfigError if a live job already holds it."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a read-only runs directory, a full disk
        raise write_error(run_dir / LOCK_FILE, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = read_json(run_dir / STATUS_FILE) or {}
            raise ConfigError(
                f"run {run_dir.name} is owned by a live job (pid {owner.get('pid', '?')}); stop it first"
            ) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def is_live(run_dir: Path) -> bool:
    """True while some process holds the run's lock (a job is running in it)."""
    # Read-only: a reader (another user's app or `jobs list`) may not write the owner's lock file,
    # and flock needs no write access.
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:  # never locked, or removed by a failed start
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
