"""Streamlit widgets the pages share: a table whose rows the user clicks, an engine refusal or a file
error as a message, and the rollout browser's filters."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from engine.config import os_error_message
from workbench.navigation import PAGES_DIR


def show_error(exc: Exception, what: str) -> None:
    """An engine refusal (ConfigError), or a file that could not be read or written (OSError), as a
    message that says what happened, not a traceback."""
    st.error(f"{what}: {os_error_message(exc) if isinstance(exc, OSError) else exc}")


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
        # The summary's ranges are over finite rewards; a run without one (all null, inf or NaN) has none.
        lo, hi = float(summary["reward_min"].min()), float(summary["reward_max"].max())
        finite = math.isfinite(lo) and math.isfinite(hi)
        hi = max(hi, lo + 1e-6) if finite else hi
        reward_range = c1.slider("Reward", lo, hi, (lo, hi), key="browser_reward") if finite else (lo, hi)
        max_len = int(summary["length_max"].max()) if summary["length_max"].notna().any() else 0
        length_range = c2.slider("Length", 0, max(max_len, 1), (0, max(max_len, 1)), key="browser_length")
        search = c3.text_input("Search prompt / response", key="browser_search")
    return {
        "steps": tuple(step_range),
        "family": None if family == "(all)" else family,
        "reward_range": tuple(reward_range) if finite and reward_range != (lo, hi) else None,
        "length_range": tuple(length_range) if max_len and length_range != (0, max_len) else None,
        "has_eos": {"any": None, "yes": True, "no": False}[eos],
        "search": search or None,
    }


def open_in_browser(run_id: str, prompt_id: str, step: int) -> None:
    """Go to the Rollout browser on one prompt of one run at one step (what a clicked example row opens)."""
    params = {"run": run_id, "prompt": prompt_id, "step": str(int(step))}
    st.switch_page(str(PAGES_DIR / "rollout_browser.py"), query_params=params)
