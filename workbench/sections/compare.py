"""The Runs page's section below a run's curves: the link to the run's ceiling (pass@k against its
start), and "compare with another run": a second run picked beside the shown one, and both runs'
curves overlaid metric by metric (the metrics both log), with how each pair ends."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import engine.store as store
from workbench import group_text as text
from workbench.figures.groups import COMPARE_KEYS, METRIC_NAMES, compare_figure, shared_keys
from workbench.navigation import apply_query_param, page_link, query_param
from workbench.store_access import cached


def render(run_id: str, run_dirs: dict[str, Path]) -> None:
    """Link to ``run_id``'s ceiling; pick a run to put beside it (``run_dirs``: every listed run's
    directory) and draw both."""
    page_link("ceiling.py", f"Ceiling of {run_id}: pass@k against its start", {"run": run_id})
    others = [r for r in run_dirs if r != run_id]
    with st.expander(
        "Compare with another run",
        expanded=bool(st.session_state.get("runs_compare") or query_param("compare")),
    ):
        if not others:
            st.caption("No other run to compare with yet.")
            return
        apply_query_param("compare", "runs_compare", others)  # ?compare=RUN opens with it beside
        other = st.selectbox("Beside it", [None, *others], key="runs_compare",
                             format_func=lambda r: "(pick a run)" if r is None else r)  # fmt: skip
        if other is None:
            st.caption("Pick a run (e.g. `demo-grpo` beside `demo-default`) to overlay the two runs' curves.")
            return
        runs = [run_id, other]
        dirs = [run_dirs[r] for r in runs]
        both = shared_keys(*(cached(store.metric_keys, [d]) for d in dirs))
        default = [k for k in COMPARE_KEYS if k in both]
        keys = st.multiselect(
            "Metrics (those both runs log)",
            both,
            default=default,
            key="runs_compare_keys",
            format_func=lambda k: METRIC_NAMES.get(k, k),
        )
        metrics = cached(store.metrics, dirs, keys=tuple(keys))
        st.plotly_chart(compare_figure(metrics, keys, runs), key="runs_compare_curves")
        sentences = [text.compare_sentence(metrics, runs, k, METRIC_NAMES.get(k, k)) for k in keys]
        st.markdown("\n".join(f"- {s}" for s in sentences if s))
