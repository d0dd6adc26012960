"""The body of a PPO job process: own the run directory, train, keep the heartbeat, stop cleanly on
SIGTERM (after the current step, with a checkpoint). Started by ``python -m engine ppo`` (contract),
which the app launches in the background (:func:`engine.ppo.launch.launch`).

Under ``torchrun`` / ``accelerate launch`` every rank runs this body (:mod:`engine.ppo.distributed`):
rank 0 owns the run directory (lock, record, status, store, checkpoints), every rank builds the same
trainer, loads the same checkpoint on resume and stops after the same step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from engine.config import ConfigError
from engine.ppo.build import build_trainer, resume_step
from engine.ppo.config import PPOConfig
from engine.ppo.distributed import Dist, init_from_env, shutdown, under_launcher, watch_launcher
from engine.runs import LOCK_FILE, RUN_FILE, StatusFile, owner_lock
from engine.runs.layout import RunWriteError, write_error
from engine.store import RunWriter

log = logging.getLogger(__name__)


def run_job(config: PPOConfig | None, run_dir: Path, *, resume: bool = False, progress: bool = True) -> int:
    """Body of the job process: own the run dir, train, heartbeat, stop cleanly on SIGTERM.

    ``config`` is ignored on resume (the run's recorded config is used, with ``steps`` possibly raised).
    Returns the process exit code.
    """
    run_dir = Path(run_dir)
    if resume and not (run_dir / RUN_FILE).is_file():
        raise ConfigError(f"cannot resume {run_dir.name}: no run at {run_dir}")
    dist, device = init_from_env()
    launcher_gone = watch_launcher() if under_launcher() else (lambda: False)
    try:
        if resume:
            recorded = PPOConfig.from_dict(json.loads((run_dir / RUN_FILE).read_text())["config"])
            config = (
                recorded
                if config is None
                else recorded.replace(steps=max(config.run.steps, recorded.run.steps))
            )
        assert config is not None
        config = with_world_size(config, dist)
        pids = dist.all_gather(os.getpid())  # every rank's, for the status file (stop signals them)
        stop_requested = _stop_on_signals(launcher_gone)
        try:
            if not dist.is_main:
                return _follow(config, run_dir, dist, device, stop_requested, resume=resume)
            return _lead(
                config, run_dir, dist, device, stop_requested, pids=pids, resume=resume, progress=progress
            )
        finally:
            stop_requested.restore()
    finally:
        shutdown(dist)


def with_world_size(config: PPOConfig, dist: Dist) -> PPOConfig:
    """The config with ``processes`` = the launcher's world size (validated: the batch must split)."""
    wanted = config.run.processes
    if dist.world_size == 1 and wanted > 1:
        raise ConfigError(
            f"processes = {wanted} needs a distributed launch: "
            f"`torchrun --standalone --nproc_per_node {wanted} -m engine ppo ...` (the Runs page does this)"
        )
    if wanted not in (1, dist.world_size):
        raise ConfigError(f"processes = {wanted} but the launcher started {dist.world_size} processes")
    return config.replace(processes=dist.world_size)


def _lead(
    config: PPOConfig,
    run_dir: Path,
    dist: Dist,
    device,
    stop_requested: _StopFlag,
    *,
    pids: list[int],
    resume: bool,
    progress: bool,
) -> int:
    """Rank 0 (the only rank of a one-process run): the run directory's owner."""
    with contextlib.ExitStack() as owned:
        try:
            if not resume and (run_dir / RUN_FILE).exists():
                raise ConfigError(
                    f"run {run_dir.name} already exists in {run_dir.parent}; resume it or pick another id"
                )
            owned.enter_context(owner_lock(run_dir))
        except BaseException:
            dist.all_true(False)  # the other ranks stop too
            raise
        dist.all_true(True)
        trainer = None
        if resume:
            remove_temp_files(run_dir)  # of writes that failed last time (a full disk)
            writer = RunWriter.open(run_dir)
        else:
            # Sources, prompts and models are loaded before the run exists: a failed start (a missing
            # policy, an empty prompts file, ...) leaves no run directory whose id can then be neither
            # reused nor resumed.
            try:
                trainer = _build_agreed(config, dist, device)
            except BaseException:
                remove_failed_start(run_dir)
                raise
            # The record says what the run computes: bf16 modes fall back to fp32 where bf16 is slow.
            config = config.replace(base_precision=trainer.base_precision)
            writer = RunWriter.create(run_dir, kind="ppo", config=config.to_dict(), seed=config.run.seed)
            trainer.writer = writer
        with StatusFile(run_dir, config.run.steps) as status:
            if dist.active and under_launcher():
                # pid: torchrun's, the process the launcher started and waits for; pids: the ranks,
                # which a stop signals directly (each finishes the step, torchrun then exits cleanly;
                # a SIGTERM to torchrun would end it with a SignalException and exit 1).
                status.update(pid=os.getppid(), pids=pids)
            try:
                if trainer is None:
                    status.update(message="loading models")
                    trainer = _build_agreed(config, dist, device, writer)
                start = resume_step(trainer, run_dir) if resume else 1
                status.update(step=start - 1, message=f"training from step {start}")

                def on_step(result) -> None:
                    status.update(step=result.step, message="bad step skipped" if result.skipped else "")

                last = trainer.train(
                    start, should_stop=stop_requested.should_stop, on_step=on_step, progress=progress
                )
                stopped = last < config.run.steps
                if stopped:
                    status.update(state="stopped", step=last, message=f"stopped after step {last}")
                else:
                    status.update(state="finished", step=last, message="done")
                if stopped and last < start:  # stopped before the first step: nothing to save
                    log.info("stopped before any step")
            except BaseException as exc:
                if isinstance(exc, OSError):  # a write outside the store's writers (a checkpoint)
                    exc = write_error(Path(exc.filename or run_dir), exc)
                if isinstance(exc, RunWriteError):
                    exc = RunWriteError(
                        f"{exc} (steps up to {status.state['step']} are saved; resume the run once "
                        "its directory can be written)"
                    )
                reason = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
                with contextlib.suppress(RunWriteError):  # the disk that failed the step may refuse it too
                    status.update(state="failed", message=reason)
                remove_temp_files(run_dir)
                if isinstance(exc, RunWriteError):
                    raise exc from None  # one line, not a chain of tracebacks
                raise
    return 0


def _follow(
    config: PPOConfig, run_dir: Path, dist: Dist, device, stop_requested: _StopFlag, *, resume: bool
) -> int:
    """A rank > 0: the same trainer without a writer; loads the same checkpoint, stops with rank 0."""
    if not dist.all_true(True):  # rank 0 could not take the run directory
        raise ConfigError(f"rank 0 could not take run {run_dir.name} (see its error in the job log)")
    trainer = _build_agreed(config, dist, device)
    start = resume_step(trainer, run_dir) if resume else 1
    trainer.train(start, should_stop=stop_requested.should_stop)
    return 0


def _build_agreed(config: PPOConfig, dist: Dist, device, writer: RunWriter | None = None):
    """Build the trainer on every rank, and fail on every rank if it failed on any (instead of the
    others waiting for it at the first collective)."""
    try:
        trainer = build_trainer(config, writer, device=device, dist=dist)
    except BaseException:
        dist.all_true(False)
        raise
    if not dist.all_true(True):
        raise ConfigError("another process of this run failed to start (see its error in the job log)")
    return trainer


class _StopFlag(threading.Event):
    """Set by SIGTERM / SIGINT; ``restore`` puts the previous handlers back."""

    def __init__(self, launcher_gone: Callable[[], bool]) -> None:
        super().__init__()
        self.previous: dict[int, object] = {}
        self.launcher_gone = launcher_gone

    def should_stop(self) -> bool:
        """Asked after every step: a stop signal came, or the launcher died (see watch_launcher)."""
        if not self.is_set() and self.launcher_gone():
            log.warning("the launcher exited: stopping after this step")
            self.set()
        return self.is_set()

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _stop_on_signals(launcher_gone: Callable[[], bool]) -> _StopFlag:
    flag = _StopFlag(launcher_gone)

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d: stopping after the current step", signum)
        flag.set()

    flag.previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    return flag


def remove_temp_files(run_dir: Path) -> None:
    """Remove the hidden temp files (``.<name>.*.tmp``) and checkpoint directories (``.step-N.tmp``)
    of writes that failed, as far as the directory lets us (a read-only one keeps them until the
    resume). Only the run's owner calls this: no other write can be in flight."""
    for path in Path(run_dir).rglob(".*.tmp"):
        with contextlib.suppress(OSError):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def remove_failed_start(run_dir: Path) -> None:
    """Undo what a start that failed before its run existed left: the lock file, and the directory if
    nothing else is in it (a launcher's job log stays for it to read the error; it removes the rest)."""
    (run_dir / LOCK_FILE).unlink(missing_ok=True)  # our own lock: unlinking it while held is fine
    with contextlib.suppress(OSError):
        run_dir.rmdir()  # only when empty
