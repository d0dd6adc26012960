"""What each PPO step derives for itself: its seeds, from ``(run seed, step, stream)``, so a resumed
run redraws exactly the steps it lost, the prompts it draws, the wall-clock timer of its phases, the
fixed probe prompts it samples at probe steps, and what it hands back to the loop."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from engine.ppo.rollout import ScoredRollout


def step_seed(seed: int, step: int, stream: int, rank: int = 0) -> int:
    """A distinct, reproducible seed per (run seed, step, stream, data-parallel rank); rank 0's seeds
    are a one-process run's."""
    return (seed * 1_000_003 + step * 7919 + stream * 104_729 + rank * 15_485_863) % (2**63 - 1)


class PromptOrder:
    """Which prompts of a pool of ``n_prompts`` each step draws: consecutive slices of ``per_step``
    from per-pass shuffles, so every prompt is drawn once per pass over the pool, reproducibly from
    ``seed`` (a resumed run draws the same).

    Where a step straddles the end of a pass, the prompts that pass already gave the step are moved
    out of the next pass's share of it (kept in shuffled order): a step draws no prompt twice, so its
    groups are its prompts (GRPO's baseline, the store's group audit), unless the pool is smaller than
    a step."""

    def __init__(self, n_prompts: int, per_step: int, seed: int) -> None:
        self.n, self.k, self.seed = n_prompts, per_step, seed
        self._passes: dict[int, list[int]] = {}

    def step_indices(self, step: int) -> list[int]:
        """The pool indices of 1-based ``step``'s prompts."""
        return [self._pass(j // self.n)[j % self.n] for j in range((step - 1) * self.k, step * self.k)]

    def _pass(self, epoch: int) -> list[int]:
        n, k = self.n, self.k
        start = max((e for e in self._passes if e <= epoch), default=-1) + 1
        for e in range(start, epoch + 1):  # each pass depends on the one before: built in order
            g = torch.Generator().manual_seed(step_seed(self.seed, e, stream=0))
            order = torch.randperm(n, generator=g).tolist()
            tail = (e * n) % k  # prompts of the straddling step that the previous pass gave
            if e > 0 and tail and k <= n:
                taken = set(self._passes[e - 1][n - tail :])
                head = [i for i in order if i not in taken][: k - tail]
                rest = set(order) - set(head)
                order = head + [i for i in order if i in rest]
            self._passes[e] = order
        return self._passes[epoch]


class PhaseTimer:
    """Wall-clock seconds of an iteration's phases, as the metrics ``time/<phase>`` and ``time/step``
    (from the timer's creation). No device sync: on a GPU a phase's time includes whatever work of the
    earlier phases was still queued."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[f"time/{phase}"] = time.perf_counter() - t0

    def metrics(self) -> dict[str, float]:
        return {**self.seconds, "time/step": time.perf_counter() - self.start}


@dataclass
class StepResult:
    step: int
    metrics: dict[str, float]
    rows: dict[str, list] | None  # rollout columns for the store; None for a skipped step
    skipped: bool = False
    probe_rows: dict[str, list] | None = None  # the probe prompts' samples, at probe steps
    scored: ScoredRollout | None = None  # the step's training batch (an RM refresh labels its pairs)


def probe_set(prompts: Sequence[Any], per_family: int) -> list[Any]:
    """The fixed probe prompts: the first ``per_family`` prompts of each family by prompt id."""
    by_family: dict[str, list[Any]] = {}
    for p in sorted(prompts, key=lambda p: p.prompt_id):
        by_family.setdefault(p.family, []).append(p)
    return [p for family in sorted(by_family) for p in by_family[family][:per_family]]
