"""The probe queries (engine.store.probe_queries) against pandas on the stand-in demo runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from learn_fixture import PROBE_STEPS, build_demo_runs

import engine.store as store
from engine.config import ConfigError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return build_demo_runs(tmp_path_factory.mktemp("demo"), ("demo-default",)) / "demo-default"


def _frame(run_dir, sub: str) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((run_dir / sub).glob("step-*.parquet"))])


def test_probe_prompts_and_steps(run_dir):
    probes = _frame(run_dir, "probes")
    prompts = store.probe_prompts(run_dir)
    assert sorted(prompts["prompt_id"]) == sorted(probes["prompt_id"].unique())
    assert (prompts["n_steps"] == len(PROBE_STEPS)).all()
    assert (prompts["samples_per_step"] == 4).all()
    assert store.probe_steps(run_dir) == list(PROBE_STEPS)


def test_probe_samples_are_the_rows_of_one_prompt_at_the_given_steps(run_dir):
    probes = _frame(run_dir, "probes")
    got = store.probe_samples(run_dir, "c0", steps=(7, 1, 99))
    want = probes[(probes["prompt_id"] == "c0") & probes["step"].isin([1, 7])].sort_values(
        ["step", "sample_idx"]
    )
    assert got["step"].tolist() == want["step"].tolist()
    assert got["response"].tolist() == want["response"].tolist()
    assert [list(t) for t in got["tokens"]] == [list(t) for t in want["tokens"]]
    np.testing.assert_allclose(
        np.concatenate(got["entropy"].tolist()), np.concatenate(want["entropy"].tolist())
    )
    with pytest.raises(ConfigError):
        store.probe_samples(run_dir, "c0", steps=())


def test_probe_family_steps_and_change_match_pandas(run_dir):
    probes = _frame(run_dir, "probes")
    want = probes.groupby(["step", "prompt_family"]).agg(
        gold=("gold", "mean"), entropy=("mean_entropy", "mean")
    )
    got = store.probe_family_steps(run_dir).set_index(["step", "prompt_family"]).sort_index()
    np.testing.assert_allclose(got["gold_mean"], want["gold"].sort_index(), rtol=1e-6)
    np.testing.assert_allclose(got["entropy_mean"], want["entropy"].sort_index(), rtol=1e-6)
    change = store.probe_family_change(run_dir).set_index("prompt_family")
    for family, part in want.groupby(level="prompt_family"):
        part = part.droplevel("prompt_family").sort_index()
        row = change.loc[family]
        assert (row["first_step"], row["last_step"]) == (PROBE_STEPS[0], PROBE_STEPS[-1])
        assert row["gold_change"] == pytest.approx(part["gold"].iloc[-1] - part["gold"].iloc[0], rel=1e-6)
        assert row["entropy_change"] == pytest.approx(
            part["entropy"].iloc[-1] - part["entropy"].iloc[0], rel=1e-6
        )
    assert change["gold_change"].is_monotonic_decreasing


def test_exploit_rollouts_are_high_reward_low_gold_for_their_step(run_dir):
    rollouts = _frame(run_dir, "rollouts")
    got = store.exploit_rollouts(run_dir, steps=(5, 7), limit=50)
    frame = rollouts[rollouts["step"].between(5, 7)].copy()
    by_step = frame.groupby("step")
    frame["reward_z"] = (frame["reward"] - by_step["reward"].transform("mean")) / by_step["reward"].transform(
        lambda x: x.std(ddof=0)
    )
    frame["gold_z"] = (frame["gold"] - by_step["gold"].transform("mean")) / by_step["gold"].transform(
        lambda x: x.std(ddof=0)
    )
    want = frame[(frame["reward_z"] > 0) & (frame["gold_z"] < 0)]
    assert len(got) == len(want) > 0
    assert set(zip(got["step"], got["prompt_id"], got["sample_idx"], strict=True)) == set(
        zip(want["step"], want["prompt_id"], want["sample_idx"], strict=True)
    )
    assert got["exploit"].is_monotonic_decreasing
    np.testing.assert_allclose(got["exploit"], got["reward_z"] - got["gold_z"], rtol=1e-6)
    assert (got["gold"] == 0).iloc[0]  # the planted exploit comes first
    assert len(store.exploit_rollouts(run_dir, limit=2)) == 2
    with pytest.raises(ConfigError):
        store.exploit_rollouts(run_dir, limit=0)
