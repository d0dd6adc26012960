"""One prompt over training: its samples' rewards per step, the step means, gold and entropy."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from workbench.figures import LAYOUT

_RIGHT = {"yaxis": "y2"}


def prompt_over_training(samples: pd.DataFrame, per_step: pd.DataFrame) -> go.Figure:
    """``samples``: the prompt's rollouts (step, reward); ``per_step``: its per-step table
    (step, reward_mean, gold_mean, entropy_mean; ``engine.store.prompt_step_table``)."""
    # (frame, column, mode, name, style): one trace each, in legend order
    traces = [
        (samples, "reward", "markers", "sample reward", {"marker": {"color": "#1f77b4", "opacity": 0.5}}),
        (per_step, "reward_mean", "lines", "mean reward", {"line": {"color": "#1f77b4"}}),
    ]
    if per_step["gold_mean"].notna().any():
        gold_line = {"line": {"color": "#2ca02c", "dash": "dash"}}
        traces.append((per_step, "gold_mean", "lines", "mean gold (right)", _RIGHT | gold_line))
    entropy_line = {"line": {"color": "#d62728", "dash": "dot"}}
    traces.append((per_step, "entropy_mean", "lines", "mean entropy (right)", _RIGHT | entropy_line))
    fig = go.Figure()
    for frame, column, mode, name, style in traces:
        fig.add_trace(go.Scatter(x=frame["step"], y=frame[column], mode=mode, name=name, **style))
    fig.update_layout(
        title="This prompt over training",
        xaxis_title="step",
        yaxis_title="RM reward",
        height=320,
        yaxis2={"title": "gold / entropy (nats)", "overlaying": "y", "side": "right", "showgrid": False},
        **LAYOUT,
    )
    return fig
