"""The bad-input sweep: every page's inputs (deep links, widgets) and the command line, fed values of the
wrong type, unknown ids, empty / huge / non-finite numbers, odd strings and missing files. Whatever the
input, the user sees a message, never a traceback: a page raises nothing and shows no "Traceback"; a
command exits 2 with one ``error:`` line.

Each case is a row of a table (``PAGE_CASES``, ``CLI_CASES``, ``UPLOAD_NAMES``), plus a few named tests
of the faults found (issue 22.10).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from store_fixture import build_store
from streamlit.testing.v1 import AppTest
from test_nonfinite_scores import build_odd_run

import engine.cli as cli
from engine.paths import REPO_ROOT
from workbench.import_widgets import save_upload

HUGE = "x" * 5000
LONG_ID = "r" * 300
ODD = "é²\u202e'\";--%_*\\ <b>{}</b>"  # non-ASCII digits, a right-to-left mark, SQL and markup characters


@dataclass(frozen=True)
class PageCase:
    """``page`` opened with the deep link ``query``, then each widget (kind, key, value) set, then
    ``click`` pressed (a button key), each followed by a rerun."""

    id: str
    page: str
    query: dict[str, str] = field(default_factory=dict)
    widgets: tuple[tuple[str, str, object], ...] = ()
    click: str | None = None


def _links(page: str, *queries: tuple[str, dict[str, str]]) -> list[PageCase]:
    return [PageCase(f"{page}:{name}", page, query) for name, query in queries]


BROWSER_LINKS = _links(
    "rollout_browser",
    ("unknown run", {"run": "nope"}),
    ("long run id", {"run": LONG_ID}),
    ("odd run id", {"run": ODD}),
    ("unknown prompt", {"run": "alpha", "prompt": "nope"}),
    ("huge prompt id", {"run": "alpha", "prompt": HUGE}),
    ("step not a number", {"run": "alpha", "prompt": "p1", "step": "abc"}),
    ("step huge", {"run": "alpha", "prompt": "p1", "step": "9" * 5000}),
    ("step negative", {"run": "alpha", "prompt": "p1", "step": "-1"}),
    ("step unknown", {"run": "alpha", "prompt": "p1", "step": "7"}),
    ("token superscript digit", {"run": "alpha", "prompt": "p1", "token": "²", "sample": "1"}),
    ("sample superscript digit", {"run": "alpha", "prompt": "p1", "token": "1", "sample": "²"}),
    ("token negative", {"run": "alpha", "prompt": "p1", "token": "-1", "sample": "0"}),
    ("token past the end", {"run": "alpha", "prompt": "p1", "token": "99999999", "sample": "0"}),
    ("sample unknown", {"run": "alpha", "prompt": "p1", "token": "0", "sample": "99999"}),
    ("token huge", {"run": "alpha", "prompt": "p1", "token": "9" * 5000, "sample": "0"}),
    ("token nan", {"run": "alpha", "prompt": "p1", "token": "nan", "sample": "inf"}),
    ("unknown ranking", {"run": "alpha", "ranking": "nope"}),
    ("gold ranking on a run without gold", {"run": "beta", "ranking": "gold_var"}),
    ("run without steps", {"run": "empty"}),
    ("non-finite rewards", {"run": "odd", "prompt": "p1", "step": "1"}),
)
BROWSER_WIDGETS = [
    PageCase("rollout_browser:huge search", "rollout_browser", {"run": "alpha"},
             (("text_input", "browser_search", HUGE),)),
    PageCase("rollout_browser:odd search", "rollout_browser", {"run": "alpha"},
             (("text_input", "browser_search", ODD + "\x00"),)),
    PageCase("rollout_browser:search matching nothing", "rollout_browser", {"run": "alpha"},
             (("text_input", "browser_search", "no such text"),)),
]  # fmt: skip
ANALYSIS_LINKS = [
    case
    for page in ("reward_densities", "failure_modes", "rm_accuracy", "entropy_dynamics")
    for case in _links(
        page,
        ("unknown run", {"run": "nope"}),
        ("long run id", {"run": LONG_ID}),
        ("run without steps", {"run": "empty"}),
        ("imported run, one step, no gold", {"run": "beta"}),
        ("non-finite rewards", {"run": "odd"}),
    )
]
ANALYSIS_WIDGETS = [
    *(
        PageCase(f"reward_densities:{value} of a run without it", "reward_densities", {"run": "beta"},
                 (("radio", "densities_value", value),))
        for value in ("gold", "mean_entropy")
    ),
    PageCase("failure_modes:thresholds at their lowest", "failure_modes", {"run": "alpha"},
             (("number_input", "failures_kl", 0.1), ("number_input", "failures_len", 1.1),
              ("number_input", "failures_rep", 0.05), ("number_input", "failures_tail", 1.0))),
    PageCase("failure_modes:thresholds at their highest", "failure_modes", {"run": "odd"},
             (("number_input", "failures_kl", 1000.0), ("number_input", "failures_len", 20.0),
              ("number_input", "failures_rep", 1.0), ("number_input", "failures_tail", 10.0))),
]  # fmt: skip
OTHER_LINKS = [
    *_links("learn", ("unknown lesson", {"lesson": "nope"}), ("huge lesson", {"lesson": HUGE})),
    *_links("home", ("odd query", {"run": ODD, "prompt": HUGE})),
    *_links("runs", ("odd query", {"run": "nope"})),
    *_links("sft_epochs", ("no world", {})),
    *_links("teaching", ("odd query", {"step": "²"})),
]
TEACHING_WIDGETS = [
    PageCase("teaching:sliders at their extremes", "teaching", {},
             (("slider", "SFT sampling-space size (temperature of the SFT model)", 0.1),
              ("slider", "RM loophole (over-rating of a bad answer)", 2.0), ("slider", "KL coefficient", 0.0),
              ("number_input", "Random seed", 999))),
]  # fmt: skip
LAUNCH = "FormSubmitter:runs_form-Launch run"
RUNS_WIDGETS = [
    PageCase("runs:run id with a slash", "runs", {}, (("text_input", "runs_run_id", "../x"),), LAUNCH),
    PageCase("runs:300-character run id", "runs", {}, (("text_input", "runs_run_id", LONG_ID),), LAUNCH),
    PageCase("runs:zero steps", "runs", {}, (("number_input", "runs_steps", 0),), LAUNCH),
    PageCase("runs:negative learning rate", "runs", {}, (("number_input", "runs_learning_rate", -1.0),), LAUNCH),
    PageCase("runs:missing policy", "runs", {}, (("text_input", "runs_policy", "/no/such/model"),), LAUNCH),
]  # fmt: skip
IMPORT_PATHS = [
    ("blank", "   "),
    ("missing file", "{tmp}/missing.jsonl"),
    ("5000-character path", "/" + HUGE),
    ("a directory", "{tmp}"),
    ("not JSON", "{tmp}/garbage.jsonl"),
    ("empty file", "{tmp}/empty.jsonl"),
    ("NUL character", "{tmp}/a\x00b.jsonl"),
    ("odd characters", "{tmp}/" + ODD),
    ("home of nobody", "~nobody-such-user/x.jsonl"),
]
IMPORT_WIDGETS = [
    *(
        PageCase(f"import_run:{fmt} path {name}", "import_run", {},
                 (("selectbox", "import_format", fmt), ("text_input", "import_path", path)))
        for name, path in IMPORT_PATHS
        for fmt in ("jsonl", "verl")
    ),
    *(
        PageCase(f"import_run:run id {name}", "import_run", {},
                 (("selectbox", "import_format", "jsonl"), ("text_input", "import_path", "{tmp}/good.jsonl"),
                  ("text_input", "import_run_id", run_id)), "import_go")
        for name, run_id in (("300 characters", LONG_ID), ("with a slash", "../x"), ("dot", "."),
                             ("blank", "  "), ("odd", ODD))
    ),
]  # fmt: skip
LAB_WIDGETS = [
    PageCase(f"sampling_lab:model {name}", "sampling_lab", {},
             (("text_input", "lab_model_name", model), ("text_area", "lab_typed", "w1 w2")))
    for name, model in (("missing local path", "/no/such/model"), ("5000 characters", HUGE),
                        ("odd characters", ODD), ("blank", "  "))
]  # fmt: skip

PAGE_CASES = [
    *BROWSER_LINKS, *BROWSER_WIDGETS, *ANALYSIS_LINKS, *ANALYSIS_WIDGETS, *OTHER_LINKS, *TEACHING_WIDGETS,
    *RUNS_WIDGETS, *IMPORT_WIDGETS, *LAB_WIDGETS,
]  # fmt: skip


@pytest.fixture()
def runs(monkeypatch, tmp_path) -> Path:
    """The fixture store (alpha, beta, empty) and a run with non-finite rewards (odd); no world, no demo
    runs; a few source files for the Import page."""
    root = build_store(tmp_path / "runs")
    build_odd_run(root)
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(root))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WORKBENCH_THREADS", "1")
    rows = [{"step": 0, "prompt": f"p{i % 2}", "response": f"a{i}", "reward": float(i)} for i in range(4)]
    (tmp_path / "good.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "garbage.jsonl").write_bytes(b"\x00\xff not json {\n")
    (tmp_path / "empty.jsonl").write_text("")
    return root


def assert_no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    for element in (*at.error, *at.warning, *at.info, *at.markdown, *at.caption):
        assert "Traceback" not in str(element.value), element.value


def _set(at: AppTest, kind: str, key: str, value: object, tmp: Path) -> None:
    if isinstance(value, str):
        value = value.replace("{tmp}", str(tmp))
    widgets = getattr(at, kind)
    matches = [w for w in widgets if w.key == key] or [w for w in widgets if w.label == key]
    assert matches, f"no {kind} {key!r} on the page"
    matches[0].set_value(value)
    at.run()
    assert_no_traceback(at)


@pytest.mark.parametrize("case", PAGE_CASES, ids=[c.id for c in PAGE_CASES])
def test_page_inputs_never_show_a_traceback(runs, tmp_path, case):
    at = AppTest.from_file(str(REPO_ROOT / "pages" / f"{case.page}.py"), default_timeout=120)
    for name, value in case.query.items():
        at.query_params[name] = value
    at.run()
    assert_no_traceback(at)
    for kind, key, value in case.widgets:
        _set(at, kind, key, value, tmp_path)
    if case.click is not None:
        at.button(key=case.click).click().run()
        assert_no_traceback(at)
        assert not (runs / "x").exists() and not (tmp_path / "x").exists()  # nothing escaped the runs dir


def test_a_superscript_digit_in_a_deep_link_is_ignored(runs):
    """``?token=²``: ``"²".isdigit()`` holds but ``int("²")`` raises; the link opens the prompt unringed."""
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "rollout_browser.py"), default_timeout=60)
    at.query_params.update({"run": "alpha", "prompt": "p1", "token": "²", "sample": "1"})
    at.run()
    assert_no_traceback(at)
    assert any("Prompt `p1`" in m.value for m in at.markdown)
    assert not any("Ringed" in c.value for c in at.caption)


def test_import_page_shows_file_errors_as_messages(runs, tmp_path):
    """A 5,000-character path and a 300-character run id: the OS refuses the name; the page says so."""
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "import_run.py"), default_timeout=60).run()
    at.selectbox(key="import_format").set_value("jsonl")
    at.text_input(key="import_path").set_value("/" + HUGE).run()
    assert_no_traceback(at)
    assert at.error and "Cannot preview this source" in at.error[0].value
    at.text_input(key="import_path").set_value(str(tmp_path / "good.jsonl")).run()
    at.text_input(key="import_run_id").set_value(LONG_ID).run()
    at.button(key="import_go").click().run()
    assert_no_traceback(at)
    assert at.error and "Import refused" in at.error[0].value and len(at.error[0].value) < 500


def test_runs_page_shows_a_full_disk_as_a_message(runs, monkeypatch):
    """A launch that cannot write its run directory (full disk, read-only) is a message naming it."""
    import errno

    import engine.ppo.launch

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(runs / "new-run"))

    monkeypatch.setattr(engine.ppo.launch, "launch", full)
    monkeypatch.setattr("engine.ppo.build.check_inputs", lambda config: None)  # the form's check passes
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "runs.py"), default_timeout=120).run()
    at.button(key=LAUNCH).click().run()
    assert_no_traceback(at)
    assert any(
        "Could not start the job: No space left on device" in e.value and "new-run" in e.value
        for e in at.error
    )


UPLOAD_NAMES = ["..", ".", "", "  ", "../../escape.jsonl", "/etc/passwd", "a/b/c.jsonl", "x" * 300 + ".jsonl"]


@pytest.mark.parametrize("name", UPLOAD_NAMES, ids=[n[:20] or "empty" for n in UPLOAD_NAMES])
def test_an_upload_is_kept_inside_the_upload_folder(tmp_path, name):
    """An upload named ``..``, ``.`` or nothing once named the folder itself (IsADirectoryError); any
    name lands as a file directly under ``.uploads``, or the OS's refusal is an OSError the page shows."""
    uploaded = SimpleNamespace(name=name, getbuffer=lambda: b'{"prompt": "p", "response": "r"}\n')
    try:
        path = save_upload(uploaded, tmp_path)
    except OSError as exc:
        assert not isinstance(exc, IsADirectoryError) and len(name) > 255, exc
        return
    assert path.parent == tmp_path / ".uploads" and path.is_file()


@dataclass(frozen=True)
class CliCase:
    id: str
    argv: tuple[str, ...]


CLI_CASES = [
    CliCase("store summary of a missing run", ("store", "summary", "{tmp}/nope")),
    CliCase("store summary of a 5000-character path", ("store", "summary", "/" + HUGE)),
    CliCase("store synth with negative steps", ("store", "synth", "--runs-dir", "{runs}", "--steps", "-1")),
    CliCase("store synth with steps not a number", ("store", "synth", "--runs-dir", "{runs}", "--steps", "abc")),
    CliCase("store synth with a 300-character name", ("store", "synth", "--runs-dir", "{runs}", "--name", LONG_ID)),
    CliCase("store synth with a name outside the runs dir", ("store", "synth", "--runs-dir", "{runs}", "--name", "../x")),
    CliCase("jobs status of an unknown run", ("jobs", "--runs-dir", "{runs}", "status", "nope")),
    CliCase("jobs status of a 300-character run id", ("jobs", "--runs-dir", "{runs}", "status", LONG_ID)),
    CliCase("jobs stop of an unknown run", ("jobs", "--runs-dir", "{runs}", "stop", "nope")),
    CliCase("jobs eval of an unknown run", ("jobs", "--runs-dir", "{runs}", "eval", "nope")),
    CliCase("import of a missing file", ("import", "jsonl", "{tmp}/missing.jsonl", "--runs-dir", "{runs}")),
    CliCase("import of a 5000-character path", ("import", "jsonl", "/" + HUGE, "--runs-dir", "{runs}")),
    CliCase("import under a 300-character run id",
            ("import", "jsonl", "{tmp}/good.jsonl", "--runs-dir", "{runs}", "--run-id", LONG_ID)),
    CliCase("import under a run id with a slash",
            ("import", "jsonl", "{tmp}/good.jsonl", "--runs-dir", "{runs}", "--run-id", "../x")),
    CliCase("import of a file that is not JSON", ("import", "jsonl", "{tmp}/garbage.jsonl", "--runs-dir", "{runs}")),
    CliCase("import with a bad mapping", ("import", "jsonl", "{tmp}/good.jsonl", "--runs-dir", "{runs}", "--map", "x")),
    CliCase("import of an unknown format", ("import", "nope", "{tmp}/good.jsonl")),
    CliCase("import signals of an unknown run", ("import", "signals", "nope", "--model", "x", "--runs-dir", "{runs}")),
    CliCase("analyse entropy of a missing run", ("analyse", "entropy", "{tmp}/nope")),
    CliCase("analyse entropy with an infinite fit fraction", ("analyse", "entropy", "{runs}/alpha", "--fit-fraction", "inf")),
    CliCase("analyse entropy with a NaN fit fraction", ("analyse", "entropy", "{runs}/alpha", "--fit-fraction", "nan")),
    CliCase("sample at a NaN temperature", ("sample", "--prompt", "x", "--temperature", "nan")),
    CliCase("sample at a negative temperature", ("sample", "--prompt", "x", "--temperature", "-1")),
    CliCase("sample zero samples", ("sample", "--prompt", "x", "-n", "0")),
    CliCase("sample from a 5000-character model path", ("sample", "--model", "/" + HUGE, "--prompt", "x")),
    CliCase("analyse entropy of a 5000-character path", ("analyse", "entropy", "/" + HUGE)),
    CliCase("jobs list in a 5000-character runs dir", ("jobs", "--runs-dir", "/" + HUGE, "list")),
    CliCase("ppo with steps not a number", ("ppo", "--steps", "abc")),
    CliCase("an unknown demo action", ("demo", "nope")),
]  # fmt: skip


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_bad_arguments_exit_2_with_one_error_line(runs, tmp_path, case):
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{runs}", str(runs)) for a in case.argv]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse's own refusals
            code = exc.code
    assert code == 2, err.getvalue()[-2000:]
    assert "Traceback" not in err.getvalue()
    # "error: ..." (ours) or "python -m engine ...: error: ..." (argparse's); an import's progress bar
    # can leave it mid-line.
    assert "error: " in err.getvalue(), err.getvalue()[-2000:]
    assert not (tmp_path / "x").exists()


def test_python_m_engine_reports_a_bad_argument_without_a_traceback(tmp_path):
    """The same contract end to end, in a process of its own."""
    out = subprocess.run(
        [sys.executable, "-m", "engine", "store", "summary", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error:")
