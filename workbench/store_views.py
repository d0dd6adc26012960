"""UI helpers of the analysis pages: run picker, cached store queries, ridgeline plots, token colouring.

Pages stay thin: they read widgets, call :func:`cached` with an ``engine.store`` query and render
what these helpers build. Figures and HTML are pure functions of DataFrames (testable without
Streamlit); only :func:`pick_runs` and :func:`cached` touch ``st``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import sample_colorscale

import engine.store as store
from engine.paths import runs_dir
from workbench.lab_views import colour

# Distinct hues for lines (Streamlit's default colourway is shades of one blue: unreadable for 5+ lines).
LINE_COLOURS = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
)  # fmt: skip

VALUE_LABELS = {
    "reward": "RM reward",
    "gold": "gold (judge) score",
    "mean_entropy": "mean per-token entropy (nats)",
}


@st.cache_data(show_spinner=False, max_entries=256)
def _cached_call(name: str, run_dirs: tuple[str, ...], file_key: tuple, kwargs: tuple) -> Any:
    # file_key is unused in the body: it is part of the cache key, so changed files miss the cache.
    return getattr(store, name)([Path(d) for d in run_dirs], **dict(kwargs))


def cached(name: str, run_dirs: Sequence[Path], **kwargs: Any) -> Any:
    """``engine.store.<name>(run_dirs, **kwargs)``, cached until a file of the runs changes
    (the key holds every file's path, mtime and size, so a live run refreshes on rerun)."""
    key = store.fingerprint(run_dirs)
    return _cached_call(name, tuple(str(d) for d in run_dirs), key, tuple(sorted(kwargs.items())))


@st.cache_data(show_spinner=False, ttl=5)
def _runs_table(root: str) -> pd.DataFrame:
    return store.list_runs(Path(root))


def _run_label(row: pd.Series) -> str:
    steps = (
        "no steps yet" if pd.isna(row["last_step"]) else f"{row['n_steps']} steps, last {row['last_step']}"
    )
    return f"{row['run_id']}  ({row['kind']}, {row['state']}, {steps})"


def pick_runs(key: str, *, multi: bool = False) -> list[Path] | None:
    """Run picker over ``runs_dir()``; returns the chosen run directories, or None after telling the
    user why there is nothing to show (no runs, nothing selected, no logged step yet)."""
    root = runs_dir()
    runs = _runs_table(str(root))
    if runs.empty:
        st.info(
            f"No runs in `{root}` yet. Launch a PPO job on the **Runs** page, import rollouts, or write a "
            "demo store with `python -m engine store synth`."
        )
        return None
    labels = {row["run_id"]: _run_label(row) for _, row in runs.iterrows()}
    with_steps = runs.loc[runs["n_rollouts"] > 0, "run_id"].tolist()
    default = with_steps[0] if with_steps else runs["run_id"].iloc[0]
    ids = runs["run_id"].tolist()
    if multi:
        chosen = st.multiselect("Runs", ids, default=[default], format_func=labels.get, key=key)
    else:
        one = st.selectbox("Run", ids, index=ids.index(default), format_func=labels.get, key=key)
        chosen = [one] if one else []
    if not chosen:
        st.info("Pick at least one run.")
        return None
    dirs = [Path(runs.loc[runs.run_id == r, "run_dir"].iloc[0]) for r in chosen]
    warnings = cached("store_warnings", dirs)
    if warnings:
        with st.expander(f"{len(warnings)} file(s) skipped: unreadable or not store files", icon="⚠️"):
            for message in warnings:
                st.warning(message)
    if not cached("logged_steps", dirs):
        st.info("No logged rollouts in the selected run(s) yet: this page fills in as the job logs steps.")
        return None
    return dirs


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


def common_range(*densities: pd.DataFrame) -> tuple[float, float]:
    """The x range covering every non-empty bin of the given histograms."""
    parts = [d.loc[d["count"] > 0] for d in densities]
    return min(float(p["left"].min()) for p in parts), max(float(p["right"].max()) for p in parts)


def histogram_moments(density: pd.DataFrame) -> pd.DataFrame:
    """Per (run_id, step): mean and sd estimated from the histogram's bin centres."""

    def moments(g: pd.DataFrame) -> pd.Series:
        w = g["count"].to_numpy(dtype=float)
        x = g["x"].to_numpy(dtype=float)
        mean = float((w * x).sum() / w.sum())
        return pd.Series({"mean": mean, "sd": float(np.sqrt((w * (x - mean) ** 2).sum() / w.sum()))})

    return density.groupby(["run_id", "step"]).apply(moments, include_groups=False).reset_index()


def spread_figure(raw: pd.DataFrame, normalised: pd.DataFrame, value_label: str) -> go.Figure:
    """Mean and sd per step of the raw and normalised densities: where the ridgelines move."""
    fig = go.Figure()
    for name, frame, colour_hex in (
        ("raw", raw, "#7f7f7f"),
        ("per-prompt normalised", normalised, "#d62728"),
    ):
        m = histogram_moments(frame)
        fig.add_trace(go.Scatter(x=m["step"], y=m["sd"], name=f"sd, {name}", line={"color": colour_hex}))
        fig.add_trace(
            go.Scatter(
                x=m["step"], y=m["mean"], name=f"mean, {name}", line={"color": colour_hex, "dash": "dot"}
            )
        )
    fig.update_layout(
        title=f"{value_label}: mean and spread per step",
        xaxis_title="step",
        height=320,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def entropy_legend_html(low: float, high: float) -> str:
    stops = ", ".join(colour(i / 10)[0] for i in range(11))
    return (
        '<div style="display:flex;align-items:center;gap:0.5em;font-size:0.85em;margin:0.25em 0 0.5em">'
        f"<b>per-token entropy (nats)</b><span>{low:.3g}</span>"
        f'<span style="display:inline-block;width:14em;height:0.9em;border:1px solid #999;'
        f'background:linear-gradient(to right, {stops})"></span><span>{high:.3g}</span>'
        "<span style='color:#666'>(hover a token for its signals)</span></div>"
    )


def _tip(token: str, values: dict[str, Any]) -> str:
    lines = [f"token {token!r}"] + [f"{k}: {v:.4g}" for k, v in values.items() if v is not None]
    return html.escape("\n".join(lines), quote=True)


def sample_tokens_html(
    samples: pd.DataFrame, high: float, label_columns: Sequence[str] = ("sample_idx",)
) -> str:
    """One line per sample: its tokens as boxes coloured by per-token entropy (0 .. ``high`` nats),
    each with a hover title listing the per-token signals that were logged."""
    signal_names = [c for c in ("entropy", "sampled_prob", "max_prob", "n_candidates") if c in samples]
    lines = []
    for row in samples.itertuples(index=False):
        tokens = row.tokens if _is_list(row.tokens) else str(row.response).split()
        signals = {n: getattr(row, n) for n in signal_names}
        spans = []
        for t, token in enumerate(tokens):
            values = {n: (float(v[t]) if _is_list(v) and t < len(v) else None) for n, v in signals.items()}
            entropy = values.get("entropy")
            background, text = colour(entropy / high) if entropy is not None else ("#eee", "#111")
            spans.append(
                f'<span title="{_tip(str(token), values)}" style="background:{background};color:{text};'
                f'padding:1px 3px;margin:1px;border-radius:3px;white-space:pre;display:inline-block">'
                f"{html.escape(str(token))}</span>"
            )
        label = " · ".join(f"{c} {getattr(row, c)}" for c in label_columns)
        score = f"reward {row.reward:.3g}" + (f", gold {row.gold:.3g}" if pd.notna(row.gold) else "")
        lines.append(
            '<div style="display:flex;align-items:flex-start;font-family:monospace;font-size:0.9em;margin-bottom:4px">'
            f'<div style="color:#555;flex:0 0 14em;padding-top:2px">{html.escape(label)}<br>'
            f'<span style="font-size:0.85em">{html.escape(score)}</span></div>'
            f'<div style="display:flex;flex-wrap:wrap">{"".join(spans)}</div></div>'
        )
    return "".join(lines)


def entropy_scale(frames: Sequence[pd.DataFrame]) -> float:
    """Upper end of the entropy colour scale shared by all shown samples (at least 1 nat)."""
    highs = [
        float(np.max(v)) for f in frames if "entropy" in f for v in f["entropy"] if _is_list(v) and len(v)
    ]
    return max([1.0, *highs])


def _is_list(value: Any) -> bool:
    """A logged per-token list (a missing one reads as None or pd.NA, e.g. in an imported run)."""
    return isinstance(value, list | tuple | np.ndarray)


def per_step_lines(
    frame: pd.DataFrame, columns: dict[str, str], *, title: str, y_title: str = ""
) -> go.Figure:
    """Line per (run, column) over steps; ``columns`` maps column -> legend label."""
    fig = go.Figure()
    runs = frame["run_id"].unique() if "run_id" in frame else [None]
    for r, run in enumerate(runs):
        part = frame if run is None else frame[frame["run_id"] == run]
        for c, (column, label) in enumerate(columns.items()):
            name = label if len(runs) == 1 else f"{label} ({run})"
            line = {"color": LINE_COLOURS[(r * len(columns) + c) % len(LINE_COLOURS)]}
            fig.add_trace(
                go.Scatter(x=part["step"], y=part[column], mode="lines+markers", name=name, line=line)
            )
    fig.update_layout(
        title=title,
        xaxis_title="step",
        yaxis_title=y_title,
        height=340,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig
