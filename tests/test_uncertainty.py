"""Numbers with their uncertainty: the first/last tenth and its noise, the bootstrap interval against a
plain loop with the same seed, the fits' refusals below the minimum of steps, "past the peak" only when
the interval says so, and ``analyse entropy --json`` on a 3-step run."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_entropy_dynamics import build_run

from engine.analysis.fits import correlation_fit, fit_entropy_reward_law, fit_gold_sqrt_kl, peak_position
from engine.analysis.uncertainty import (
    BOOTSTRAP_RESAMPLES,
    MIN_FIT_STEPS,
    bootstrap_interval,
    first_last_tenth,
    step_noise,
)


def test_first_last_tenth_is_a_tenth_of_the_series_own_points() -> None:
    values = [float(v) for v in range(1, 31)]  # 30 points: a tenth is 3
    ends = first_last_tenth([None, *values, math.nan])  # missing points are not points
    assert (ends.first, ends.last, ends.k, ends.n) == (2.0, 29.0, 3, 30)
    assert ends.se == pytest.approx(0.0) and not ends.noisy  # a straight line has no noise
    assert first_last_tenth([1.0]) is None
    assert first_last_tenth([1.0, 2.0]).noisy  # two points: nothing tells the change from noise


def test_noise_against_a_loop_and_noisy_both_ways() -> None:
    rng = np.random.default_rng(3)
    flat = list(0.5 + rng.normal(0, 0.1, 60))
    diffs = [b - a for a, b in zip(flat, flat[1:], strict=False)]
    mean = sum(diffs) / len(diffs)
    naive = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / 2)
    assert step_noise(flat) == pytest.approx(naive)
    ends = first_last_tenth(flat)
    assert ends.se == pytest.approx(naive * math.sqrt(2 / 6))
    assert ends.noisy  # no trend: the change is within the noise
    rising = [v + 0.02 * i for i, v in enumerate(flat)]  # +1.2 over the run against sigma 0.1
    assert not first_last_tenth(rising).noisy and first_last_tenth(rising).change > 0


def test_bootstrap_interval_matches_a_plain_loop_with_the_same_seed() -> None:
    data = [0.3, 1.2, -0.4, 2.2, 0.9, 1.1, 0.0]
    got = bootstrap_interval(
        len(data), lambda idx: float(np.mean(np.asarray(data)[idx])), resamples=200, seed=5
    )
    rng = np.random.default_rng(5)
    means = []
    for _ in range(200):
        draw = rng.integers(0, len(data), size=len(data))
        means.append(sum(data[i] for i in draw) / len(data))
    means.sort()
    assert got == pytest.approx((means[math.floor(0.05 * 200)], means[math.ceil(0.95 * 200) - 1]))
    assert bootstrap_interval(5, lambda idx: math.nan) is None  # no resample gives a number
    lo, hi = bootstrap_interval(5, lambda idx: math.inf if idx[0] == 0 else 1.0)
    assert lo == 1.0 and hi == math.inf  # an unbounded end is kept
    assert BOOTSTRAP_RESAMPLES >= 1000


def test_fits_refuse_below_the_minimum_of_steps() -> None:
    h = np.linspace(1.5, 0.5, 3)
    law = fit_entropy_reward_law(h, -0.5 * np.exp(h) + 2, 1.0)
    assert law["ceiling"] is None and law["gain"] is None
    assert law["reason"].startswith(f"not enough fitted steps: 3 of at least {MIN_FIT_STEPS}")
    kl = np.linspace(0, 4, 9)
    gold = fit_gold_sqrt_kl(kl, np.sqrt(kl))
    assert gold["d_peak"] is None and gold["reason"].startswith(
        f"not enough steps: 9 of at least {MIN_FIT_STEPS}"
    )
    corr = correlation_fit(range(5), range(5))
    assert corr["r"] is None and "not enough steps: 5" in corr["reason"]


def test_law_interval_holds_a_clean_ceiling_and_widens_with_noise() -> None:
    rng = np.random.default_rng(0)
    h = np.linspace(1.5, 0.3, 40)
    clean = fit_entropy_reward_law(h, -0.8 * np.exp(h) + 3.0, 1.0)
    assert clean["ceiling"] == pytest.approx(2.2)
    assert clean["ceiling_interval"] == pytest.approx((2.2, 2.2))
    assert clean["gain"] == pytest.approx(2.2 - np.mean((-0.8 * np.exp(h) + 3.0)[-4:]))
    noisy = fit_entropy_reward_law(h, -0.8 * np.exp(h) + 3.0 + rng.normal(0, 0.3, 40), 1.0)
    lo, hi = noisy["ceiling_interval"]
    assert lo < noisy["ceiling"] < hi and hi - lo > 0.1
    assert noisy["gain_interval"] == pytest.approx((lo - noisy["final_tenth"], hi - noisy["final_tenth"]))


def test_past_the_peak_only_when_the_interval_says_so() -> None:
    assert peak_position(3.0, (1.0, 2.0)) == "past the peak"
    assert peak_position(0.5, (1.0, 2.0)) == "before the peak"
    assert peak_position(1.5, (1.0, 2.0)).startswith("undecided")
    assert peak_position(5.0, (1.0, math.inf)).startswith("undecided")  # some resamples never peak
    rng = np.random.default_rng(1)
    kl = np.linspace(0.0, 2.8, 30)  # the run ends at sqrt(KL) 1.67, just past the peak at exp(0.5) = 1.65
    d = np.sqrt(kl)
    shape = np.where(d > 0, d * (1.2 - 0.8 * np.log(np.where(d > 0, d, 1.0))), 0.0)
    assert fit_gold_sqrt_kl(kl, shape)["position"] == "past the peak"  # noise-free: a point interval
    noisy = fit_gold_sqrt_kl(kl, shape + rng.normal(0, 0.05, 30))
    assert noisy["d_peak"] < noisy["d_now"]  # the point estimate alone would say "past the peak"
    lo, hi = noisy["d_peak_interval"]
    assert lo < noisy["d_now"] < hi and noisy["position"].startswith("undecided")


def test_correlation_interval_both_ways() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, 30)
    strong = correlation_fit(x, -x + rng.normal(0, 0.2, 30))
    assert strong["interval"][1] < 0 and strong["r"] < -0.9
    none = correlation_fit(x, rng.normal(0, 1, 30))
    assert none["interval"][0] < 0 < none["interval"][1]


def _analyse_json(path: Path, capsys) -> dict:
    from engine.cli import analyse

    parser = argparse.ArgumentParser()
    analyse.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["analyse", "entropy", str(path), "--json"])
    assert args.func(args) == 0
    return json.loads(capsys.readouterr().out)


def test_analyse_entropy_json_on_a_3_step_run_gives_no_ceiling_and_says_why(tmp_path: Path, capsys) -> None:
    build_run(tmp_path / "short", n_steps=3)
    out = _analyse_json(tmp_path / "short", capsys)
    assert out["law"]["ceiling"] is None and out["law"]["gain"] is None
    assert out["law"]["reason"].startswith("not enough fitted steps: 2 of at least 10")
    assert (
        out["gold_sqrt_kl"]["d_peak"] is None
        and "not enough steps: 3 of at least 10" in out["gold_sqrt_kl"]["reason"]
    )
    assert out["cov_entropy_corr"] is None and "not enough steps" in out["cov_entropy_corr_reason"]


def test_analyse_entropy_json_gives_intervals_on_a_long_run(tmp_path: Path, capsys) -> None:
    build_run(tmp_path / "long", n_steps=40)
    out = _analyse_json(tmp_path / "long", capsys)
    lo, hi = out["law"]["ceiling_interval"]
    assert lo <= out["law"]["ceiling"] <= hi
    lo, hi = out["cov_entropy_corr_interval"]
    assert lo <= out["cov_entropy_corr"] <= hi


def test_wilson_interval_matches_its_formula_and_published_values():
    from engine.analysis.uncertainty import wilson_interval

    # Newcombe (1998), table I: 0 of 10 -> 0 to 0.2775 and 1 of 29 -> 0.0061 to 0.1718 (95 %)
    lo, hi = wilson_interval(0.0, 10, level=0.95)
    assert (lo, hi) == (pytest.approx(0.0, abs=1e-12), pytest.approx(0.2775, abs=1e-4))
    lo, hi = wilson_interval(1 / 29, 29, level=0.95)
    assert (lo, hi) == (pytest.approx(0.0061, abs=1e-4), pytest.approx(0.1718, abs=1e-4))
    assert wilson_interval(0.5, 0) is None


def test_share_difference_interval_is_newcombes_hybrid_score():
    from engine.analysis.uncertainty import share_difference_interval

    # Newcombe (1998), table II, example (a): 56/70 - 48/80 = 0.2, 95 % interval 0.0524 to 0.3339
    lo, hi = share_difference_interval(48 / 80, 80, 56 / 70, 70, level=0.95)
    assert (lo, hi) == (pytest.approx(0.0524, abs=1e-4), pytest.approx(0.3339, abs=1e-4))
