"""A truncated or foreign Parquet file in a run directory is skipped with a warning, never a crash."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from store_fixture import build_store

from engine.store import (
    failure_counts,
    fingerprint,
    metrics,
    reward_norm_density,
    runs_frame,
    step_summary,
    store_warnings,
    top_variance_prompts,
)


@pytest.fixture()
def runs(tmp_path):
    runs = build_store(tmp_path / "runs")
    alpha = runs / "alpha"
    good = (alpha / "rollouts" / "step-000001.parquet").read_bytes()
    (alpha / "rollouts" / "step-000002.parquet").write_bytes(good[: len(good) // 2])  # truncated copy
    pq.write_table(pa.table({"foo": [1, 2], "bar": ["a", "b"]}), alpha / "rollouts" / "step-000003.parquet")
    pq.write_table(
        pa.table({"step": [4], "prompt_id": [[1]], "response": ["r"], "reward": [1.0]}),
        alpha / "rollouts" / "step-000004.parquet",
    )  # prompt_id of the wrong type
    (alpha / "rollouts" / ".step-000005.parquet.123.tmp").write_bytes(b"in flight")  # a write in progress
    (alpha / "metrics" / "step-000002.parquet").write_bytes(b"not parquet")
    return runs


def test_bad_files_are_skipped_with_warnings(runs):
    warnings = store_warnings(runs / "alpha")
    assert len(warnings) == 4
    assert any("step-000002.parquet" in w and "not a readable Parquet" in w for w in warnings)
    assert any("step-000003.parquet" in w and "missing columns" in w for w in warnings)
    assert any("step-000004.parquet" in w and "prompt_id" in w for w in warnings)
    assert not any(".tmp" in w for w in warnings)
    # queries see exactly the two good steps
    assert step_summary(runs / "alpha")["step"].tolist() == [0, 1]
    assert reward_norm_density(runs / "alpha", bins=4)["count"].sum() == 9
    assert len(top_variance_prompts(runs / "alpha")) == 2
    assert failure_counts(runs / "alpha")["step"].unique().tolist() == [0, 1]
    assert metrics(runs / "alpha")["step"].unique().tolist() == [0, 1]
    assert runs_frame(runs).set_index("run_id").loc["alpha", "n_rollouts"] == 9


def test_missing_dir_and_fingerprint(runs):
    assert store_warnings(runs / "ghost") == ["run directory " + str(runs / "ghost") + " does not exist"]
    assert step_summary(runs / "ghost").empty
    before = fingerprint(runs / "alpha")
    pq.write_table(
        pq.read_table(runs / "alpha" / "rollouts" / "step-000001.parquet"),
        runs / "alpha" / "rollouts" / "step-000006.parquet",
    )
    assert fingerprint(runs / "alpha") != before


def test_run_missing_columns_reads_as_nulls(tmp_path):
    # an import written by another tool: only the required columns
    rollouts = tmp_path / "ext" / "rollouts"
    rollouts.mkdir(parents=True)
    pq.write_table(
        pa.table({"step": [0, 0], "prompt_id": ["a", "a"], "response": ["x", "y"], "reward": [1.0, 2.0]}),
        rollouts / "step-000000.parquet",
    )
    summary = step_summary(tmp_path / "ext")
    assert summary["run_id"].tolist() == ["ext"]  # from the directory name
    assert (
        summary.loc[0, "reward_mean"] == pytest.approx(1.5)
        and summary.loc[0, "gold_mean"] != summary.loc[0, "gold_mean"]
    )
    assert failure_counts(tmp_path / "ext")["n_flagged"].sum() == 0
    assert runs_frame(tmp_path).loc[0, "kind"] == "unknown"


def test_mixed_layouts_and_rewritten_step_are_read_fresh(tmp_path):
    from engine.store import RunWriter

    run = RunWriter.create(tmp_path / "r", kind="ppo", config={}, seed=0)
    run.write_rollouts(0, [{"prompt_id": "a", "response": "x", "reward": 1.0, "gold": 0.5}])
    # a second file written by another tool, without gold and with an extra column
    pq.write_table(
        pa.table({"step": [1], "prompt_id": ["a"], "response": ["y"], "reward": [3.0], "extra": [1]}),
        run.run_dir / "rollouts" / "step-000001.parquet",
    )
    summary = step_summary(run.run_dir)
    assert summary["reward_mean"].tolist() == [1.0, 3.0]
    assert summary.loc[0, "gold_mean"] == 0.5 and summary.loc[1, "gold_mean"] != summary.loc[1, "gold_mean"]
    # a resumed run rewrites step 0 at once: the cached footer must not be reused
    run.write_rollouts(0, [{"prompt_id": "a", "response": "x", "reward": 5.0}] * 3)
    assert step_summary(run.run_dir)["n_samples"].tolist() == [3, 1]


def test_thread_cursor_views_follow_the_files(tmp_path):
    from engine.store import RunWriter
    from engine.store.reader import store_cursor

    runs = build_store(tmp_path / "runs")
    # nested use in one thread gets its own cursor: the outer views stay intact
    with store_cursor(runs / "alpha") as (outer, _):
        with store_cursor(runs / "beta") as (inner, _):
            assert inner.execute("SELECT DISTINCT run_id FROM rollouts").fetchall() == [("beta",)]
        assert outer.execute("SELECT DISTINCT run_id FROM rollouts").fetchall() == [("alpha",)]
    # the cached views are rebound when a file is rewritten with other types, and when all files go
    run = RunWriter.create(tmp_path / "r", kind="ppo", config={}, seed=0)
    path = run.write_rollouts(0, [{"prompt_id": "a", "response": "x", "reward": 1.0}])
    assert step_summary(run.run_dir)["reward_mean"].tolist() == [1.0]
    pq.write_table(pa.table({"step": [0], "prompt_id": ["a"], "response": ["y"], "reward": [7]}), path)
    assert step_summary(run.run_dir)["reward_mean"].tolist() == [7.0]
    path.unlink()
    assert step_summary(run.run_dir).empty
