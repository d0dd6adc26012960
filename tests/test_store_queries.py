"""Read queries on the hand-computed fixture store (tests/store_fixture.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engine import store
from engine.config import ConfigError


def test_runs_frame(runs):
    frame = store.runs_frame(runs).set_index("run_id")
    assert sorted(frame.index) == ["alpha", "beta", "empty"]
    assert frame.loc["alpha", "state"] == "finished" and frame.loc["alpha", "last_step"] == 1
    assert frame.loc["alpha", "n_rollouts"] == 9 and frame.loc["beta", "n_rollouts"] == 13
    assert frame.loc["beta", "kind"] == "import" and frame.loc["beta", "last_step"] == 5
    assert frame.loc["empty", "n_steps"] == 0 and frame.loc["empty", "n_rollouts"] == 0
    assert store.runs_frame(runs / "nowhere").empty


def test_raw_density_counts(runs):
    # alpha rewards: step 0 [1, 3, 5, 5], step 1 [0, 4, 2, 6, 8] -> grid [0, 8], width 2
    frame = store.reward_norm_density(runs / "alpha", "reward", normalised=False, bins=4)
    counts = frame.pivot(index="step", columns="bin", values="count")
    assert counts.loc[0].tolist() == [1, 1, 2, 0]
    assert counts.loc[1].tolist() == [1, 1, 1, 2]  # 8 falls in the last bin
    assert frame["left"].unique().tolist() == [0.0, 2.0, 4.0, 6.0]
    # densities integrate to 1 per step
    for _, g in frame.groupby("step"):
        assert (g["density"] * (g["right"] - g["left"])).sum() == pytest.approx(1.0)


def test_normalised_density_counts(runs):
    # reward - prompt mean + step mean: step 0 [2.5, 4.5, 3.5, 3.5], step 1 [2, 6, 4, 3, 5]
    frame = store.reward_norm_density([runs / "alpha"], "reward", normalised=True, bins=4)
    counts = frame.pivot(index="step", columns="bin", values="count")
    assert frame["left"].unique().tolist() == [2.0, 3.0, 4.0, 5.0]
    assert counts.loc[0].tolist() == [1, 2, 1, 0]
    assert counts.loc[1].tolist() == [1, 1, 1, 2]


def test_density_of_other_values_and_bad_input(runs):
    gold = store.reward_norm_density(runs.iterdir(), "gold", normalised=False, bins=3)
    assert set(gold["run_id"]) == {"alpha"}  # beta has no gold: no rows, no error
    assert gold["count"].sum() == 9
    assert store.reward_norm_density(runs / "alpha", "mean_entropy", bins=5)["count"].sum() == 9
    with pytest.raises(ConfigError, match="value must be"):
        store.reward_norm_density(runs / "alpha", "reward; DROP TABLE x")
    with pytest.raises(ConfigError, match="bins"):
        store.reward_norm_density(runs / "alpha", bins=0)


def test_empty_inputs_give_empty_frames(runs):
    assert store.reward_norm_density(runs / "empty").empty
    assert store.reward_norm_density(runs / "alpha", steps=(2, 4)).empty
    assert store.step_summary(runs / "empty").empty
    assert store.top_variance_prompts(runs / "alpha", steps=(7, 9)).empty
    assert store.prompt_drilldown(runs / "empty", "p1").empty
    assert store.metrics(runs / "empty").empty
    assert store.logged_steps(runs / "empty") == []
    with pytest.raises(ConfigError, match="step range"):
        store.step_summary(runs / "alpha", steps=(3, 1))


def test_step_summary(runs):
    frame = store.step_summary([runs / "alpha", runs / "beta"]).set_index(["run_id", "step"])
    s0, s1 = frame.loc[("alpha", 0)], frame.loc[("alpha", 1)]
    assert s0["n_samples"] == 4 and s0["n_prompts"] == 2 and s0["reward_mean"] == pytest.approx(3.5)
    assert s1["reward_mean"] == pytest.approx(4.0)
    assert s1["reward_norm_std"] == pytest.approx(np.std([2, 6, 4, 3, 5], ddof=1))
    assert s0["within_prompt_reward_std"] == pytest.approx(np.mean([np.sqrt(2), 0.0]))
    assert s1["kl_max"] == 12.0 and s1["eos_rate"] == pytest.approx(0.8)
    assert s1["length_mean"] == pytest.approx((2 + 9 + 2 + 2 + 2) / 5)
    assert np.isnan(frame.loc[("beta", 5), "gold_mean"])


def test_top_variance_prompts_ranking_and_filters(runs):
    frame = store.top_variance_prompts(runs / "alpha")
    # p1 variances: step 0 -> 2, step 1 -> 4; p2: 0 and 2
    assert frame["prompt_id"].tolist() == ["p1", "p2"]
    assert frame["reward_var"].tolist() == pytest.approx([3.0, 1.0])
    assert frame.loc[0, "n_samples"] == 5 and frame.loc[0, "n_steps"] == 2
    assert store.top_variance_prompts(runs / "alpha", steps=(1, 1))["reward_var"].tolist() == pytest.approx(
        [4.0, 2.0]
    )
    assert store.top_variance_prompts(runs / "alpha", family="chat")["prompt_id"].tolist() == ["p2"]
    assert store.top_variance_prompts(runs / "alpha", has_eos=False)["prompt_id"].tolist() == ["p1"]
    only_high = store.top_variance_prompts(runs / "alpha", reward_range=(5.0, 10.0))
    assert only_high["prompt_id"].tolist() == ["p2"] and only_high.loc[0, "n_samples"] == 4
    assert store.top_variance_prompts(runs / "alpha", length_range=(5, 100))["prompt_id"].tolist() == ["p1"]
    assert store.top_variance_prompts(runs.iterdir(), limit=1)["run_id"].tolist() == ["beta"]
    with pytest.raises(ConfigError):
        store.top_variance_prompts(runs / "alpha", limit=0)


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("HI", ["p2"]),
        ("'hi'", ["p2"]),
        ("x y z", ["p1"]),
        ("%", []),
        ("' OR 1=1 --", []),
        ("'; DROP TABLE rollouts; --", []),
    ],
)
def test_search_is_a_literal_substring(runs, search, expected):
    assert store.top_variance_prompts(runs / "alpha", search=search)["prompt_id"].tolist() == expected


def test_prompt_drilldown(runs):
    frame = store.prompt_drilldown(runs.iterdir(), "p1")
    assert frame[["step", "sample_idx"]].values.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [1, 2]]
    assert frame["reward_norm"].tolist() == pytest.approx([2.5, 4.5, 2.0, 6.0, 4.0])
    assert frame.loc[3, "tokens"].tolist() == list("xyzxyzxyz")
    assert frame.loc[0, "entropy"].tolist() == pytest.approx([0.5, 1.5, 2.5])
    assert store.prompt_drilldown(runs / "alpha", "p1", steps=(1, 1))["step"].tolist() == [1, 1, 1]
    assert store.prompt_drilldown(runs.iterdir(), "p1", run_id="beta").empty
    assert store.prompt_drilldown(runs / "alpha", "' OR 1=1 --").empty


def test_metrics_families_steps(runs):
    frame = store.metrics(runs / "alpha", keys=["objective/kl"])
    assert frame["value"].tolist() == pytest.approx([0.1, 0.3]) and frame["step"].tolist() == [0, 1]
    assert len(store.metrics(runs.iterdir())) == 4
    assert store.metric_keys(runs / "alpha") == ["env/reward_mean", "objective/kl"]
    assert store.families(runs.iterdir()) == ["chat", "import", "math"]
    assert store.logged_steps(runs.iterdir()) == [0, 1, 5]


def test_drilldown_token_columns(runs):
    frame = store.prompt_drilldown(runs / "alpha", "p2", token_columns=["tokens"])
    assert "entropy" not in frame and frame.loc[0, "tokens"].tolist() == ["hi"]
    with pytest.raises(ConfigError, match="token_columns"):
        store.prompt_drilldown(runs / "alpha", "p2", token_columns=["prompt; --"])
