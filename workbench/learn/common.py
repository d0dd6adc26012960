"""What every Learn step needs: the world, the shipped demo runs and the per-epoch SFT samples, each
with a message that says what to run when it is missing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

import engine.store as store
from engine.paths import demo_runs_dir
from engine.world_tools.epochs import report_path
from workbench.navigation import page_link
from workbench.resources import BUILD_COMMAND, world_error, world_or_none
from workbench.store_access import cached

DEMO_COMMAND = "python -m engine demo build"
DEMO_TITLES = {
    "demo-default": "demo-default: the default PPO config from SFT epoch 3",
    "demo-kl0": "demo-kl0: no KL penalty",
    "demo-late-epoch": "demo-late-epoch: from the last SFT epoch",
}


def need_world():
    """The built-in world, or None after saying how to build it."""
    world = world_or_none()
    if world is None:
        st.warning(f"The built-in world is not built ({world_error()}). Build it with:")
        st.code(BUILD_COMMAND, language="bash")
    return world


def demo_run(run_id: str) -> Path | None:
    """The shipped demo run ``run_id`` with at least one logged step, or None after saying how to make it."""
    path = demo_runs_dir() / run_id
    if (path / "run.json").is_file() and cached(store.logged_steps, path):
        return path
    st.info(
        f"The demo run `{run_id}` is not in `{demo_runs_dir()}` yet, so this step has nothing to show. "
        "Make the demo runs (real PPO runs on the built-in world, about 20 minutes on 2 CPU cores) with:"
    )
    st.code(DEMO_COMMAND, language="bash")
    return None


@st.cache_data(show_spinner=False)
def _read_samples(path: str, mtime: float) -> pd.DataFrame:
    return pd.read_parquet(path)


def world_and_samples():
    """(world, its per-epoch SFT samples), or None after saying what is missing."""
    world = need_world()
    samples = epoch_samples(world) if world is not None else None
    return None if samples is None else (world, samples)


def pick_demo_run(runs: tuple[str, ...], label: str, key: str) -> tuple[str, Path] | None:
    """A radio over demo runs; (run_id, run directory), or None after saying how to make the run."""
    run = st.radio(label, runs, format_func=DEMO_TITLES.get, horizontal=True, key=key)
    run_dir = demo_run(run)
    return None if run_dir is None else (run, run_dir)


def epoch_samples(world) -> pd.DataFrame | None:
    """The world's per-epoch SFT samples (``engine.world_tools.epochs``), or None with a link to compute them."""
    path = report_path(world)
    if not path.is_file():
        st.info(
            "The per-epoch SFT samples are not computed yet: the SFT epochs page computes them (a minute)."
        )
        page_link("sft_epochs.py", "SFT epochs")
        return None
    return _read_samples(str(path), path.stat().st_mtime)
