"""Real-browser smoke test: start the app, open every page in Chromium, fail on any exception box.

Full-page screenshots land in ``test-artifacts/screenshots/`` (gitignored) for a human to look at.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_app import serve_app

from engine.bench.browser import CHROMIUM, CHROMIUM_ARGS
from engine.paths import REPO_ROOT, world_dir
from workbench.navigation import PageSpec, available_pages

pytestmark = pytest.mark.browser

SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
PAGE_TIMEOUT_S = 120

if not Path(CHROMIUM).is_file():
    pytest.skip(
        f"{CHROMIUM} is absent (scripts/setup.sh --test installs Debian's chromium)", allow_module_level=True
    )
playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store's small fixture runs, so the analysis pages have something to show."""
    from store_fixture import build_store

    return build_store(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def app_url(runs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_app({"WORKBENCH_RUNS_DIR": str(runs_dir)}, tmp_path_factory.mktemp("streamlit")) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _wait_until_idle(page, timeout_s: float = PAGE_TIMEOUT_S) -> None:
    """Wait for the script run to finish: the app is rendered and no "Running..." widget for 1.5 s."""
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        skeleton = page.locator('[data-testid="stAppSkeleton"]').count() > 0
        if running or skeleton:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1.5:
            return
        time.sleep(0.25)
    raise AssertionError(f"page still running after {timeout_s} s")


def _open(browser, url: str):
    # Streamlit scrolls inside its own container, so a full-page shot only shows the viewport: make it tall.
    page = browser.new_page(viewport={"width": 1500, "height": 2200})
    page.goto(url)
    _wait_until_idle(page)
    return page


def _check_and_shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{name}: {exceptions.first.inner_text()[:2000]}"


def _url_path(spec: PageSpec) -> str:
    return "" if spec.file == "home.py" else Path(spec.file).stem


@pytest.mark.parametrize("spec", available_pages(), ids=lambda s: Path(s.file).stem)
def test_page_renders_without_exception(browser, app_url, spec):
    page = _open(browser, f"{app_url}/{_url_path(spec)}")
    try:
        assert page.locator('[data-testid="stSidebarNav"]').count() == 1
        _check_and_shoot(page, Path(spec.file).stem)
    finally:
        page.close()


def test_sampling_lab_colours_tokens(browser, app_url, tmp_path_factory):
    """The lab on a model: tiny local GPT-2 without the world, else the world's default checkpoint."""
    page = _open(browser, f"{app_url}/sampling_lab")
    try:
        if not (world_dir() / "world.json").is_file():
            from tiny_models import save_tiny

            model_dir = save_tiny(tmp_path_factory.mktemp("tiny"))
            page.get_by_role("textbox", name="Model name or path").fill(str(model_dir))
            page.get_by_role("textbox", name="Model name or path").press("Enter")
            _wait_until_idle(page)
            prompts = page.get_by_role("textbox", name="Prompts, one per line")
            prompts.fill("w1 w2 w3\nw7 w8")
            prompts.press("Control+Enter")
            _wait_until_idle(page)
        # The tokens appear when sampling ends, which can come after the page first looks idle (the
        # lab shows its progress bar only past 0.5 s): wait for them rather than for idleness alone.
        page.wait_for_selector('span[title*="sampling entropy"]', timeout=PAGE_TIMEOUT_S * 1000)
        assert page.locator('span[title*="sampling entropy"]').count() > 10  # coloured tokens with hover text
        _check_and_shoot(page, "sampling_lab_with_model")
        for tab in ("Rewards", "Sweeps"):
            page.get_by_role("tab", name=tab).click()
            _wait_until_idle(page)
            _check_and_shoot(page, f"sampling_lab_{tab.lower()}")
    finally:
        page.close()


def test_chromium_is_debian_chromium():
    assert shutil.which("chromium") or Path(CHROMIUM).is_file()
