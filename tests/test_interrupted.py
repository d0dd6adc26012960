"""A killed job is "interrupted" on every page that shows a run's state (one definition: the runs
layer's effective state), never "running" on one page and "interrupted" on another."""

from __future__ import annotations

import json
import time

import pytest
from store_fixture import build_store
from streamlit.testing.v1 import AppTest

from engine.paths import REPO_ROOT
from engine.runs import effective_state

# page -> the run-picker key it uses (None: the page lists runs without a picker)
PAGES = {
    "home": None,
    "runs": "runs_pick",
    "reward_densities": "densities_run",
    "rollout_browser": "browser_run",
    "failure_modes": "failures_runs",
    "rm_accuracy": "rm_runs",
    "entropy_dynamics": "entropy_run",
}


@pytest.fixture()
def killed_run(monkeypatch, tmp_path):
    """The fixture store, with run alpha's job killed: its status says running, no process owns it."""
    runs = build_store(tmp_path / "runs")
    status = {"state": "running", "step": 2, "steps": 10, "pid": 999_999, "heartbeat": time.time() - 60}
    (runs / "alpha" / "status.json").write_text(json.dumps(status))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(runs))
    assert effective_state(runs / "alpha") == "interrupted"
    return runs


def _everything_shown(at: AppTest) -> str:
    parts = [str(e.value) for e in (*at.markdown, *at.caption, *at.info, *at.warning, *at.subheader)]
    for box in (*at.selectbox, *at.multiselect, *at.radio):
        parts += [str(o) for o in box.options]
    for frame in at.dataframe:
        parts.append(frame.value.to_string())
    return "\n".join(parts)


@pytest.mark.parametrize("page", PAGES)
def test_a_killed_job_reads_interrupted(killed_run, page):
    at = AppTest.from_file(str(REPO_ROOT / "pages" / f"{page}.py"), default_timeout=120)
    at.run()
    key = PAGES[page]
    if key is not None and key in at.session_state:
        at.session_state[key] = ["alpha"] if page == "failure_modes" or page == "rm_accuracy" else "alpha"
        at.run()
    assert not at.exception, at.exception
    shown = _everything_shown(at)
    alpha_lines = [line for line in shown.splitlines() if "alpha" in line or "state:" in line]
    assert "interrupted" in shown, page
    assert not any("running" in line for line in alpha_lines), (page, alpha_lines)
