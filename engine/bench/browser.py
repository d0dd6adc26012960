"""A Streamlit server and Debian's Chromium for real-browser measurements (``bench app``) and the
real-browser tests: one way to start the app, wait until it is healthy, and launch the browser."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.config import ConfigError
from engine.paths import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(
    script: Path, env: dict[str, str], log_path: Path
) -> Iterator[tuple[str, float, subprocess.Popen]]:
    """``streamlit run script`` on a free port with ``env`` added to this process's environment;
    yields (url, start time in epoch seconds, process) as soon as it is started, stops it after."""
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
        "--server.port", str(port), "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with open(log_path, "w") as log:
        start = time.time()
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield f"http://localhost:{port}", start, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_healthy(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float = 120) -> None:
    """Return once ``/_stcore/health`` answers; ConfigError with the server's log if it exits or times out."""
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.time() > deadline:
            raise ConfigError(f"streamlit did not become healthy; its log:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.02)
