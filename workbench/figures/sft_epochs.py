"""SFT-epoch plots: entropy per epoch towards its floor, score boxes per epoch (raw or per-prompt
normalised), and mean vs best-of-N gold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from engine.analysis.normalise import normalise_per_prompt

SPLIT_LABELS = {
    "sft_train": "SFT-train prompts",
    "eval": "held-out SFT-family prompts",
    "ppo_only": "PPO-only prompts",
}
# The range a score can take: a normalised value outside it is drawn at its edge (see epoch_scores).
SCORE_RANGE = {"gold": (0.0, 1.0)}


def entropy_figure(table: pd.DataFrame, floor: int, default_epoch: int) -> go.Figure:
    """Mean per-token entropy of the samples per epoch and prompt split (``epoch_table`` rows)."""
    fig = go.Figure()
    for split, label in SPLIT_LABELS.items():
        column = f"entropy_{split}"
        if column in table:
            fig.add_trace(go.Scatter(x=table["epoch"], y=table[column], mode="lines+markers", name=label))
    fig.add_vline(x=floor, line_dash="dot", annotation_text=f"floor reached (epoch {floor})")
    fig.add_vline(
        x=default_epoch,
        line_dash="dash",
        line_color="green",
        annotation_text="default start",
        annotation_position="bottom right",
    )
    fig.update_layout(
        title="Mean per-token entropy of samples (nats)",
        xaxis_title="SFT epoch",
        yaxis_title="entropy",
        height=380,
        margin={"t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def epoch_scores(samples: pd.DataFrame, value: str, normalised: bool) -> tuple[pd.DataFrame, float]:
    """(epoch, prompts, value) per sample, per-prompt normalised within each epoch if asked
    (:func:`~engine.analysis.normalise.normalise_per_prompt`), and the share of samples drawn at the
    edge of the score's range: normalising a bounded score (gold in [0, 1]) can carry a sample past
    it (0 - a prompt mean of 0.9 + an epoch mean of 0.4 = -0.5), which reads as a score that does not
    exist, so such a value is drawn at the edge."""
    frame = samples[["epoch", "prompt_id", "split", value]].copy()
    frame[value] = frame[value].astype(float)  # RM rewards are float32: normalised values are float64
    if normalised:
        for _, part in frame.groupby("epoch"):
            frame.loc[part.index, value] = normalise_per_prompt(
                part[value].to_numpy(), part["prompt_id"].to_numpy()
            )
    clipped = 0.0
    if normalised and value in SCORE_RANGE:
        lo, hi = SCORE_RANGE[value]
        outside = (frame[value] < lo) | (frame[value] > hi)
        clipped = float(outside.mean())
        frame[value] = frame[value].clip(lo, hi)
    frame["prompts"] = frame["split"].map(SPLIT_LABELS)
    return frame, clipped


def spread_by_epoch(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    """Interquartile range of ``value`` per (epoch, split): the width of each box."""
    q = frame.groupby(["epoch", "split"])[value].quantile([0.25, 0.75]).unstack()
    return (q[0.75] - q[0.25]).rename("iqr").reset_index()


def spread_trend(spread: pd.DataFrame, split: str = "sft_train") -> str:
    """'widens' / 'narrows' / 'stays about the same': the box width from the first to the last epoch."""
    part = spread[spread["split"] == split].sort_values("epoch")
    if len(part) < 2:
        return "stays about the same"
    first, last = float(part["iqr"].iloc[0]), float(part["iqr"].iloc[-1])
    scale = max(abs(first), abs(last), 1e-9)
    if abs(last - first) / scale < 0.1:
        return "stays about the same"
    return "widens" if last > first else "narrows"


def epoch_boxes(frame: pd.DataFrame, value: str) -> go.Figure:
    fig = px.box(frame, x="epoch", y=value, color="prompts", points=False, height=380)
    fig.update_layout(margin={"t": 30, "b": 40}, legend={"orientation": "h", "y": -0.2}, boxmode="group")
    return fig


def best_of_n_figure(table: pd.DataFrame) -> go.Figure:
    """Mean gold per epoch with the best-of-8 gap stacked on it: the room PPO can reach by reweighting."""
    fig = go.Figure()
    fig.add_trace(go.Bar(x=table["epoch"], y=table["gold"], name="mean gold"))
    fig.add_trace(go.Bar(x=table["epoch"], y=table["best_gold"] - table["gold"], name="best-of-8 gap"))
    fig.update_layout(
        barmode="stack", height=320, xaxis_title="SFT epoch", yaxis_title="gold", margin={"t": 20, "b": 40}
    )
    return fig


def ratio_text(ratio: float) -> str:
    """×1.92 as 'x1.92 (more entropy on PPO-only prompts)'; the arrow of a metric is kept for a real rise."""
    if not np.isfinite(ratio):
        return "n/a"
    word = "more" if ratio > 1 else "less"
    return f"×{ratio:.2f} ({word} entropy on PPO-only prompts)"
