"""Failure modes: detector hits per step, and the worst examples of each detector."""

import plotly.express as px
import streamlit as st

from engine.store import DETECTORS, DetectorParams
from workbench.store_views import LINE_COLOURS, cached, pick_runs

st.title("Failure modes")
st.caption(
    "Each detector flags individual samples; the chart shows the share of samples flagged per step. "
    "A detector that climbs during training is where to look first."
)

run_dirs = pick_runs("failures_runs", multi=True)
if run_dirs:
    with st.expander("Detector thresholds"):
        c1, c2, c3, c4 = st.columns(4)
        params = {
            "kl_threshold": c1.number_input("KL threshold (nats)", 0.1, 1000.0, 10.0, key="failures_kl"),
            "length_ratio": c2.number_input("Length ratio", 1.1, 20.0, 2.0, key="failures_len"),
            "repetition_share": c3.number_input("Repeated trigram share", 0.05, 1.0, 0.3, key="failures_rep"),
            "tail_sd": c4.number_input("Tail (sd)", 1.0, 10.0, 3.0, key="failures_tail"),
        }
    counts = cached("failure_counts", run_dirs, params=DetectorParams(**params))
    counts["label"] = counts["detector"] + ("" if len(run_dirs) == 1 else " · " + counts["run_id"])
    fig = px.line(
        counts,
        x="step",
        y="rate",
        color="label",
        markers=True,
        title="Share of samples flagged per step",
        color_discrete_sequence=LINE_COLOURS,
    )
    fig.update_layout(height=380, yaxis_tickformat=".0%", legend_title_text="", margin={"t": 50, "b": 40})
    st.plotly_chart(fig, key="failures_plot")

    table = counts.pivot_table(
        index=["run_id", "step"], columns="detector", values="n_flagged", aggfunc="sum"
    )
    st.dataframe(table[[d for d in DETECTORS if d in table]], key="failures_table")

    totals = counts.groupby("detector")["n_flagged"].sum()
    detector = st.selectbox(
        "Examples of",
        list(DETECTORS),
        format_func=lambda d: f"{d} ({int(totals.get(d, 0))} flagged)",
        key="failures_detector",
    )
    st.markdown(f"**{detector}**: {DETECTORS[detector]}")
    examples = cached(
        "failure_examples", run_dirs, detector=detector, params=DetectorParams(**params), limit=25
    )
    if examples.empty:
        st.info("No sample is flagged by this detector with these thresholds.")
    else:
        st.dataframe(
            examples[
                [
                    "run_id",
                    "step",
                    "prompt_id",
                    "sample_idx",
                    "score",
                    "reward",
                    "gold",
                    "kl",
                    "length",
                    "has_eos",
                    "repeat_share",
                    "prompt",
                    "response",
                ]
            ],
            hide_index=True,
            key="failures_examples",
        )
