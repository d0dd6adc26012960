"""Figures of the Runs page (the live 2 x 2 curves of a run, its probe-set curves per family) and of
Home's one-look summary of a run.

Pure functions of long-format metrics (``run_id, step, key, value``) and the per-step KL frame of
``engine.store.kl_per_step``; no Streamlit.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.figures.curves import LINE_COLOURS

PANEL_COLOURS = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd")
PROBE_VALUES = (
    ("entropy", "per-token entropy (nats)"),
    ("distinct", "distinct responses per prompt"),
    ("top_mass", "mass of the most likely response"),
)


def moving_average_window(n_steps: int) -> int:
    """Steps averaged by the trend line: about a tenth of the run, 1 to 20."""
    return max(1, min(20, n_steps // 10))


def _series(metrics: pd.DataFrame, key: str) -> pd.DataFrame:
    if metrics.empty:
        return pd.DataFrame(columns=["step", "value"])
    return metrics[metrics["key"] == key].sort_values("step")[["step", "value"]]


def _add_trend(fig: go.Figure, rows: pd.DataFrame, name: str, colour: str, row: int, col: int) -> None:
    """One panel's steps as faint points and their moving average of about a tenth of the run."""
    window = moving_average_window(len(rows))
    fig.add_trace(
        go.Scatter(x=rows["step"], y=rows["value"], mode="markers", name=f"{name} (per step)",
                   marker={"color": colour, "size": 4, "opacity": 0.35}),
        row=row, col=col,
    )  # fmt: skip
    # A line needs two points: a run's first step or two would draw nothing but faint dots.
    mode = "lines" if len(rows) > 2 else "lines+markers"
    fig.add_trace(
        go.Scatter(x=rows["step"], y=rows["value"].rolling(window, min_periods=1).mean(), mode=mode,
                   name=f"{name} (mean of last {window} steps)", line={"color": colour, "width": 2.5},
                   marker={"color": colour, "size": 9}),
        row=row, col=col,
    )  # fmt: skip


def curves_figure(panels: list[tuple[str, str, pd.DataFrame, str]]) -> go.Figure:
    """2 x 2 panels of (title, line name, rows with step and value, text when empty) against step.

    Each step samples other prompts, so single steps are noisy: faint points, and a moving average of
    about a tenth of the run to read the trend by.
    """
    fig = make_subplots(rows=2, cols=2, subplot_titles=[p[0] for p in panels], horizontal_spacing=0.08)
    for i, (_, name, rows, empty_text) in enumerate(panels):
        row, col = divmod(i, 2)
        if rows.empty:
            fig.add_annotation(text=empty_text, xref="x domain", yref="y domain", x=0.5, y=0.5,
                               showarrow=False, row=row + 1, col=col + 1)  # fmt: skip
            continue
        _add_trend(fig, rows, name, PANEL_COLOURS[i % len(PANEL_COLOURS)], row + 1, col + 1)
    fig.update_layout(height=520, showlegend=False, margin={"l": 40, "r": 20, "t": 40, "b": 30})
    last = max((int(rows["step"].max()) for _, _, rows, _ in panels if not rows.empty), default=1)
    fig.update_xaxes(dtick=step_tick(last))
    fig.update_xaxes(title_text="step", row=2)
    fig.update_yaxes(exponentformat="e")  # 1.5e-4, not the SI prefix "150µ"
    return fig


GLANCE_KEYS = ("objective/gold", "probe/entropy")
"""The metrics :func:`glance_figure` draws."""


def glance_figure(metrics: pd.DataFrame) -> go.Figure | None:
    """Home's one-look summary of a run: gold (mean) and the probe set's per-token entropy against
    step, side by side; None when the run logs neither (no judge, no probes)."""
    panels = [
        ("gold score (mean)", "gold", _series(metrics, "objective/gold"), PANEL_COLOURS[1]),
        ("per-token entropy on the probe set (nats)", "entropy", _series(metrics, "probe/entropy"),
         PANEL_COLOURS[3]),
    ]  # fmt: skip
    panels = [p for p in panels if not p[2].empty]
    if not panels:
        return None
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels])
    for col, (_, name, rows, colour) in enumerate(panels, start=1):
        _add_trend(fig, rows, name, colour, 1, col)
    last = max(int(rows["step"].max()) for _, _, rows, _ in panels)
    fig.update_layout(height=280, showlegend=False, margin={"l": 40, "r": 20, "t": 40, "b": 30})
    fig.update_xaxes(title_text="step", dtick=step_tick(last))
    return fig


def step_tick(last_step: int) -> int:
    """Whole steps between x-axis ticks, about 8 ticks over the run (steps are integers)."""
    return max(1, math.ceil(last_step / 8))


def run_panels(
    metrics: pd.DataFrame, kl: pd.DataFrame, *, kl_estimator: str, probes: bool
) -> list[tuple[str, str, pd.DataFrame, str]]:
    """The four panels of a run: RM reward, gold, KL to the SFT policy, entropy.

    KL: k3 summed per response from the logged log-probs (never negative) when the rollouts carry
    them, else the trainer's own ``objective/kl`` under its estimator. Entropy: the fixed probe set's
    when the run logs probes (the same prompts every time), else the sampled batch's.
    """
    if not kl.empty:
        kl_panel = (
            "KL to the SFT policy (k3, sum per response)",
            "KL k3",
            kl.rename(columns={"k3": "value"}),
        )
    else:
        kl_panel = (
            f"KL to the SFT policy ({kl_estimator}, sum per response)",
            "KL",
            _series(metrics, "objective/kl"),
        )
    entropy_key, entropy_title = (
        ("probe/entropy", "per-token entropy on the probe set (nats)")
        if probes
        else ("objective/entropy", "per-token entropy of the batch (nats, noisy)")
    )
    reward, gold = _series(metrics, "objective/reward"), _series(metrics, "objective/gold")
    return [
        (*_reward_titles(reward, gold), reward, "not logged"),
        ("gold score (mean)", "gold", gold, "no judge for this run"),
        (*kl_panel, "not logged"),
        (entropy_title, "entropy", _series(metrics, entropy_key), "not logged"),
    ]


def _reward_titles(reward: pd.DataFrame, gold: pd.DataFrame) -> tuple[str, str]:
    """The reward panel's title and name: the RM's reward, or the judge's score where the logged reward
    is the gold score at every step (a run rewarded by the judge itself: ``reward_model = gold``)."""
    same = (
        len(reward) > 0
        and len(reward) == len(gold)
        and (reward["step"].to_numpy() == gold["step"].to_numpy()).all()
        and np.allclose(reward["value"].to_numpy(), gold["value"].to_numpy(), rtol=0, atol=1e-6)
    )
    return (
        ("reward: the judge's score (mean)", "reward (judge)") if same else ("RM reward (mean)", "RM reward")
    )


def probe_families(keys: list[str]) -> list[str]:
    """Families with probe curves among metric keys ``probe/<family>/<value>``."""
    return sorted({k.split("/")[1] for k in keys if k.startswith("probe/") and k.count("/") == 2})


def probe_figure(metrics: pd.DataFrame, families: list[str]) -> go.Figure:
    """Per family, the probe set's entropy, distinct responses and top-response mass against step."""
    fig = make_subplots(rows=1, cols=len(PROBE_VALUES), subplot_titles=[t for _, t in PROBE_VALUES])
    for c, (value, _) in enumerate(PROBE_VALUES, start=1):
        for f, family in enumerate(families):
            rows = _series(metrics, f"probe/{family}/{value}")
            fig.add_trace(
                go.Scatter(x=rows["step"], y=rows["value"], mode="lines+markers", name=family, legendgroup=family,
                           showlegend=c == 1, line={"color": LINE_COLOURS[f % len(LINE_COLOURS)]}),
                row=1, col=c,
            )  # fmt: skip
    fig.update_layout(
        height=340, margin={"l": 40, "r": 20, "t": 40, "b": 30}, legend={"orientation": "h", "y": -0.2}
    )
    last = int(metrics["step"].max()) if not metrics.empty else 1
    fig.update_xaxes(title_text="step", dtick=step_tick(last))
    return fig


def prompt_selection_figure(table: pd.DataFrame) -> go.Figure:
    """Each candidate prompt of a prompt selection: mean token entropy against RM-score variance on
    the starting policy, kept prompts filled, dropped ones hollow; hover: id, family, rank."""
    fig = go.Figure()
    for kept, name, symbol in ((True, "kept", "circle"), (False, "dropped", "circle-open")):
        part = table[table["kept"].astype(bool) == kept]
        fig.add_trace(
            go.Scatter(
                x=part["mean_entropy"].tolist(),
                y=part["reward_variance"].tolist(),
                mode="markers",
                name=f"{name} ({len(part)})",
                marker={"symbol": symbol, "size": 9, "color": "#1f77b4" if kept else "#7f7f7f"},
                hovertext=[
                    f"{r.prompt_id} ({r.family}), rank {r.rank}" for r in part.itertuples(index=False)
                ],
                hoverinfo="text+x+y",
            )
        )
    fig.update_layout(
        title="Sampling space of each candidate prompt, on the starting policy",
        xaxis_title="mean token entropy (nats)",
        yaxis_title="RM-score variance",
        height=360,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
    )
    return fig
