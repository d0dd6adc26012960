"""Failure modes: detector hits per step, and the worst examples of each detector."""

import streamlit as st

import engine.store as store
from workbench.figures.curves import failure_rates_figure, failure_table
from workbench.glossary import page_tooltip
from workbench.sections import groups
from workbench.store_access import cached, pick_runs
from workbench.widgets import clicked_row, open_in_browser, row_table

# the response early, wide: it is what a reader looks at (the table scrolls sideways past it)
EXAMPLE_COLUMNS = ["step", "prompt_id", "sample_idx", "response", "score", "reward", "gold", "kl", "length",
                   "has_eos", "repeat_share", "prompt", "run_id"]  # fmt: skip
COLLAPSE_NOTE = (
    "**When is collapse a failure?** Entropy reduction is how PPO works: a prompt whose samples have "
    "all become the same *good* answer (gold near its best) is PPO succeeding, not failing. Collapse is "
    "a failure when the shared answer is poor (low gold), when it comes early, or on PPO-only prompts "
    "where the model should still explore: with no spread left the advantages are zero and PPO can "
    "no longer improve that prompt. Read the `gold` column of the examples below."
)

st.title("Failure modes", help=page_tooltip("failure_modes.py"))
st.caption(
    "Each detector flags individual samples; the chart shows the share of samples flagged per step. "
    "A detector that climbs during training is where to look first."
)

run_dirs = pick_runs("failures_runs", multi=True)
if run_dirs:
    with st.expander("Detector thresholds"):
        c1, c2, c3, c4 = st.columns(4)
        params = store.DetectorParams(
            kl_threshold=c1.number_input("KL threshold (nats)", 0.1, 1000.0, 10.0, key="failures_kl"),
            length_ratio=c2.number_input("Length ratio", 1.1, 20.0, 2.0, key="failures_len"),
            repetition_share=c3.number_input("Repeated trigram share", 0.05, 1.0, 0.3, key="failures_rep"),
            tail_sd=c4.number_input("Tail (sd)", 1.0, 10.0, 3.0, key="failures_tail"),
        )
    counts = cached(store.failure_counts, run_dirs, params=params)
    st.plotly_chart(failure_rates_figure(counts, len(run_dirs) > 1), key="failures_plot")
    table = failure_table(counts, list(store.DETECTORS))
    st.dataframe(table, key="failures_table")

    totals = table.sum()
    detectors = list(store.DETECTORS)
    if "failures_detector" not in st.session_state and totals.max() > 0:
        st.session_state["failures_detector"] = str(totals.idxmax())  # open on the detector with most flags
    detector = st.selectbox(
        "Examples of",
        detectors,
        format_func=lambda d: f"{d} ({int(totals.get(d, 0))} flagged)",
        key="failures_detector",
    )
    st.markdown(f"**{detector}**: {store.DETECTORS[detector]}")
    if detector == "entropy_collapse":
        st.info(COLLAPSE_NOTE)
    examples = cached(store.failure_examples, run_dirs, detector=detector, params=params, limit=25)
    if examples.empty:
        st.info("No sample is flagged by this detector with these thresholds.")
    else:
        st.caption("**Click a row** to open the sample in the Rollout browser.")
        event = row_table(
            examples[EXAMPLE_COLUMNS],
            "failures_examples",
            column_config={
                "prompt": st.column_config.TextColumn(width="medium"),
                "response": st.column_config.TextColumn(width="large"),
            },
        )
        clicked = clicked_row(event, examples, "failures_examples")
        if clicked is not None:
            open_in_browser(clicked["run_id"], clicked["prompt_id"], clicked["step"])
    groups.render(run_dirs)
