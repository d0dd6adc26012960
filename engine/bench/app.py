"""``python -m engine bench app``: how fast the app answers in a real browser, against a bare Streamlit app.

Starts ``streamlit run workbench/app.py`` cold on an empty runs directory (so the pages show the
shipped demo runs, as on a fresh clone) and drives Debian's Chromium through Playwright:

- ``cold_start_s``: from starting the server to the first page's last change (content rendered, its
  script run finished, then 1 s with nothing changing); ``health_s``: to ``/_stcore/health`` answering. The baseline
  ``baseline_cold_start_s`` / ``baseline_health_s`` is the same for a one-line Streamlit app, in the same run.
- ``pages_s``: per page, from the click on its sidebar link to the page's last change (its own title
  shown, no script run, then 1 s with nothing changing); every page is opened once, then
  ``--repeats`` more times.
- ``lab_slider_s``: in the sampling lab, from a slider's key press to the coloured tokens changing;
  ``--model smollm2`` picks the real chat model first (``lab_first_batch_s``: from that click to its
  first samples shown), so the notches are SmolLM2's (goal: under 3 s on 2 cores).

Needs playwright (the test extra) and ``/usr/bin/chromium`` (``scripts/setup.sh --test``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from engine.bench.browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_healthy
from engine.config import ConfigError
from engine.paths import REPO_ROOT

TOKENS_JS = (
    "() => Array.from(document.querySelectorAll('span[title*=\"sampling entropy\"]'))"
    ".map(s => s.textContent).join('|')"
)
BARE_APP = "import streamlit as st\nst.title('bare')\n"
# The sampling lab's sliders moved, and the key that moves each one notch.
LAB_SLIDERS = (("Temperature", "ArrowRight"), ("Top-p", "ArrowLeft"), ("Temperature", "ArrowLeft"))
LAB_MODELS = ("world", "smollm2")  # --model: the lab page's default model, or the real chat model
REAL_MODEL_RADIO = "Real chat model"  # the lab's model picker choice for smollm2 (workbench.lab_inputs.REAL)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=2, help="timed visits of each page after the first")
    parser.add_argument("--notches", type=int, default=3, help="key presses per lab slider")
    parser.add_argument(
        "--model",
        choices=LAB_MODELS,
        default="world",
        help="the lab's model for the slider notches: the built-in world's SFT model, or the real chat "
        "model smollm2 (SmolLM2-135M-Instruct, converted once into the local cache first)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


# Installed in the page: the epoch time (ms) of the last change to the rendered app, so "done" is when
# the page stopped changing, not when a poll happened to look.
WATCH_JS = """() => {
  if (window.__lastChange === undefined) {
    window.__lastChange = performance.timeOrigin + performance.now();
    new MutationObserver(() => { window.__lastChange = performance.timeOrigin + performance.now(); })
      .observe(document.body, {subtree: true, childList: true, characterData: true});
  }
}"""
TITLE_JS = (
    "() => (document.querySelector('[data-testid=\"stMainBlockContainer\"] h1') || {}).textContent || ''"
)


def _settled(
    page, since: float, old_title: str | None = None, timeout_s: float = 120, quiet_s: float = 1.0
) -> float:
    """Seconds from ``since`` (epoch seconds) to the page's last change, once the page shows a title
    (other than ``old_title``), no script run is in progress and nothing has changed for ``quiet_s``."""
    page.evaluate(WATCH_JS)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        title = page.evaluate(TITLE_JS)
        busy = (
            not title
            or title == old_title
            or page.locator('[data-testid="stStatusWidget"]').count() > 0
            or page.locator('[data-testid="stAppSkeleton"]').count() > 0
        )
        last = page.evaluate("() => window.__lastChange") / 1000
        if not busy and time.time() - last > quiet_s:
            if page.locator('[data-testid="stException"]').count():
                text = page.locator('[data-testid="stException"]').first.inner_text()[:500]
                raise ConfigError(f"{page.url} shows an exception: {text}")
            return max(last - since, 0.0)
        time.sleep(0.05)
    raise ConfigError(f"{page.url} still running after {timeout_s} s")


def _cold_start(browser, script: Path, env: dict[str, str], log_dir: Path) -> dict:
    log_path = log_dir / f"{script.stem}.log"
    with streamlit_server(script, env, log_path) as (url, start, process):
        wait_healthy(url, process, log_path)
        health = time.time() - start
        page = browser.new_page(viewport={"width": 1500, "height": 1400})
        page.goto(url)
        done = _settled(page, start)
        page.close()
    return {"health_s": round(health, 3), "cold_start_s": round(done, 3)}


def _pages(browser, url: str, repeats: int) -> dict[str, dict[str, float]]:
    """Seconds from a sidebar click to each page settled: the first visit and the median of the later ones."""
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(url)
    _settled(page, time.time())
    links = page.locator('[data-testid="stSidebarNav"] a')
    # href -> title (a link's text is its icon's name, then the title)
    titles = {
        links.nth(i).get_attribute("href"): links.nth(i).inner_text().strip().splitlines()[-1]
        for i in range(links.count())
    }
    visits: dict[str, list[float]] = {title: [] for title in titles.values()}
    for _ in range(1 + repeats):
        for href, title in titles.items():
            here = page.url.rstrip("/") == href.rstrip("/")  # a click on the page already shown reruns it
            old_title = None if here else page.evaluate(TITLE_JS)
            since = time.time()
            page.locator(f'[data-testid="stSidebarNav"] a[href="{href}"]').click()
            visits[title].append(_settled(page, since, old_title))
    page.close()
    return {
        title: {
            "first_s": round(times[0], 3),
            "median_after_s": round(statistics.median(times[1:] or times), 3),
        }
        for title, times in visits.items()
    }


def _tokens_changed(page, before: str, timeout_s: float) -> None:
    """Wait until the lab's coloured tokens are shown and differ from ``before``."""
    page.wait_for_function(
        f"(before) => ({TOKENS_JS})() !== before && ({TOKENS_JS})() !== ''",
        arg=before, timeout=timeout_s * 1000, polling=10,
    )  # fmt: skip


def _lab_sliders(browser, url: str, notches: int, model: str = "world") -> tuple[list[float], float | None]:
    """(seconds from each slider key press to the tokens changing, seconds from picking the real model
    to its first samples shown: loading it and sampling at the settings and at T=1; None for the world)."""
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(f"{url}/sampling_lab")
    _settled(page, time.time())
    page.wait_for_function(f"() => ({TOKENS_JS})() !== ''", timeout=120_000)
    first = None
    if model != "world":
        before = page.evaluate(TOKENS_JS)
        start = time.perf_counter()
        page.get_by_text(REAL_MODEL_RADIO).click()
        _tokens_changed(page, before, timeout_s=300)
        _settled(page, time.time())
        first = round(time.perf_counter() - start, 3)
    times = []
    for label, key in LAB_SLIDERS:
        for _ in range(notches):
            before = page.evaluate(TOKENS_JS)
            page.get_by_role("slider", name=label).focus()
            start = time.perf_counter()
            page.keyboard.press(key)
            _tokens_changed(page, before, timeout_s=120)
            times.append(round(time.perf_counter() - start, 3))
            _settled(page, time.time())
    page.close()
    return times, first


def main(args: argparse.Namespace) -> int:
    from engine.models.precision import cpu_kind

    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise ConfigError("bench app needs playwright: `bash scripts/setup.sh --test` installs it") from exc
    if not Path(CHROMIUM).is_file():
        raise ConfigError(
            f"bench app needs {CHROMIUM}: `bash scripts/setup.sh --test` installs Debian's chromium"
        )
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp, sync_playwright() as p:
        tmp_path = Path(tmp)
        bare = tmp_path / "bare_app.py"
        bare.write_text(BARE_APP)
        env = {"WORKBENCH_RUNS_DIR": str(tmp_path / "runs")}  # empty: the pages show the demo runs
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        baseline = _cold_start(browser, bare, env, tmp_path)
        app = REPO_ROOT / "workbench" / "app.py"
        cold = _cold_start(browser, app, env, tmp_path)
        with streamlit_server(app, env, tmp_path / "app-warm.log") as (url, _, process):
            wait_healthy(url, process, tmp_path / "app-warm.log")
            try:
                pages = _pages(browser, url, args.repeats)
                sliders, first_batch = _lab_sliders(browser, url, args.notches, args.model)
            except PlaywrightError as exc:  # a page that did not show what the bench waits for
                raise ConfigError(f"bench app: {str(exc).splitlines()[0]}") from None
        browser.close()
    result = {
        **cold,
        "baseline_health_s": baseline["health_s"],
        "baseline_cold_start_s": baseline["cold_start_s"],
        "pages_s": pages,
        "slowest_page_after_first_s": max(v["median_after_s"] for v in pages.values()),
        "lab_model": args.model,
        "lab_first_batch_s": first_batch,
        "lab_slider_s": sliders,
        "lab_slider_median_s": statistics.median(sliders),
        "lab_slider_max_s": max(sliders),
        "cpu": cpu_kind(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0
