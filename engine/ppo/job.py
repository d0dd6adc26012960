"""The body of a PPO job process: own the run directory, train, keep the heartbeat, stop cleanly on
SIGTERM (after the current step, with a checkpoint). Started by ``python -m engine ppo`` (contract),
which the app launches in the background (:func:`engine.runs.launch`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
from pathlib import Path

from engine.config import ConfigError
from engine.ppo.build import build_trainer, resume_step
from engine.ppo.config import PPOConfig
from engine.runs import LOCK_FILE, RUN_FILE, StatusFile, owner_lock
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
    if not resume and (run_dir / RUN_FILE).exists():
        raise ConfigError(
            f"run {run_dir.name} already exists in {run_dir.parent}; resume it or pick another id"
        )
    with owner_lock(run_dir):
        trainer = None
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
            # Sources, prompts and models are loaded before the run exists: a failed start (a missing
            # policy, an empty prompts file, ...) leaves no run directory whose id can then be neither
            # reused nor resumed.
            try:
                trainer = build_trainer(config)
            except BaseException:
                remove_failed_start(run_dir)
                raise
            # The record says what the run computes: bf16 modes fall back to fp32 where bf16 is slow.
            config = config.replace(base_precision=trainer.base_precision)
            writer = RunWriter.create(run_dir, kind="ppo", config=config.to_dict(), seed=config.run.seed)
            trainer.writer = writer
        stop_requested = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            log.info("signal %d: stopping after the current step", signum)
            stop_requested.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        with StatusFile(run_dir, config.run.steps) as status:
            try:
                if trainer is None:
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


def remove_failed_start(run_dir: Path) -> None:
    """Undo what a start that failed before its run existed left: the lock file, and the directory if
    nothing else is in it (a launcher's job log stays for it to read the error; it removes the rest)."""
    (run_dir / LOCK_FILE).unlink(missing_ok=True)  # our own lock: unlinking it while held is fine
    with contextlib.suppress(OSError):
        run_dir.rmdir()  # only when empty
