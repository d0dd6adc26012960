"""AppTest of the analysis pages on the fixture store, on demo runs only, and with no run at all."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from store_fixture import build_store
from streamlit.testing.v1 import AppTest
from test_entropy_dynamics import build_run

import engine.ppo.launch
from engine.paths import REPO_ROOT
from engine.store import rank_prompts

PAGES = ("reward_densities", "rollout_browser", "failure_modes", "rm_accuracy", "entropy_dynamics")


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(REPO_ROOT / "pages" / f"{name}.py"), default_timeout=60)


@pytest.fixture()
def store_env(monkeypatch, tmp_path):
    runs = build_store(tmp_path / "runs")
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(runs))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))  # no demo runs
    return runs


@pytest.fixture()
def demo_env(monkeypatch, tmp_path):
    """No run of the user's own; the fixture runs shipped as demo runs."""
    build_store(tmp_path / "data" / "demo_runs")
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data" / "demo_runs"


def _ran(name: str) -> AppTest:
    """Page ``name`` run once, checked to raise nothing."""
    at = _page(name).run()
    assert not at.exception, at.exception
    return at


def _text(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.info, *at.warning, *at.subheader, *at.title)]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("name", PAGES)
def test_pages_without_runs_explain_what_to_do(monkeypatch, tmp_path, name):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    at = _ran(name)
    assert "No runs in" in _text(at)


@pytest.mark.parametrize("name", PAGES)
def test_page_on_a_run_without_steps(store_env, name):
    at = _page(name).run()
    key = next(
        k
        for k in ("densities_run", "browser_run", "failures_runs", "rm_runs", "entropy_run")
        if k in at.session_state
    )
    at.session_state[key] = ["empty"] if key in ("failures_runs", "rm_runs") else "empty"
    at.run()
    assert not at.exception, at.exception
    assert "No logged rollouts" in _text(at)


@pytest.mark.parametrize("name", PAGES)
def test_pages_show_demo_runs_when_the_user_has_none(demo_env, name):
    at = _ran(name)
    assert "demo runs" in _text(at)
    picker = at.multiselect[0] if name in ("failure_modes", "rm_accuracy") else at.selectbox[0]
    assert all(label.startswith("🔒 demo · ") for label in picker.options)  # labels, as shown
    assert len(at.get("plotly_chart")) + len(at.dataframe) > 0


def test_demo_runs_follow_the_users_own(demo_env, monkeypatch, tmp_path):
    build_store(tmp_path / "mine")
    shutil.rmtree(tmp_path / "mine" / "beta")
    shutil.rmtree(tmp_path / "mine" / "empty")
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "mine"))
    at = _page("reward_densities")
    at.run()
    picker = at.selectbox(key="densities_run")
    # the user's alpha, then the demo runs (a demo run named like one of the user's is left out)
    assert len(picker.options) == 3
    assert picker.options[0].startswith("alpha") and all("demo" in o for o in picker.options[1:])
    assert "demo runs** are shown" not in _text(at)


def test_reward_densities_page(store_env):
    at = _page("reward_densities")
    at.run()
    at.selectbox(key="densities_run").set_value("alpha").run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 3  # raw ridgeline, normalised ridgeline, spread
    at.radio(key="densities_value").set_value("mean_entropy").run()
    assert not at.exception and len(at.get("plotly_chart")) == 3
    at.selectbox(key="densities_run").set_value("beta").run()
    at.radio(key="densities_value").set_value("gold").run()
    assert not at.exception
    assert "No gold (judge) score logged" in _text(at) and "To get it" in _text(at)


def _browser(**params) -> AppTest:
    at = _page("rollout_browser")
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def test_rollout_browser_page(store_env):
    at = _browser(run="alpha", ranking="reward_var")
    assert not at.exception, at.exception
    assert at.radio(key="browser_ranking").value == "reward_var"
    assert "Ranking on: **RM variance" in _text(at)
    ranked = at.dataframe[0].value
    assert ranked["prompt_id"].tolist() == ["p1", "p2"]  # within-prompt variance 3 > 1
    assert at.session_state["browser_prompt"] == ("alpha", "p1")  # the top row opens by default
    html = "".join(str(h.proto.body) for h in at.get("html"))
    assert "x y z".split()[0] in html and "entropy (nats)" in html
    at.select_slider(key="browser_step").set_value(0).run()
    samples = at.dataframe[1].value
    assert samples["reward_norm"].tolist() == pytest.approx([2.5, 4.5])
    # a quote-laden search is a plain substring search
    at.text_input(key="browser_search").set_value("say 'hi'").run()
    assert not at.exception
    assert at.dataframe[0].value["prompt_id"].tolist() == ["p2"]
    at.text_input(key="browser_search").set_value("' OR 1=1 --").run()
    assert not at.exception and "No prompt matches" in _text(at)


def test_rollout_browser_click_opens_a_prompt_that_survives_reruns(store_env):
    at = _browser(run="alpha", ranking="reward_var")
    at.session_state["browser_table"] = {"selection": {"rows": [1], "columns": []}}  # click p2
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["browser_prompt"] == ("alpha", "p2")
    assert "Prompt `p2`" in _text(at) and at.query_params["prompt"] == "p2"
    at.radio(key="browser_ranking").set_value("gold_var").run()  # the table reorders: p2 stays open
    assert at.session_state["browser_prompt"] == ("alpha", "p2")
    at.select_slider(key="browser_step").set_value(0).run()
    assert "Prompt `p2`" in _text(at)


def test_rollout_browser_deep_link_opens_run_prompt_step_and_token(store_env):
    at = _browser(run="alpha", prompt="p2", step="0", ranking="entropy_drop", sample="1", token="0")
    assert not at.exception, at.exception
    assert at.session_state["browser_run"] == "alpha" and at.session_state["browser_prompt"] == (
        "alpha",
        "p2",
    )
    assert at.select_slider(key="browser_step").value == 0
    assert at.radio(key="browser_ranking").value == "entropy_drop"
    html = "".join(str(h.proto.body) for h in at.get("html"))
    assert html.count("outline:3px") == 1  # the linked token is ringed
    assert "Ringed: token 0 of sample 1" in _text(at)


def test_rollout_browser_without_gold_offers_no_gold_ranking(store_env):
    at = _browser(run="beta")
    assert not at.exception, at.exception
    assert "gold_var" not in at.radio(key="browser_ranking").options
    assert "gold variance is not offered" in _text(at)


@pytest.mark.parametrize("ranking", ["gold_var", "reward_var", "reward_norm_var", "entropy_drop"])
def test_rank_prompts_against_pandas(store_env, ranking):
    rows = pd.concat(
        [pd.read_parquet(p) for p in sorted((store_env / "alpha" / "rollouts").glob("*.parquet"))]
    )
    per = (
        rows.groupby(["prompt_id", "step"])
        .agg(n=("reward", "size"), rv=("reward", "var"), gv=("gold", "var"), h=("mean_entropy", "mean"))
        .reset_index()
    )
    pooled = per.groupby("step").apply(
        lambda g: ((g["n"] - 1) * g["rv"].fillna(0)).sum() / (g["n"].sum() - 1), include_groups=False
    )
    per["nv"] = per["rv"] / per["step"].map(pooled)
    expected = {}
    for pid, g in per.sort_values("step").groupby("prompt_id"):
        expected[pid] = {
            "gold_var": g["gv"].mean(),
            "reward_var": g["rv"].mean(),
            "reward_norm_var": g["nv"].mean(),
            "entropy_drop": g["h"].iloc[0] - g["h"].iloc[-1] if len(g) > 1 else np.nan,
        }[ranking]
    got = rank_prompts(store_env / "alpha", ranking)
    assert got["prompt_id"].tolist() == sorted(expected, key=lambda p: -expected[p])
    assert got["score"].tolist() == pytest.approx([expected[p] for p in got["prompt_id"]])


def test_failure_modes_page(store_env):
    at = _page("failure_modes")
    at.run()
    at.multiselect(key="failures_runs").set_value(["alpha"]).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert table.loc[("alpha", 1), "repetition"] == 1 and table.loc[("alpha", 0), "entropy_collapse"] == 2
    assert at.selectbox(key="failures_detector").value != "rm_loophole"  # opens on a detector with flags
    at.selectbox(key="failures_detector").set_value("entropy_collapse").run()
    assert "When is collapse a failure?" in _text(at)
    at.selectbox(key="failures_detector").set_value("repetition").run()
    examples = at.dataframe[1].value
    assert examples["response"].tolist() == ["x y z x y z x y z"]
    at.selectbox(key="failures_detector").set_value("reward_tail").run()
    assert "No sample is flagged" in _text(at)


def test_rm_accuracy_page(store_env):
    at = _ran("rm_accuracy")
    # The picker opens on the newest run, which is beta when the fixture's two runs are a second apart.
    at.multiselect(key="rm_runs").set_value(["alpha"]).run()
    assert len(at.get("plotly_chart")) == 4  # spread, tail, agreement, log-prob accuracy
    at.multiselect(key="rm_runs").set_value(["beta"]).run()
    assert not at.exception
    text = _text(at)
    assert "No gold (judge) scores" in text and "none computed for these runs" in text


def test_rm_accuracy_starts_the_evaluation_and_shows_progress(store_env, monkeypatch):
    started = []

    def fake_launch(run_id, root=None):
        started.append((run_id, str(root)))
        return subprocess.Popen(["true"])

    monkeypatch.setattr(engine.ppo.launch, "launch_eval", fake_launch)
    at = _page("rm_accuracy")
    at.run()
    at.multiselect(key="rm_runs").set_value(["alpha"]).run()
    at.button(key="rm_eval_start").click().run()
    assert not at.exception, at.exception
    assert started == [("alpha", str(store_env))]
    assert any("checkpoints evaluated" in str(p.proto.text) for p in at.get("progress"))


def test_rm_accuracy_refuses_to_evaluate_a_demo_run(demo_env):
    at = _ran("rm_accuracy")
    assert "Demo runs are read-only" in _text(at)
    assert not [b for b in at.button if b.key == "rm_eval_start"]


def test_entropy_dynamics_page(monkeypatch, tmp_path):
    build_run(tmp_path / "runs" / "dyn", n_steps=40)  # enough steps for the fits (at least 10)
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    at = _ran("entropy_dynamics")
    assert len(at.get("plotly_chart")) == 4  # cov vs change, law, forking, gold vs sqrt(KL)
    text = _text(at)
    assert ("can still gain about" in text or "past the law's ceiling" in text) and "fitted peak" in text
    assert "carry" in text
    assert len(at.dataframe[0].value) == 20  # the top covariance tokens


def test_entropy_dynamics_without_advantage_says_why(store_env):
    at = _page("entropy_dynamics")
    at.run()
    at.selectbox(key="entropy_run").set_value("alpha").run()
    assert not at.exception, at.exception
    assert "Covariance missing" in _text(at) and "advantage" in _text(at)


def test_rollout_browser_writes_its_view_into_the_url_and_a_reload_reopens_it(store_env):
    at = _browser()
    at.selectbox(key="browser_run").set_value("alpha").run()
    at.radio(key="browser_ranking").set_value("gold_var").run()
    at.session_state["browser_table"] = {"selection": {"rows": [1], "columns": []}}
    at.run()
    at.select_slider(key="browser_step").set_value(0).run()
    assert not at.exception, at.exception
    url = {k: at.query_params[k] for k in ("run", "ranking", "prompt", "step")}
    assert url["run"] == "alpha" and url["ranking"] == "gold_var" and url["step"] == "0"
    reloaded = _browser(**url)  # a new session on the same URL
    assert reloaded.session_state["browser_run"] == "alpha"
    assert reloaded.radio(key="browser_ranking").value == "gold_var"
    assert reloaded.session_state["browser_prompt"] == ("alpha", url["prompt"])
    assert reloaded.select_slider(key="browser_step").value == 0


@pytest.mark.parametrize("page", PAGES)
def test_an_unknown_run_in_the_url_says_so(store_env, page):
    at = _page(page)
    at.query_params["run"] = "no-such-run"
    at.run()
    assert not at.exception, at.exception
    assert any("No run `no-such-run`" in w.value for w in at.warning), [w.value for w in at.warning]


@pytest.mark.parametrize("name", PAGES)
def test_a_failed_run_says_why_on_every_analysis_page(store_env, name):
    """A run that failed (a diverged update, a full disk) says why wherever it is picked, not only on
    the Runs page: its figures stop at its last good step."""
    import json
    import time

    reason = "TrainingDiverged: diverged at step 2: loss is NaN"
    (store_env / "alpha" / "status.json").write_text(
        json.dumps({"state": "failed", "step": 1, "pid": 0, "heartbeat": time.time(), "message": reason})
    )
    at = _page(name)
    at.query_params["run"] = "alpha"
    at.run()
    assert not at.exception, at.exception
    assert any(f"alpha failed: {reason}" in w.value for w in at.warning)


def test_the_clicked_sample_is_in_the_url_and_a_reload_shows_it_alone(store_env):
    at = _browser(run="alpha", ranking="reward_var")
    at.session_state["browser_table"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    at.session_state["browser_samples"] = {"selection": {"rows": [1], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    sample = at.query_params["sample"]
    assert any(f"Showing sample {sample}" in c.value for c in at.caption)
    url = {k: at.query_params[k] for k in ("run", "ranking", "prompt", "step", "sample")}
    reloaded = _browser(**url)  # a new session on the same URL shows that sample alone
    assert not reloaded.exception, reloaded.exception
    assert any(f"Showing sample {sample}" in c.value for c in reloaded.caption)
    at.session_state["browser_samples"] = {"selection": {"rows": [], "columns": []}}
    at.run()  # clicked again: every sample, and the URL forgets it
    assert "sample" not in at.query_params
    assert not any("Showing sample" in c.value for c in at.caption)
