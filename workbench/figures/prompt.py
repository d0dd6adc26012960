"""One prompt over training: its samples' rewards per step, the step means, gold and entropy."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go


def prompt_over_training(samples: pd.DataFrame, per_step: pd.DataFrame) -> go.Figure:
    """``samples``: the prompt's rollouts (step, reward); ``per_step``: its per-step table
    (step, reward_mean, gold_mean, entropy_mean; ``engine.store.prompt_step_table``)."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=samples["step"],
            y=samples["reward"],
            mode="markers",
            name="sample reward",
            marker={"color": "#1f77b4", "opacity": 0.5},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=per_step["step"],
            y=per_step["reward_mean"],
            mode="lines",
            name="mean reward",
            line={"color": "#1f77b4"},
        )
    )
    if per_step["gold_mean"].notna().any():
        fig.add_trace(
            go.Scatter(
                x=per_step["step"],
                y=per_step["gold_mean"],
                mode="lines",
                name="mean gold (right)",
                yaxis="y2",
                line={"color": "#2ca02c", "dash": "dash"},
            )
        )
    fig.add_trace(
        go.Scatter(
            x=per_step["step"],
            y=per_step["entropy_mean"],
            mode="lines",
            name="mean entropy (right)",
            yaxis="y2",
            line={"color": "#d62728", "dash": "dot"},
        )
    )
    fig.update_layout(
        title="This prompt over training",
        xaxis_title="step",
        yaxis_title="RM reward",
        height=320,
        yaxis2={"title": "gold / entropy (nats)", "overlaying": "y", "side": "right", "showgrid": False},
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig
