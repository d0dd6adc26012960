"""Real-browser flows of the analysis pages on a fresh clone's view: an empty runs directory and the
shipped demo runs. Every analysis page renders content and no exception box; the rollout browser's
highest-variance row is clicked and its samples appear. Screenshots: ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from browser_app import serve_app
from test_browser import PAGE_TIMEOUT_S, _check_and_shoot, _open, _wait_until_idle
from test_browser import browser as browser  # noqa: F401 (the module's Chromium fixture)

from engine.paths import REPO_ROOT, world_dir

pytestmark = pytest.mark.browser

# page stem -> what must be on it (a test id that only appears with real content)
PAGES = {
    "": "stMetric",  # home
    "reward_densities": "stPlotlyChart",
    "rollout_browser": "stDataFrame",
    "entropy_dynamics": "stPlotlyChart",
    "failure_modes": "stPlotlyChart",
    "rm_accuracy": "stPlotlyChart",
    "sft_epochs": "stPlotlyChart",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the built-in world (linked) and two demo runs: a synthetic PPO-like run and a
    small run with per-token advantages (for the covariance views)."""
    from test_entropy_dynamics import build_run

    data = tmp_path_factory.mktemp("data")
    if world_dir().is_dir():
        (data / "world").symlink_to(world_dir())
    demo = data / "demo_runs"
    synth = [sys.executable, "-m", "engine", "store", "synth", "--runs-dir", str(demo), "--name", "demo-ppo"]
    subprocess.run([*synth, "--steps", "10", "--prompts", "24", "--samples", "8", "--tokens", "12"], check=True,
                   cwd=REPO_ROOT, capture_output=True)  # fmt: skip
    build_run(demo / "demo-dynamics")
    return data


@pytest.fixture(scope="module")
def app_url(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    empty = tmp_path_factory.mktemp("empty-runs")
    with serve_app(
        {"WORKBENCH_RUNS_DIR": str(empty), "WORKBENCH_DATA_DIR": str(data_dir)},
        tmp_path_factory.mktemp("streamlit"),
    ) as url:
        yield url


def _wait_for_tokens(page, timeout_s: float = PAGE_TIMEOUT_S) -> None:
    """The samples' token boxes appear: waited for, not counted once, because on a loaded 2-core
    machine the switched-to page can still be running after the status widget's quiet spell."""
    page.locator("span[title^='token']").first.wait_for(timeout=timeout_s * 1000)


def _wait_for_charts(page, timeout_s: float = 30) -> None:
    """Plotly draws after the script run ends: wait until every chart has its SVG."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        charts = page.locator('[data-testid="stPlotlyChart"]').count()
        if page.locator('[data-testid="stPlotlyChart"] .main-svg').count() >= charts:
            break
        time.sleep(0.25)
    time.sleep(1.0)  # the dataframes' canvases


@pytest.mark.parametrize("stem", list(PAGES), ids=lambda s: s or "home")
def test_analysis_page_renders_on_demo_runs(browser, app_url, stem):  # noqa: F811
    page = _open(browser, f"{app_url}/{stem}")
    try:
        _wait_for_charts(page)
        _check_and_shoot(page, f"analysis-{stem or 'home'}")
        assert page.locator(f'[data-testid="{PAGES[stem]}"]').count() > 0, f"{stem}: no content"
        if stem not in ("", "sft_epochs"):
            assert page.get_by_text("demo runs", exact=False).count() > 0  # labelled as demo runs
    finally:
        page.close()


def test_click_the_highest_variance_row_opens_its_samples(browser, app_url, data_dir):  # noqa: F811
    from engine.store import rank_prompts

    ranked = rank_prompts(data_dir / "demo_runs" / "demo-ppo", "gold_var", limit=200)
    top, other = ranked["prompt_id"].iloc[0], ranked["prompt_id"].iloc[-1]
    # open on another prompt (a deep link), then click the top row of the ranking
    page = _open(browser, f"{app_url}/rollout_browser?run=demo-ppo&prompt={other}&ranking=gold_var")
    try:
        assert page.get_by_text(f"Prompt {other}", exact=False).count() > 0
        grid = page.locator('[data-testid="stDataFrame"]').first
        box = grid.bounding_box()
        page.mouse.click(box["x"] + 16, box["y"] + 35 + 17)  # the first row's selection marker
        _wait_until_idle(page)
        assert parse_qs(urlparse(page.url).query)["prompt"] == [top]
        assert page.get_by_text(f"Prompt {top}", exact=False).count() > 0
        _wait_for_tokens(page)  # its samples' token boxes
        _wait_for_charts(page)
        _check_and_shoot(page, "analysis-rollout_browser-clicked")
    finally:
        page.close()


def test_home_door_opens_the_browser_on_the_demo_runs_top_prompt(browser, app_url):  # noqa: F811
    page = _open(browser, app_url)
    try:
        page.get_by_text("Open the highest-variance prompt").click()
        _wait_until_idle(page)
        assert "rollout_browser" in page.url and "prompt=" in page.url
        _wait_for_tokens(page)
        _check_and_shoot(page, "analysis-home-door")
    finally:
        page.close()
