"""Data-parallel PPO on plain ``torch.distributed``: the process group, the shard of each rank, and
the few collectives an iteration needs.

Launched by ``torchrun --standalone --nproc_per_node N -m engine ppo ...`` (contract) or by
``accelerate launch`` (which starts the same ``torch.distributed.run`` workers with the same
``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` environment): :func:`init_from_env` joins the group
when ``WORLD_SIZE > 1``, with ``nccl`` on CUDA (one GPU per ``LOCAL_RANK``) and ``gloo`` on CPU.

Why no ``DistributedDataParallel`` / ``Accelerator.prepare``: the trainable parameters are a LoRA
adapter and a value head (a few hundred thousand numbers), and the update calls the backbone and the
LM head separately (:func:`engine.ppo.rollout.policy_forward`), which a DDP wrapper's ``forward``
would not see. One flat all-reduce of the gradients per minibatch (:meth:`Dist.mean_gradients_`),
before clipping and the optimizer step, is all data parallelism needs here, and it keeps the
non-finite guard in lockstep: every rank sees the same reduced gradient, so all skip or all step.

What each rank does in an iteration (see :class:`engine.ppo.trainer.PPOTrainer`):

- samples its contiguous shard of the step's prompts (every sample of a prompt on one rank, so
  per-prompt reward normalisation needs no communication), with its own sampling generator;
- computes reference log-probs, values, RM scores, KL-shaped rewards, GAE and whitening on its
  shard (whitening and batch statistics are per rank: a 2-process run is close to, not equal to,
  a 1-process one);
- runs the same number of minibatches (``num_minibatches`` per rank; the global minibatch is the
  1-process one) with gradients averaged across ranks before each optimizer step;
- reduces metrics across ranks (:meth:`Dist.reduce_metrics`) and sends its rollout rows to rank 0,
  which writes one Parquet file per step with every rank's rows and their ``rank`` column.
"""

from __future__ import annotations

import ctypes
import datetime
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist

from engine.config import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    """This process's place in the data-parallel group (world size 1: a plain one-process run)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run directory (store, checkpoints, status)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def shard(self, items: Sequence[Any]) -> list[Any]:
        """This rank's contiguous slice of ``items`` (whose length the world size divides)."""
        n = len(items)
        if n % self.world_size:
            raise ConfigError(f"{n} prompts per step cannot be split evenly over {self.world_size} processes")
        k = n // self.world_size
        return list(items[self.rank * k : (self.rank + 1) * k])

    # ------------------------------------------------------------------ collectives

    def mean_gradients_(self, params: Sequence[torch.Tensor]) -> None:
        """Replace every parameter's gradient by its mean over the ranks, in place (one flat all-reduce).

        A parameter without a gradient on this rank contributes zeros, so every rank reduces the
        same flat vector.
        """
        if not self.active:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])  # (N,) one message instead of one per tensor
        tdist.all_reduce(flat, op=tdist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for p, g in zip(params, grads, strict=True):
            n = g.numel()
            p.grad = flat[offset : offset + n].view_as(g).clone()
            offset += n

    def mean(self, value: float) -> float:
        """The mean of a per-rank number over the ranks."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return float(t) / self.world_size

    def all_true(self, flag: bool) -> bool:
        """True when ``flag`` holds on every rank (the same answer everywhere)."""
        if not self.active:
            return flag
        t = torch.tensor([0 if flag else 1], dtype=torch.int64)
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return int(t) == 0

    def all_gather(self, value: Any) -> list[Any]:
        """``value`` of every rank in rank order (the same list on every rank)."""
        if not self.active:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        tdist.all_gather_object(gathered, value)
        return gathered

    def any_true(self, flag: bool) -> bool:
        """True when ``flag`` holds on some rank (e.g. one rank got SIGTERM: all stop after the step)."""
        return not self.all_true(not flag)

    def reduce_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Metrics averaged over the ranks that report them; ``time/*`` take the slowest rank (the
        step waits for it). Keys only some ranks report (rank 0's probes) keep those ranks' mean."""
        if not self.active:
            return metrics
        gathered: list[dict[str, float]] = [{} for _ in range(self.world_size)]
        tdist.all_gather_object(gathered, metrics)
        out: dict[str, float] = {}
        for key in dict.fromkeys(k for m in gathered for k in m):
            values = [m[key] for m in gathered if key in m and m[key] is not None]
            if not values:
                continue
            out[key] = max(values) if key.startswith("time/") else sum(values) / len(values)
        return out

    def gather_rows(self, rows: dict[str, list] | None) -> dict[str, list] | None:
        """Every rank's store rows concatenated in rank order on rank 0 (None elsewhere)."""
        if not self.active:
            return rows
        gathered: list[dict[str, list] | None] | None = [None] * self.world_size if self.is_main else None
        tdist.gather_object(rows, gathered, dst=0)
        if not self.is_main:
            return None
        parts = [r for r in gathered if r is not None]
        if not parts:
            return None
        return {key: [v for part in parts for v in part[key]] for key in parts[0]}

    def broadcast_parameters_(self, params: Sequence[torch.Tensor]) -> None:
        """Copy rank 0's values into every rank's parameters (every rank starts from the same weights)."""
        if not self.active:
            return
        for p in params:
            tdist.broadcast(p.data, src=0)

    def barrier(self) -> None:
        if self.active:
            tdist.barrier()


SINGLE = Dist()


def env_world_size() -> int:
    """``WORLD_SIZE`` as set by torchrun / accelerate launch (1 when unset)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as exc:
        raise ConfigError(f"WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}") from exc


def init_from_env(device_type: str | None = None, *, timeout_s: float = 600.0) -> tuple[Dist, torch.device]:
    """Join the process group the launcher described in the environment; (Dist, this rank's device).

    ``WORLD_SIZE`` unset or 1: one process, nothing initialised (a stray ``LOCAL_RANK`` is ignored:
    there is no group to be out of step with). Otherwise ``init_process_group`` from ``env://`` with
    ``nccl`` when CUDA is present (device ``cuda:LOCAL_RANK``) and ``gloo`` on CPU, so a CPU-only
    machine never runs unsynchronised replicas.
    """
    device_type = device_type or ("cuda" if torch.cuda.is_available() else "cpu")
    world = env_world_size()
    if world <= 1:
        return SINGLE, torch.device(device_type)
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={world} but {missing} are not set: start the job with "
            "`torchrun --standalone --nproc_per_node N -m engine ppo ...` or `accelerate launch`"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    if device_type == "cuda":
        backend, device = "nccl", torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        backend, device = "gloo", torch.device("cpu")
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    dist = Dist(
        rank=tdist.get_rank(), world_size=tdist.get_world_size(), local_rank=local_rank, backend=backend
    )
    log.info("rank %d of %d (%s) on %s", dist.rank, dist.world_size, backend, device)
    return dist, device


def under_launcher() -> bool:
    """True in a rank started by torchrun / accelerate launch (its parent is the launcher's agent)."""
    return "TORCHELASTIC_RUN_ID" in os.environ


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def watch_launcher() -> Callable[[], bool]:
    """Make this rank stop when its launcher dies; returns "is the launcher gone?", asked every step.

    A ``kill -9`` of torchrun would otherwise leave its ranks training with nobody to stop them. The
    kernel sends SIGTERM (the job's stop-after-this-step signal) when the parent dies
    (``prctl(PR_SET_PDEATHSIG)``). That signal follows the parent's *thread* that forked this rank,
    and never comes when the parent died before the call, so the job also checks, after every step,
    that its parent is still the launcher (an orphan is re-parented).
    """
    launcher = os.getppid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning(
                "prctl(PR_SET_PDEATHSIG) failed (errno %d): relying on the per-step check", ctypes.get_errno()
            )
    return lambda: os.getppid() != launcher


def shutdown(dist: Dist) -> None:
    """Leave the process group (at the end of a job)."""
    if dist.active and tdist.is_initialized():
        tdist.destroy_process_group()
