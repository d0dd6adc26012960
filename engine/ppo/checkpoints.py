"""PPO checkpoints: ``runs/<id>/checkpoints/step-N/`` with the LoRA adapter (peft ``save_pretrained``),
the value head (PPO only: the group methods have none), the optimizer state and the trainer state.

A checkpoint is written under a temp name and renamed, so a directory named ``step-N`` is always
complete; :func:`engine.runs.list_checkpoints` is the one test of "complete" (its trainer state
exists), used by resume, the log-prob evaluation, the sampling lab and the RM accuracy page (it needs
no torch, so pages can call it).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from torch import nn

from engine.config import ConfigError, shown_path
from engine.models import ValueHead, load_value_head, save_value_head
from engine.models.loading import hub_offline
from engine.paths import demo_runs_dir
from engine.runs import list_checkpoints, run_dir_of, run_info
from engine.runs.layout import CHECKPOINTS_DIR, TRAINER_STATE, RunWriteError

log = logging.getLogger(__name__)

VALUE_HEAD_FILE = "value_head.safetensors"
OPTIMIZER_FILE = "optimizer.pt"


# RUN@step-K or RUN@last: a run's checkpoint as a policy source
CHECKPOINT_REF = re.compile(r"(?P<run>[^@]+)@(?P<step>last|step-(?P<k>\d+))")


def checkpoint_name(step: int) -> str:
    return f"step-{step}"


@dataclass(frozen=True)
class CheckpointRef:
    """A run's checkpoint named as ``RUN@step-K`` / ``RUN@last``, found on disk."""

    run_dir: Path
    step: int
    path: Path  # checkpoints/step-K/: the LoRA adapter that ``load_causal_lm`` loads on its base
    demo: bool  # a shipped demo run (read-only)


def parse_checkpoint_ref(text: str) -> tuple[str, int | None] | None:
    """(run id, step, None for the last) of ``RUN@step-K`` / ``RUN@last``; None for anything else."""
    match = CHECKPOINT_REF.fullmatch(text.strip())
    if match is None:
        return None
    return match["run"], None if match["k"] is None else int(match["k"])


def find_checkpoint(run_id: str, step: int | None, runs_root: Path | str | None = None) -> CheckpointRef:
    """The checkpoint at ``step`` (None: the last) of run ``run_id``, looked up among the user's runs
    (``runs_root``, default WORKBENCH_RUNS_DIR or ./runs) and then the shipped demo runs; ConfigError,
    naming what exists, when the run or the step does not."""
    places = [(run_dir_of(run_id, runs_root), False), (run_dir_of(run_id, demo_runs_dir()), True)]
    found = next(((d, demo) for d, demo in places if run_info(d) is not None), None)
    if found is None:
        raise ConfigError(f"no run {run_id!r} in {places[0][0].parent} nor among the demo runs")
    run_dir, demo = found
    checkpoints = dict(list_checkpoints(run_dir))
    if not checkpoints:
        raise ConfigError(f"run {run_id!r} has no checkpoint")
    step = max(checkpoints) if step is None else step
    if step not in checkpoints:
        raise ConfigError(
            f"run {run_id!r} has no checkpoint at step {step}; it has steps {sorted(checkpoints)}"
        )
    return CheckpointRef(run_dir=run_dir, step=step, path=checkpoints[step], demo=demo)


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: nn.Module,
    value_head: ValueHead | None,
    optimizer: torch.optim.Optimizer,
    *,
    kl_coef: float,
    seed: int,
    extra: Callable[[Path], dict[str, Any]] | None = None,
) -> Path:
    """Write ``checkpoints/step-<step>/`` atomically (temp directory, then rename). ``extra`` writes
    more into the folder and returns entries for the trainer state (a refreshed RM)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    final = root / checkpoint_name(step)
    tmp = root / f".{checkpoint_name(step)}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with hub_offline():  # PEFT looks the base's config up on the hub for a named base (smollm2)
            model.save_pretrained(str(tmp))
        if value_head is not None:
            save_value_head(value_head, tmp / VALUE_HEAD_FILE)
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
    except (RuntimeError, SafetensorError) as exc:
        # torch and safetensors report a file they cannot write (a directory turned read-only, a
        # full disk) as their own errors, not OSError: the job must get its one-line write error.
        raise RunWriteError(f"could not write {shown_path(tmp)} (a checkpoint): {exc}") from None
    state: dict[str, Any] = {
        **(extra(tmp) if extra is not None else {}),
        "step": step,
        "kl_coef": kl_coef,
        "seed": seed,
        "rng": {
            "scheme": "per-step torch.Generator seeded from (seed, step, stream); global state below",
            "torch_cpu": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
        },
    }
    (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    log.info("checkpoint %s", final)
    return final


@dataclass(frozen=True)
class TrainerState:
    step: int
    kl_coef: float
    extra: dict[str, Any] = field(default_factory=dict)  # the whole trainer state, for ``extra``'s reader


def load_checkpoint(
    path: Path, model: nn.Module, value_head: ValueHead | None, optimizer: torch.optim.Optimizer
) -> TrainerState:
    """Restore adapter, value head and optimizer in place (and the global torch RNG); returns the
    checkpoint's step and KL coefficient."""
    from peft import load_peft_weights, set_peft_model_state_dict

    device = next(model.parameters()).device
    set_peft_model_state_dict(model, load_peft_weights(str(path), device=str(device)))
    if value_head is not None:
        value_head.load_state_dict(
            load_value_head(path / VALUE_HEAD_FILE, value_head.summary.in_features).state_dict()
        )
    optimizer.load_state_dict(torch.load(path / OPTIMIZER_FILE, map_location=device, weights_only=True))
    state = json.loads((path / TRAINER_STATE).read_text())
    rng = np.frombuffer(base64.b64decode(state["rng"]["torch_cpu"]), dtype=np.uint8).copy()
    torch.set_rng_state(torch.from_numpy(rng))
    model.eval()
    return TrainerState(step=int(state["step"]), kl_coef=float(state["kl_coef"]), extra=state)
