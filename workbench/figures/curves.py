"""Per-step line charts: one line per (run, value), and the failure detectors' flag rates."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from workbench.run_text import refresh_text

# Distinct hues for lines (Streamlit's default colourway is shades of one blue: unreadable for 5+ lines).
LINE_COLOURS = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
)  # fmt: skip
REFRESH_COLOUR = "#555"


def per_step_lines(
    frame: pd.DataFrame,
    columns: dict[str, str],
    *,
    title: str,
    y_title: str = "",
    refreshes: pd.DataFrame | None = None,
) -> go.Figure:
    """Line per (run, column) over steps; ``columns`` maps column -> legend label. ``refreshes``
    (:func:`engine.store.rm_refreshes` rows) marks each RM refresh with a dotted vertical line."""
    fig = go.Figure()
    runs = frame["run_id"].unique() if "run_id" in frame else [None]
    for r, run in enumerate(runs):
        part = frame if run is None else frame[frame["run_id"] == run]
        for c, (column, label) in enumerate(columns.items()):
            name = label if len(runs) == 1 else f"{label} ({run})"
            line = {"color": LINE_COLOURS[(r * len(columns) + c) % len(LINE_COLOURS)]}
            fig.add_trace(
                go.Scatter(x=part["step"], y=part[column], mode="lines+markers", name=name, line=line)
            )
    fig.update_layout(
        title=title,
        xaxis_title="step",
        yaxis_title=y_title,
        height=340,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    if refreshes is not None and not refreshes.empty:
        mark_refreshes(fig, refreshes)
    return fig


def mark_refreshes(fig: go.Figure, refreshes: pd.DataFrame) -> None:
    """A dotted vertical line at each refresh step, and a marker on top of it whose hover gives the
    new RM version and the agreement before/after (on a hidden [0, 1] axis, so any y scale works)."""
    for step in refreshes["step"]:
        fig.add_vline(x=step, line_dash="dot", line_color=REFRESH_COLOUR)
    several = refreshes["run_id"].nunique() > 1
    hover = [
        refresh_text(r.version, r.agreement_before, r.agreement_after) + (f" ({r.run_id})" if several else "")
        for r in refreshes.itertuples(index=False)
    ]
    # a y-axis of its own, numbered past the figure's (a figure of subplots already has y2, y3, ...)
    axis = 1 + max(1, sum(1 for name in fig.layout.to_plotly_json() if name.startswith("yaxis")))
    fig.add_trace(
        go.Scatter(
            x=refreshes["step"].tolist(),
            y=[1.0] * len(refreshes),
            yaxis=f"y{axis}",
            mode="markers",
            marker={"symbol": "triangle-down", "size": 11, "color": REFRESH_COLOUR},
            name="RM refresh",
            hovertext=hover,
            hoverinfo="text",
        )
    )
    fig.update_layout({f"yaxis{axis}": {"overlaying": "y", "range": [0, 1.05], "visible": False}})


def failure_rates_figure(counts: pd.DataFrame, several_runs: bool) -> go.Figure:
    """Share of samples each detector flags per step (``failure_counts`` rows)."""
    frame = counts.assign(label=counts["detector"] + (" · " + counts["run_id"] if several_runs else ""))
    fig = px.line(
        frame,
        x="step",
        y="rate",
        color="label",
        markers=True,
        title="Share of samples flagged per step",
        color_discrete_sequence=LINE_COLOURS,
    )
    fig.update_layout(height=380, yaxis_tickformat=".0%", legend_title_text="", margin={"t": 50, "b": 40})
    return fig


def failure_table(counts: pd.DataFrame, detectors: list[str]) -> pd.DataFrame:
    """``failure_counts``' long rows as the wide table shown: one row per (run, step), one column per
    detector (flag counts), in ``detectors`` order."""
    table = counts.pivot_table(
        index=["run_id", "step"], columns="detector", values="n_flagged", aggfunc="sum"
    )
    return table[[d for d in detectors if d in table]]
