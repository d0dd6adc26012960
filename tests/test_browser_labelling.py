"""Labelling in a real browser: label 5 pairs on the Rollout browser (keys and buttons), reload the
page, and the 5 are still there (the count says 5, the labels file holds 5 rows). Screenshots of the
flow land in ``test-artifacts/screenshots/labelling-*.png`` for a human to look at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_app import serve_app
from store_fixture import rollout_row
from test_browser import SCREENSHOTS, _open, _wait_until_idle, browser  # noqa: F401  (browser: a fixture)

from engine.runs.labels import read_labels
from engine.store import RunWriter

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run ``lab``: one prompt, 5 different samples at step 0 (10 pairs), per-token entropy logged."""
    runs = tmp_path_factory.mktemp("runs")
    writer = RunWriter.create(runs / "lab", kind="ppo", config={}, seed=0, source="fixture")
    answers = ["two plus two is four", "four", "it is 5", "the answer : 4", "I think four ."]
    rows = [
        rollout_row("p", "math", "what is 2 + 2 ?", i, text.split(), [0.2 + 0.4 * t for t in range(len(text.split()))],
                    reward=float(i), gold=float(i % 2), kl=0.1, has_eos=True)
        for i, text in enumerate(answers)
    ]  # fmt: skip
    writer.write_rollouts(0, rows)
    return runs


@pytest.fixture(scope="module")
def app_url(runs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_app({"WORKBENCH_RUNS_DIR": str(runs_dir)}, tmp_path_factory.mktemp("streamlit")) as url:
        yield url


def _count(page) -> int:
    text = page.get_by_text(re.compile(r"labelled for run lab")).first.inner_text()
    return int(re.match(r"\s*(\d+) pairs? labelled", text).group(1))


def _shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"labelling-{name}.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_label_five_pairs_reload_and_they_are_there(browser, app_url, runs_dir):  # noqa: F811
    page = _open(browser, f"{app_url}/rollout_browser?run=lab&prompt=p&step=0")
    try:
        assert _count(page) == 0
        _shoot(page, "1-start")
        # Two by key (A, B), three by button: the keys are Streamlit's button shortcuts.
        for n, action in enumerate(("key:a", "key:b", "A better", "tie", "skip"), start=1):
            if action.startswith("key:"):
                page.keyboard.press(action[4:])
            else:
                page.get_by_role("button", name=re.compile(f"^{action}")).click()
            page.wait_for_function(
                "n => [...document.querySelectorAll('p')].some(p => p.innerText.startsWith(n + ' pair'))",
                arg=str(n),
                timeout=60_000,
            )
            _wait_until_idle(page)
            assert _count(page) == n
            if n == 2:
                _shoot(page, "2-after-two")
        page.reload()
        _wait_until_idle(page)
        assert _count(page) == 5
        _shoot(page, "3-after-reload")
    finally:
        page.close()
    labels = read_labels(runs_dir / "lab")
    assert [r["label"] for r in labels] == ["a", "b", "a", "tie", "skip"]
    assert len({frozenset((r["response_a"], r["response_b"])) for r in labels}) == 5  # 5 different pairs
