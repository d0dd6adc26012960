"""Figures of group methods and the sampling-space ceiling: two runs' curves overlaid panel by panel,
the group-filter audit per step, and pass@k curves of policies with their crossing marked.

Pure functions of frames and mappings (long metrics ``run_id, step, key, value``; the ``per_step``
list of ``engine.store.group_queries.group_audit``; pass@k as ``{policy: {k: value}}``); no Streamlit.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.figures.curves import LINE_COLOURS
from workbench.figures.runs import moving_average_window, step_tick

# The curves two runs are compared on first (each drawn only when both runs log it).
COMPARE_KEYS = (
    "objective/gold",
    "objective/reward",
    "objective/entropy",
    "probe/entropy",
    "objective/kl",
)
# What a reader calls the common metrics (panel titles, sentences); any other shows its key.
METRIC_NAMES = {"objective/gold": "gold", "objective/reward": "RM reward", "probe/entropy": "probe-set entropy",
                "objective/entropy": "batch entropy", "objective/kl": "KL",
                "rm/gold_agreement": "RM-gold agreement"}  # fmt: skip
# The audit's per-step shares, with their legend names.
AUDIT_SERIES = {
    "frac_zero_std": "zero-std groups",
    "std_filter_drop": "std filter drops",
    "mean_filter_drop": "mean filter drops",
    "binary_gate_drop": "binary gold gate drops",
}


def shared_keys(keys_a: list[str], keys_b: list[str]) -> list[str]:
    """The metrics both runs log: the :data:`COMPARE_KEYS` first, in their order, then the rest sorted."""
    both = set(keys_a) & set(keys_b)
    return [k for k in COMPARE_KEYS if k in both] + sorted(both - set(COMPARE_KEYS))


def compare_figure(metrics: pd.DataFrame, keys: list[str], runs: list[str]) -> go.Figure:
    """One panel per metric ``key`` (two columns), each run a colour: its steps as faint points and
    their moving average (about a tenth of the run), so two runs' trends overlay on the same axes."""
    cols = 2 if len(keys) > 1 else 1
    rows = max(1, math.ceil(len(keys) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[METRIC_NAMES.get(k, k) for k in keys] or ["no shared metric"],
                        horizontal_spacing=0.08, vertical_spacing=0.12 if rows > 1 else 0.1)  # fmt: skip
    for i, key in enumerate(keys):
        row, col = divmod(i, cols)
        for j, run in enumerate(runs):
            part = metrics[(metrics["run_id"] == run) & (metrics["key"] == key)].sort_values("step")
            if part.empty:
                continue
            colour = LINE_COLOURS[j % len(LINE_COLOURS)]
            window = moving_average_window(len(part))
            fig.add_trace(
                go.Scatter(x=part["step"], y=part["value"], mode="markers", legendgroup=run,
                           showlegend=False, name=f"{run} (per step)",
                           marker={"color": colour, "size": 3, "opacity": 0.25}),
                row=row + 1, col=col + 1,
            )  # fmt: skip
            fig.add_trace(
                go.Scatter(x=part["step"], y=part["value"].rolling(window, min_periods=1).mean(),
                           mode="lines", legendgroup=run, showlegend=i == 0, name=run,
                           line={"color": colour, "width": 2.5}),
                row=row + 1, col=col + 1,
            )  # fmt: skip
    last = int(metrics["step"].max()) if not metrics.empty else 1
    fig.update_xaxes(dtick=step_tick(last))
    fig.update_xaxes(title_text="step", row=rows)
    fig.update_yaxes(exponentformat="e")
    fig.update_layout(height=260 * rows + 60, margin={"l": 40, "r": 20, "t": 60, "b": 30},
                      legend={"orientation": "h", "y": 1.0 + 0.3 / rows, "x": 0})  # fmt: skip
    return fig


def audit_figure(per_step: list[dict], title: str) -> go.Figure:
    """Per step, the share of zero-std groups and of groups each filter would drop (0 to 1); a gold
    series that is None (no gold in the run) is left out."""
    frame = pd.DataFrame(per_step)
    fig = go.Figure()
    for i, (column, name) in enumerate(AUDIT_SERIES.items()):
        if frame.empty or column not in frame or frame[column].isna().all():
            continue
        dash = "dot" if column == "std_filter_drop" else None  # the same values as zero-std: drawn over it
        fig.add_trace(go.Scatter(x=frame["step"], y=frame[column], mode="lines", name=name,
                                 line={"color": LINE_COLOURS[i], "width": 2, "dash": dash}))  # fmt: skip
    fig.update_layout(title=title, height=360, xaxis_title="step", yaxis_title="share of the step's groups",
                      yaxis_range=[0, 1.02], margin={"l": 40, "r": 20, "t": 50, "b": 40})  # fmt: skip
    return fig


def pass_at_k_figure(curves: dict[str, dict[int, float]], crossing: int | None) -> go.Figure:
    """pass@k against k (log2 axis) per policy; a vertical line at the ``crossing`` k, when there is one."""
    fig = go.Figure()
    for i, (policy, values) in enumerate(curves.items()):
        ks = sorted(values)
        fig.add_trace(go.Scatter(x=ks, y=[values[k] for k in ks], mode="lines+markers", name=policy,
                                 line={"color": LINE_COLOURS[i % len(LINE_COLOURS)], "width": 2.5}))  # fmt: skip
    if crossing is not None:
        fig.add_vline(x=crossing, line={"dash": "dash", "color": "#7f7f7f"},
                      annotation_text=f"cross at k = {crossing}")  # fmt: skip
    fig.update_xaxes(type="log", dtick=math.log10(2), title_text="k (samples drawn)")
    fig.update_layout(height=380, yaxis_title="pass@k", yaxis_range=[0, 1.02],
                      margin={"l": 40, "r": 20, "t": 30, "b": 40})  # fmt: skip
    return fig
