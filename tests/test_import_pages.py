"""AppTest: the Import page end to end, and every analysis page on an imported run that has no
gold, no KL and no per-token data (pages degrade, never break)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from engine.importers import import_run
from engine.paths import REPO_ROOT
from workbench.navigation import PAGES_DIR

ANALYSIS_PAGES = ("reward_densities", "rollout_browser", "failure_modes", "rm_accuracy")


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(REPO_ROOT / "pages" / f"{name}.py"), default_timeout=60)


def _jsonl(path, n_steps=3):
    lines = [
        {"step": s, "prompt": f"prompt {i % 3}", "response": f"answer {s} {i}", "reward": float(i % 4) + s}
        for s in range(n_steps)
        for i in range(12)
    ]
    path.write_text("".join(json.dumps(o) + "\n" for o in lines))
    return path


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_import_page_previews_imports_and_links(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    source = _jsonl(tmp_path / "my-run.jsonl")
    at = AppTest.from_file(str(REPO_ROOT / "workbench" / "app.py"), default_timeout=60).run()
    at.switch_page(str(PAGES_DIR / "import_run.py")).run()  # through the app: st.page_link needs its pages
    assert not at.exception, at.exception
    at.selectbox(key="import_format").set_value("jsonl")
    at.text_input(key="import_path").set_value(str(source)).run()
    assert not at.exception and not _errors(at), (at.exception, _errors(at))
    assert len(at.dataframe) >= 1  # the staged preview
    assert at.text_input(key="import_run_id").value == "import-my-run"
    at.button(key="import_go").click().run()
    assert not at.exception and not _errors(at), (at.exception, _errors(at))
    assert "Imported 36 rows" in at.success[0].value
    assert (tmp_path / "runs" / "import-my-run" / "run.json").is_file()
    assert at.session_state["browser_run"] == "import-my-run"
    # a second import under the same id is refused with a message, not a traceback
    at.button(key="import_go").click().run()
    assert not at.exception
    assert any("already exists" in e for e in _errors(at))


def test_import_page_bad_path_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    at = _page("import_run")
    at.run()
    at.selectbox(key="import_format").set_value("verl")
    at.text_input(key="import_path").set_value(str(tmp_path / "missing")).run()
    assert not at.exception
    assert any("does not exist" in e for e in _errors(at))


@pytest.fixture()
def imported_env(monkeypatch, tmp_path):
    runs = tmp_path / "runs"
    import_run("jsonl", _jsonl(tmp_path / "ext.jsonl"), runs_dir=runs, run_id="ext")
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(runs))
    return runs


@pytest.mark.parametrize("name", ANALYSIS_PAGES)
def test_analysis_pages_render_an_imported_run(imported_env, name):
    at = _page(name)
    at.run()
    assert not at.exception, at.exception
    assert not _errors(at), _errors(at)


def test_rollout_browser_says_how_to_get_token_signals(imported_env):
    at = _page("rollout_browser")
    at.run()
    assert not at.exception, at.exception
    assert any("python -m engine import signals ext" in i.value for i in at.info)
