"""Every op of engine.ops against the naive equivalent in its docstring, over shapes and dtypes."""

from __future__ import annotations

import pytest
import torch

from engine.ops import (
    entropy_from_log_probs,
    entropy_from_logits,
    masked_mean,
    masked_var,
    position_ids_of,
    scale_logits,
    selective_log_softmax,
    whiten,
)

SHAPES = [(1, 1, 7), (2, 5, 11), (3, 4, 50)]
DTYPES = [torch.float32, torch.float64]


def test_masked_mean_matches_naive():
    values = torch.randn(3, 5, generator=torch.Generator().manual_seed(4))
    mask = torch.rand(3, 5, generator=torch.Generator().manual_seed(5)) > 0.4
    mask[2] = False
    assert float(masked_mean(values, mask)) == pytest.approx(float(values[mask].mean()))
    rows = masked_mean(values, mask, dim=1)
    for b in range(2):
        assert float(rows[b]) == pytest.approx(float(values[b][mask[b]].mean()))
    assert float(rows[2]) == 0


def test_masked_mean_ignores_non_finite_values_outside_the_mask():
    """A log-prob of -inf past a response's end (a pad with probability 0) must not make a mean NaN."""
    values = torch.tensor([[1.0, float("-inf")], [float("nan"), 3.0]], requires_grad=True)
    mask = torch.tensor([[True, False], [False, True]])
    mean = masked_mean(values, mask)
    assert float(mean.detach()) == 2.0
    mean.backward()
    assert values.grad.tolist() == [[0.5, 0.0], [0.0, 0.5]]
    assert masked_mean(values, mask, dim=1).tolist() == [1.0, 3.0]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_entropy_and_selective_log_softmax_match_naive(shape):
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    index = torch.randint(0, shape[-1], shape[:-1], generator=torch.Generator().manual_seed(7))
    p = logits.softmax(-1)
    assert torch.allclose(entropy_from_logits(logits), -(p * p.log()).nansum(-1))
    naive = torch.log_softmax(logits, -1).gather(-1, index[..., None])[..., 0]
    assert torch.allclose(selective_log_softmax(logits, index), naive)
    truncated = logits.clone()
    truncated[..., 0] = float("-inf")
    pt = truncated.softmax(-1)
    assert torch.allclose(entropy_from_logits(truncated), -(pt * pt.log()).nansum(-1))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_entropy_from_log_probs_matches_naive(dtype):
    logits = torch.randn(4, 9, generator=torch.Generator().manual_seed(8), dtype=dtype)
    logits[0, :3] = float("-inf")  # outside a truncated support
    logp = torch.log_softmax(logits, -1)
    naive = -(logp.exp() * logp).nansum(-1)
    assert torch.allclose(entropy_from_log_probs(logp), naive)
    assert torch.allclose(entropy_from_logits(logits), naive)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_masked_var_matches_naive(dtype):
    values = torch.randn(3, 6, generator=torch.Generator().manual_seed(9), dtype=dtype)
    mask = torch.rand(3, 6, generator=torch.Generator().manual_seed(10)) > 0.3
    assert float(masked_var(values, mask)) == pytest.approx(float(values[mask].var(unbiased=False)))


def test_whiten_matches_naive():
    values = torch.randn(4, 7, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    mask = torch.rand(4, 7, generator=torch.Generator().manual_seed(12)) > 0.3
    x = values[mask]
    naive = torch.zeros_like(values)
    naive[mask] = (x - x.mean()) / torch.sqrt(x.var() + 1e-8)
    assert torch.allclose(whiten(values, mask), naive)
    shifted = torch.zeros_like(values)
    shifted[mask] = (x - x.mean()) / torch.sqrt(x.var() + 1e-8) + x.mean()
    assert torch.allclose(whiten(values, mask, shift_mean=False), shifted)


@pytest.mark.parametrize("temperature", [0.0, 0.5, 1.0, 1.7])
def test_scale_logits_matches_naive(temperature):
    logits = torch.randn(2, 5, generator=torch.Generator().manual_seed(13))
    naive = logits / temperature if temperature else logits
    assert torch.equal(scale_logits(logits, temperature), naive)


def test_position_ids_skip_left_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]], dtype=torch.bool)
    naive = torch.tensor(
        [
            [max(0, int(mask[b, : i + 1].sum()) - 1) for i in range(mask.shape[1])]
            for b in range(mask.shape[0])
        ]
    )
    assert torch.equal(position_ids_of(mask), naive)
