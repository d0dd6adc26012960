"""PPO runs as background processes: launch, heartbeat/status, stop (SIGTERM), resume, list.

A run is a separate process, ``python -m engine ppo ...`` (contract), started from the CLI or the
app. It owns its run directory through an exclusive ``flock`` on ``runs/<id>/.lock`` for its whole
life (the kernel drops it when the process dies, even on SIGKILL), so a second job — from another
browser tab, say — can never write into a live run. It keeps ``status.json`` fresh from a heartbeat
thread: ``{state: running|stopped|finished|failed, step, pid, heartbeat, message}``. A run whose
status says ``running`` but whose lock is free was killed: it is reported as ``interrupted``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import ConfigError
from engine.paths import REPO_ROOT, runs_dir

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
STATUS_FILE = "status.json"
RUN_FILE = "run.json"
JOB_LOG = "job.log"
HEARTBEAT_SECONDS = 2.0


# ---------------------------------------------------------------------- run directories


def resolve_run_dir(run_id: str, root: Path | str | None = None) -> Path:
    """``<runs dir>/<run_id>``; the id must be a plain directory name."""
    if not run_id or "/" in run_id or run_id.startswith(".") or run_id != run_id.strip():
        raise ConfigError(f"run id must be a plain name (letters, digits, '-', '_'), got {run_id!r}")
    return Path(root) if root is not None else runs_dir()


def run_dir_of(run_id: str, root: Path | str | None = None) -> Path:
    return resolve_run_dir(run_id, root) / run_id


def new_run_id() -> str:
    return time.strftime("ppo-%Y%m%d-%H%M%S-") + os.urandom(2).hex()


@contextlib.contextmanager
def owner_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's exclusive lock; ConfigError if a live job already holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = read_status(run_dir) or {}
            raise ConfigError(
                f"run {run_dir.name} is owned by a live job (pid {owner.get('pid', '?')}); stop it first"
            ) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def is_live(run_dir: Path) -> bool:
    """True while some process holds the run's lock (a job is running in it)."""
    lock = Path(run_dir) / LOCK_FILE
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# ---------------------------------------------------------------------- status


def read_status(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def effective_state(run_dir: Path, status: dict[str, Any] | None = None) -> str:
    """The status file's state, corrected for a killed job (``running`` but no live owner -> ``interrupted``)."""
    status = status if status is not None else read_status(run_dir)
    if status is None:
        return "starting" if is_live(run_dir) else "unknown"
    state = status.get("state", "unknown")
    if state == "running" and not is_live(run_dir):
        return "interrupted"
    return state


class StatusFile:
    """The job's status.json, refreshed by a heartbeat thread and on every state change."""

    def __init__(self, run_dir: Path, steps: int) -> None:
        self.path = run_dir / STATUS_FILE
        self.state = {"state": "running", "step": 0, "steps": steps, "pid": os.getpid(), "message": ""}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def update(self, **changes: Any) -> None:
        from engine.store.writer import atomic_write_json

        with self._lock:
            self.state.update(changes)
            self.state["heartbeat"] = time.time()
            atomic_write_json(self.state, self.path)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self.update()

    def __enter__(self) -> StatusFile:
        self.update()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------- the job process


def run_job(config, run_dir: Path, *, resume: bool = False, progress: bool = True) -> int:
    """Body of the job process: own the run dir, train, heartbeat, stop cleanly on SIGTERM.

    ``config`` is ignored on resume (the run's recorded config is used, with ``steps`` possibly raised).
    Returns the process exit code.
    """
    from engine.ppo_config import PPOConfig
    from engine.store import RunWriter

    run_dir = Path(run_dir)
    if resume and not (run_dir / RUN_FILE).is_file():
        raise ConfigError(f"cannot resume {run_dir.name}: no run at {run_dir}")
    if not resume and (run_dir / RUN_FILE).exists():
        raise ConfigError(
            f"run {run_dir.name} already exists in {run_dir.parent}; resume it or pick another id"
        )
    with owner_lock(run_dir):
        if resume:
            writer = RunWriter.open(run_dir)
            record = json.loads((run_dir / RUN_FILE).read_text())
            recorded = PPOConfig.from_dict(record["config"])
            config = (
                recorded
                if config is None
                else recorded.replace(steps=max(config.run.steps, recorded.run.steps))
            )
        else:
            writer = RunWriter.create(run_dir, kind="ppo", config=config.to_dict(), seed=config.run.seed)
        stop_requested = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            log.info("signal %d: stopping after the current step", signum)
            stop_requested.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        with StatusFile(run_dir, config.run.steps) as status:
            try:
                from engine.trainer import build_trainer, resume_step

                status.update(message="loading models")
                trainer = build_trainer(config, writer)
                start = resume_step(trainer) if resume else 1
                status.update(step=start - 1, message=f"training from step {start}")

                def on_step(result) -> None:
                    status.update(step=result.step, message="bad step skipped" if result.skipped else "")

                last = trainer.train(
                    start, should_stop=stop_requested.is_set, on_step=on_step, progress=progress
                )
                if stop_requested.is_set() and last < config.run.steps:
                    status.update(state="stopped", step=last, message=f"stopped after step {last}")
                else:
                    status.update(state="finished", step=last, message="done")
                if stop_requested.is_set() and last < start:  # stopped before the first step: nothing to save
                    log.info("stopped before any step")
            except BaseException as exc:
                status.update(state="failed", message=f"{type(exc).__name__}: {exc}")
                raise
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
    return 0


# ---------------------------------------------------------------------- launching from the app/CLI


@dataclass
class Job:
    run_id: str
    run_dir: Path
    pid: int
    process: subprocess.Popen | None = None


def launch(
    config=None,
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
    from engine.ppo_cli import config_to_argv

    run_id = run_id or new_run_id()
    run_dir = run_dir_of(run_id, root)
    if is_live(run_dir):
        raise ConfigError(f"run {run_id} is owned by a live job; stop it first")
    if resume and not (run_dir / RUN_FILE).is_file():
        raise ConfigError(f"cannot resume {run_id}: no run at {run_dir}")
    if not resume and (run_dir / RUN_FILE).exists():
        raise ConfigError(f"run {run_id} already exists; resume it or pick another id")
    argv = [sys.executable, "-m", "engine", "ppo", "--runs-dir", str(run_dir.parent), "--no-progress"]
    argv += ["--resume", run_id] if resume else ["--run-id", run_id, *config_to_argv(config)]
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / JOB_LOG, "ab") as out:
        process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    log.info("launched %s (pid %d)", run_id, process.pid)
    job = Job(run_id=run_id, run_dir=run_dir, pid=process.pid, process=process)
    if wait:
        wait_until_started(job, timeout)
    return job


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
            raise ConfigError(f"the job for {job.run_id} did not start: {_last_error(job.run_dir)}")
        time.sleep(0.1)
    raise ConfigError(
        f"the job for {job.run_id} did not start within {timeout:.0f} s (see {job.run_dir / JOB_LOG})"
    )


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
    """SIGTERM the job that owns ``run_id`` (it finishes its step, checkpoints and exits); False if none."""
    run_dir = run_dir_of(run_id, root)
    status = read_status(run_dir)
    if not is_live(run_dir) or not status or not status.get("pid"):
        return False
    try:
        os.kill(int(status["pid"]), signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


@dataclass
class RunInfo:
    run_id: str
    run_dir: Path
    kind: str
    created_at: str
    state: str
    step: int
    steps: int | None
    message: str


def list_runs(root: Path | str | None = None) -> list[RunInfo]:
    """Runs under the runs directory, newest first."""
    base = Path(root) if root is not None else runs_dir()
    runs = []
    if not base.is_dir():
        return runs
    for run_dir in base.iterdir():
        record_path = run_dir / RUN_FILE
        if not record_path.is_file():
            continue
        try:
            record = json.loads(record_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        status = read_status(run_dir) or {}
        steps = ((record.get("config") or {}).get("run") or {}).get("steps")
        runs.append(
            RunInfo(
                run_id=run_dir.name,
                run_dir=run_dir,
                kind=record.get("kind", "?"),
                created_at=record.get("created_at", ""),
                state=effective_state(run_dir, status)
                if status
                else ("imported" if record.get("kind") == "import" else effective_state(run_dir)),
                step=int(status.get("step", 0)),
                steps=status.get("steps", steps),
                message=status.get("message", ""),
            )
        )
    return sorted(runs, key=lambda r: r.created_at, reverse=True)


# ---------------------------------------------------------------------- CLI: jobs list|stop|status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("jobs", help="list, inspect and stop PPO jobs")
    parser.add_argument(
        "--runs-dir", default=None, help="runs directory (default: WORKBENCH_RUNS_DIR or ./runs)"
    )
    sub = parser.add_subparsers(dest="jobs_command", metavar="<action>", required=True)
    sub.add_parser("list", help="runs, newest first, with their state").set_defaults(func=_cli_list)
    p = sub.add_parser("status", help="a run's status.json (state corrected for killed jobs)")
    p.add_argument("run_id")
    p.set_defaults(func=_cli_status)
    p = sub.add_parser("stop", help="ask a running job to stop after its current step (SIGTERM)")
    p.add_argument("run_id")
    p.set_defaults(func=_cli_stop)
    p = sub.add_parser(
        "eval",
        help="log-prob accuracy of a run's checkpoints on the preference test set (evals/logprob_accuracy.parquet)",
    )
    p.add_argument("run_id")
    p.add_argument(
        "--watch", action="store_true", help="keep evaluating new checkpoints while the run's job is live"
    )
    p.set_defaults(func=_cli_eval)


def _cli_list(args: argparse.Namespace) -> int:
    for r in list_runs(args.runs_dir):
        steps = f"{r.step}/{r.steps}" if r.steps else str(r.step)
        print(f"{r.run_id}\t{r.kind}\t{r.state}\t{steps}\t{r.created_at}\t{r.message}")
    return 0


def _cli_status(args: argparse.Namespace) -> int:
    run_dir = run_dir_of(args.run_id, args.runs_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise ConfigError(f"no run {args.run_id} in {run_dir.parent}")
    status = read_status(run_dir) or {}
    print(
        json.dumps({**status, "state": effective_state(run_dir, status) if status else "unknown"}, indent=2)
    )
    return 0


def _cli_eval(args: argparse.Namespace) -> int:
    from engine.logprob_eval import evaluate_run, watch_run

    run_dir = run_dir_of(args.run_id, args.runs_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise ConfigError(f"no run {args.run_id} in {run_dir.parent}")
    if args.watch:
        watch_run(run_dir)
    else:
        for row in evaluate_run(run_dir):
            print(f"{row['checkpoint']}\t{row['accuracy']:.4f}\t{row['n_pairs']}")
    return 0


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
    with open(run_dir / "eval.log", "ab") as out:
        return subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _cli_stop(args: argparse.Namespace) -> int:
    if not stop(args.run_id, args.runs_dir):
        raise ConfigError(f"run {args.run_id} has no live job to stop")
    print(f"sent SIGTERM to {args.run_id}")
    return 0
