"""The prompt-selection section (the Runs page): a run launched with ``prompt_selection`` measured each
candidate prompt's sampling space on its starting policy before step 1 (mean token entropy, RM-score
variance) and kept a share of them; this shows that measurement (``prompt_selection.parquet``): each
prompt as a point, kept or dropped, a sentence on what the choice did, and the table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from engine.runs import RUN_FILE, read_json
from engine.runs.layout import PROMPT_SELECTION_FILE
from workbench.figures.runs import prompt_selection_figure
from workbench.run_text import selection_text
from workbench.widgets import show_error

COLUMNS = ["rank", "kept", "prompt_id", "family", "mean_entropy", "reward_variance", "gold_mean", "prompt"]


def render(run_dir: Path) -> None:
    """The section, when ``run_dir`` holds a prompt-selection measurement; nothing otherwise."""
    path = run_dir / PROMPT_SELECTION_FILE
    if not path.is_file():
        return
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # a damaged file: say so, keep the rest of the page
        show_error(exc, f"Could not read {PROMPT_SELECTION_FILE}")
        return
    table = table.sort_values("rank", ignore_index=True) if "rank" in table else table
    selection = (
        ((read_json(run_dir / RUN_FILE) or {}).get("config") or {}).get("run", {}).get("prompt_selection")
    )
    st.subheader("Prompt selection: the prompts this run trains on")
    st.markdown(selection_text(table, selection))
    st.plotly_chart(prompt_selection_figure(table), key="runs_selection_figure")
    with st.expander(f"The measurement, {len(table)} candidate prompts"):
        st.dataframe(table[[c for c in COLUMNS if c in table]], hide_index=True, width="stretch")
