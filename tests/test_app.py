"""AppTest of the app shell and the home page."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from engine.paths import REPO_ROOT
from workbench import navigation
from workbench.navigation import PAGES, PAGES_DIR, PageSpec, available_pages

APP = str(REPO_ROOT / "workbench" / "app.py")


def test_every_page_on_disk_is_in_the_navigation():
    listed = {spec.file for spec in PAGES}
    on_disk = {p.name for p in PAGES_DIR.glob("*.py")}
    assert on_disk == listed, f"pages on disk vs in workbench/navigation.py: {sorted(on_disk ^ listed)}"
    assert {spec.file for spec in available_pages()} == on_disk


def test_a_listed_page_that_is_missing_is_an_error(monkeypatch):
    missing = PageSpec("Explore", "not_there.py", "Missing", ":material/home:", "")
    monkeypatch.setattr(navigation, "PAGES", (*PAGES, missing))
    with pytest.raises(FileNotFoundError, match="not_there.py"):
        navigation.sections()


def test_pages_stay_thin():
    for page in PAGES_DIR.glob("*.py"):
        text = page.read_text()
        assert len(text.splitlines()) <= 150, f"{page.name} is over 150 lines"
        assert "import torch" not in text and "from torch" not in text, page.name


def test_every_page_link_takes_its_icon_from_the_navigation(monkeypatch, tmp_path):
    """One home for a page's icon: no module but the navigation names one, and Home's links (Learn
    included, which once borrowed Teaching's) show the icon of the page they open."""
    import inspect

    assert "icon" not in inspect.signature(navigation.page_link).parameters
    sources = [*PAGES_DIR.glob("*.py"), *(REPO_ROOT / "workbench").rglob("*.py")]
    named = [p.name for p in sources if ":material/" in p.read_text() and p.name != "navigation.py"]
    assert named == [], f"icons named outside workbench/navigation.py: {named}"
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    links = {e.proto.label: e.proto.icon for e in at.get("page_link")}
    assert links["Open the Learn path"] == navigation.icon_of("learn.py") == ":material/route:"
    titles = {spec.title: spec.icon for spec in PAGES}
    for label, icon in links.items():
        title = label.split(":")[0]
        if title in titles:
            assert icon == titles[title], label


def test_module_docstrings_that_say_pure_hold():
    """A workbench module whose docstring calls it pure never touches Streamlit, and one that does
    touch it says so: the module names say what they hold (no catch-all ``*_views``)."""
    modules = sorted((REPO_ROOT / "workbench").glob("*.py"))
    assert not [m.name for m in modules if m.stem.endswith("_views")]
    for pure in ("run_text", "lab_tables"):
        text = (REPO_ROOT / "workbench" / f"{pure}.py").read_text()
        assert "pure" in text.split('"""')[1].lower(), pure
        assert "import streamlit" not in text, pure


def test_home_is_a_first_run_guide_with_demo_runs(monkeypatch, tmp_path):
    from store_fixture import build_store

    build_store(tmp_path / "data" / "demo_runs")
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "empty"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    assert "entropy reduction" in at.markdown[0].value
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Your runs"] == "0" and metrics["Demo runs (read-only)"] == "3"
    text = " ".join(str(m.value) for m in at.markdown)
    assert (
        "Learn" in text and "Sampling lab" in text and "demo run `alpha` on its most-varying prompt" in text
    )


def test_home_without_world_says_how_to_build(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "PPO Entropy Workbench"
    assert any("python -m engine world build" in c.value for c in at.code)
    assert "entropy reduction" in at.markdown[0].value


def test_home_with_world():
    from engine.paths import world_dir

    if not (world_dir() / "world.json").is_file():
        pytest.skip("the built-in world is not built (python -m engine world build)")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert not at.warning
    labels = [m.label for m in at.metric]
    assert "Prompt families" in labels and "SFT epochs" in labels
    assert len(at.dataframe) >= 1  # the families (and the runs, when there are any)


def test_home_shows_what_the_demo_run_shows(monkeypatch, tmp_path):
    from engine.paths import demo_runs_dir

    if not (demo_runs_dir() / "demo-default").is_dir():
        pytest.skip("no shipped demo runs (python -m engine demo build)")
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "empty"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    assert "What the demo run `demo-default` shows" in [s.value for s in at.subheader]
    assert len(at.get("plotly_chart")) == 1
    sentence = next(m.value for m in at.markdown if m.value.startswith("**On this run**"))
    # read from the shipped run's own curves: what the demo exists to show
    assert "gold rose" in sentence and "probe-set entropy fell" in sentence and "Learn" in sentence


def test_the_warm_up_runs_once_per_server_and_can_be_turned_off(monkeypatch):
    """After a page's run the app loads the lab's models in one background thread, once per process;
    WORKBENCH_WARM_UP=0 (this suite's setting) starts nothing."""
    import threading

    from workbench import resources

    calls = []
    loaded = threading.Event()

    def fake_load():
        calls.append(threading.current_thread().name)
        loaded.set()

    monkeypatch.setattr(resources, "_load_lab_models", fake_load)
    resources._warm_up_thread.clear()
    try:
        monkeypatch.setenv(resources.WARM_UP_ENV, "0")
        resources.warm_up_lab()
        assert not loaded.wait(0.2) and calls == []

        monkeypatch.setenv(resources.WARM_UP_ENV, "1")
        resources.warm_up_lab()
        resources.warm_up_lab()
        assert loaded.wait(10)
        resources._warm_up_thread().join(10)
        assert calls == ["warm-up-lab"]
    finally:
        resources._warm_up_thread.clear()


def test_the_app_listens_on_this_machine_only():
    """No login: the server binds the loopback interface unless the user opens it up."""
    import tomllib

    config = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"


@pytest.mark.slow
def test_a_started_app_answers_on_localhost_and_not_on_the_network(tmp_path):
    """The servers the browser tests and ``bench app`` start answer on localhost, and a non-loopback
    address of this machine gets no answer."""
    import socket
    import urllib.request

    from engine.bench.browser import streamlit_server, wait_healthy

    log = tmp_path / "server.log"
    with streamlit_server(REPO_ROOT / "workbench" / "app.py", {}, log) as (url, _, process):
        wait_healthy(url, process, log)
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
            assert response.status == 200
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # a documentation address: no packet is sent
            own = probe.getsockname()[0]
        if own.startswith("127."):
            pytest.skip("this machine has no non-loopback address")
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(OSError), socket.create_connection((own, port), timeout=5):
            pass


def test_the_tabs_icon_needs_no_request():
    """A ``:material/...:`` page icon as the tab's icon is an image from fonts.gstatic.com: the app sets
    its own (an emoji, drawn in the browser) before the navigation, which then leaves the tab's icon."""
    assert not navigation.FAVICON.startswith(":")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    source = (REPO_ROOT / "workbench" / "app.py").read_text()
    assert source.index("page_icon=FAVICON") < source.index("st.navigation(")
