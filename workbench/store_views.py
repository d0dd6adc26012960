"""Streamlit helpers of the analysis pages: the run picker (the user's runs and the shipped demo runs),
cached store queries and deep links (query parameters).

Pages stay thin: they read widgets, call :func:`cached` with an engine query function and render a
figure from :mod:`workbench.figures`. Only this module and the pages touch ``st``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

import engine.store as store
from engine.config import ConfigError
from engine.paths import demo_runs_dir, runs_dir
from workbench.navigation import PAGES_DIR, icon_of

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


def query_param(name: str) -> str | None:
    """The deep link's ``?name=value`` (None when absent or empty)."""
    value = st.query_params.get(name)
    return value or None


def apply_query_param(name: str, key: str, options: Sequence, cast: Callable = str) -> None:
    """Put ``?name=`` into the widget state ``key`` once per distinct link (so a later pick by the user
    wins until another link arrives); ignored when the value is not one of ``options``."""
    raw = query_param(name)
    marker = f"_linked_{key}"
    if raw is None or st.session_state.get(marker) == raw:
        return
    st.session_state[marker] = raw
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        return
    if value in options:
        st.session_state[key] = value


def pick_runs(key: str, *, multi: bool = False) -> list[Path] | None:
    """Run picker over the user's runs and the demo runs; returns the chosen run directories, or None
    after telling the user why there is nothing to show (no runs, nothing selected, no step yet)."""
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
            runs.loc[runs["n_rollouts"] > 0].sort_values("n_steps", ascending=False)["run_id"].tolist()
        )
    default = with_steps[0] if with_steps else ids[0]
    if multi:
        linked = query_param("run")
        if linked in ids and st.session_state.get(f"_linked_{key}") != linked:
            st.session_state[f"_linked_{key}"] = linked
            st.session_state[key] = [linked]
        chosen = st.multiselect("Runs", ids, default=[default], format_func=labels.get, key=key)
    else:
        apply_query_param("run", key, ids)
        one = st.selectbox("Run", ids, index=ids.index(default), format_func=labels.get, key=key)
        chosen = [one] if one else []
    if not chosen:
        st.info("Pick at least one run.")
        return None
    dirs = [Path(runs.loc[runs.run_id == r, "run_dir"].iloc[0]) for r in chosen]
    warnings = cached(store.store_warnings, dirs)
    if warnings:
        with st.expander(f"{len(warnings)} file(s) skipped: unreadable or not store files", icon="⚠️"):
            for message in warnings:
                st.warning(message)
    if not cached(store.logged_steps, dirs):
        st.info("No logged rollouts in the selected run(s) yet: this page fills in as the job logs steps.")
        return None
    return dirs


def is_demo(run_dir: Path) -> bool:
    """A shipped demo run (read-only: no job may write into it)."""
    try:
        return run_dir.resolve().is_relative_to(demo_runs_dir().resolve())
    except OSError:
        return False


def page_link(
    page: str, label: str, icon: str | None = None, query_params: dict[str, str] | None = None
) -> None:
    """``st.page_link`` to ``pages/<page>``, with the page's navigation icon unless ``icon`` is given;
    a page run on its own (no ``st.navigation``, as in a one-page AppTest) cannot resolve other pages,
    so it gets the same link as a plain URL."""
    icon = icon or icon_of(page)
    try:
        st.page_link(str(PAGES_DIR / page), label=label, icon=icon, query_params=query_params)
    except StreamlitPageNotFoundError:
        query = f"?{urlencode(query_params)}" if query_params else ""
        st.markdown(f"[{label}](/{Path(page).stem}{query})")


def entropy_link(run_id: str) -> None:
    """One click from a run to its entropy dynamics."""
    page_link("entropy_dynamics.py", f"Entropy dynamics of {run_id}", ":material/insights:", {"run": run_id})


def browser_link(run_id: str, prompt_id: str, label: str, **extra: Any) -> None:
    """A link that opens the rollout browser on one prompt (and step, sample, token position)."""
    params = {"run": run_id, "prompt": prompt_id, **{k: str(v) for k, v in extra.items() if v is not None}}
    page_link("rollout_browser.py", label, ":material/list_alt:", params)


def show_error(exc: ConfigError, what: str) -> None:
    """An engine refusal as a message that says what to do, not a traceback."""
    st.error(f"{what}: {exc}")


def set_link(name: str, value: Any, key: str) -> None:
    """Write the current choice into the URL (``?name=value``: a reload or a shared link reopens it)
    without it counting as a new deep link for :func:`apply_query_param`."""
    text = str(value)
    st.session_state[f"_linked_{key}"] = text
    if st.query_params.get(name) != text:
        st.query_params[name] = text


def row_table(data: pd.DataFrame, key: str, **kwargs: Any) -> Any:
    """``data`` as a table (no index) whose rows the user selects one at a time, each click a rerun;
    returns the selection event (``clicked_row`` turns it into the row just clicked)."""
    return st.dataframe(
        data, hide_index=True, key=key, on_select="rerun", selection_mode="single-row", **kwargs
    )


def clicked_row(event: Any, frame: pd.DataFrame, key: str) -> pd.Series | None:
    """The row of ``frame`` the user just clicked in a single-row-selection dataframe (``key``), or
    None when the selection did not change since the last rerun (a stale row index after the table
    changed must not override the current choice)."""
    rows = tuple(event.selection.rows) if event is not None else ()
    marker = f"_rows_{key}"
    changed = rows != st.session_state.get(marker, ())
    st.session_state[marker] = rows
    if not changed or not rows or rows[0] >= len(frame):
        return None
    return frame.iloc[rows[0]]


def sample_filters(families: list[str], steps: list[int], summary: pd.DataFrame) -> dict[str, Any]:
    """The rollout browser's filters (family, steps, EOS, reward, length, search) in an expander, as
    keyword arguments of ``engine.store.rank_prompts`` (a filter left at its full range is None)."""
    with st.expander("Filters", expanded=False):
        c1, c2, c3 = st.columns(3)
        family = c1.selectbox("Prompt family", ["(all)", *families], key="browser_family")
        step_range = (
            c2.select_slider("Steps", steps, value=(steps[0], steps[-1]), key="browser_steps")
            if len(steps) > 1
            else (steps[0], steps[0])
        )
        eos = c3.selectbox("Ends with EOS", ["any", "yes", "no"], key="browser_eos")
        lo, hi = float(summary["reward_min"].min()), float(summary["reward_max"].max())
        hi = max(hi, lo + 1e-6)
        reward_range = c1.slider("Reward", lo, hi, (lo, hi), key="browser_reward")
        max_len = int(summary["length_max"].max()) if summary["length_max"].notna().any() else 0
        length_range = c2.slider("Length", 0, max(max_len, 1), (0, max(max_len, 1)), key="browser_length")
        search = c3.text_input("Search prompt / response", key="browser_search")
    return {
        "steps": tuple(step_range),
        "family": None if family == "(all)" else family,
        "reward_range": tuple(reward_range) if reward_range != (lo, hi) else None,
        "length_range": tuple(length_range) if max_len and length_range != (0, max_len) else None,
        "has_eos": {"any": None, "yes": True, "no": False}[eos],
        "search": search or None,
    }
