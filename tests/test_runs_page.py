"""AppTest of the Runs page: empty state, a validation error, a launch from the form, a finished run's curves."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from engine.paths import REPO_ROOT
from engine.ppo.config import PPOConfig
from engine.runs import list_runs, read_status
from engine.store import RunWriter
from tests.ppo_fixtures import make_tiny_sources

PAGE = str(REPO_ROOT / "pages" / "runs.py")


@pytest.fixture()
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "no-data"))  # no built world: path inputs
    monkeypatch.setenv("WORKBENCH_THREADS", "1")
    return tmp_path


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _text(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.info, *at.error, *at.success)]
    return "\n".join(str(p) for p in parts)


def test_empty_runs_dir_shows_the_form_and_a_hint(env):
    at = _page()
    assert "No PPO runs in" in _text(at)
    assert at.button(key="FormSubmitter:runs_form-Launch PPO run") is not None
    assert at.number_input(key="runs_kl_coef").value == PPOConfig().ppo.kl_coef


def test_inconsistent_batch_is_a_clear_error(env):
    at = _page()
    at.number_input(key="runs_prompts_per_step").set_value(3)
    at.number_input(key="runs_samples_per_prompt").set_value(1)
    at.button(key="FormSubmitter:runs_form-Launch PPO run").click().run()
    assert "not divisible by num_minibatches" in _text(at)
    assert list_runs(env / "runs") == []


def test_launch_from_the_form_then_watch_it_finish(env):
    sources, prompts_file = make_tiny_sources(env / "models")
    at = _page()
    at.text_input(key="runs_policy").set_value(sources.policy)
    at.text_input(key="runs_reward_model").set_value(sources.reward_model)
    at.text_input(key="runs_prompts_file").set_value(str(prompts_file))
    at.text_input(key="runs_run_id").set_value("from-page")
    at.number_input(key="runs_steps").set_value(2)
    at.number_input(key="runs_prompts_per_step").set_value(2)
    at.number_input(key="runs_max_new_tokens").set_value(6)
    at.button(key="FormSubmitter:runs_form-Launch PPO run").click().run()
    assert not at.exception, at.exception
    assert "Started from-page" in _text(at), _text(at)
    run_dir = env / "runs" / "from-page"
    end = time.time() + 120
    while (read_status(run_dir) or {}).get("state") != "finished" and time.time() < end:
        time.sleep(0.2)
    assert read_status(run_dir)["state"] == "finished"
    at = _page()
    assert at.selectbox(key="runs_pick").value == "from-page"
    assert "finished" in _text(at) and len(at.get("plotly_chart")) == 1
    # a launch into the same run id is refused, nothing overwritten
    at.text_input(key="runs_policy").set_value(sources.policy)
    at.text_input(key="runs_reward_model").set_value(sources.reward_model)
    at.text_input(key="runs_prompts_file").set_value(str(prompts_file))
    at.text_input(key="runs_run_id").set_value("from-page")
    at.number_input(key="runs_prompts_per_step").set_value(2)
    at.button(key="FormSubmitter:runs_form-Launch PPO run").click().run()
    assert "already exists" in _text(at)
    assert RunWriter.open(run_dir).logged_steps() == [1, 2]


def test_interrupted_run_offers_resume(env):
    run_dir = env / "runs" / "old"
    writer = RunWriter.create(run_dir, kind="ppo", config={"run": {"steps": 5}}, seed=0)
    writer.write_metrics(1, {"objective/reward": 0.5, "objective/kl": 0.0, "objective/entropy": 2.0})
    (run_dir / "status.json").write_text('{"state": "running", "step": 1, "steps": 5, "pid": 999999}')
    at = _page()
    assert "interrupted" in _text(at)
    assert at.button(key="runs_resume") is not None
    assert len(at.get("plotly_chart")) == 1


def test_form_offers_the_worlds_epochs_and_families(monkeypatch, tmp_path):
    from engine.paths import world_dir

    if not (world_dir() / "world.json").is_file():
        pytest.skip("the built-in world is not built")
    from engine.world import load_world

    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    world = load_world()
    at = _page()
    assert at.selectbox(key="runs_sft_epoch").value == world.default_epoch
    assert set(at.multiselect(key="runs_families").value) == {f.name for f in world.families}


def test_curves_show_each_step_and_a_moving_average():
    import pandas as pd

    from workbench.runs_views import curves_figure, moving_average_window

    steps = list(range(1, 51))
    values = [float(s % 7) for s in steps]
    metrics = pd.DataFrame({"step": steps, "key": "objective/reward", "value": values})
    fig = curves_figure(metrics)
    points, trend = fig.data[0], fig.data[1]
    assert list(points.y) == values and points.mode == "markers"
    window = moving_average_window(50)
    assert window == 5 and "last 5 steps" in trend.name
    assert trend.y[-1] == pytest.approx(sum(values[-5:]) / 5)
    assert trend.y[0] == values[0]  # a short head averages what there is
    assert len(fig.layout.annotations) == 4 + 3  # 4 panel titles + "not logged" for the 3 missing keys
