"""The figure modules as pure functions of DataFrames (no Streamlit)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.figures.curves import failure_table, per_step_lines
from workbench.figures.entropy import cov_vs_change_figure, forking_figure, gold_kl_figure, law_figure
from workbench.figures.prompt import prompt_over_training
from workbench.figures.ridgeline import bandwidth, histogram_moments, ridgeline, smooth_density, spread_figure
from workbench.figures.sft_epochs import epoch_scores, ratio_text, spread_by_epoch, spread_trend
from workbench.figures.tokens import colour, entropy_legend_html, entropy_scale, sample_tokens_html


def _histogram(values_by_step: dict[int, np.ndarray], bins: int = 200) -> pd.DataFrame:
    """What ``reward_norm_density`` returns: counts on one grid shared by all steps."""
    lo = min(v.min() for v in values_by_step.values())
    hi = max(v.max() for v in values_by_step.values())
    edges = np.linspace(lo, hi, bins + 1)
    rows = []
    for step, values in values_by_step.items():
        counts, _ = np.histogram(values, edges)
        for b in range(bins):
            rows.append({"run_id": "r", "step": step, "bin": b, "x": (edges[b] + edges[b + 1]) / 2,
                         "left": edges[b], "right": edges[b + 1], "count": counts[b]})  # fmt: skip
    return pd.DataFrame(rows)


def test_smooth_density_is_a_gaussian_kde_with_silverman_bandwidth():
    rng = np.random.default_rng(0)
    values = {0: rng.normal(0, 1, 64), 1: rng.normal(1, 0.3, 2000)}
    hist = _histogram(values)
    smooth = smooth_density(hist)
    width = float(hist["right"].iloc[0] - hist["left"].iloc[0])
    for step, v in values.items():
        part = smooth[smooth["step"] == step]
        x = part["x"].to_numpy()
        h = part["bandwidth"].iloc[0]
        moments = histogram_moments(hist[hist["step"] == step]).iloc[0]
        assert h == pytest.approx(bandwidth(len(v), moments["sd"], width))
        assert h == pytest.approx(1.06 * v.std() * len(v) ** -0.2, rel=0.05)  # Silverman on the raw sample
        # naive KDE over the raw samples: equal up to the binning of the samples
        naive = np.exp(-0.5 * ((x[:, None] - v[None, :]) / h) ** 2).sum(1) / (len(v) * h * np.sqrt(2 * np.pi))
        assert np.abs(part["density"].to_numpy() - naive).max() < 0.02 * naive.max()
    # fewer samples, wider kernel: 64 samples give a smooth curve, not a comb of spikes
    assert smooth.groupby("step")["bandwidth"].first()[0] > 3 * width
    small = smooth[smooth["step"] == 0]["density"].to_numpy()
    assert (np.diff(np.sign(np.diff(small))) != 0).sum() <= 6  # a handful of turning points at most


def test_bandwidth_never_below_one_bin_and_degenerate_steps():
    assert bandwidth(1, 1.0, 0.1) == 0.1 and bandwidth(100, 0.0, 0.1) == 0.1
    assert bandwidth(10**9, 1.0, 0.1) == 0.1
    assert smooth_density(_histogram({0: np.zeros(5) + 1.0, 1: np.arange(5.0)})).notna().all().all()


def test_ridgeline_and_spread_figures():
    hist = _histogram({s: np.random.default_rng(s).normal(s, 1, 100) for s in range(40)}, bins=50)
    fig = ridgeline(smooth_density(hist), title="t", x_title="x", max_steps=30)
    assert len(fig.data) == 30 and fig.data[-1].name == "step 0"  # first and last kept
    spread = spread_figure(hist, hist, "reward")
    assert {t.yaxis for t in spread.data} == {"y", "y2"}  # sd and mean on separate axes
    assert [t.name for t in spread.data if t.yaxis == "y"] == ["sd, raw", "sd, per-prompt normalised"]


def test_histogram_moments_match_numpy():
    hist = pd.DataFrame({"run_id": "r", "step": 0, "x": [0.0, 1.0, 2.0], "count": [1, 2, 1]})
    m = histogram_moments(hist).iloc[0]
    assert m["mean"] == pytest.approx(1.0) and m["sd"] == pytest.approx(np.std([0, 1, 1, 2]))


def test_token_boxes_shared_renderer():
    samples = pd.DataFrame(
        {"sample_idx": [0, 1], "tokens": [["a", "<b>"], None], "response": ["a <b>", "plain text"],
         "entropy": [[0.0, 2.0], None], "reward": [1.0, 2.0], "gold": [0.5, np.nan]}
    )  # fmt: skip
    high = entropy_scale([samples])
    assert high == pytest.approx(np.percentile([0.0, 2.0], 99))  # the 99th percentile, at least 1
    out = sample_tokens_html(samples, high, highlight=(0, 1))
    assert "&lt;b&gt;" in out and colour(1.0)[0] in out and "#eee" in out  # escaped; coloured; uncoloured
    assert out.count("outline:3px") == 1 and "plain" in out
    assert "linear-gradient" in entropy_legend_html(0, high)


def test_prompt_over_training_puts_gold_and_entropy_on_the_right_axis():
    samples = pd.DataFrame({"step": [0, 0, 1], "reward": [-10.0, -9.0, -8.0]})
    per = pd.DataFrame(
        {"step": [0, 1], "reward_mean": [-9.5, -8.0], "gold_mean": [0.2, 0.4], "entropy_mean": [1.0, 0.8]}
    )
    fig = prompt_over_training(samples, per)
    assert [t.yaxis for t in fig.data] == [None, None, "y2", "y2"]


def test_curves_and_failure_table():
    frame = pd.DataFrame({"run_id": ["a", "a", "b"], "step": [0, 1, 0], "v": [1.0, 2.0, 3.0]})
    assert len(per_step_lines(frame, {"v": "value"}, title="t").data) == 2
    counts = pd.DataFrame({"run_id": "a", "step": [0, 0], "detector": ["y", "x"], "n_flagged": [1, 2]})
    assert failure_table(counts, ["x", "y"]).columns.tolist() == ["x", "y"]


def test_sft_epoch_scores_normalise_and_keep_gold_in_range():
    samples = pd.DataFrame(
        {
            "epoch": [1, 1, 1, 1],
            "prompt_id": ["a", "a", "b", "b"],
            "split": "sft_train",
            "gold": [0.0, 1.0, 0.9, 0.9],
        }
    )
    raw, clipped = epoch_scores(samples, "gold", normalised=False)
    assert raw["gold"].tolist() == [0.0, 1.0, 0.9, 0.9] and clipped == 0
    norm, clipped = epoch_scores(samples, "gold", normalised=True)
    # 0 - 0.5 + 0.7 = 0.2, 1 - 0.5 + 0.7 = 1.2 -> drawn at 1; b: 0.7
    assert norm["gold"].tolist() == pytest.approx([0.2, 1.0, 0.7, 0.7]) and clipped == pytest.approx(0.25)
    assert (norm["gold"] >= 0).all()
    spread = spread_by_epoch(pd.concat([norm, norm.assign(epoch=2, gold=norm["gold"] * 0.1)]), "gold")
    assert spread_trend(spread) == "narrows"


def test_sft_epoch_scores_normalise_float32_rewards():
    """The world's epoch report stores RM rewards as float32: normalising them must not fail."""
    samples = pd.DataFrame(
        {"epoch": [1, 1, 1], "prompt_id": ["a", "a", "b"], "split": "sft_train",
         "reward": np.array([-1.0, -3.0, 2.0], dtype=np.float32)}
    )  # fmt: skip
    norm, clipped = epoch_scores(samples, "reward", normalised=True)
    mean = (-1.0 - 3.0 + 2.0) / 3
    assert norm["reward"].tolist() == pytest.approx([1.0 + mean, -1.0 + mean, mean]) and clipped == 0


def test_ratio_text_has_no_rise_for_a_fall():
    assert ratio_text(0.93).startswith("×0.93 (less") and ratio_text(1.9).startswith("×1.90 (more")


def test_entropy_figures_on_a_report():
    per = pd.DataFrame({"step": [0, 1, 2], "cov": [0.1, 0.2, None], "entropy_change": [-0.1, -0.2, None],
                        "mean_entropy": [1.0, 0.8, 0.6], "mean_reward": [0.0, 0.2, 0.3],
                        "mean_gold": [0.1, 0.3, 0.2], "kl": [0.0, 1.0, 4.0]})  # fmt: skip
    assert "correlation +0.50" in cov_vs_change_figure(per, 0.5).layout.title.text
    law = {"a": 0.5, "b": 1.0, "ceiling": 0.5}
    assert len(law_figure(per, law, "mean_reward", "RM reward").data) == 2
    series = pd.DataFrame(
        {"step": [0, 1], "share_near_zero": [0.5, 0.7], "p50": [0.1, 0.05], "p90": [1.0, 0.8]}
    )
    assert len(forking_figure(series, 0.01).data) == 3
    fit = {"alpha": 1.0, "beta": 0.5, "gold_offset": 0.1, "d_peak": 1.2, "gold_peak": 0.6}
    assert [t.name for t in gold_kl_figure(per, fit).data] == ["gold per step", "fit", "fitted peak"]
