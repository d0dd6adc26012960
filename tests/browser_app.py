"""Starting the app for the real-browser tests: one Streamlit server on a free port with the given
environment, healthy before the first page is opened, stopped after (engine.bench.browser, which
``bench app`` uses too)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.bench.browser import streamlit_server, wait_healthy
from engine.config import ConfigError
from engine.paths import REPO_ROOT
from workbench.resources import WARM_UP_ENV


@contextlib.contextmanager
def serve_app(env: dict[str, str], log_dir: Path, *, timeout_s: float = 90) -> Iterator[str]:
    """``streamlit run workbench/app.py`` with ``env`` added to this process's environment; yields
    the app's URL once ``/_stcore/health`` answers (the test fails with the server's log otherwise).
    The server warms up as a user's does (the suite's own process has the warm-up off, see conftest)."""
    log_path = Path(log_dir) / "streamlit.log"
    env = {WARM_UP_ENV: "1", **env}
    with streamlit_server(REPO_ROOT / "workbench" / "app.py", env, log_path) as (url, _, process):
        try:
            wait_healthy(url, process, log_path, timeout_s)
        except ConfigError as exc:
            pytest.fail(str(exc))
        yield url
