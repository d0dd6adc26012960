"""The remedies on the pages: the RM accuracy page marks each RM refresh on its curves (hover: the
agreement before and after), and the Runs page shows a run's prompt-selection measurement."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from store_fixture import rollout_row
from streamlit.testing.v1 import AppTest

from engine.paths import REPO_ROOT
from engine.ppo.prompt_selection import select, write_table
from engine.store import RunWriter
from engine.store.rm_accuracy import refreshes_from_metrics
from workbench.run_text import refresh_text, selection_text

NAN = float("nan")


def _long(run: str, version: list[float], before: dict[int, float], after: dict[int, float]) -> pd.DataFrame:
    rows = [(run, s, "rm/version", v) for s, v in enumerate(version)]
    rows += [(run, s, "rm/agreement_before", v) for s, v in before.items()]
    rows += [(run, s, "rm/agreement_after", v) for s, v in after.items()]
    rows += [(run, s, "env/reward_mean", 1.0) for s in range(len(version))]
    return pd.DataFrame(rows, columns=["run_id", "step", "key", "value"])


def test_refreshes_are_the_steps_where_the_rm_version_rose():
    long = pd.concat(
        [
            _long("r", [0, 0, 1, 1, 2], {2: 0.6, 4: 0.7}, {2: 0.8}),
            _long("s", [1, 1], {0: 0.5}, {0: 0.55}),  # refreshed at its first logged step
            _long("t", [0, 0, 0], {}, {}),  # refresh off
        ]
    )
    found = refreshes_from_metrics(long)
    assert list(zip(found["run_id"], found["step"], found["version"], strict=True)) == [
        ("r", 2, 1.0), ("r", 4, 2.0), ("s", 0, 1.0)
    ]  # fmt: skip
    assert found["agreement_after"].iloc[0] == 0.8 and math.isnan(found["agreement_after"].iloc[1])
    assert refreshes_from_metrics(long[long["key"] == "env/reward_mean"]).empty  # no RM refresh logged


def test_refresh_text_says_which_way_the_agreement_went():
    assert refresh_text(2.0, 0.6, 0.8) == "RM refresh → version 2: agreement with the judge rose, 0.60 → 0.80"
    assert "fell, 0.80 → 0.60" in refresh_text(1.0, 0.8, 0.6)
    assert "stayed" in refresh_text(1.0, 0.7, 0.7)
    assert refresh_text(3.0, 0.7, NAN).endswith("agreement with the judge not measured")


def _refreshed_run(runs) -> None:
    """Run ``refreshed``: 4 steps of one prompt with gold, the RM refreshed at steps 1 and 3."""
    writer = RunWriter.create(runs / "refreshed", kind="ppo", config={}, seed=0, source="fixture")
    for step in range(4):
        rows = [
            rollout_row("p", "math", "q", i, [f"t{i}"], [0.5], reward=float(i), gold=float(i * step % 3),
                        kl=0.1, has_eos=True)
            for i in range(3)
        ]  # fmt: skip
        writer.write_rollouts(step, rows)
        metrics = {"rm/version": float((step + 1) // 2)}
        if step in (1, 3):
            metrics |= {"rm/agreement_before": 0.5 + step / 10, "rm/agreement_after": 0.9 - step / 10}
        writer.write_metrics(step, metrics)


@pytest.fixture()
def refreshed_env(monkeypatch, tmp_path):
    runs = tmp_path / "runs"
    _refreshed_run(runs)
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(runs))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    return runs


def test_rm_accuracy_page_marks_each_refresh_on_its_curves(refreshed_env):
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "rm_accuracy.py"), default_timeout=60)
    at.query_params["run"] = "refreshed"
    at.run()
    assert not at.exception, at.exception
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(figures) >= 3  # spread, tail, agreement
    for fig in figures:
        lines = [s["x0"] for s in fig["layout"].get("shapes", []) if s.get("line", {}).get("dash") == "dot"
                 and s["x0"] == s["x1"]]  # fmt: skip
        assert lines == [1, 3]
        marks = next(t for t in fig["data"] if t.get("name") == "RM refresh")
        assert marks["x"] == [1, 3]
        assert marks["hovertext"] == [
            "RM refresh → version 1: agreement with the judge rose, 0.60 → 0.80",
            "RM refresh → version 2: agreement with the judge fell, 0.80 → 0.60",
        ]


def _candidates() -> list[dict]:
    """Four prompts: entropy rises with the id, RM-score variance falls."""
    return [
        {"prompt_id": f"p{i}", "family": "math", "prompt": f"q{i}", "mean_entropy": 0.5 + i,
         "reward_variance": 4.0 - i, "gold_mean": NAN}
        for i in range(4)
    ]  # fmt: skip


def test_selection_text_compares_the_kept_prompts_with_the_dropped_both_ways():
    high = pd.DataFrame(select(_candidates(), "high_entropy", 0.5))
    assert selection_text(high, "high_entropy") == (
        "Prompt selection `high_entropy` kept **2 of 4** candidate prompts, measured on the starting policy: "
        "mean token entropy 3 against 1 for the dropped (higher); "
        "RM-score variance 1.5 against 3.5 for the dropped (lower)."
    )
    low = selection_text(pd.DataFrame(select(_candidates(), "low_entropy", 0.25)), "low_entropy")
    assert "kept **1 of 4**" in low and "entropy 0.5 against 2.5 for the dropped (lower)" in low
    assert "(higher)." in low  # its RM-score variance
    everything = selection_text(pd.DataFrame(select(_candidates(), "uniform", 1.0)), "uniform")
    assert everything.endswith("all of them, so PPO trains on the whole prompt set.")


@pytest.fixture()
def runs_env(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("WORKBENCH_THREADS", "1")
    return tmp_path / "runs"


def _runs_page(runs, run_id: str, selection: str | None) -> AppTest:
    config = {"run": {"steps": 2} | ({"prompt_selection": selection} if selection else {})}
    writer = RunWriter.create(runs / run_id, kind="ppo", config=config, seed=0)
    writer.write_metrics(1, {"objective/reward": 0.5, "objective/entropy": 2.0})
    (runs / run_id / "status.json").write_text('{"state": "stopped", "step": 1, "steps": 2, "pid": 1}')
    if selection:
        write_table(runs / run_id, select(_candidates(), selection, 0.5))
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "runs.py"), default_timeout=120)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception, at.exception
    return at


def test_runs_page_shows_the_prompt_selection_of_a_run_that_made_one(runs_env):
    at = _runs_page(runs_env, "chosen", "high_variance")
    assert any(s.value.startswith("Prompt selection") for s in at.subheader)
    assert any("Prompt selection `high_variance` kept **2 of 4**" in m.value for m in at.markdown)
    figure = json.loads(at.get("plotly_chart")[-1].proto.spec)
    points = {t["name"]: t for t in figure["data"]}
    assert points["kept (2)"]["hovertext"] == ["p0 (math), rank 1", "p1 (math), rank 2"]
    assert points["dropped (2)"]["x"] == [2.5, 3.5]
    table = at.dataframe[-1].value
    assert table["prompt_id"].tolist() == ["p0", "p1", "p2", "p3"] and table["kept"].tolist() == [
        True, True, False, False
    ]  # fmt: skip


def test_runs_page_without_a_prompt_selection_has_no_such_section(runs_env):
    at = _runs_page(runs_env, "plain", None)
    assert not any(s.value.startswith("Prompt selection") for s in at.subheader)
