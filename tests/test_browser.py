"""Real-browser smoke test: start the app, open every page in Chromium, fail on any exception box or
on any request to a host but the app's own (nothing leaves the machine: a page icon from
fonts.gstatic.com once made 16 requests per walk).

Full-page screenshots land in ``test-artifacts/screenshots/`` (gitignored) for a human to look at.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from browser_app import serve_app

from engine.bench.browser import CHROMIUM, CHROMIUM_ARGS
from engine.paths import REPO_ROOT, world_dir
from workbench.navigation import PageSpec, available_pages

pytestmark = pytest.mark.browser

SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
PAGE_TIMEOUT_S = 120
LOCAL_SCHEMES = ("data", "blob", "about")  # answered inside the browser, no request leaves it

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
    """One Chromium per test module and one browser context (a Playwright ``BrowserContext``) for all
    of the module's pages: a page opened in it finds the app's scripts in the HTTP cache, compiled,
    as a user's second tab does (a new context per page costs Chromium a second of CPU per page)."""
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = chromium.new_context()
        yield context
        context.close()
        chromium.close()


def new_page(browser, height: int = 2200):
    """A new tab, 1500 px wide; Streamlit scrolls inside its own container, so a full-page shot only
    shows the viewport: make it as tall as what the test shoots."""
    page = browser.new_page()
    page.set_viewport_size({"width": 1500, "height": height})
    return page


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


def _open(browser, url: str, on_request: Callable[[str], None] | None = None):
    """A new tall page at ``url``, idle; ``on_request`` is told the URL of every request it makes
    (its web socket's included)."""
    page = new_page(browser)
    if on_request is not None:
        page.on("request", lambda request: on_request(request.url))
        page.on("websocket", lambda ws: on_request(ws.url))
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


def foreign_requests(urls: list[str], app_url: str) -> list[str]:
    """The requested URLs whose host is not the app's (URLs the browser answers itself aside)."""
    own = urlsplit(app_url).hostname
    return [u for u in urls if urlsplit(u).scheme not in LOCAL_SCHEMES and urlsplit(u).hostname != own]


def test_foreign_requests_are_told_apart_from_the_apps_own():
    app = "http://127.0.0.1:8501"
    urls = [f"{app}/static/x.js", "ws://127.0.0.1:8501/_stcore/stream", "data:image/svg+xml,<svg/>",
            "https://fonts.gstatic.com/s/i/short-term/release/materialsymbolsrounded/home/default/24px.svg"]  # fmt: skip
    assert foreign_requests(urls, app) == [urls[-1]]


@pytest.mark.parametrize("spec", available_pages(), ids=lambda s: Path(s.file).stem)
def test_page_renders_without_exception_or_asking_another_host(browser, app_url, spec):
    requested: list[str] = []
    page = _open(browser, f"{app_url}/{_url_path(spec)}", on_request=requested.append)
    try:
        assert page.locator('[data-testid="stSidebarNav"]').count() == 1
        # every page reachable, none behind "View more"
        links = page.locator('[data-testid="stSidebarNav"] a')
        assert links.count() == len(available_pages()) and all(
            links.nth(i).is_visible() for i in range(links.count())
        )
        _check_and_shoot(page, Path(spec.file).stem)
    finally:
        page.close()
    assert any(urlsplit(u).hostname == urlsplit(app_url).hostname for u in requested)  # it did record
    assert foreign_requests(requested, app_url) == []


def test_sampling_lab_colours_tokens_on_a_tiny_model_without_the_world(browser, app_url, tmp_path_factory):
    """The lab on a tiny local GPT-2 where the world is not built (with the world, the lab's flows in
    test_browser_lab_runs cover the same tokens and tabs on the world's model)."""
    if (world_dir() / "world.json").is_file():
        pytest.skip("the world is built: test_browser_lab_runs drives the lab on its model")
    from tiny_models import save_tiny

    page = _open(browser, f"{app_url}/sampling_lab")
    try:
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
