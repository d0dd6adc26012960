"""AppTest of the app shell and the home page."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from engine.paths import REPO_ROOT
from workbench.navigation import PAGES, PAGES_DIR, available_pages

APP = str(REPO_ROOT / "workbench" / "app.py")


def test_every_page_on_disk_is_in_the_navigation():
    listed = {spec.file for spec in PAGES}
    on_disk = {p.name for p in PAGES_DIR.glob("*.py")}
    assert on_disk <= listed, f"pages missing from workbench/navigation.py: {sorted(on_disk - listed)}"
    assert {spec.file for spec in available_pages()} == on_disk


def test_home_without_world_says_how_to_build(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "PPO Entropy Workbench"
    assert any("python -m engine world build" in c.value for c in at.code)
    assert "entropy reduction" in at.markdown[0].value


def test_home_with_world():
    from engine.paths import world_dir

    if not (world_dir() / "world.json").is_file():
        pytest.skip("the built-in world is not built (python -m engine world build)")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert not at.warning
    labels = [m.label for m in at.metric]
    assert "Prompt families" in labels and "SFT epochs" in labels
    assert len(at.dataframe) == 1
