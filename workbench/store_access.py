"""How pages reach the run stores: engine queries cached until a run's files change, the runs table
and the run picker (the user's runs and the shipped demo runs).

A page reads widgets, calls :func:`cached` with an engine query function and renders a figure from
:mod:`workbench.figures`; the caching (``st.cache_data``) and the picker's widgets are Streamlit's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

import engine.store as store
from engine.paths import demo_runs_dir, runs_dir
from workbench.navigation import follow_link, query_param, set_link, unknown_link

DEMO_BADGE = "🔒 demo"


@st.cache_data(show_spinner=False, max_entries=256)
def _cached_call(
    _fn: Callable, name: str, run_dirs: tuple[str, ...] | str, file_key: tuple, kwargs: tuple
) -> Any:
    # ``name`` keys the cache for ``_fn`` (not hashed: leading underscore); file_key is unused in the
    # body but part of the key, so changed files miss the cache.
    dirs = Path(run_dirs) if isinstance(run_dirs, str) else [Path(d) for d in run_dirs]
    return _fn(dirs, **dict(kwargs))


def cached(fn: Callable, run_dirs: Sequence[Path] | Path, **kwargs: Any) -> Any:
    """``fn(run_dirs, **kwargs)`` (an engine query; one run directory for a one-run report), cached
    until a file of the runs changes (the key holds every file's path, mtime and size, so a live run
    refreshes on rerun)."""
    key = store.fingerprint(run_dirs)
    dirs = str(run_dirs) if isinstance(run_dirs, Path) else tuple(str(d) for d in run_dirs)
    name = f"{fn.__module__}.{fn.__qualname__}"
    return _cached_call(fn, name, dirs, key, tuple(sorted(kwargs.items())))


@st.cache_data(show_spinner=False, ttl=5)
def _runs_table(root: str, demo_root: str) -> pd.DataFrame:
    # demo_root is part of the key: the demo runs follow WORKBENCH_DATA_DIR.
    return store.runs_frame(Path(root), with_demo=True)


def runs_table() -> pd.DataFrame:
    """The user's runs (newest first), then the shipped demo runs (column ``demo``)."""
    return _runs_table(str(runs_dir()), str(demo_runs_dir()))


def run_label(row: pd.Series) -> str:
    steps = (
        "no steps yet" if pd.isna(row["last_step"]) else f"{row['n_steps']} steps, last {row['last_step']}"
    )
    badge = f"{DEMO_BADGE} · " if row["demo"] else ""
    return f"{badge}{row['run_id']}  ({row['kind']}, {row['state']}, {steps})"


def pick_runs(key: str, *, multi: bool = False) -> list[Path] | None:
    """Run picker over the user's runs and the demo runs; returns the chosen run directories, or None
    after telling the user why there is nothing to show (no runs, nothing selected, no step yet).
    Says which files were skipped and how many non-finite scores the figures leave out."""
    root = runs_dir()
    runs = runs_table()
    if runs.empty:
        st.info(
            f"No runs in `{root}` yet, and no demo runs in `{demo_runs_dir()}`. Launch a PPO job on the "
            "**Runs** page, import rollouts on **Import**, or write a synthetic store with "
            "`python -m engine store synth`."
        )
        return None
    own = runs.loc[~runs["demo"]]
    if own.empty:
        st.info(
            f"You have no runs of your own in `{root}` yet, so the shipped **demo runs** are shown "
            "(read-only). Launch your own on the **Runs** page."
        )
    labels = {row["run_id"]: run_label(row) for _, row in runs.iterrows()}
    with_steps = runs.loc[runs["n_rollouts"] > 0, "run_id"].tolist()
    ids = runs["run_id"].tolist()
    if own.empty and with_steps:  # demo runs only: open the longest one
        with_steps = (
            runs.loc[runs["n_rollouts"] > 0]
            .sort_values(["n_steps", "run_id"], ascending=[False, True])["run_id"]
            .tolist()
        )
    default = with_steps[0] if with_steps else ids[0]
    unknown = f"No run {{}} in `{root}` or the demo runs: showing another."
    if multi:
        unknown_link(query_param("run"), ids, key, unknown)
        linked = query_param("run")
        if linked in ids and st.session_state.get(f"_linked_{key}") != linked:
            st.session_state[f"_linked_{key}"] = linked
            st.session_state[key] = [linked]
        chosen = st.multiselect("Runs", ids, default=[default], format_func=labels.get, key=key)
    else:
        follow_link("run", key, ids, unknown)
        one = st.selectbox("Run", ids, index=ids.index(default), format_func=labels.get, key=key)
        chosen = [one] if one else []
        if one:
            set_link("run", one, key)  # a reload or a shared link reopens this run
    if not chosen:
        st.info("Pick at least one run.")
        return None
    dirs = [Path(runs.loc[runs.run_id == r, "run_dir"].iloc[0]) for r in chosen]
    for _, row in runs.loc[runs.run_id.isin(chosen) & (runs.state == "failed")].iterrows():
        # why it failed (a diverged update, a full disk): the figures stop at its last good step
        st.warning(f"{row['run_id']} failed: {row['message'] or 'no reason recorded'}")
    warnings = cached(store.store_warnings, dirs)
    if warnings:
        with st.expander(f"{len(warnings)} file(s) skipped: unreadable or not store files", icon="⚠️"):
            for message in warnings:
                st.warning(message)
    if not cached(store.logged_steps, dirs):
        st.info("No logged rollouts in the selected run(s) yet: this page fills in as the job logs steps.")
        return None
    note_nonfinite(dirs)
    return dirs


def is_demo(run_dir: Path) -> bool:
    """A shipped demo run (read-only: no job may write into it)."""
    try:
        return run_dir.resolve().is_relative_to(demo_runs_dir().resolve())
    except OSError:
        return False


def note_nonfinite(run_dirs: Sequence[Path]) -> None:
    """Say how many scores (``store.SCORE_VALUES``) of the runs are +-inf or NaN: the queries leave them
    out of means, ranges and densities, and the user should know the figures skip them."""
    counts = cached(store.nonfinite_counts, run_dirs)
    left_out = [f"{n:,} {name}" for name, n in counts.items() if n]
    if left_out:
        st.caption(
            f"Left out as non-finite (+-inf or NaN): {', '.join(left_out)} value(s). Means, ranges and "
            "densities are over the finite values."
        )
