"""The store command line and the store benchmark's JSON contract (tiny sizes, no timing asserts)."""

from __future__ import annotations

import json

from engine.__main__ import main
from engine.store import runs_frame

BENCH_KEYS = {
    "protocol", "rollouts", "write_rows_per_s", "reward_norm_density_ms", "top_variance_prompts_ms",
    "failure_counts_ms", "prompt_drilldown_ms", "pandas_reward_norm_ms", "speedup_vs_pandas",
    "polars_reward_norm_ms", "pyarrow_write_rows_per_s",
}  # fmt: skip


def test_synth_ls_summary(tmp_path, capsys):
    assert main(["store", "synth", "--runs-dir", str(tmp_path), "--steps", "3", "--prompts", "4"]) == 0
    runs = runs_frame(tmp_path)
    assert runs.loc[0, "run_id"] == "synthetic-demo" and runs.loc[0, "n_rollouts"] == 3 * 4 * 8
    assert main(["store", "synth", "--runs-dir", str(tmp_path)]) == 2  # exists, no --overwrite
    capsys.readouterr()
    assert main(["store", "ls", "--runs-dir", str(tmp_path)]) == 0
    assert "synthetic-demo" in capsys.readouterr().out
    assert main(["store", "summary", str(tmp_path / "synthetic-demo")]) == 0
    assert "reward_mean" in capsys.readouterr().out
    assert main(["store", "summary", str(tmp_path / "nope")]) == 2


def test_bench_store_json(tmp_path, capsys):
    keep = tmp_path / "bench"
    assert (
        main(["bench", "store", "--rollouts", "2000", "--repeats", "1", "--json", "--keep", str(keep)]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert BENCH_KEYS <= set(result)
    assert result["protocol"] == "store-1m" and result["rollouts"] == 2000 and result["pandas_matches"]
    assert result["polars_matches"]
    assert (keep / "bench-run" / "rollouts").is_dir()


def test_summary_logs_each_skip_warning_once(tmp_path, caplog):
    assert main(["store", "synth", "--runs-dir", str(tmp_path), "--steps", "2", "--prompts", "2"]) == 0
    (tmp_path / "synthetic-demo" / "rollouts" / "step-000007.parquet").write_bytes(b"not parquet")
    caplog.clear()
    assert main(["store", "summary", str(tmp_path / "synthetic-demo")]) == 0
    assert sum("step-000007" in r.getMessage() for r in caplog.records) == 1
