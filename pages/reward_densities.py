"""Reward densities: raw vs per-prompt normalised, one smoothed curve per logged step (ridgeline)."""

import streamlit as st

import engine.store as store
from workbench.figures.ridgeline import (
    HISTOGRAM_BINS,
    VALUE_LABELS,
    common_range,
    ridgeline,
    smooth_density,
    spread_figure,
)
from workbench.glossary import page_tooltip
from workbench.navigation import entropy_link
from workbench.store_access import cached, pick_runs

st.title("Reward densities", help=page_tooltip("reward_densities.py"))
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
    entropy_link(st.session_state["densities_run"])
    value = st.radio(
        "Value", list(VALUE_LABELS), format_func=VALUE_LABELS.get, horizontal=True, key="densities_value"
    )
    raw = cached(store.reward_norm_density, run_dirs, value=value, normalised=False, bins=HISTOGRAM_BINS)
    norm = cached(store.reward_norm_density, run_dirs, value=value, normalised=True, bins=HISTOGRAM_BINS)
    label = VALUE_LABELS[value]
    if raw.empty:
        how = {
            "gold": "the judge scores every sample of a world run; an imported run brings gold only if its "
            "source logged one (map it on the Import page)",
            "mean_entropy": "compute per-token signals with `python -m engine import signals RUN --model ...`",
        }.get(value, "every run logs it: is the run empty?")
        st.info(f"No {label} logged in this run. To get it: {how}.")
    else:
        col_raw, col_norm = st.columns(2)
        smooth_raw, smooth_norm = smooth_density(raw), smooth_density(norm)
        x_range = common_range(smooth_raw, smooth_norm)  # one x axis, so the two widths compare
        col_raw.plotly_chart(
            ridgeline(smooth_raw, title=f"raw {label}", x_title=label, x_range=x_range), key="densities_raw"
        )
        col_norm.plotly_chart(
            ridgeline(smooth_norm, title=f"per-prompt normalised {label}", x_title=label, x_range=x_range),
            key="densities_norm",
        )
        h = smooth_norm.groupby("step")["bandwidth"].first()
        st.caption(
            f"Curves are Gaussian kernel density estimates, bandwidth from each step's sample count "
            f"(Silverman's rule; {h.min():.3g} to {h.max():.3g} here), so a step of 64 samples reads "
            "as a shape rather than a comb of spikes."
        )
        st.plotly_chart(spread_figure(raw, norm, label), key="densities_spread")
        st.caption(
            "Top: the spread (sd) per step; bottom: the mean, on its own axis. The raw and normalised means "
            "coincide by construction. A falling normalised sd is the within-prompt sampling space "
            "shrinking; when it approaches zero, advantages vanish and PPO stops learning."
        )
