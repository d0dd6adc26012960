"""What each PPO step derives for itself: its seeds, from ``(run seed, step, stream)``, so a resumed
run redraws exactly the steps it lost, the wall-clock timer of its phases, the fixed probe prompts it
samples at probe steps, and what it hands back to the loop."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from engine.ppo.rollout import ScoredRollout


def step_seed(seed: int, step: int, stream: int, rank: int = 0) -> int:
    """A distinct, reproducible seed per (run seed, step, stream, data-parallel rank); rank 0's seeds
    are a one-process run's."""
    return (seed * 1_000_003 + step * 7919 + stream * 104_729 + rank * 15_485_863) % (2**63 - 1)


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
