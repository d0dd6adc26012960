"""Entropy dynamics figures over ``engine.analysis.entropy_dynamics.entropy_report``'s parts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.figures import LAYOUT


def cov_vs_change_figure(per_step: pd.DataFrame, corr: float | None) -> go.Figure:
    """Per step, cov(log-prob, advantage) (left axis) next to the entropy change (right axis)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(
            x=per_step["step"], y=per_step["cov"], name="cov(log-prob, advantage)", mode="lines+markers"
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=per_step["step"],
            y=per_step["entropy_change"],
            name="entropy change (right)",
            mode="lines+markers",
            line={"color": "#d62728", "dash": "dot"},
        ),
        secondary_y=True,
    )
    fig.add_hline(y=0, line_color="#bbb", line_width=1)
    corr_text = "n/a" if corr is None else f"{corr:+.2f}"
    fig.update_layout(
        title=f"Covariance and entropy change per step (correlation {corr_text})", height=340, **LAYOUT
    )
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="cov", secondary_y=False)
    fig.update_yaxes(title_text="entropy change (nats)", secondary_y=True, showgrid=False)
    return fig


def law_figure(per_step: pd.DataFrame, law: dict, column: str, label: str) -> go.Figure:
    """``column`` against mean entropy per step, the fitted law ``R = -a exp(H) + b`` (fitted on the
    first steps) and its ceiling ``b - a`` at entropy 0."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=per_step["mean_entropy"],
            y=per_step[column],
            mode="markers+text",
            text=per_step["step"].astype(str),
            textposition="top center",
            name=f"{label} per step (labels: step)",
        )
    )
    if law.get("a") is not None:
        h = np.linspace(0.0, float(np.nanmax(per_step["mean_entropy"])), 60)
        fig.add_trace(
            go.Scatter(x=h, y=-law["a"] * np.exp(h) + law["b"], name="fitted law", line={"dash": "dash"})
        )
        fig.add_hline(y=law["ceiling"], line_dash="dot", annotation_text=f"ceiling {law['ceiling']:.3g}")
    fig.update_layout(
        title=f"{label} vs entropy: R = -a·exp(H) + b", xaxis_title="mean per-token entropy (nats)",
        yaxis_title=label, height=360, **LAYOUT,
    )  # fmt: skip
    fig.update_xaxes(autorange="reversed")  # training moves right to left: entropy falls
    return fig


def forking_figure(series: pd.DataFrame, near_zero: float) -> go.Figure:
    """Per step: the share of tokens below ``near_zero`` nats (top) and the entropy percentiles (bottom)."""
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
        subplot_titles=(f"share of tokens below {near_zero:g} nats", "per-token entropy percentiles"),
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=series["step"], y=series["share_near_zero"], name="share near zero"), row=1, col=1
    )
    for q in [c for c in series.columns if c.startswith("p") and c[1:].isdigit()]:
        fig.add_trace(go.Scatter(x=series["step"], y=series[q], name=q, mode="lines"), row=2, col=1)
    fig.update_yaxes(tickformat=".1%", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="nats", row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_layout(title="Forking tokens over the run", height=460, **LAYOUT)
    return fig


def gold_kl_figure(per_step: pd.DataFrame, fit: dict) -> go.Figure:
    """Gold against sqrt(KL) per step and the fitted ``gold = offset + d (alpha - beta log d)``
    (Gao et al. 2022) with its peak."""
    d = np.sqrt(per_step["kl"].clip(lower=0))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=d, y=per_step["mean_gold"], mode="markers", name="gold per step"))
    if fit.get("alpha") is not None:
        grid = np.linspace(1e-3, max(float(d.max()), float(fit.get("d_peak") or 0)) * 1.1, 80)
        curve = fit["gold_offset"] + grid * (fit["alpha"] - fit["beta"] * np.log(grid))
        fig.add_trace(go.Scatter(x=grid, y=curve, name="fit", line={"dash": "dash"}))
        if fit.get("d_peak") is not None:
            fig.add_trace(
                go.Scatter(
                    x=[fit["d_peak"]], y=[fit["gold_peak"]], mode="markers", name="fitted peak",
                    marker={"symbol": "star", "size": 14, "color": "#d62728"},
                )
            )  # fmt: skip
    fig.update_layout(
        title="Gold vs sqrt(KL to the reference)",
        xaxis_title="sqrt(KL)",
        yaxis_title="gold",
        height=360,
        **LAYOUT,
    )
    return fig
