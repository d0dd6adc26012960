"""A store may hold +-inf and NaN rewards (a synthetic store, an import made before imports turned them
into nulls): the queries leave them out of means, spreads and ranges and count them; every analysis page
still draws and says how many it left out."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from store_fixture import rollout_row
from streamlit.testing.v1 import AppTest

import engine.store as store
from engine.paths import REPO_ROOT
from engine.runs.layout import ROLLOUTS_DIR
from engine.store import RunWriter

# step -> rewards of (p1, p1, p2, p2)
REWARDS = {0: [1.0, -math.inf, 2.0, math.nan], 1: [math.inf, 3.0, 1.0, 0.5]}


def build_odd_run(runs_dir):
    writer = RunWriter.create(runs_dir / "odd", kind="import", config={}, seed=None, source="jsonl")
    for step, rewards in REWARDS.items():
        rows = [
            rollout_row("p1" if i < 2 else "p2", "f", f"q{i // 2}", i % 2, ["a", "b"], [0.1, 0.2],
                        reward=r, gold=float(i), has_eos=True)
            for i, r in enumerate(rewards)
        ]  # fmt: skip
        writer.write_rollouts(step, rows)
    # The writer stores NaN as null (pandas' convention); another tool's file keeps it as NaN.
    path = sorted((runs_dir / "odd" / ROLLOUTS_DIR).glob("*.parquet"))[0]  # step 0
    table = pq.read_table(path)
    rewards = pa.array([math.nan if r is None else r for r in table["reward"].to_pylist()], pa.float64())
    pq.write_table(table.set_column(table.schema.get_field_index("reward"), "reward", rewards), path)
    return runs_dir / "odd"


@pytest.fixture()
def odd_run(tmp_path, monkeypatch):
    run = build_odd_run(tmp_path / "runs")
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))  # no demo runs
    return run


def test_summaries_are_over_finite_rewards_and_count_the_rest(odd_run):
    summary = store.step_summary([odd_run])
    assert summary["reward_mean"].tolist() == [1.5, 1.5]  # (1 + 2) / 2, (3 + 1 + 0.5) / 3
    assert summary["reward_min"].tolist() == [1.0, 0.5] and summary["reward_max"].tolist() == [2.0, 3.0]
    assert store.nonfinite_counts([odd_run]) == {"reward": 3, "gold": 0, "mean_entropy": 0, "kl": 0}
    per_step = store.prompt_step_table([odd_run], "p1")
    assert per_step["reward_mean"].tolist() == [1.0, 3.0]
    ranked = store.rank_prompts([odd_run], ranking="reward_var")
    assert ranked["reward_mean"].map(math.isfinite).all()
    spread = store.reward_spread([odd_run])
    assert spread[["reward_var", "reward_p01", "reward_p99"]].map(math.isfinite).all().all()
    counts = store.failure_counts([odd_run])
    assert counts.loc[counts.detector == "reward_tail", "n_flagged"].sum() == 0


@pytest.mark.parametrize(
    "page", ["rollout_browser", "reward_densities", "failure_modes", "rm_accuracy", "entropy_dynamics"]
)
def test_pages_draw_a_run_with_non_finite_rewards(odd_run, page):
    at = AppTest.from_file(str(REPO_ROOT / "pages" / f"{page}.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert any("Left out as non-finite (+-inf or NaN): 3 reward" in c.value for c in at.caption)
    if page == "rollout_browser":
        reward = next(s for s in at.slider if s.key == "browser_reward")
        assert reward.min == 0.5 and reward.max == 3.0
