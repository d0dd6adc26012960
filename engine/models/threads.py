"""How many torch threads a model's CPU work runs on: one for a small model, and for a large one
(SmolLM2) the cores that no other process keeps busy. The sampling lab and ``bench sampling`` use it."""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Iterator

import torch

# Below this size a CPU forward pass is too small to split across threads: thread synchronisation
# costs more than the work (16 x 32 tokens on a tiny GPT-2, 2 shared cores: 50 ms on 1 thread,
# 300 ms to 5 s on 2 threads depending on the machine's load).
SMALL_MODEL_PARAMS = 30_000_000


@contextlib.contextmanager
def threads_for(model: torch.nn.Module) -> Iterator[int]:
    """Run a model's CPU work on the threads it can use, restoring the setting after; yields the count.

    A small model: one thread. A large one (SmolLM2): torch's threads only as far as the machine has
    idle cores for them (:func:`idle_cores`), else fewer, down to one. Why: a thread that another process
    keeps off its core stalls every parallel op of the others at its barrier; measured on the 2-core
    EPYC at load ~3.6, sampling 16 x 32 tokens of SmolLM2 took 123 s on 2 threads (119 CPU seconds,
    mostly waiting at barriers) and ~10 s on 1. ``WORKBENCH_THREADS`` (set by the user) wins.
    """
    on_cpu = next(model.parameters()).device.type == "cpu"
    small = sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS
    wanted = torch.get_num_threads()
    if on_cpu and not os.environ.get("WORKBENCH_THREADS"):
        wanted = 1 if small else max(1, min(wanted, idle_cores()))
    with using_threads(wanted):
        yield wanted


@contextlib.contextmanager
def using_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to ``count`` inside, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def idle_cores() -> int:
    """Cores not busy with other work: the core count less the 1-minute load average, to the nearest
    core, where the load this process made itself (:func:`own_load`) is not other work: an app whose
    notches keep one core busy raises the load average to ~1 on its own, and on a machine where
    nothing else runs it would then fall back to one thread for good. To the nearest, not down: a
    browser showing the app keeps a few tenths of a core busy, and rounding that down cost the lab's
    notch its second thread on an otherwise idle machine."""
    other = max(0.0, os.getloadavg()[0] - own_load())
    return int((os.cpu_count() or 1) - other + 0.5)


# (monotonic seconds, this process's CPU seconds) at earlier calls of own_load, oldest first
_CPU_SAMPLES: deque[tuple[float, float]] = deque()
OWN_LOAD_WINDOW_S = 60.0  # the load average's own time constant (its 1-minute figure)


def own_load() -> float:
    """This process's share of the load average: its CPU seconds per second over the last minute (all
    its threads), from the calls before this one; 0 at the first call or within 5 s of it."""
    now, cpu = time.monotonic(), time.process_time()
    while len(_CPU_SAMPLES) > 1 and now - _CPU_SAMPLES[1][0] >= OWN_LOAD_WINDOW_S:
        _CPU_SAMPLES.popleft()  # keep one sample at least a window old, when there is one
    _CPU_SAMPLES.append((now, cpu))
    then, cpu_then = _CPU_SAMPLES[0]
    return (cpu - cpu_then) / (now - then) if now - then >= 5.0 else 0.0
