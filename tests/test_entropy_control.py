"""Clip-higher, Clip-Cov and KL-Cov against naive per-token float64 loops on fixed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from engine.ppo.entropy_control import (
    clip_cov_policy_loss,
    covariance_terms,
    kl_cov_policy_loss,
)
from engine.ppo.losses import policy_loss


def fixed_batch(seed: int = 0, b: int = 4, t: int = 7):
    gen = torch.Generator().manual_seed(seed)
    old = -torch.rand(b, t, generator=gen, dtype=torch.float64) * 3  # (B, T)
    new = old + torch.randn(b, t, generator=gen, dtype=torch.float64) * 0.3
    adv = torch.randn(b, t, generator=gen, dtype=torch.float64) * 2
    lengths = torch.tensor([t, t - 2, 3, t - 1][:b])
    mask = torch.arange(t)[None, :] < lengths[:, None]
    return new.requires_grad_(True), old, adv, mask


def real_positions(mask: torch.Tensor) -> list[tuple[int, int]]:
    return [(i, j) for i in range(mask.shape[0]) for j in range(mask.shape[1]) if mask[i, j]]


def naive_terms(new, adv, mask) -> dict[tuple[int, int], float]:
    pos = real_positions(mask)
    mean_lp = sum(float(new.detach()[p]) for p in pos) / len(pos)
    mean_a = sum(float(adv[p]) for p in pos) / len(pos)
    return {p: (float(new.detach()[p]) - mean_lp) * (float(adv[p]) - mean_a) for p in pos}


def naive_token_loss(lp: float, old: float, a: float, eps_low: float, eps_high: float) -> float:
    r = math.exp(lp - old)
    return max(-a * r, -a * min(max(r, 1 - eps_low), 1 + eps_high))


def test_covariance_terms_match_loop() -> None:
    new, _, adv, mask = fixed_batch()
    terms = covariance_terms(new, adv, mask)
    expected = naive_terms(new, adv, mask)
    for (i, j), value in expected.items():
        assert float(terms[i, j]) == pytest.approx(value, abs=1e-12)
    assert float(terms[~mask].abs().sum()) == 0.0
    assert float(terms[mask].mean()) == pytest.approx(sum(expected.values()) / len(expected), abs=1e-12)


@pytest.mark.parametrize(("eps_low", "eps_high"), [(0.2, 0.28), (0.2, 0.2), (0.1, 0.5)])
def test_clip_higher_matches_loop(eps_low: float, eps_high: float) -> None:
    new, old, adv, mask = fixed_batch(1)
    loss, stats = policy_loss(new, old, adv, mask, eps_low, eps_high)
    pos = real_positions(mask)
    per_token = [
        naive_token_loss(float(new.detach()[p]), float(old[p]), float(adv[p]), eps_low, eps_high) for p in pos
    ]
    assert loss.item() == pytest.approx(sum(per_token) / len(pos), abs=1e-12)
    clipped = [
        p for p in pos if -float(adv[p]) * min(max(math.exp(float(new.detach()[p] - old[p])), 1 - eps_low), 1 + eps_high)
        > -float(adv[p]) * math.exp(float(new.detach()[p] - old[p]))
    ]  # fmt: skip
    assert float(stats["policy/clipfrac"]) == pytest.approx(len(clipped) / len(pos))
    assert float(stats["policy/clipfrac_high"] + stats["policy/clipfrac_low"]) == pytest.approx(
        float(stats["policy/clipfrac"])
    )
    loss.backward()
    assert float(new.grad[~mask].abs().sum()) == 0.0


def test_clip_higher_lets_positive_advantages_rise_further() -> None:
    old = torch.zeros(1, 1, dtype=torch.float64)
    new = torch.full((1, 1), math.log(1.25), dtype=torch.float64, requires_grad=True)  # r = 1.25
    adv, mask = torch.ones(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.bool)
    sym, _ = policy_loss(new, old, adv, mask, 0.2, 0.2)
    sym.backward()
    assert float(new.grad) == 0.0  # r > 1.2: clipped, no gradient
    new.grad = None
    high, _ = policy_loss(new, old, adv, mask, 0.2, 0.28)
    high.backward()
    assert float(new.grad) == pytest.approx(-1.25)  # inside 1.28: d(-A r)/d lp = -A r


def naive_clip_cov(new, old, adv, mask, eps_low, eps_high, share, lo, hi, seed):
    """(loss, detached positions): the authors' selection as a plain loop over positions."""
    terms = naive_terms(new, adv, mask)
    pos = real_positions(mask)
    candidates = []
    for p in pos:  # row-major, as torch.nonzero
        r = math.exp(float(new.detach()[p] - old[p]))
        a = float(adv[p])
        clipped = -a * min(max(r, 1 - eps_low), 1 + eps_high) > -a * r
        if not clipped and lo < terms[p] < hi:
            candidates.append(p)
    n_clip = max(int(share * len(pos)), 1)
    order = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed)).tolist()
    detached = {candidates[k] for k in order[:n_clip]}
    per_token = [
        0.0
        if p in detached
        else naive_token_loss(float(new.detach()[p]), float(old[p]), float(adv[p]), eps_low, eps_high)
        for p in pos
    ]
    return sum(per_token) / len(pos), detached


@pytest.mark.parametrize(
    ("share", "lo", "hi"), [(0.1, 0.0, 5.0), (0.3, -0.5, 2.0), (1e-4, 0.2, 3.0), (1.0, 0.0, 9.0)]
)
def test_clip_cov_matches_loop(share: float, lo: float, hi: float) -> None:
    new, old, adv, mask = fixed_batch(2)
    loss, stats = clip_cov_policy_loss(
        new, old, adv, mask, eps_low=0.2, eps_high=0.28, clip_share=share, cov_low=lo, cov_high=hi,
        generator=torch.Generator().manual_seed(7),
    )  # fmt: skip
    expected, detached = naive_clip_cov(new, old, adv, mask, 0.2, 0.28, share, lo, hi, seed=7)
    assert detached, "the fixture must detach at least one token"
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert float(stats["policy/clip_cov_frac"]) == pytest.approx(len(detached) / int(mask.sum()))
    loss.backward()
    for p in detached:  # the gradient of a detached token is exactly 0
        assert float(new.grad[p]) == 0.0
    # the others keep the plain gradient
    reference = new.detach().clone().requires_grad_(True)
    plain, _ = policy_loss(reference, old, adv, mask, 0.2, 0.28)
    plain.backward()
    for p in real_positions(mask):
        if p not in detached:
            assert float(new.grad[p]) == pytest.approx(float(reference.grad[p]), abs=1e-12)


def test_clip_cov_with_no_candidates_is_the_plain_loss() -> None:
    new, old, adv, mask = fixed_batch(3)
    loss, stats = clip_cov_policy_loss(
        new, old, adv, mask, eps_low=0.2, eps_high=0.28, cov_low=1e6, cov_high=1e7
    )
    plain, _ = policy_loss(new, old, adv, mask, 0.2, 0.28)
    assert loss.item() == pytest.approx(plain.item(), abs=1e-12)
    assert float(stats["policy/clip_cov_frac"]) == 0.0


@pytest.mark.parametrize(("share", "coef"), [(0.1, 1.0), (0.25, 0.5), (1e-5, 2.0), (0.0, 1.0)])
def test_kl_cov_matches_loop(share: float, coef: float) -> None:
    new, old, adv, mask = fixed_batch(4)
    loss, stats = kl_cov_policy_loss(new, old, adv, mask, top_share=share, kl_coef=coef)
    terms = naive_terms(new, adv, mask)
    pos = real_positions(mask)
    k = max(1, int(len(pos) * share)) if share > 0 else 0
    top = set(sorted(pos, key=lambda p: -terms[p])[:k])
    per_token = []
    for p in pos:
        log_r = float(new.detach()[p] - old[p])
        value = -float(adv[p]) * math.exp(log_r)
        per_token.append(value + coef * abs(log_r) if p in top else value)
    assert loss.item() == pytest.approx(sum(per_token) / len(pos), abs=1e-12)
    assert float(stats["policy/kl_cov_frac"]) == pytest.approx(len(top) / len(pos))
    loss.backward()
    assert float(new.grad[~mask].abs().sum()) == 0.0
