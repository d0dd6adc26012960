"""Figures of the Teaching page's one-prompt bandit: answer probabilities before and after PPO, and
entropy, RM reward and gold against step. Pure functions of ``engine.teaching`` results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.teaching import Bandit

GOLD_SCALE = "RdYlGn"  # red = bad, yellow = middling, green = good
RM_COLOUR, GOLD_COLOUR, ENTROPY_COLOUR = "#1f3b99", "#2ca02c", "#9467bd"


def _order(bandit: Bandit) -> tuple[np.ndarray, list[str]]:
    order = np.argsort(bandit.gold)
    return order, [f"answer {i + 1}" for i in range(len(order))]


def answer_bars(bandit: Bandit, start: np.ndarray, final: np.ndarray, steps: int) -> go.Figure:
    """Probability of each answer under the SFT model (grey) and after PPO (coloured by gold).

    The after-PPO bars take their colour from a gold colour scale with a colour bar, so the legend
    shows no single (misleading) swatch for them: its entry is the colour bar.
    """
    order, labels = _order(bandit)
    gold = bandit.gold[order]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=start[order], name="SFT model", marker_color="lightgray"))
    fig.add_trace(
        go.Bar(
            x=labels, y=final[order], name=f"after {steps} PPO steps", showlegend=False,
            marker={"color": gold, "colorscale": GOLD_SCALE, "cmin": 0, "cmax": 1, "line": {"color": "#333", "width": 1},
                    "colorbar": {"title": {"text": f"after {steps}<br>PPO steps:<br>gold"}, "len": 0.9, "thickness": 14}},
            customdata=np.stack([gold, bandit.rm[order]], 1),
            hovertemplate="p=%{y:.3f}<br>gold %{customdata[0]:.2f}<br>RM %{customdata[1]:.2f}<extra>after PPO</extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        barmode="group", height=340, margin={"t": 50, "b": 30},
        title="Probability of each answer, sorted by gold: grey = SFT model, coloured = after PPO (colour = gold)",
        legend={"orientation": "h", "y": -0.15},
    )  # fmt: skip
    return fig


def bandit_curves(history: pd.DataFrame) -> go.Figure:
    """Entropy against step; expected RM reward and gold against step (RM drawn on top of gold, so
    both show where they coincide, as they do for an exact RM)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("entropy falls", "RM reward vs gold"))
    fig.add_trace(
        go.Scatter(x=history.step, y=history.entropy, name="entropy", line={"color": ENTROPY_COLOUR}), 1, 1
    )
    fig.add_trace(
        go.Scatter(x=history.step, y=history.expected_gold, name="expected gold",
                   line={"color": GOLD_COLOUR, "width": 7}, opacity=0.45),
        1, 2,
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=history.step, y=history.expected_rm, name="expected RM reward",
                   line={"color": RM_COLOUR, "dash": "dash", "width": 2.5}),
        1, 2,
    )  # fmt: skip
    fig.update_layout(height=320, margin={"t": 40, "b": 30}, legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(title_text="PPO step")
    return fig


def answers_table(bandit: Bandit, start: np.ndarray, final: np.ndarray) -> pd.DataFrame:
    order, labels = _order(bandit)
    return pd.DataFrame(
        {"answer": labels, "gold": bandit.gold[order], "RM": bandit.rm[order], "p SFT": start[order], "p PPO": final[order]}
    ).round(3)  # fmt: skip
