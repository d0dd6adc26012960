"""AppTest of the Learn path on the stand-in world and demo runs: every step renders, every "try it"
control reruns without an exception; without demo runs each step says what to run."""

from __future__ import annotations

import pytest
from learn_fixture import PROBE_STEPS, write_epoch_samples
from streamlit.testing.v1 import AppTest

from engine.paths import REPO_ROOT
from workbench.learn import STEPS
from workbench.navigation import PAGES_DIR

APP = str(REPO_ROOT / "workbench" / "app.py")
PAGE = str(PAGES_DIR / "learn.py")


@pytest.fixture(scope="module")
def data_dir(learn_data_dir):
    return learn_data_dir


def _page(monkeypatch, data_dir, tmp_path) -> AppTest:
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _go(at: AppTest, key: str) -> None:
    at.radio(key="learn_step").set_value(key).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_every_step_and_every_try_it_control(monkeypatch, data_dir, tmp_path):
    at = _page(monkeypatch, data_dir, tmp_path)
    assert at.radio(key="learn_step").value == "space"

    at.select_slider(key="learn_space_temperature").set_value(2.0).run()
    assert not at.exception
    assert any("temperature 2" in c.value for c in at.caption)
    at.selectbox(key="learn_space_prompt").set_value("c0").run()
    assert not at.exception

    _go(at, "epochs")
    at.select_slider(key="learn_epoch").set_value(1).run()
    assert not at.exception
    assert any("Epoch 1" in m.value for m in at.markdown)

    _go(at, "reduction")
    assert any("Step 1" in m.value for m in at.markdown)
    at.select_slider(key="learn_ppo_step").set_value(PROBE_STEPS[1]).run()
    assert not at.exception
    assert any(f"Step {PROBE_STEPS[1]}" in m.value for m in at.markdown)
    at.selectbox(key="learn_ppo_prompt").set_value("g0").run()
    at.radio(key="learn_ppo_run").set_value("demo-late-epoch").run()
    assert not at.exception

    _go(at, "rm")
    assert len(at.dataframe) == 1  # the RM exploits
    at.select_slider(key="learn_rm_steps").set_value((2, 6)).run()
    assert not at.exception
    assert any("From step 2 to 6" in m.value for m in at.markdown)
    at.radio(key="learn_rm_run").set_value("demo-default").run()
    assert not at.exception

    _go(at, "range")
    at.selectbox(key="learn_range_family").set_value("greet").run()
    assert not at.exception
    assert any("**greet** (in SFT data)" in m.value for m in at.markdown)


def test_next_and_previous_walk_the_steps(monkeypatch, data_dir, tmp_path):
    at = _page(monkeypatch, data_dir, tmp_path)
    for step in STEPS[1:]:
        at.button(key="learn_next").click().run()
        assert not at.exception
        assert at.radio(key="learn_step").value == step.key
    assert at.button(key="learn_next").disabled
    at.button(key="learn_back").click().run()
    assert at.radio(key="learn_step").value == STEPS[-2].key


def test_without_demo_runs_each_step_says_what_to_run(monkeypatch, tmp_path):
    from fake_world import build_fake_world

    data = tmp_path / "data"
    write_epoch_samples(build_fake_world(data))
    at = _page(monkeypatch, data, tmp_path)
    for step in ("reduction", "rm", "range"):
        _go(at, step)
        assert any("python -m engine demo build" in c.value for c in at.code), step
