"""Min-p sampling (keep p(t) >= min_p * max p, after temperature) against a per-position Python loop."""

from __future__ import annotations

import math

import pytest
import torch

from engine.config import ConfigError, SamplingConfig
from engine.sampling import draw, sampling_logits, token_signals


def naive_support(logits: list[float], config: SamplingConfig) -> list[bool]:
    """Which tokens of one position survive: temperature, top-k, top-p, min-p, in plain Python."""
    z = [x / config.temperature for x in logits]
    keep = [True] * len(z)
    if 0 < config.top_k < len(z):
        kth = sorted(z, reverse=True)[config.top_k - 1]
        keep = [k and x >= kth for k, x in zip(keep, z, strict=True)]
    if config.top_p < 1:
        zmax = max(x for x, k in zip(z, keep, strict=True) if k)
        weights = [math.exp(x - zmax) if k else 0.0 for x, k in zip(z, keep, strict=True)]
        total = sum(weights)
        mass = 0.0
        for i in sorted(range(len(z)), key=lambda i: -z[i]):
            if not keep[i]:
                continue
            if mass >= config.top_p:
                keep[i] = False
            mass += weights[i] / total
    if config.min_p > 0:
        zmax = max(x for x, k in zip(z, keep, strict=True) if k)
        # p(t) / max p = exp(z_t - z_max): normalisation cancels, so renormalising after top-p is moot
        keep = [k and math.exp(x - zmax) >= config.min_p for k, x in zip(keep, z, strict=True)]
    return keep


CONFIGS = [
    SamplingConfig(min_p=0.1),
    SamplingConfig(temperature=1.5, min_p=0.1),
    SamplingConfig(temperature=0.7, min_p=0.3),
    SamplingConfig(temperature=1.5, top_p=0.9, min_p=0.2),
    SamplingConfig(temperature=1.2, top_k=5, min_p=0.05),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_support_matches_a_per_position_loop(config: SamplingConfig) -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 4, 40, generator=gen, dtype=torch.float64) * 2.5  # (B, T, V)
    got = torch.isfinite(sampling_logits(logits, config))
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            expected = naive_support(logits[b, t].tolist(), config)
            assert got[b, t].tolist() == expected, (b, t)


def test_ties_at_the_threshold_are_kept() -> None:
    # Two live tokens with p1 == 0.5 * p0 exactly in float32 (a halving is exact, so the rounded
    # softmax values tie whenever softmax rounds correctly); search a few ulps of log 2 for one.
    base = torch.tensor(math.log(2.0), dtype=torch.float32)
    for step in range(-20, 21):
        x = base + step * torch.finfo(torch.float32).eps
        z = torch.stack([x, torch.zeros(()), torch.tensor(-30.0)])  # (V,)
        p = torch.softmax(z, -1)
        if p[1] == 0.5 * p[0]:
            break
    else:
        pytest.skip("no exact float32 tie near log 2 on this platform")
    at = torch.isfinite(sampling_logits(z[None], SamplingConfig(min_p=0.5)))[0]
    assert at.tolist() == [True, True, False]  # p1 == min_p * max p: kept (only p < threshold drops)
    # the next float32 above 0.5 (the threshold is computed in float32)
    above = torch.isfinite(sampling_logits(z[None], SamplingConfig(min_p=0.5 + 2**-24)))[0]
    assert above.tolist() == [True, False, False]
    # Equal logits (ties of the max) are all kept whatever min_p is.
    flat = torch.zeros(1, 5)
    assert torch.isfinite(sampling_logits(flat, SamplingConfig(min_p=0.99))).all()


def test_signals_and_draws_follow_min_p() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 30, generator=gen) * 3  # (B, T, V)
    config = SamplingConfig(temperature=1.5, min_p=0.1)
    support = torch.isfinite(sampling_logits(logits, config))
    tokens = logits.argmax(-1)
    mask = torch.ones(3, 5, dtype=torch.bool)
    signals = token_signals(logits, tokens, mask, config)
    assert torch.equal(signals.n_candidates, support.sum(-1))
    q = torch.softmax(logits / 1.5, -1) * support
    q = q / q.sum(-1, keepdim=True)
    torch.testing.assert_close(signals.sampled_prob_q, q.gather(-1, tokens[..., None])[..., 0])
    expected_h = -(q * torch.log(q.clamp_min(1e-30))).sum(-1)
    torch.testing.assert_close(signals.sampling_entropy, expected_h, rtol=1e-5, atol=1e-5)
    # The PPO log-prob is log softmax(z / T), like with top-p / top-k: the filter does not enter it.
    torch.testing.assert_close(
        signals.logprob, torch.log_softmax(logits / 1.5, -1).gather(-1, tokens[..., None])[..., 0]
    )
    draws = torch.stack([draw(logits[:, 0], config, torch.Generator().manual_seed(s)) for s in range(200)])
    assert support[:, 0].gather(-1, draws.T).all()  # (B, 200): every draw inside the min-p support


def test_min_p_validation() -> None:
    for bad in (-0.1, 1.0, 1.5, float("nan"), True):
        with pytest.raises(ConfigError, match="min_p"):
            SamplingConfig(min_p=bad)
    assert SamplingConfig(min_p=0.0).is_default_distribution
    assert not SamplingConfig(min_p=0.1).is_default_distribution


def test_sample_cli_has_min_p() -> None:
    import argparse
    import importlib

    from engine.cli import COMMANDS

    parser = argparse.ArgumentParser()
    importlib.import_module(COMMANDS["sample"]).register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sample", "--prompt", "hi", "--min-p", "0.1"])
    assert args.min_p == 0.1


def test_measure_min_p_reports_every_setting() -> None:
    from types import SimpleNamespace

    import numpy as np

    from engine.world_tools.check import MIN_P_SETTINGS, measure_min_p

    gold_of = {"T=1": 0.8, "T=1.5": 0.4, "T=1.5, min_p 0.1": 0.7, "T=1.5, top_p 0.9": 0.6}
    by_config = {config: gold_of[name] for name, config in MIN_P_SETTINGS.items()}
    asked = []

    class StubChecker:
        def samples(self, epoch, split, config):
            asked.append((epoch, split, config))
            return SimpleNamespace(gold=np.full(4, by_config[config]), token_mean_entropy=1.0)

    world = SimpleNamespace(default_epoch=3)
    out = measure_min_p(world, checker=StubChecker())
    assert {(e, s) for e, s, _ in asked} == {(3, "ppo")}
    assert out["ok"] is None and out["gold"] == pytest.approx(gold_of)
    assert out["value"] == pytest.approx((0.7 - 0.4) / (0.8 - 0.4))
    assert out["drop_vs_t1"]["T=1.5"] == pytest.approx(0.5)
    assert MIN_P_SETTINGS["T=1.5, min_p 0.1"].temperature == 1.5
    assert MIN_P_SETTINGS["T=1.5, min_p 0.1"].min_p == 0.1
    assert MIN_P_SETTINGS["T=1.5, top_p 0.9"].top_p == 0.9
