"""Figures of the Learn path: score densities per SFT epoch, one probe family's curves, RM vs gold over
steps and against sqrt(KL), entropy per prompt split and the per-family gains of a PPO run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.figures.ridgeline import bandwidth
from workbench.figures.sft_epochs import SPLIT_LABELS

_LAYOUT = {"margin": {"l": 40, "r": 20, "t": 50, "b": 40}, "legend": {"orientation": "h", "y": -0.22}}
GOLD, RM, ENTROPY = "#2ca02c", "#1f77b4", "#d62728"
SPLIT_COLOURS = {"sft_train": "#1f77b4", "eval": "#9ecae1", "ppo_only": "#ff7f0e"}
PICKED = "#6a3d9a"  # the epoch / family the user picked (not a colour any series uses)


def _kde(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of ``values`` on ``grid``, bandwidth by Silverman's rule."""
    width = float(grid[1] - grid[0])
    h = bandwidth(len(values), float(np.std(values)), width)
    z = (grid[:, None] - values[None, :]) / h  # (G, N)
    return np.exp(-0.5 * z**2).sum(axis=1) / (len(values) * h * np.sqrt(2 * np.pi))


def epoch_density_figure(frame: pd.DataFrame, value: str, picked: int, x_title: str) -> go.Figure:
    """One density curve of ``value`` per SFT epoch (``epoch_scores`` rows), the picked epoch bold."""
    x = frame[value].to_numpy(dtype=float)
    grid = np.linspace(x.min(), x.max(), 200)
    fig = go.Figure()
    for epoch, part in frame.groupby("epoch"):
        mine = int(epoch) == int(picked)
        fig.add_trace(
            go.Scatter(
                x=grid,
                y=_kde(part[value].to_numpy(dtype=float), grid),
                name=f"epoch {epoch}",
                line={"color": PICKED if mine else "#bbb", "width": 4 if mine else 1.2},
                opacity=1.0 if mine else 0.8,
            )
        )
    fig.update_layout(
        title=f"Per-prompt normalised {x_title} of the samples, one curve per epoch",
        xaxis_title=x_title,
        yaxis_title="density",
        height=360,
        **_LAYOUT,
    )
    return fig


def probe_family_figure(family_steps: pd.DataFrame, family: str, step: int | None = None) -> go.Figure:
    """A probe family's mean per-token entropy (left axis) and mean gold (right) against step: each
    probe step faint, a 5-step running mean bold (16 samples a step are noisy); ``step`` marked."""
    part = family_steps[family_steps["prompt_family"] == family].sort_values("step")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for column, name, colour, right in (("entropy_mean", "entropy (nats)", ENTROPY, False),
                                        ("gold_mean", "gold", GOLD, True)):  # fmt: skip
        smooth = part[column].rolling(5, center=True, min_periods=1).mean()
        fig.add_trace(
            go.Scatter(x=part["step"], y=part[column], name=f"{name}, per probe step", opacity=0.35,
                       line={"color": colour, "width": 1}, showlegend=False),
            secondary_y=right,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=part["step"], y=smooth, name=f"{name} (running mean)", line={"color": colour, "width": 3}),
            secondary_y=right,
        )  # fmt: skip
    if step is not None:
        fig.add_vline(x=step, line_dash="dot", annotation_text=f"step {step}")
    fig.update_yaxes(title_text="entropy (nats)", secondary_y=False, color=ENTROPY)
    fig.update_yaxes(title_text="gold", secondary_y=True, color=GOLD)
    fig.update_layout(
        title=f"Probe prompts of '{family}': entropy and gold", xaxis_title="step", height=340, **_LAYOUT
    )
    return fig


def rm_gold_figure(curves: pd.DataFrame, fit: dict | None, title: str, window: int = 1) -> go.Figure:
    """Left: RM reward and gold per step (each on its own axis; faint per step, bold a ``window``-step
    running mean). Right: both against sqrt(KL), with Gao et al.'s fitted gold curve
    ``offset + d (alpha - beta log d)``. ``curves``: step, reward, gold, kl."""
    d = np.sqrt(curves["kl"].clip(lower=0))
    fig = make_subplots(
        rows=1,
        cols=2,
        specs=[[{"secondary_y": True}, {"secondary_y": True}]],
        subplot_titles=("against step", "against sqrt(KL to the SFT model)"),
    )
    for column, name, colour, right in (
        ("reward", "RM reward", RM, False),
        ("gold", "gold (judge)", GOLD, True),
    ):
        smooth = curves[column].rolling(window, center=True, min_periods=1).mean()
        fig.add_trace(
            go.Scatter(x=curves["step"], y=curves[column], opacity=0.3, line={"color": colour, "width": 1},
                       showlegend=False, name=f"{name}, per step"),
            row=1, col=1, secondary_y=right,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=curves["step"], y=smooth, name=name, line={"color": colour, "width": 3}),
            row=1, col=1, secondary_y=right,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=d, y=curves[column], mode="markers", marker={"size": 5, "color": colour},
                       showlegend=False, name=name),
            row=1, col=2, secondary_y=right,
        )  # fmt: skip
    if fit is not None and fit.get("alpha") is not None and len(d):
        grid = np.linspace(1e-3, float(d.max()) * 1.05, 80)
        curve = fit["gold_offset"] + grid * (fit["alpha"] - fit["beta"] * np.log(grid))
        fig.add_trace(
            go.Scatter(x=grid, y=curve, name="gold fit, Gao et al.", line={"color": GOLD, "dash": "dash"}),
            row=1, col=2, secondary_y=True,
        )  # fmt: skip
    fig.update_yaxes(title_text="RM reward", secondary_y=False, color=RM)
    fig.update_yaxes(title_text="gold", secondary_y=True, color=GOLD)
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(title_text="sqrt(KL)", row=1, col=2)
    fig.update_layout(title=title, height=380, **_LAYOUT)
    return fig


def agreement_figure(agreement: pd.DataFrame) -> go.Figure:
    """Share of within-prompt pairs the RM orders like gold, per step (0.5 = a coin)."""
    fig = go.Figure(go.Scatter(x=agreement["step"], y=agreement["agreement"], mode="lines+markers"))
    fig.add_hline(y=0.5, line_dash="dot", annotation_text="coin flip")
    fig.update_layout(
        title="RM-gold agreement on the run's own samples",
        xaxis_title="step",
        yaxis_title="agreement",
        height=280,
        margin=_LAYOUT["margin"],
    )
    return fig


def split_entropy_figure(table: pd.DataFrame, epoch: int) -> go.Figure:
    """Mean per-token entropy of one epoch's samples per prompt split (``epoch_table`` row)."""
    row = table.set_index("epoch").loc[epoch]
    splits = [s for s in SPLIT_LABELS if f"entropy_{s}" in row]
    fig = go.Figure(
        go.Bar(
            x=[SPLIT_LABELS[s] for s in splits],
            y=[row[f"entropy_{s}"] for s in splits],
            marker_color=[SPLIT_COLOURS[s] for s in splits],
            text=[f"{row[f'entropy_{s}']:.3f}" for s in splits],
            textposition="outside",
        )
    )
    fig.update_layout(
        title=f"Mean per-token entropy at SFT epoch {epoch} (nats)",
        yaxis_title="entropy",
        height=340,
        margin=_LAYOUT["margin"],
    )
    return fig


def family_change_figure(change: pd.DataFrame, picked: str, ppo_only: set[str]) -> go.Figure:
    """Per family, the probe samples' gold change (left) and entropy change (right) from the first to
    the last probe step; PPO-only families hatched, the picked family outlined."""
    change = change.sort_values("gold_change", ascending=False)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("gold change", "entropy change (nats)"))
    for col, column in ((1, "gold_change"), (2, "entropy_change")):
        fig.add_trace(
            go.Bar(
                x=change["prompt_family"],
                y=change[column],
                marker={
                    "color": [GOLD if col == 1 else ENTROPY] * len(change),
                    "pattern": {"shape": ["/" if f in ppo_only else "" for f in change["prompt_family"]]},
                    "line": {
                        "width": [3 if f == picked else 0 for f in change["prompt_family"]],
                        "color": "#111",
                    },
                },
                showlegend=False,
            ),
            row=1,
            col=col,
        )
    fig.update_layout(
        title="What PPO changed per family (first vs last probe step; hatched: PPO-only)",
        height=340,
        margin=_LAYOUT["margin"],
    )
    return fig
