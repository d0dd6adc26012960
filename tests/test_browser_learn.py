"""Real-browser walk of the Learn path on a fresh clone's view (an empty runs directory): every step
renders content and no exception box, its "try it" slider changes the page, and Next walks to the
following step. The shipped demo runs are used where they exist, stand-ins (tests/learn_fixture.py)
otherwise. Screenshots: ``test-artifacts/screenshots/learn-*.png``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser_app import serve_app
from learn_fixture import RUN_IDS, build_demo_runs
from test_browser import _check_and_shoot, _open, _wait_until_idle
from test_browser import browser as browser  # noqa: F401 (the module's Chromium fixture)
from test_browser_analysis import _wait_for_charts

from engine.paths import demo_runs_dir, real_dir, world_dir
from workbench.learn import STEPS

pytestmark = pytest.mark.browser

# step key -> the label of the slider its "try it" moves (the other steps' controls are picks)
SLIDERS = {
    "space": "Try it: temperature",
    "epochs": "Try it: SFT epoch",
    "reduction": "Try it: step k",
    "rm": "Try it: steps",
}


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not world_dir().is_dir():
        pytest.skip("the built-in world is not built (python -m engine world build)")
    data = tmp_path_factory.mktemp("data")
    (data / "world").symlink_to(world_dir())
    (data / "real").symlink_to(real_dir())  # the real model's step reads SmolLM2's runs and tasks
    (data / "demo_runs").mkdir()
    run_ids = (
        *RUN_IDS,
        "demo-grpo",
        "demo-kl0-refresh",
        "demo-smollm2",
        "demo-smollm2-checker",
    )  # shown by steps
    missing = tuple(r for r in run_ids if not (demo_runs_dir() / r / "run.json").is_file())
    build_demo_runs(data / "demo_runs", missing)
    for run_id in set(run_ids) - set(missing):
        (data / "demo_runs" / run_id).symlink_to(demo_runs_dir() / run_id)
    env = {"WORKBENCH_RUNS_DIR": str(tmp_path_factory.mktemp("empty-runs")), "WORKBENCH_DATA_DIR": str(data)}
    with serve_app(env, tmp_path_factory.mktemp("streamlit")) as url:
        yield url


def _move_slider(page, label: str) -> None:
    """Two notches right on the slider ``label`` (its first thumb; keyboard, as a user would)."""
    slider = page.get_by_role("slider", name=label).first
    slider.focus()
    slider.press("ArrowRight")
    slider.press("ArrowRight")
    _wait_until_idle(page)


def test_walk_every_learn_step(browser, app_url):  # noqa: F811
    page = _open(browser, f"{app_url}/learn")
    page.set_viewport_size({"width": 1500, "height": 4000})  # the longest step in one shot
    try:
        for n, step in enumerate(STEPS, start=1):
            assert page.get_by_role("heading", name=step.title).count() == 1, step.key
            _wait_for_charts(page)
            _check_and_shoot(page, f"learn-{n}-{step.key}")
            content = page.locator('[data-testid="stPlotlyChart"], span[title^="token"]')
            assert content.count() > 0, f"{step.key}: no figure"
            if step.key in SLIDERS:
                before = page.locator('[data-testid="stMain"]').inner_text()
                _move_slider(page, SLIDERS[step.key])
                _wait_for_charts(page)
                assert page.locator('[data-testid="stMain"]').inner_text() != before, f"{step.key}: no change"
                _check_and_shoot(page, f"learn-{n}-{step.key}-tried")
            if n < len(STEPS):
                page.get_by_role("button", name="Next →").click()
                _wait_until_idle(page)
        assert f"lesson={STEPS[-1].key}" in page.url
    finally:
        page.close()
