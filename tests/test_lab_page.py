"""AppTest of the sampling lab page: every slider reruns cleanly and changes the displayed signals."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from engine.paths import REPO_ROOT

PAGE = str(REPO_ROOT / "pages" / "sampling_lab.py")
DEFAULTS = {"lab_temperature": 1.0, "lab_top_p": 1.0, "lab_top_k": 0}


def _summary(at: AppTest) -> dict[str, float]:
    frame = at.dataframe[0].value
    return dict(zip(frame["signal"], frame["these settings"], strict=True))


@pytest.fixture
def lab_page(monkeypatch, tmp_path, tiny_gpt2_dir) -> AppTest:
    """The page on a tiny local model, with no world and no runs (the degraded but usable mode)."""
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception
    at.text_input(key="lab_model_name").set_value(str(tiny_gpt2_dir))
    at.text_area(key="lab_typed").set_value("w1 w2 w3\nw7")
    at.slider(key="lab_n").set_value(4)
    at.slider(key="lab_max_new_tokens").set_value(8)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize(
    ("slider", "value", "changed"),
    [
        ("lab_temperature", 1.8, "sampling entropy (nats)"),
        ("lab_top_p", 0.3, "n candidates"),
        ("lab_top_k", 3, "n candidates"),
    ],
)
def test_each_slider_changes_the_signals(lab_page, slider, value, changed):
    before = _summary(lab_page)
    lab_page.slider(key=slider).set_value(value).run()
    assert not lab_page.exception, lab_page.exception
    after = _summary(lab_page)
    assert after[changed] != pytest.approx(before[changed])
    # Moving back gives the same samples, hence the same figures (fixed seed per setting).
    lab_page.slider(key=slider).set_value(DEFAULTS[slider]).run()
    assert _summary(lab_page) == pytest.approx(before)


def test_greedy_says_so(lab_page):
    lab_page.slider(key="lab_temperature").set_value(0.0).run()
    assert not lab_page.exception
    assert any("greedy" in info.value for info in lab_page.info)
    assert _summary(lab_page)["n candidates"] == 1


def test_bad_top_p_and_empty_prompt_show_messages(lab_page):
    lab_page.slider(key="lab_top_p").set_value(0.0).run()
    assert not lab_page.exception
    assert any("top_p must be in (0, 1]" in e.value for e in lab_page.error)
    lab_page.slider(key="lab_top_p").set_value(1.0)
    lab_page.text_area(key="lab_typed").set_value("   ").run()
    assert not lab_page.exception
    assert any("prompt is empty" in w.value for w in lab_page.warning)


def test_unloadable_model_is_a_message(lab_page):
    lab_page.text_input(key="lab_model_name").set_value("some-org/not-cached-anywhere").run()
    assert not lab_page.exception
    errors = [e.value for e in lab_page.error if "some-org/not-cached-anywhere" in e.value]
    assert len(errors) == 1, errors  # once, not again for the T=1 reference
    assert "not on this machine" in errors[0]
    assert lab_page.slider(key="lab_temperature")  # the rest of the page is still there


def _open_tab(at: AppTest, label: str) -> AppTest:
    at.session_state["lab_tab"] = label
    at.run()
    assert not at.exception, at.exception
    return at


def test_sweeps_run_only_in_their_tab(lab_page, monkeypatch):
    """A slider change on the samples tab samples two batches (settings, T=1 reference), never a sweep."""
    from engine.lab import SamplingLab

    calls = []
    monkeypatch.setattr(SamplingLab, "sweep", lambda self, *a, **k: calls.append(k["parameter"]) or [])
    lab_page.slider(key="lab_temperature").set_value(1.3).run()
    assert not lab_page.exception and calls == []
    monkeypatch.undo()
    _open_tab(lab_page, "Sweeps")
    assert lab_page.segmented_control(key="lab_sweep").value == "temperature"
    assert len(lab_page.get("plotly_chart")) == 1  # only the sweep figure: the hidden tabs draw nothing
    for parameter in ("top_p", "min_p"):
        lab_page.segmented_control(key="lab_sweep").set_value(parameter).run()
        assert not lab_page.exception, lab_page.exception
        fig = lab_page.get("plotly_chart")[0].proto.spec
        assert parameter in fig


def test_min_p_slider_changes_candidates_and_the_reference_ignores_it(lab_page):
    before = _summary(lab_page)
    reference = lab_page.dataframe[0].value["T=1"].tolist()
    lab_page.slider(key="lab_min_p").set_value(0.9).run()
    assert not lab_page.exception, lab_page.exception
    assert _summary(lab_page)["n candidates"] < before["n candidates"]
    assert lab_page.dataframe[0].value["T=1"].tolist() == reference  # min-p 0 in the reference
    change = dict(
        zip(lab_page.dataframe[0].value["signal"], lab_page.dataframe[0].value["change"], strict=True)
    )
    assert change["n candidates"].startswith("\u2212")  # the minus sign is shown


def test_forking_tokens_tab(lab_page):
    _open_tab(lab_page, "Forking tokens")
    labels = [m.label for m in lab_page.metric]
    assert labels[0].startswith("near zero") and "p80 entropy (nats)" in labels
    top = lab_page.dataframe[0].value
    assert list(top.columns) == ["prompt", "sample", "position", "word", "entropy (nats)"]
    assert top["entropy (nats)"].is_monotonic_decreasing


def test_settings_survive_leaving_the_page(monkeypatch, tmp_path, tiny_gpt2_dir):
    from workbench.navigation import PAGES_DIR

    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(REPO_ROOT / "workbench" / "app.py"), default_timeout=120).run()
    at.switch_page(str(PAGES_DIR / "sampling_lab.py")).run()
    at.text_input(key="lab_model_name").set_value(str(tiny_gpt2_dir))
    at.text_area(key="lab_typed").set_value("w1 w2")
    at.slider(key="lab_n").set_value(4)
    at.slider(key="lab_temperature").set_value(1.4).run()
    assert not at.exception, at.exception
    at.switch_page(str(PAGES_DIR / "teaching.py")).run()
    assert not at.exception and "lab_temperature" not in at.session_state  # Streamlit dropped it
    at.switch_page(str(PAGES_DIR / "sampling_lab.py")).run()
    assert not at.exception, at.exception
    assert at.slider(key="lab_temperature").value == 1.4 and at.slider(key="lab_n").value == 4
    assert at.text_input(key="lab_model_name").value == str(tiny_gpt2_dir)
    assert not at.warning  # no "default value also set via Session State" warning


def test_comparison(lab_page, tiny_llama_dir):
    _open_tab(lab_page, "Compare checkpoints")
    lab_page.text_input(key="lab_other_name").set_value(str(tiny_llama_dir)).run()
    assert not lab_page.exception, lab_page.exception
    assert len(lab_page.dataframe) >= 1


def test_world_models_prompts_rewards_and_comparison(monkeypatch, fake_world_data_dir, tmp_path):
    """With a (stand-in) world: epochs, families, RM + gold rewards, normalised view, comparison."""
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(fake_world_data_dir))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert at.select_slider(key="lab_model_epoch").value == 2
    at.slider(key="lab_n").set_value(4)
    at.slider(key="lab_max_new_tokens").set_value(8)
    at.text_area(key="lab_typed").set_value("w9 w8").run()
    assert not at.exception, at.exception
    _open_tab(at, "Rewards")
    assert set(at.dataframe[0].value["kind"]) == {"RM", "gold"}  # the rewards tab's summary
    assert len(at.get("plotly_chart")) == 2  # raw and normalised rewards
    _open_tab(at, "Compare checkpoints")
    assert at.select_slider(key="lab_other_epoch").value == 1
    _open_tab(at, "Sweeps")
    fig = at.get("plotly_chart")[0].proto.spec
    assert "mean RM score" in fig and "mean gold score" in fig  # separate panels


def test_ppo_checkpoint_is_pickable(monkeypatch, fake_world_data_dir, tmp_path):
    from engine.models import attach_lora, load_causal_lm

    base = load_causal_lm(str(fake_world_data_dir / "world" / "sft" / "epoch-1"), device="cpu")
    checkpoint = tmp_path / "runs" / "r1" / "checkpoints" / "step-4"
    attach_lora(base.model, r=2).save_pretrained(checkpoint)
    (checkpoint / "trainer_state.json").write_text("{}")  # what makes a checkpoint complete
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(fake_world_data_dir))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["lab_n"] = 4
    at.run()
    at.radio(key="lab_model_kind").set_value("PPO checkpoint").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="lab_model_checkpoint").value == "r1 / step 4"
    assert at.dataframe[0].value["these settings"].notna().all()
