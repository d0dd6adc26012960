"""AppTest of the four analysis pages on the fixture store (and on an empty runs directory)."""

from __future__ import annotations

import pytest
from store_fixture import build_store
from streamlit.testing.v1 import AppTest

from engine.paths import REPO_ROOT

PAGES = ("reward_densities", "rollout_browser", "failure_modes", "rm_accuracy")


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(REPO_ROOT / "pages" / f"{name}.py"), default_timeout=60)


@pytest.fixture()
def store_env(monkeypatch, tmp_path):
    runs = build_store(tmp_path / "runs")
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(runs))
    return runs


def _text(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.info, *at.warning, *at.subheader, *at.title)]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("name", PAGES)
def test_pages_without_runs_explain_what_to_do(monkeypatch, tmp_path, name):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "nothing"))
    at = _page(name)
    at.run()
    assert not at.exception, at.exception
    assert "No runs in" in _text(at)


@pytest.mark.parametrize("name", PAGES)
def test_page_on_a_run_without_steps(store_env, name):
    at = _page(name)
    at.run()
    key = next(
        k for k in ("densities_run", "browser_run", "failures_runs", "rm_runs") if k in at.session_state
    )
    at.session_state[key] = "empty" if key in ("densities_run", "browser_run") else ["empty"]
    at.run()
    assert not at.exception, at.exception
    assert "No logged rollouts" in _text(at)


def test_reward_densities_page(store_env):
    at = _page("reward_densities")
    at.run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 3  # raw ridgeline, normalised ridgeline, spread
    at.radio(key="densities_value").set_value("mean_entropy").run()
    assert not at.exception and len(at.get("plotly_chart")) == 3
    at.selectbox(key="densities_run").set_value("beta").run()
    at.radio(key="densities_value").set_value("gold").run()
    assert not at.exception
    assert "No gold (judge) score logged" in _text(at)


def test_rollout_browser_page(store_env):
    at = _page("rollout_browser")
    at.run()
    assert not at.exception, at.exception
    ranked = at.dataframe[0].value
    assert ranked["prompt_id"].tolist() == ["p1", "p2"]  # within-prompt variance 3 > 1
    assert at.selectbox(key="browser_prompt").value == "p1"
    html = "".join(str(h.proto.body) for h in at.get("html"))
    assert "x y z".split()[0] in html and "per-token entropy" in html
    at.select_slider(key="browser_step").set_value(0).run()
    samples = at.dataframe[1].value
    assert samples["reward_norm"].tolist() == pytest.approx([2.5, 4.5])
    # a quote-laden search is a plain substring search
    at.text_input(key="browser_search").set_value("say 'hi'").run()
    assert not at.exception
    assert at.dataframe[0].value["prompt_id"].tolist() == ["p2"]
    at.text_input(key="browser_search").set_value("' OR 1=1 --").run()
    assert not at.exception and "No prompt matches" in _text(at)


def test_failure_modes_page(store_env):
    at = _page("failure_modes")
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert table.loc[("alpha", 1), "repetition"] == 1 and table.loc[("alpha", 0), "entropy_collapse"] == 2
    at.selectbox(key="failures_detector").set_value("repetition").run()
    examples = at.dataframe[1].value
    assert examples["response"].tolist() == ["x y z x y z x y z"]
    at.selectbox(key="failures_detector").set_value("reward_tail").run()
    assert "No sample is flagged" in _text(at)


def test_rm_accuracy_page(store_env):
    at = _page("rm_accuracy")
    at.run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 4  # spread, tail, agreement, log-prob accuracy
    at.multiselect(key="rm_runs").set_value(["beta"]).run()
    assert not at.exception
    text = _text(at)
    assert "No gold (judge) scores" in text and "not computed yet" in text
