"""The clip-and-entropy measurement of ``world check``: a coin-flip reward, the trend of a curve, and the
measurement end to end for two steps per setting (its figures are in the report, not asserted)."""

from __future__ import annotations

import pytest
import torch

from engine.ppo.build import build_trainer
from engine.world_tools.ppo_checks import CLIP_SETTINGS, clip_entropy_config, entropy_trend, with_coin_rewards
from tests.ppo_fixtures import make_tiny_sources, one_thread, tiny_config  # noqa: F401 (fixture)


def test_entropy_trend_of_a_line_and_a_flat_curve():
    falling = [2.0 - 0.01 * s for s in range(1, 151)]
    trend = entropy_trend(falling, window=10)
    assert trend["slope_per_100_steps"] == pytest.approx(-1.0)
    assert trend["start"] == pytest.approx(2.0 - 0.01 * 5.5) and trend["end"] == pytest.approx(
        2.0 - 0.01 * 145.5
    )
    assert entropy_trend([1.5] * 20)["slope_per_100_steps"] == pytest.approx(0.0, abs=1e-12)


def test_clip_settings_set_the_low_and_high_sides():
    for low, high in CLIP_SETTINGS.values():
        ppo = clip_entropy_config(low, high).ppo
        assert (ppo.algorithm, ppo.cliprange, ppo.cliprange_high, ppo.num_iterations) == (
            "grpo",
            low,
            high,
            2,
        )


def test_coin_rewards_replace_the_rm_and_repeat_with_the_seed(tmp_path):
    sources = make_tiny_sources(tmp_path)[0]
    config = tiny_config(steps=2).replace(algorithm="grpo", num_iterations=2)
    draws = []
    for _ in range(2):
        trainer = build_trainer(config, None, sources=sources, device="cpu")
        with_coin_rewards(trainer, seed=7)
        results = [trainer.iteration(step) for step in (1, 2)]
        draws.append([r.rows["reward"] for r in results])
        assert all(set(r.rows["reward"]) <= {0.0, 1.0} for r in results)
        assert all(torch.isfinite(p).all() for p in trainer.trainable_parameters())
    assert draws[0] == draws[1] and draws[0][0] != draws[0][1]


@pytest.mark.slow
def test_measure_clip_entropy_on_the_world_reports_each_setting():
    from engine.world import load_world
    from engine.world_tools.ppo_checks import measure_clip_entropy

    result = measure_clip_entropy(load_world(), steps=2)
    assert result["ok"] is None and set(result["trends"]) == set(CLIP_SETTINGS)
    for trend in result["trends"].values():
        assert trend["start"] > 0 and 0 <= trend["clipfrac_low"] <= 1
