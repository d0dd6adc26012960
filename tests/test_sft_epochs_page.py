"""AppTest of the SFT epochs page on the stand-in world: sampling every epoch, the report, the hand-off."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from engine.paths import REPO_ROOT
from workbench.navigation import PAGES_DIR

APP = str(REPO_ROOT / "workbench" / "app.py")
PAGE = str(PAGES_DIR / "sft_epochs.py")


@pytest.fixture
def page(fake_world_data_dir, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(fake_world_data_dir))
    (fake_world_data_dir / "world" / "epoch_samples.parquet").unlink(missing_ok=True)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(PAGE).run()
    return at


def test_samples_every_epoch_then_shows_the_report(page):
    assert not page.exception
    assert any("not computed yet" in i.value for i in page.info)
    page.button[0].click().run()
    assert not page.exception
    labels = [m.label for m in page.metric]
    assert "Entropy, SFT-train prompts" in labels and "Best-of-8 gold" in labels
    assert len(page.dataframe) == 1 and len(page.dataframe[0].value) == 2  # one row per epoch


def test_normalisation_toggle_and_epoch_choice_rerun(page):
    page.button[0].click().run()
    page.toggle[0].set_value(False).run()
    page.radio[0].set_value("reward").run()
    page.select_slider[0].set_value(1).run()
    assert not page.exception
    assert any("epoch 1" in b.label for b in page.button)


def test_start_ppo_button_hands_the_epoch_to_the_runs_form(page, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path))
    page.button[0].click().run()
    page.select_slider[0].set_value(1).run()
    next(b for b in page.button if "epoch 1" in b.label).click().run()
    assert not page.exception
    assert page.selectbox(key="runs_sft_epoch").value == 1


def test_captions_match_the_figures(page):
    page.button[0].click().run()
    ppo_only = next(m for m in page.metric if m.label == "Entropy, PPO-only prompts")
    assert not ppo_only.proto.delta  # the ratio is said in words, never as an up arrow
    captions = " ".join(c.value for c in page.caption)
    assert "practitioner's note" in captions and "seed measured" not in captions
    assert any(w in captions for w in ("widens", "narrows", "stays about the same"))
    page.radio[0].set_value("gold").run()
    boxes = page.get("plotly_chart")[1].proto.spec
    assert '"y":[-' not in boxes.replace(" ", "")  # normalised gold is never drawn below 0
