"""Shared fixtures: tiny local models (built once per session, no hub access)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Under pytest-xdist (scripts/test.sh runs two workers on a 2-core machine) each worker, and every job
# it starts, computes on one thread: two workers with two threads each would oversubscribe the cores,
# and OpenMP's spinning threads slow down badly when they do.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("WORKBENCH_THREADS", "1")

from tiny_models import save_tiny  # noqa: E402 (after the thread settings: it imports torch)

# Pages run inside this process (AppTest): no background thread importing torch and loading models
# there (workbench.resources.warm_up_lab). The servers of the browser tests turn it back on.
os.environ["WORKBENCH_WARM_UP"] = "0"


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def fake_world_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding a tiny stand-in world; point WORKBENCH_DATA_DIR at it."""
    from fake_world import build_fake_world

    data_dir = tmp_path_factory.mktemp("data")
    build_fake_world(data_dir)
    return data_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand-computed fixture store (tests/store_fixture.py), built once per test module."""
    from store_fixture import build_store

    return build_store(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def learn_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the stand-in world, its per-epoch SFT samples and the demo runs (the Learn path's)."""
    from fake_world import build_fake_world
    from learn_fixture import build_demo_runs, write_epoch_samples

    data = tmp_path_factory.mktemp("learn-data")
    write_epoch_samples(build_fake_world(data))
    build_demo_runs(data / "demo_runs")
    return data
