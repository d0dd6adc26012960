"""Process-wide cached resources shared by the pages (the world, the sampling lab and its models)."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from engine.config import ConfigError
from engine.paths import world_dir

if TYPE_CHECKING:  # the lab brings torch: loaded on first use, so pages without models start fast
    from engine.lab import SamplingLab

BUILD_COMMAND = "python -m engine world build"
WARM_UP_ENV = "WORKBENCH_WARM_UP"  # "0": no background warm-up (the test suite's in-process AppTests)
log = logging.getLogger(__name__)


@st.cache_resource(show_spinner="Loading the built-in world...")
def _load_world(path: str):
    from engine.world import load_world

    return load_world(Path(path))


def world_or_none():
    """The built-in world, or None when it is not built: only a built world is cached, so a later
    build is picked up."""
    from engine.world import try_load_world

    world, _ = try_load_world(world_dir())
    return _load_world(str(world.path)) if world is not None else None


def world_error() -> str | None:
    """Why the world cannot be loaded, or None when it can."""
    try:
        _load_world(str(world_dir()))
    except ConfigError as exc:
        return str(exc)
    return None


@st.cache_resource(show_spinner=False)
def _lab(world_path: str | None) -> SamplingLab:
    from engine.lab import SamplingLab

    return SamplingLab(world=world_or_none() if world_path else None)


def sampling_lab() -> SamplingLab:
    """One lab (models + sampled batches) per process and world, shared by every session."""
    world = world_or_none()
    return _lab(str(world.path) if world is not None else None)


def _load_lab_models() -> None:
    try:
        lab = sampling_lab()
        if lab.world is not None:
            lab.model(lab.world.policy_source())  # the lab's default checkpoint, and torch with it
            lab.reward_model(lab.world.rm_source)
    except Exception:  # only a warm-up: the lab page loads (and reports) the same on its own
        log.exception("warming up the sampling lab failed")


@st.cache_resource(show_spinner=False)
def _warm_up_thread() -> threading.Thread:
    thread = threading.Thread(target=_load_lab_models, name="warm-up-lab", daemon=True)
    thread.start()
    return thread


def warm_up_lab() -> None:
    """Once per server, after the first page's script run: import torch and transformers and load the
    lab's default models in a background thread. No page's first run needs them any more (the home page
    reads files only), but the Sampling lab, the Learn path and the Runs page do: the imports alone
    take 4.5 s on a 2-core CPU, the models 0.2 s. A visit during the warm-up waits for the same import
    (Python's module locks) or model (the lab's lock) instead of loading twice.

    ``WORKBENCH_WARM_UP=0`` turns it off: the test suite runs pages in its own process (AppTest), where
    a thread importing torch in the background of other tests is the last thing wanted.
    """
    if os.environ.get(WARM_UP_ENV, "1") != "0":
        _warm_up_thread()
