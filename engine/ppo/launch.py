"""Starting and stopping jobs from the app or the CLI: ``python -m engine ppo ...`` (contract) as a
detached process in its own session, SIGTERM to stop it after its current step, and the log-prob
evaluation job next to a run.

A run with ``processes > 1`` starts as ``python -m engine.ppo.torchrun --standalone
--nproc_per_node N -m engine ppo ...`` (torchrun with this interpreter): rank 0 records torchrun's
pid and every rank's in the status file; stopping the job signals the ranks, and a rank whose
torchrun dies stops by itself (:func:`engine.ppo.distributed.watch_launcher`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engine.config import ConfigError
from engine.paths import REPO_ROOT
from engine.ppo.argv import config_to_argv
from engine.ppo.config import PPOConfig
from engine.runs.layout import EVAL_LOG, JOB_LOG, LOCK_FILE, RUN_FILE, new_run_id, run_dir_of
from engine.runs.lock import is_live
from engine.runs.status import read_status

log = logging.getLogger(__name__)


@dataclass
class Job:
    run_id: str
    run_dir: Path
    pid: int
    process: subprocess.Popen | None = None


def spawn_detached(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``argv`` from the repository root in its own session (it outlives the app's process and
    a Ctrl-C in its terminal), output appended to ``log_path``."""
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )


def launch(
    config: PPOConfig | None = None,
    *,
    run_id: str | None = None,
    root: Path | str | None = None,
    resume: bool = False,
    env: dict[str, str] | None = None,
    wait: bool = False,
    timeout: float = 120.0,
) -> Job:
    """Start ``python -m engine ppo ...`` as a detached process (its own session).

    Refuses (ConfigError, nothing touched) a run id whose directory a live job owns, a new run whose
    directory already holds a run, and a resume of a run that does not exist. Two launchers racing
    past these checks (two browser tabs) both spawn, but only one child gets the directory's lock;
    with ``wait`` the launcher blocks until its child owns the run (or raises ConfigError with the
    child's error when it lost the race or failed to start).
    """
    run_id = run_id or new_run_id()
    run_dir = run_dir_of(run_id, root)
    if is_live(run_dir):
        raise ConfigError(f"run {run_id} is owned by a live job; stop it first")
    if resume and not (run_dir / RUN_FILE).is_file():
        raise ConfigError(f"cannot resume {run_id}: no run at {run_dir}")
    if not resume and (run_dir / RUN_FILE).exists():
        raise ConfigError(f"run {run_id} already exists; resume it or pick another id")
    command = job_command(_processes(config, run_dir, resume))
    argv = [*command, "--runs-dir", str(run_dir.parent), "--no-progress"]
    argv += ["--resume", run_id] if resume else ["--run-id", run_id, *config_to_argv(config)]
    run_dir.mkdir(parents=True, exist_ok=True)
    process = spawn_detached(argv, run_dir / JOB_LOG, env)
    log.info("launched %s (pid %d)", run_id, process.pid)
    job = Job(run_id=run_id, run_dir=run_dir, pid=process.pid, process=process)
    if wait:
        wait_until_started(job, timeout)
    return job


def job_command(processes: int = 1) -> list[str]:
    """``python -m engine ppo``, under torchrun for ``processes > 1`` (:mod:`engine.ppo.torchrun`:
    a failed rank is one line in the job's log, not torchrun's traceback)."""
    if processes <= 1:
        return [sys.executable, "-m", "engine", "ppo"]
    return [
        sys.executable, "-m", "engine.ppo.torchrun", "--standalone", "--nproc_per_node", str(processes),
        "-m", "engine", "ppo",
    ]  # fmt: skip


def _processes(config: PPOConfig | None, run_dir: Path, resume: bool) -> int:
    """Processes of the job: the config's, or the recorded run's on resume."""
    if not resume:
        return config.run.processes if config is not None else 1
    record = json.loads((run_dir / RUN_FILE).read_text())
    return int(record.get("config", {}).get("run", {}).get("processes", 1))


def wait_until_started(job: Job, timeout: float = 120.0) -> None:
    """Block until ``job``'s process owns its run directory; ConfigError if it exits first."""
    end = time.time() + timeout
    while time.time() < end:
        status = read_status(job.run_dir) or {}
        if status.get("pid") == job.pid and status.get("state") == "running":
            return
        if job.process is not None and job.process.poll() is not None:
            if status.get("pid") == job.pid:  # started and already done (a very short run)
                return
            error = _last_error(job.run_dir)
            _remove_unstarted(job.run_dir)
            raise ConfigError(f"the job for {job.run_id} did not start: {error}")
        time.sleep(0.1)
    raise ConfigError(
        f"the job for {job.run_id} did not start within {timeout:.0f} s (see {job.run_dir / JOB_LOG})"
    )


def _remove_unstarted(run_dir: Path) -> None:
    """After a failed start of a new run (no record written, no live owner): drop the job log and the
    directory, so the id can be used again."""
    if (run_dir / RUN_FILE).exists() or is_live(run_dir):
        return
    (run_dir / JOB_LOG).unlink(missing_ok=True)
    (run_dir / LOCK_FILE).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        run_dir.rmdir()


def _last_error(run_dir: Path) -> str:
    try:
        lines = [
            line for line in (run_dir / JOB_LOG).read_text(errors="replace").splitlines() if line.strip()
        ]
    except OSError:
        return "no log"
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["no log"])[-1]


def stop(run_id: str, root: Path | str | None = None) -> bool:
    """SIGTERM the job that owns ``run_id`` (it finishes its step, checkpoints and exits); False if none.

    A distributed job's ranks are signalled themselves (``pids`` in its status): they stop after the
    same step and torchrun exits cleanly, and they are reached even when torchrun was killed.
    """
    run_dir = run_dir_of(run_id, root)
    status = read_status(run_dir)
    if not is_live(run_dir) or not status or not status.get("pid"):
        return False
    signalled = False
    for pid in status.get("pids") or [status["pid"]]:
        try:
            os.kill(int(pid), signal.SIGTERM)
        except ProcessLookupError:
            continue
        signalled = True
    return signalled


def launch_eval(run_id: str, root: Path | str | None = None) -> subprocess.Popen:
    """Start ``python -m engine jobs eval RUN_ID --watch`` detached (next to a training job)."""
    run_dir = run_dir_of(run_id, root)
    if not (run_dir / RUN_FILE).is_file():
        raise ConfigError(f"no run {run_id} in {run_dir.parent}")
    argv = [
        sys.executable,
        "-m",
        "engine",
        "jobs",
        "--runs-dir",
        str(run_dir.parent),
        "eval",
        run_id,
        "--watch",
    ]
    return spawn_detached(argv, run_dir / EVAL_LOG)
