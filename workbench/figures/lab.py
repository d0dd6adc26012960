"""Figures of the sampling lab: signal distributions, reward histograms, sweeps and forking tokens.

Pure functions from arrays / sweep points to Plotly figures (no Streamlit, no torch).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.lab import SIGNALS, SweepPoint
from workbench.figures.tokens import SIGNAL_LABELS

CURRENT_COLOUR, REFERENCE_COLOUR = "#d62728", "#7f7f7f"
RM_COLOUR, GOLD_COLOUR = "#1f77b4", "#2ca02c"
SETTINGS = (("these settings", CURRENT_COLOUR), ("T=1", REFERENCE_COLOUR))
MARGIN = {"t": 40, "b": 20, "l": 20, "r": 20}


def signal_distributions_figure(
    current: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> go.Figure:
    """Box plots of each signal over real tokens, these settings next to the reference settings.

    The number of candidates is drawn on a log axis: unfiltered it is the whole vocabulary (49152 on
    SmolLM2) at every position, and a nucleus of 1 to 50 tokens would be a flat line at 0 beside it."""
    log_axis = {s: s == "n_candidates" and _positive(current[s], reference[s]) for s in SIGNALS}
    titles = [SIGNAL_LABELS[s] + (" (log axis)" if log_axis[s] else "") for s in SIGNALS]
    fig = make_subplots(rows=1, cols=len(SIGNALS), subplot_titles=titles)
    for col, name in enumerate(SIGNALS, start=1):
        for (label, hue), values in zip(SETTINGS, (current, reference), strict=True):
            fig.add_trace(
                go.Box(y=values[name], name=label, marker_color=hue, showlegend=col == 1, legendgroup=label,
                       boxmean=True),
                row=1, col=col,
            )  # fmt: skip
        if log_axis[name]:
            fig.update_yaxes(type="log", row=1, col=col)
    fig.update_layout(height=320, margin=MARGIN, legend={"orientation": "h", "y": -0.1})
    return fig


def _positive(*arrays: np.ndarray) -> bool:
    """Whether every value is > 0 and there is at least one (a log axis can show them all)."""
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
    return values.size > 0 and bool(np.all(values > 0))


def reward_figure(frame: pd.DataFrame, column: str) -> go.Figure:
    """Histograms of one score column, one panel per kind (RM, gold), settings overlaid."""
    kinds = list(dict.fromkeys(frame["kind"]))
    fig = make_subplots(rows=1, cols=len(kinds), subplot_titles=[f"{k} ({column})" for k in kinds])
    for col, kind in enumerate(kinds, start=1):
        for setting, hue in SETTINGS:
            values = frame[(frame["kind"] == kind) & (frame["setting"] == setting)][column]
            fig.add_trace(
                go.Histogram(x=values, name=setting, marker_color=hue, opacity=0.6, nbinsx=20, bingroup=kind,
                             showlegend=col == 1, legendgroup=setting),
                row=1, col=col,
            )  # fmt: skip
    fig.update_layout(barmode="overlay", height=300, margin=MARGIN)
    return fig


def sweep_figure(points: list[SweepPoint], parameter: str, current: float) -> go.Figure:
    """Each signal's mean, the mean RM score and the mean gold score against ``parameter``, each on
    its own axis (RM scores and gold live on different scales), the current value dashed."""
    panels = [(s, SIGNAL_LABELS[s], CURRENT_COLOUR, [p.summary[s] for p in points]) for s in SIGNALS]
    panels += [
        ("reward", "mean RM score", RM_COLOUR, [p.reward for p in points]),
        ("gold", "mean gold score (0 to 1)", GOLD_COLOUR, [p.gold for p in points]),
    ]
    fig = make_subplots(rows=2, cols=4, subplot_titles=[title for _, title, _, _ in panels])
    x = [p.value for p in points]
    for k, (_, title, hue, y) in enumerate(panels):
        row, col = divmod(k, 4)
        if any(v is None for v in y):
            fig.add_annotation(text="no score", showarrow=False, row=row + 1, col=col + 1,
                               xref="x domain", yref="y domain", x=0.5, y=0.5)  # fmt: skip
        else:
            fig.add_trace(
                go.Scatter(x=x, y=y, mode="lines+markers", name=title, line={"color": hue}, showlegend=False),
                row=row + 1, col=col + 1,
            )  # fmt: skip
        fig.add_vline(x=current, line_dash="dash", line_color="#444", row=row + 1, col=col + 1)
    fig.update_xaxes(title_text=parameter)
    fig.update_layout(height=540, margin=MARGIN)
    return fig


def forking_figure(entropy: np.ndarray, distribution: dict) -> go.Figure:
    """Histogram of the sampled tokens' entropy, with the near-zero threshold and p50 / p80 / p90 marked."""
    fig = go.Figure(go.Histogram(x=entropy, nbinsx=40, marker_color=CURRENT_COLOUR, opacity=0.75,
                                 name="sampled tokens"))  # fmt: skip
    for name, dash in (("p50", "dot"), ("p80", "dash"), ("p90", "dashdot")):
        if distribution.get(name) is not None:
            fig.add_vline(x=distribution[name], line_dash=dash, line_color="#333",
                          annotation_text=f"{name} {distribution[name]:.2f}", annotation_position="top")  # fmt: skip
    fig.update_layout(
        height=300, margin={**MARGIN, "t": 50}, xaxis_title="entropy of the next-token distribution (nats)",
        yaxis_title="tokens", showlegend=False,
    )  # fmt: skip
    return fig
