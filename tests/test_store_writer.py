"""Write path of the run store: schema, derived columns, atomic per-step files, resume."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.config import ConfigError
from engine.store import METRIC_SCHEMA, ROLLOUT_SCHEMA, RunWriter, write_eval


def _rows() -> list[dict]:
    return [
        {
            "prompt_id": "p0",
            "prompt_family": "fam",
            "sample_idx": 0,
            "prompt": "hi",
            "response": "a b",
            "tokens": ["a", "b"],
            "token_ids": [1, 2],
            "entropy": [1.0, 3.0],
            "reward": 0.5,
            "has_eos": True,
        },
        {
            "prompt_id": "p0",
            "sample_idx": 1,
            "response": "c",
            "tokens": ["c"],
            "entropy": [2.0],
            "reward": 1.5,
        },
    ]


def test_create_writes_run_json_and_refuses_existing(tmp_path):
    run = RunWriter.create(tmp_path / "r1", kind="ppo", config={"lr": 1e-4}, seed=3, source="test")
    record = json.loads((tmp_path / "r1" / "run.json").read_text())
    assert record["run_id"] == "r1" and record["kind"] == "ppo" and record["seed"] == 3
    assert record["config"] == {"lr": 1e-4} and "T" in record["created_at"]
    run.write_rollouts(0, _rows())
    with pytest.raises(ConfigError, match="already holds a run"):
        RunWriter.create(tmp_path / "r1", kind="ppo", config={}, seed=None)
    RunWriter.create(tmp_path / "r1", kind="ppo", config={}, seed=None, overwrite=True)
    assert RunWriter.open(tmp_path / "r1").logged_steps() == []
    with pytest.raises(ConfigError, match="kind"):
        RunWriter.create(tmp_path / "r2", kind="bogus", config={}, seed=None)
    with pytest.raises(ConfigError, match="no run"):
        RunWriter.open(tmp_path / "missing")


def test_write_rollouts_list_of_dicts_fills_schema_and_derived_columns(tmp_path):
    run = RunWriter.create(tmp_path / "r", kind="ppo", config={}, seed=0)
    path = run.write_rollouts(7, _rows())
    assert path.name == "step-000007.parquet"
    table = pq.read_table(path)
    assert table.schema.equals(ROLLOUT_SCHEMA)
    d = table.to_pylist()
    assert [r["run_id"] for r in d] == ["r", "r"] and [r["step"] for r in d] == [7, 7]
    assert [r["length"] for r in d] == [2, 1]
    assert d[0]["mean_entropy"] == pytest.approx(2.0) and d[1]["mean_entropy"] == pytest.approx(2.0)
    assert d[1]["gold"] is None and d[1]["ref_logprob"] is None and d[1]["has_eos"] is None
    assert not any(p.name.endswith(".tmp") for p in path.parent.iterdir())


def test_write_rollouts_dict_of_numpy_lists_and_table(tmp_path):
    run = RunWriter.create(tmp_path / "r", kind="ppo", config={}, seed=0)
    cols = {
        "prompt_id": ["a", "b", "c"],
        "response": ["x", "y", "z"],
        "reward": np.array([1.0, 2.0, 3.0]),
        "entropy": [np.array([0.5, 1.5]), None, np.array([2.0])],
        "token_ids": [np.array([1, 2]), np.array([3]), np.array([4])],
    }
    table = pq.read_table(run.write_rollouts(1, cols))
    assert table.column("entropy").to_pylist() == [[0.5, 1.5], None, [2.0]]
    assert table.column("mean_entropy").to_pylist() == [1.0, None, 2.0]
    assert table.column("length").to_pylist() == [2, 1, 1]
    # A ready table round-trips unchanged, and rewriting a step replaces it.
    run.write_rollouts(1, table.slice(0, 1))
    assert pq.read_table(run.run_dir / "rollouts" / "step-000001.parquet").num_rows == 1


def test_write_rollouts_rejects_bad_rows(tmp_path):
    run = RunWriter.create(tmp_path / "r", kind="ppo", config={}, seed=0)
    with pytest.raises(ConfigError, match="unknown rollout columns"):
        run.write_rollouts(0, [{"prompt_id": "a", "response": "", "reward": 1.0, "rewrd": 2}])
    with pytest.raises(ConfigError, match="required"):
        run.write_rollouts(0, [{"prompt_id": "a"}])
    with pytest.raises(ConfigError, match="other step"):
        run.write_rollouts(0, [{"prompt_id": "a", "response": "", "reward": 1.0, "step": 4}])
    with pytest.raises(ConfigError, match="different lengths"):
        run.write_rollouts(0, {"prompt_id": ["a"], "response": ["", ""], "reward": [1.0]})


def test_metrics_logged_steps_and_resume(tmp_path):
    run = RunWriter.create(tmp_path / "r", kind="ppo", config={}, seed=0)
    for step in (0, 1, 2, 3):
        run.write_rollouts(step, _rows())
        run.write_metrics(step, {"objective/kl": step * 0.1, "policy/clipfrac": 0.2})
    run.write_metrics(4, {"objective/kl": 1.0})
    metrics = pq.read_table(run.run_dir / "metrics" / "step-000002.parquet")
    assert metrics.schema.equals(METRIC_SCHEMA)
    assert metrics.to_pydict()["key"] == ["objective/kl", "policy/clipfrac"]
    assert run.logged_steps() == [0, 1, 2, 3, 4]
    RunWriter.open(run.run_dir).drop_steps_after(1)
    assert run.logged_steps() == [0, 1]


def test_write_eval_replaces_or_appends(tmp_path):
    run = RunWriter.create(tmp_path / "r", kind="ppo", config={}, seed=0)
    row = {"run_id": ["r"], "step": [0], "checkpoint": ["c0"], "accuracy": [0.6], "n_pairs": [10]}
    path = write_eval(run.run_dir, "logprob_accuracy", row)
    write_eval(run.run_dir, "logprob_accuracy", pa.table({**row, "step": [5]}), append=True)
    assert pq.read_table(path).column("step").to_pylist() == [0, 5]
    with pytest.raises(ConfigError):
        write_eval(run.run_dir, "../x", row)


def test_rows_are_stored_sorted_by_prompt(tmp_path):
    run = RunWriter.create(tmp_path / "r", kind="ppo", config={}, seed=0)
    cols = {
        "prompt_id": ["b", "a", "b", "a"],
        "sample_idx": [1, 1, 0, 0],
        "response": list("wxyz"),
        "reward": [1, 2, 3, 4],
    }
    table = pq.read_table(run.write_rollouts(0, cols))
    assert table.column("prompt_id").to_pylist() == ["a", "a", "b", "b"]
    assert table.column("reward").to_pylist() == [4.0, 2.0, 3.0, 1.0]


def test_token_strings_are_dictionary_encoded(tmp_path):
    # the list column is named by its leaf path; a plain "tokens" would silently match nothing
    run = RunWriter.create(tmp_path / "r", kind="ppo", config={}, seed=0)
    cols = {"prompt_id": ["a", "a"], "response": ["x y", "x y"], "reward": [1, 2], "tokens": [["x", "y"]] * 2}
    meta = pq.ParquetFile(run.write_rollouts(0, cols)).metadata.row_group(0)
    tokens = next(
        meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema.startswith("tokens.")
    )
    assert "RLE_DICTIONARY" in tokens.encodings
    assert pq.read_table(run.run_dir / "rollouts" / "step-000000.parquet").column(
        "prompt_collapsed"
    ).to_pylist() == [
        True,
        True,
    ]
