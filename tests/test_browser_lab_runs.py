"""Real-browser flows of the Sampling lab and the Runs page (an empty runs directory, the built-in
world): the lab's sliders change the tokens (slider-to-tokens time printed, not asserted); a tiny PPO
run is launched from the Runs page, appears live, is stopped and resumed.
Screenshots: ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_app import serve_app
from test_browser import _check_and_shoot, _open, _wait_until_idle, new_page
from test_browser import browser as browser  # noqa: F401 (the module's Chromium fixture)

from engine.paths import world_dir

pytestmark = pytest.mark.browser

if not (world_dir() / "world.json").is_file():
    pytest.skip("the built-in world is not built (python -m engine world build)", allow_module_level=True)

TOKENS_JS = "() => Array.from(document.querySelectorAll('span[title*=\"sampling entropy\"]')).map(s => s.textContent).join('|')"


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def app_url(runs_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        with serve_app({"WORKBENCH_RUNS_DIR": str(runs_root)}, tmp_path_factory.mktemp("streamlit")) as url:
            yield url
    finally:
        from engine.ppo.launch import stop
        from engine.runs import is_live, list_runs

        for run in list_runs(runs_root):  # never leave a job of this test running
            if is_live(run.run_dir):
                stop(run.run_id, root=runs_root)


def _shoot(page, name: str) -> None:
    """A screenshot once every Plotly chart has drawn its SVG (they draw after the script run ends)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        charts = page.locator('[data-testid="stPlotlyChart"]').count()
        if page.locator('[data-testid="stPlotlyChart"] .main-svg').count() >= charts:
            break
        time.sleep(0.25)
    time.sleep(0.5)
    _check_and_shoot(page, name)


def _slider(page, label: str):
    return page.get_by_role("slider", name=label)


def _notch(page, label: str, key: str = "ArrowRight") -> float:
    """Move a slider one notch; seconds from the key press until the token boxes change."""
    before = page.evaluate(TOKENS_JS)
    _slider(page, label).focus()
    start = time.perf_counter()
    page.keyboard.press(key)
    page.wait_for_function(f"(before) => ({TOKENS_JS})() !== before && ({TOKENS_JS})() !== ''", arg=before,
                           timeout=60_000, polling=20)  # fmt: skip
    elapsed = time.perf_counter() - start
    _wait_until_idle(page)
    return elapsed


def test_lab_sliders_change_the_tokens(browser, app_url):  # noqa: F811
    page = _open(browser, f"{app_url}/sampling_lab")
    try:
        assert page.locator('span[title*="sampling entropy"]').count() > 10  # the world's default model
        _shoot(page, "lab-01-default")
        times = {}
        for label, key in (("Temperature", "ArrowRight"), ("Top-p", "ArrowLeft"), ("Min-p", "ArrowRight")):
            times[label] = [_notch(page, label, key)]  # one notch each: the suite is near its 15 minutes
        _shoot(page, "lab-02-after-sliders")
        flat = [t for ts in times.values() for t in ts]
        print(
            f"\nslider-to-tokens seconds: {times}; median {statistics.median(flat):.2f}, max {max(flat):.2f}"
        )
        assert page.get_by_text("Min-p").count() > 0
        for tab, name in (
            ("Forking tokens", "lab-03-forking"),
            ("Rewards", "lab-04-rewards"),
            ("Sweeps", "lab-05-sweeps"),
            ("Compare checkpoints", "lab-06-compare"),
        ):
            page.get_by_role("tab", name=tab).click()
            _wait_until_idle(page)
            _shoot(page, name)
        # leave the page and come back: the settings are kept
        temperature = _slider(page, "Temperature").get_attribute("aria-valuenow")
        page.goto(f"{app_url}/teaching")
        _wait_until_idle(page)
        page.get_by_role("link", name="Sampling lab").first.click()
        _wait_until_idle(page)
        assert _slider(page, "Temperature").get_attribute("aria-valuenow") == temperature
    finally:
        page.close()


def _fill_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def _caption_state(page) -> str:
    return page.locator('[data-testid="stMarkdownContainer"]', has_text="state:").first.inner_text()


def _wait_for(page, predicate, what: str, timeout_s: float = 180) -> str:
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        try:
            text = _caption_state(page)
        except Exception:  # the fragment is redrawing
            text = ""
        if predicate(text):
            return text
        time.sleep(0.5)
    raise AssertionError(f"no {what} after {timeout_s} s; caption: {text!r}")


def test_launch_stop_and_resume_a_tiny_run(browser, app_url, runs_root):  # noqa: F811
    page = new_page(browser, height=3600)  # the open form and the live run
    page.goto(f"{app_url}/runs")
    _wait_until_idle(page)
    try:
        _shoot(page, "runs-01-empty")
        _fill_number(page, "Steps", 40)
        _fill_number(page, "Prompts per step", 2)
        _fill_number(page, "Samples per prompt", 2)
        _fill_number(page, "Max new tokens", 8)
        page.get_by_text("Advanced settings").click()
        _fill_number(page, "Probe every", 0)
        _fill_number(page, "Save every", 2)
        page.get_by_role("textbox", name="Run id (optional)").fill("browser-tiny")
        page.get_by_role("button", name="Launch run").click()
        # no idle wait while a job is live: the run's panel reruns every 2 s
        page.get_by_text("Started browser-tiny").wait_for(timeout=120_000)
        assert page.get_by_text("Launched anyway").count() >= 1  # 4 responses per step: warned
        text = _wait_for(page, lambda t: "running" in t and "step 0 " not in t, "live step")
        _shoot(page, "runs-02-live")
        page.get_by_role("button", name="Stop this run").click()
        text = _wait_for(page, lambda t: "stopped" in t, "stop")
        stopped_at = int(text.split("step ")[1].split()[0])
        page.reload()
        _wait_until_idle(page)
        _shoot(page, "runs-03-stopped")
        page.get_by_role("button", name="Resume this run").click()
        text = _wait_for(page, lambda t: "running" in t or "finished" in t, "resumed job")
        shown = int(text.split("step ")[1].split()[0])
        assert shown >= stopped_at, f"a resume showed step {shown} after stopping at {stopped_at}"
        text = _wait_for(
            page, lambda t: int(t.split("step ")[1].split()[0]) > stopped_at, "a step after the resume"
        )
        _shoot(page, "runs-04-resumed")
        page.get_by_role("button", name="Stop this run").click()
        _wait_for(page, lambda t: "stopped" in t or "finished" in t, "second stop")
    finally:
        page.close()


def test_demo_run_shows_probe_curves_read_only(browser, app_url):  # noqa: F811
    from engine.runs import list_runs

    demos = [r for r in list_runs(with_demo=True) if r.demo and r.kind == "ppo"]
    if not demos:
        pytest.skip("no shipped demo runs (data/demo_runs)")
    page = new_page(browser, height=2600)
    page.goto(f"{app_url}/runs")
    _wait_until_idle(page)
    try:
        page.get_by_role("combobox").filter(has_text="").last.click()
        page.get_by_role("option", name=f"{demos[0].run_id} (demo)").click()
        _wait_until_idle(page)
        assert page.get_by_text("A shipped demo run: read-only").count() == 1
        assert page.get_by_role("button", name="Stop this run").count() == 0
        assert page.get_by_role("button", name="Resume this run").count() == 0
        _shoot(page, "runs-05-demo")
    finally:
        page.close()
