"""The group-filter audit as a page section (the Failure modes page calls it): per step, the share of
zero-std groups and what the std filter, the mean filter (range in the RM's units) and the binary gold
gate would drop, and the phantom-advantage groups as a table whose rows open the Rollout browser."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from engine.config import ConfigError
from engine.store.group_queries import (
    DEFAULT_GOLD_THRESHOLD,
    DEFAULT_MEAN_RANGE,
    group_audit,
    group_table,
)
from workbench.figures.groups import audit_figure
from workbench.group_text import groups_sentence
from workbench.store_access import cached
from workbench.widgets import clicked_row, open_in_browser, row_table

PHANTOM_COLUMNS = ["step", "prompt_id", "prompt", "rewards", "gold", "run_id"]


def mean_range_default(means: pd.Series) -> tuple[float, float]:
    """OpenRLHF's (0, 1) when every group mean lies in [0, 1] (rewards of that scale); else the 10th
    to 90th percentile of the run's group means (an RM's rewards have their own units), 2 decimals."""
    if means.empty or (means.min() >= 0 and means.max() <= 1):
        return DEFAULT_MEAN_RANGE
    low, high = round(float(means.quantile(0.1)), 2), round(float(means.quantile(0.9)), 2)
    return (low, high) if low < high else DEFAULT_MEAN_RANGE


def render(run_dirs: list[Path]) -> None:
    """The audit of one of ``run_dirs`` (a picker when there are several)."""
    st.subheader("Group filters: what GRPO-style filters would drop")
    st.caption(
        "A *group* is the samples of one prompt at one step: GRPO and RLOO's baseline, the samples a "
        "per-prompt normalisation centres. A group whose rewards are all equal gets advantage 0. The "
        "**std filter** (DAPO's dynamic sampling) drops those; the **mean filter** (OpenRLHF) drops "
        "groups whose mean reward is outside a range; the **binary gold gate** drops groups whose samples "
        "all pass or all fail by gold. `python -m engine analyse groups RUN --json` gives the same."
    )
    by_name = {d.name: d for d in run_dirs}
    name = (
        st.selectbox("Run audited", list(by_name), key="groups_run") if len(by_name) > 1 else run_dirs[0].name
    )
    means = cached(group_table, by_name[name])
    default = mean_range_default(means["mean_reward"] if not means.empty else pd.Series(dtype=float))
    st.caption(
        f"The mean filter's range is in the RM's units: OpenRLHF's default {DEFAULT_MEAN_RANGE} assumes "
        "rewards in [0, 1]. " + (f"This run's group means span {means['mean_reward'].min():.2f} to "
        f"{means['mean_reward'].max():.2f}; the range starts at their 10th to 90th percentile."
        if default != DEFAULT_MEAN_RANGE else "")
    )  # fmt: skip
    c1, c2, c3 = st.columns(3)
    low = c1.number_input("Mean filter: low (RM units)", value=default[0], step=0.1, key=f"groups_low_{name}")
    high = c2.number_input(
        "Mean filter: high (RM units)", value=default[1], step=0.1, key=f"groups_high_{name}"
    )
    threshold = c3.number_input("Gold gate: pass at gold >=", value=DEFAULT_GOLD_THRESHOLD, step=0.05,
                                key="groups_gold")  # fmt: skip
    try:
        audit = cached(group_audit, by_name[name], mean_range=(low, high), gold_threshold=threshold)
    except ConfigError as exc:
        st.error(str(exc))
        return
    if not audit["per_step"]:
        st.info("No group with a finite reward in this run.")
        return
    st.plotly_chart(audit_figure(audit["per_step"], f"{name}: groups per step"), key="groups_plot")
    st.markdown(groups_sentence(audit["overall"], audit["has_gold"]))
    phantoms = pd.DataFrame(audit["phantom_groups"] or [], columns=PHANTOM_COLUMNS)
    if phantoms.empty:
        return
    for column in ("rewards", "gold"):  # two decimals: the table is read, not recomputed
        phantoms[column] = phantoms[column].map(lambda values: [round(v, 2) for v in values])
    st.caption(
        f"**Phantom-advantage groups** ({len(phantoms):,}): **click a row** to open it in the Rollout browser."
    )
    event = row_table(phantoms, "groups_phantoms",
                      column_config={"prompt": st.column_config.TextColumn(width="medium")})  # fmt: skip
    clicked = clicked_row(event, phantoms, "groups_phantoms")
    if clicked is not None:
        open_in_browser(clicked["run_id"], clicked["prompt_id"], clicked["step"])
