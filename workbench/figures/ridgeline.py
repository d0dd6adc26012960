"""Density ridgelines (one curve per logged step, stacked upwards) and the per-step spread chart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

VALUE_LABELS = {
    "reward": "RM reward",
    "gold": "gold (judge) score",
    "mean_entropy": "mean per-token entropy (nats)",
}
# The store's histograms are fine (this many bins); the curves drawn are a kernel estimate over them.
HISTOGRAM_BINS = 200


def histogram_moments(density: pd.DataFrame) -> pd.DataFrame:
    """Per (run_id, step): n, mean and sd estimated from the histogram's bin centres."""
    rows = []
    for (run_id, step), g in density.groupby(["run_id", "step"], sort=True):
        w = g["count"].to_numpy(dtype=float)
        x = g["x"].to_numpy(dtype=float)
        n = w.sum()
        mean = float((w * x).sum() / n) if n else float("nan")
        sd = float(np.sqrt((w * (x - mean) ** 2).sum() / n)) if n else float("nan")
        rows.append({"run_id": run_id, "step": step, "n": int(n), "mean": mean, "sd": sd})
    return pd.DataFrame(rows, columns=["run_id", "step", "n", "mean", "sd"])


def bandwidth(n: int, sd: float, width: float) -> float:
    """Silverman's rule of thumb, h = 1.06 sd n^(-1/5), and never below one histogram bin."""
    if n < 2 or not np.isfinite(sd) or sd <= 0:
        return width
    return max(1.06 * sd * n ** (-0.2), width)


def smooth_density(hist: pd.DataFrame) -> pd.DataFrame:
    """A Gaussian kernel density estimate per (run_id, step) from a fine histogram
    (``reward_norm_density`` rows: run_id, step, x, left, right, count), evaluated on the bin centres.

    The bandwidth follows the step's sample count (:func:`bandwidth`), so 64 samples give a smooth
    curve rather than a comb of 60 spikes, and 10,000 samples keep their detail. Each curve
    integrates to 1: the grid reaches 3 bandwidths past the outermost bins, so no curve stops at an
    edge. Columns: run_id, step, x, density, bandwidth.
    """
    frames = []
    for (run_id, step), g in hist.groupby(["run_id", "step"], sort=True):
        x = g["x"].to_numpy(dtype=float)  # (K,)
        w = g["count"].to_numpy(dtype=float)  # (K,)
        n = w.sum()
        if n == 0:
            continue
        width = float((g["right"] - g["left"]).iloc[0]) or 1.0
        mean = (w * x).sum() / n
        h = bandwidth(int(n), float(np.sqrt((w * (x - mean) ** 2).sum() / n)), width)
        pad = np.arange(1, int(np.ceil(3 * h / width)) + 1) * width  # the tails, 3 bandwidths out
        grid = np.concatenate([x[0] - pad[::-1], x, x[-1] + pad])  # (G,)
        z = (grid[:, None] - x[None, :]) / h  # (G, K): evaluation point x bin centre
        density = (np.exp(-0.5 * z**2) * w[None, :]).sum(axis=1) / (n * h * np.sqrt(2 * np.pi))
        frames.append(
            pd.DataFrame({"run_id": run_id, "step": step, "x": grid, "density": density, "bandwidth": h})
        )
    columns = ["run_id", "step", "x", "density", "bandwidth"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def common_range(*densities: pd.DataFrame) -> tuple[float, float]:
    """The x range where any of the given smoothed densities is above 0.1 % of its peak."""
    parts = [d.loc[d["density"] > 1e-3 * d["density"].max()] for d in densities]
    return min(float(p["x"].min()) for p in parts), max(float(p["x"].max()) for p in parts)


def ridgeline(
    density: pd.DataFrame,
    *,
    title: str,
    x_title: str,
    max_steps: int = 30,
    x_range: tuple[float, float] | None = None,
) -> go.Figure:
    """One filled density curve per logged step, stacked upwards (the first step at the bottom);
    ``x_range`` puts side-by-side plots on one axis so their widths compare."""
    steps = sorted(density["step"].unique())
    if len(steps) > max_steps:  # evenly spaced steps, always keeping the first and the last
        steps = sorted({steps[round(i)] for i in np.linspace(0, len(steps) - 1, max_steps)})
    peak = float(density["density"].max()) or 1.0
    scale = 2.2 / peak  # the tallest curve overlaps ~2 rows above it, as ridgelines do
    fig = go.Figure()
    colours = sample_colorscale("Viridis", list(np.linspace(0, 0.9, len(steps))))
    for row, (step, fill) in reversed(list(enumerate(zip(steps, colours, strict=True)))):
        part = density[density["step"] == step].sort_values("x")
        x = part["x"].to_numpy()
        y = row + part["density"].to_numpy() * scale
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([x, x[::-1]]),
                y=np.concatenate([y, np.full(len(x), row)]),
                fill="toself",
                fillcolor=fill,
                opacity=0.75,
                line={"color": "#222", "width": 0.8},
                name=f"step {step}",
                hoveron="points",
                customdata=np.concatenate([part["density"].to_numpy(), np.zeros(len(x))]),
                hovertemplate=f"step {step}<br>{x_title}: %{{x:.3g}}<br>density: %{{customdata:.3g}}<extra></extra>",
            )
        )
    fig.update_layout(
        title=title,
        showlegend=False,
        height=max(320, 120 + 26 * len(steps)),
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        xaxis_title=x_title,
        yaxis={"tickvals": list(range(len(steps))), "ticktext": [str(s) for s in steps], "title": "step"},
        plot_bgcolor="white",
    )
    fig.update_xaxes(showgrid=True, gridcolor="#eee", range=x_range)
    return fig


def spread_figure(raw: pd.DataFrame, normalised: pd.DataFrame, value_label: str) -> go.Figure:
    """Per step, the sd (top) and the mean (bottom) of the raw and normalised histograms, each on its
    own axis: a mean near -10 and an sd near 3 on one axis would make the sd look flat."""
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12, subplot_titles=("spread (sd)", "mean")
    )
    for name, frame, colour_hex in (
        ("raw", raw, "#7f7f7f"),
        ("per-prompt normalised", normalised, "#d62728"),
    ):
        m = histogram_moments(frame)
        fig.add_trace(
            go.Scatter(x=m["step"], y=m["sd"], name=f"sd, {name}", line={"color": colour_hex}), row=1, col=1
        )
        fig.add_trace(
            go.Scatter(
                x=m["step"], y=m["mean"], name=f"mean, {name}", line={"color": colour_hex, "dash": "dot"}
            ),
            row=2,
            col=1,
        )
    fig.update_yaxes(title_text="sd", row=1, col=1)
    fig.update_yaxes(title_text="mean", row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_layout(
        title=f"{value_label}: spread and mean per step",
        height=460,
        margin={"l": 10, "r": 10, "t": 70, "b": 40},
        legend={"orientation": "h", "y": -0.15},
    )
    return fig
