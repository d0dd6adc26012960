"""Nothing leaves the machine: a real browser walks every page (the shipped world and demo runs where
built, the store's fixture runs) and records every request the pages make; any host but the app's own
fails the test (a page icon from fonts.gstatic.com once did, 16 requests per walk)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from browser_app import serve_app
from test_browser import _url_path, _wait_until_idle
from test_browser import browser as browser  # noqa: F401 (the module's Chromium fixture)

from workbench.navigation import available_pages

pytestmark = pytest.mark.browser

LOCAL_SCHEMES = ("data", "blob", "about")  # answered inside the browser, no request leaves it


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from store_fixture import build_store

    runs = build_store(tmp_path_factory.mktemp("runs"))
    with serve_app({"WORKBENCH_RUNS_DIR": str(runs)}, tmp_path_factory.mktemp("streamlit")) as url:
        yield url


def foreign_requests(urls: list[str], app_url: str) -> list[str]:
    """The requested URLs whose host is not the app's (URLs the browser answers itself aside)."""
    own = urlsplit(app_url).hostname
    return [u for u in urls if urlsplit(u).scheme not in LOCAL_SCHEMES and urlsplit(u).hostname != own]


def test_foreign_requests_are_told_apart_from_the_apps_own():
    app = "http://127.0.0.1:8501"
    urls = [f"{app}/static/x.js", "ws://127.0.0.1:8501/_stcore/stream", "data:image/svg+xml,<svg/>",
            "https://fonts.gstatic.com/s/i/short-term/release/materialsymbolsrounded/home/default/24px.svg"]  # fmt: skip
    assert foreign_requests(urls, app) == [urls[-1]]


def test_a_walk_through_every_page_asks_no_other_host(browser, app_url):
    requested: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.on("request", lambda request: requested.append(request.url))
    context.on("page", lambda page: page.on("websocket", lambda ws: requested.append(ws.url)))
    try:
        for spec in available_pages():
            page = context.new_page()
            page.goto(f"{app_url}/{_url_path(spec)}")
            _wait_until_idle(page)
            assert page.locator('[data-testid="stSidebarNav"]').count() == 1, spec.file
            page.close()
    finally:
        context.close()
    assert any(urlsplit(u).hostname == urlsplit(app_url).hostname for u in requested)  # it did record
    assert foreign_requests(requested, app_url) == []
