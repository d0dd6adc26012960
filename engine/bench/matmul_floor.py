"""The matrix products of one step, recorded and then timed alone: the floor under the step's seconds.

Two implementations of the same work do the same matrix products. Whatever else either does, it
cannot take less time than those products take on their own, so their seconds bound how far one side
can get ahead of the other: ``bench grpo`` records the products of one step on each side and reports
both sums. Recording uses torch's profiler (each top-level ``mm``, ``addmm``, ``bmm`` and ``baddbmm``
with its operands' shapes, strides, dtypes and scalars); timing builds operands laid out as they were
in the step and runs each distinct product on its own, in this process and its thread setting. CPU
steps only: the profiler's records carry no device, and the operands are made on the CPU.

Imports only torch and the standard library: the TRL side runs this module in its own environment.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch

# Each op's operands: (tensors in the order the op takes them, its scalar keyword arguments).
MATMUL_OPS: dict[str, tuple[int, tuple[str, ...]]] = {
    "aten::mm": (2, ()),
    "aten::addmm": (3, ("beta", "alpha")),
    "aten::bmm": (2, ()),
    "aten::baddbmm": (3, ("beta", "alpha")),
}
DTYPES = {
    "float": torch.float32,
    "double": torch.float64,
    "c10::BFloat16": torch.bfloat16,
    "c10::Half": torch.float16,
}
BATCH_SECONDS = 0.005  # each timed batch of one product runs at least this long
BATCHES = 5  # the product's time is the median over this many batches


@dataclass(frozen=True)
class Product:
    """One kind of matrix product as a step ran it: the op, and its tensor operands' shapes, strides
    and dtypes (the profiler's names), and its scalars (beta, alpha) where the op takes them."""

    op: str
    shapes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]
    scalars: tuple[float, ...] = ()

    @property
    def flop(self) -> int:
        """2 m k n (m k n multiply-adds), times the batch for ``bmm`` and ``baddbmm`` (an add's own
        bias term, m n, not counted: torch's profiler counts the same)."""
        left, right = self.shapes[-2], self.shapes[-1]  # (..., m, k), (..., k, n)
        return 2 * math.prod(left) * right[-1]

    def operands(self) -> tuple[list[torch.Tensor], dict[str, float]]:
        """Random operands laid out as recorded (a transposed view stays a transposed view, an
        expanded bias keeps its stride 0), and the scalar keyword arguments."""
        tensors = []
        for shape, stride, dtype in zip(self.shapes, self.strides, self.dtypes, strict=True):
            size = 1 + sum((n - 1) * s for n, s in zip(shape, stride, strict=True)) if all(shape) else 0
            storage = torch.randn(size, dtype=torch.float32).to(DTYPES[dtype])
            tensors.append(torch.as_strided(storage, shape, stride))
        names = MATMUL_OPS[self.op][1]
        return tensors, dict(zip(names, self.scalars, strict=True))

    def seconds_alone(self) -> float:
        """This product's seconds per call on its own: the median over :data:`BATCHES` batches of
        calls, each at least :data:`BATCH_SECONDS` long, after one warm-up call."""
        fn = getattr(torch, self.op.removeprefix("aten::"))
        tensors, scalars = self.operands()
        fn(*tensors, **scalars)
        start, calls = time.perf_counter(), 0
        while (elapsed := time.perf_counter() - start) < BATCH_SECONDS:
            fn(*tensors, **scalars)
            calls += 1
        per_call = [elapsed / calls]
        for _ in range(BATCHES - 1):
            start = time.perf_counter()
            for _ in range(calls):
                fn(*tensors, **scalars)
            per_call.append((time.perf_counter() - start) / calls)
        return statistics.median(per_call)


def recording() -> torch.profiler.profile:
    """A profiler that records what :func:`products_of` reads (``start()`` / ``stop()`` it around a
    step, or use it as a context manager)."""
    return torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True)


def record_products(step: Callable[[], object]) -> Counter[Product]:
    """The matrix products that ``step()`` runs, with how many times each ran."""
    with recording() as prof:
        step()
    return products_of(prof.events())


def products_of(events: Iterable) -> Counter[Product]:
    """The top-level matrix products among a profiler's events (one inside another, as a
    ``baddbmm`` may call ``bmm``, is counted once, as the outer one)."""
    found: Counter[Product] = Counter()
    for event in events:
        if event.name not in MATMUL_OPS or _inside_a_product(event):
            continue
        tensors, scalar_names = MATMUL_OPS[event.name]
        scalars = event.concrete_inputs[tensors : tensors + len(scalar_names)] if scalar_names else []
        found[
            Product(
                op=event.name,
                shapes=tuple(tuple(s) for s in event.input_shapes[:tensors]),
                strides=tuple(tuple(s) for s in event.structured_input_strides[:tensors]),
                dtypes=tuple(event.input_dtypes[:tensors]),
                scalars=tuple(float(1 if v is None else v) for v in scalars),
            )
        ] += 1
    return found


def _inside_a_product(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name in MATMUL_OPS:
            return True
        parent = parent.cpu_parent
    return False


def matmul_floor(products: Mapping[Product, int]) -> dict[str, float | int]:
    """What the products take alone: how many ran (and how many distinct kinds), their GFLOP, the sum
    of each one's :meth:`Product.seconds_alone` times its count, and the rate that makes. Products of a
    dtype this module does not know are counted in ``unreplayed`` and left out of the sums."""
    known = {p: n for p, n in products.items() if all(d in DTYPES for d in p.dtypes)}
    seconds = sum(n * p.seconds_alone() for p, n in known.items())
    gflop = sum(n * p.flop for p, n in known.items()) / 1e9
    return {
        "products": sum(known.values()),
        "distinct": len(known),
        "unreplayed": sum(products.values()) - sum(known.values()),
        "gflop": gflop,
        "seconds": seconds,
        "gflop_per_s": gflop / seconds if seconds else 0.0,
    }
