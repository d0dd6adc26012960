"""engine.bench.matmul_floor: the matrix products a step runs, recorded by torch's profiler, each with
its layout, and their FLOP count against the naive formula. Timings are not asserted, only that each
product can be replayed as recorded."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.bench.matmul_floor import Product, matmul_floor, record_products


def naive_flop(op: str, shapes: tuple[tuple[int, ...], ...]) -> int:
    """2 m k n per matrix (times the batch), from the two multiplied operands, counted loop by loop."""
    left, right = shapes[-2], shapes[-1]
    batch = left[0] if op in ("aten::bmm", "aten::baddbmm") else 1
    m, k, n = left[-2], left[-1], right[-1]
    flop = 0
    for _ in range(batch):
        for _ in range(m):
            for _ in range(n):
                flop += 2 * k
    return flop


def a_step() -> None:
    """A linear layer forward and backward, and an attention-like scaled baddbmm on transposed keys."""
    torch.manual_seed(0)
    weight = torch.randn(12, 8, requires_grad=True)  # (O, I)
    x = torch.randn(5, 8)
    F.linear(x, weight, torch.randn(12)).square().sum().backward()
    q, k = torch.randn(3, 4, 6), torch.randn(3, 7, 6)
    torch.baddbmm(torch.zeros(3, 4, 7), q, k.transpose(1, 2), alpha=0.25)


def test_records_each_top_level_product_with_its_layout_and_scalars():
    products = record_products(a_step)
    by_op = {p.op: (p, n) for p, n in products.items()}
    assert sorted(by_op) == ["aten::addmm", "aten::baddbmm", "aten::mm"]  # nothing counted twice
    addmm, n = by_op["aten::addmm"]
    assert n == 1 and addmm.shapes == ((12,), (5, 8), (8, 12)) and addmm.strides[2] == (1, 8)  # W^T, a view
    assert addmm.scalars == (1.0, 1.0) and addmm.dtypes == ("float",) * 3
    baddbmm, _ = by_op["aten::baddbmm"]
    assert baddbmm.shapes[1:] == ((3, 4, 6), (3, 6, 7)) and baddbmm.scalars == (1.0, 0.25)
    mm, _ = by_op["aten::mm"]  # the weight's gradient: dY^T x
    assert mm.shapes == ((12, 5), (5, 8))
    for product in products:
        assert product.flop == naive_flop(product.op, product.shapes)


def test_replayed_operands_have_the_recorded_layout_and_give_the_op_result_shape():
    product = Product(
        op="aten::addmm",
        shapes=((12,), (5, 8), (8, 12)),
        strides=((1,), (8, 1), (1, 8)),
        dtypes=("float", "float", "float"),
        scalars=(1.0, 0.5),
    )
    tensors, scalars = product.operands()
    assert [tuple(t.shape) for t in tensors] == list(product.shapes)
    assert [t.stride() for t in tensors] == list(product.strides)
    assert scalars == {"beta": 1.0, "alpha": 0.5}
    out = torch.addmm(*tensors, **scalars)
    torch.testing.assert_close(
        out, tensors[0] + 0.5 * tensors[1].double().matmul(tensors[2].double()).float()
    )


def test_floor_sums_counts_and_leaves_out_unknown_dtypes():
    known = Product("aten::mm", ((4, 3), (3, 2)), ((3, 1), (2, 1)), ("float", "float"))
    unknown = Product("aten::mm", ((4, 3), (3, 2)), ((3, 1), (2, 1)), ("c10::Float8_e4m3fn",) * 2)
    floor = matmul_floor({known: 3, unknown: 2})
    assert (floor["products"], floor["distinct"], floor["unreplayed"]) == (3, 1, 2)
    assert floor["gflop"] == 3 * naive_flop("aten::mm", known.shapes) / 1e9
    assert floor["seconds"] > 0 and floor["gflop_per_s"] == floor["gflop"] / floor["seconds"]
