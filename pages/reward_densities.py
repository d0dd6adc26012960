"""Reward densities: raw vs per-prompt normalised, one curve per logged step (ridgeline)."""

import streamlit as st

from workbench.store_views import VALUE_LABELS, cached, common_range, pick_runs, ridgeline, spread_figure

st.title("Reward densities")
st.markdown(
    "Each curve is the distribution of one value over all samples of a logged step, the first step at "
    "the bottom. The **raw** density mixes differences *between* prompts with the spread *within* one "
    "prompt's samples. The **per-prompt normalised** density removes the first part "
    "(`x − mean of the prompt's samples + mean of the step`), leaving only the sampling space PPO "
    "can work with. Typically the raw density barely moves during PPO while the normalised one "
    "**narrows** (entropy reduction: less spread within each prompt) and **shifts** (higher reward)."
)

run_dirs = pick_runs("densities_run")
if run_dirs:
    left, right = st.columns([2, 1])
    value = left.radio(
        "Value", list(VALUE_LABELS), format_func=VALUE_LABELS.get, horizontal=True, key="densities_value"
    )
    bins = right.slider("Bins", 10, 120, 60, step=10, key="densities_bins")
    raw = cached("reward_norm_density", run_dirs, value=value, normalised=False, bins=bins)
    norm = cached("reward_norm_density", run_dirs, value=value, normalised=True, bins=bins)
    if raw.empty:
        st.info(f"No {VALUE_LABELS[value]} logged in this run (an import without it, or no judge).")
    else:
        label = VALUE_LABELS[value]
        col_raw, col_norm = st.columns(2)
        x_range = common_range(raw, norm)  # one x axis, so the two widths compare at a glance
        col_raw.plotly_chart(
            ridgeline(raw, title=f"raw {label}", x_title=label, x_range=x_range), key="densities_raw"
        )
        col_norm.plotly_chart(
            ridgeline(norm, title=f"per-prompt normalised {label}", x_title=label, x_range=x_range),
            key="densities_norm",
        )
        st.plotly_chart(spread_figure(raw, norm, label), key="densities_spread")
        st.caption(
            "Mean and sd are estimated from the histograms; the raw and normalised means coincide by construction. A falling normalised sd is the within-prompt "
            "sampling space shrinking; when it approaches zero, advantages vanish and PPO stops learning."
        )
