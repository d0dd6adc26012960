"""Views of the sampling lab: token colouring (HTML with a legend and hover details) and plots.

Pure functions from arrays to HTML strings, DataFrames and Plotly figures; no torch, no Streamlit.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.lab import SIGNALS, LabBatch, SweepPoint, normalise_per_prompt

# Light yellow -> orange -> dark red: dark text stays legible on the light half, white on the rest.
PALETTE = ((255, 255, 204), (254, 217, 118), (253, 141, 60), (227, 26, 28), (128, 0, 38))
SIGNAL_LABELS = {
    "entropy": "entropy (nats)",
    "sampling_entropy": "sampling entropy (nats)",
    "max_prob": "max prob",
    "sampled_prob": "sampled prob",
    "n_candidates": "n candidates",
}
PROBABILITY_SIGNALS = ("max_prob", "sampled_prob")
CURRENT_COLOUR, REFERENCE_COLOUR = "#d62728", "#7f7f7f"


def colour(t: float) -> tuple[str, str]:
    """(background, text colour) for t in [0, 1] on the palette."""
    t = min(max(float(t), 0.0), 1.0)
    position = t * (len(PALETTE) - 1)
    i = min(int(position), len(PALETTE) - 2)
    frac = position - i
    rgb = tuple(round(a + (b - a) * frac) for a, b in zip(PALETTE[i], PALETTE[i + 1], strict=True))
    return f"rgb{rgb}", "#111" if t < 0.55 else "#fff"


def colour_range(signal: str, values: Sequence[np.ndarray]) -> tuple[float, float]:
    """A shared scale: probabilities on [0, 1]; other signals from 0 (1 candidate) to the largest value."""
    if signal in PROBABILITY_SIGNALS:
        return 0.0, 1.0
    low = 1.0 if signal == "n_candidates" else 0.0
    high = max((float(v.max()) for v in values if v.size), default=low + 1)
    return low, max(high, low + 1e-6)


def legend_html(signal: str, low: float, high: float) -> str:
    stops = ", ".join(colour(i / 10)[0] for i in range(11))
    return (
        '<div style="display:flex;align-items:center;gap:0.5em;font-size:0.85em;margin:0.25em 0 0.5em">'
        f"<b>{html.escape(SIGNAL_LABELS[signal])}</b><span>{low:.3g}</span>"
        f'<span style="display:inline-block;width:14em;height:0.9em;border:1px solid #999;'
        f'background:linear-gradient(to right, {stops})"></span><span>{high:.3g}</span>'
        "<span style='color:#666'>(hover a token for every signal and the top alternatives: p at T=1, q under the settings)</span>"
        "</div>"
    )


def _tooltip(token: str, signals: dict[str, float], alternatives: list[tuple[str, float, float]]) -> str:
    lines = [f"token {token!r}"]
    lines += [f"{SIGNAL_LABELS[name]}: {value:.4g}" for name, value in signals.items()]
    lines.append("top alternatives (p at T=1 / q sampled):")
    lines += [f"  {alt!r}  p={p:.3f}  q={q:.3f}" for alt, p, q in alternatives]
    return html.escape("\n".join(lines), quote=True)


def token_rows_html(
    tokens: list[list[str]],
    signals: dict[str, np.ndarray],
    colour_by: str,
    scale: tuple[float, float],
    alternatives: tuple[np.ndarray, np.ndarray, np.ndarray],
    token_strings: dict[int, str],
    row_labels: list[str],
) -> str:
    """One line per sample, each token a box coloured by ``colour_by``, with a hover tooltip.

    ``signals``: name -> (B, T) array; ``alternatives``: ids, p, q arrays of shape (B, T, K).
    """
    low, high = scale
    alt_ids, alt_p, alt_q = alternatives
    lines = []
    for row, row_tokens in enumerate(tokens):
        spans = []
        for t, token in enumerate(row_tokens):
            value = float(signals[colour_by][row, t])
            background, text = colour((value - low) / (high - low))
            alts = [
                (token_strings.get(int(i), str(int(i))), float(p), float(q))
                for i, p, q in zip(alt_ids[row, t], alt_p[row, t], alt_q[row, t], strict=True)
            ]
            tip = _tooltip(token, {n: float(signals[n][row, t]) for n in SIGNALS}, alts)
            spans.append(
                f'<span title="{tip}" style="background:{background};color:{text};padding:1px 3px;'
                f'margin:1px;border-radius:3px;white-space:pre;display:inline-block">{html.escape(token)}</span>'
            )
        label = html.escape(row_labels[row])
        lines.append(
            '<div style="display:flex;align-items:flex-start;font-family:monospace;font-size:0.9em;margin-bottom:4px">'
            f'<div style="color:#555;flex:0 0 15em;padding-top:2px;white-space:nowrap">{label}</div>'
            f'<div style="display:flex;flex-wrap:wrap">{"".join(spans)}</div></div>'
        )
    return "".join(lines)


def summary_frame(current: dict[str, float], reference: dict[str, float]) -> pd.DataFrame:
    """Mean of each signal under the settings, at T=1 / top-p 1 / top-k 0, and the difference."""
    rows = [
        {
            "signal": SIGNAL_LABELS[name],
            "these settings": round(current[name], 4),
            "T=1 reference": round(reference[name], 4),
            "change": round(current[name] - reference[name], 4),
        }
        for name in SIGNALS
    ]
    return pd.DataFrame(rows)


def signal_distributions_figure(
    current: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> go.Figure:
    """Box plots of each signal over real tokens, these settings next to the reference settings."""
    fig = make_subplots(rows=1, cols=len(SIGNALS), subplot_titles=[SIGNAL_LABELS[s] for s in SIGNALS])
    for col, name in enumerate(SIGNALS, start=1):
        for label, values, hue in (
            ("these settings", current, CURRENT_COLOUR),
            ("T=1", reference, REFERENCE_COLOUR),
        ):
            fig.add_trace(
                go.Box(
                    y=values[name],
                    name=label,
                    marker_color=hue,
                    showlegend=col == 1,
                    legendgroup=label,
                    boxmean=True,
                ),
                row=1,
                col=col,
            )
    fig.update_layout(
        height=320, margin={"t": 40, "b": 20, "l": 20, "r": 20}, legend={"orientation": "h", "y": -0.1}
    )
    return fig


def reward_frame(
    rewards: np.ndarray | None,
    gold: np.ndarray | None,
    prompt_index: Sequence[int],
    prompts: list[str],
    setting: str,
) -> pd.DataFrame:
    """Long frame of scores (kind in {RM, gold}) with raw and per-prompt normalised values."""
    frames = []
    for kind, values in (("RM", rewards), ("gold", gold)):
        if values is None:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "setting": setting,
                    "kind": kind,
                    "prompt": [prompts[i] for i in prompt_index],
                    "raw": values,
                    "normalised": normalise_per_prompt(values, prompt_index),
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def reward_figure(frame: pd.DataFrame, column: str) -> go.Figure:
    """Histograms of one score column, one panel per kind (RM, gold), settings overlaid."""
    kinds = list(dict.fromkeys(frame["kind"]))
    fig = make_subplots(rows=1, cols=len(kinds), subplot_titles=[f"{k} ({column})" for k in kinds])
    for col, kind in enumerate(kinds, start=1):
        for setting, hue in (("these settings", CURRENT_COLOUR), ("T=1", REFERENCE_COLOUR)):
            values = frame[(frame["kind"] == kind) & (frame["setting"] == setting)][column]
            fig.add_trace(
                go.Histogram(
                    x=values,
                    name=setting,
                    marker_color=hue,
                    opacity=0.6,
                    nbinsx=20,
                    showlegend=col == 1,
                    legendgroup=setting,
                ),
                row=1,
                col=col,
            )
    fig.update_layout(barmode="overlay", height=300, margin={"t": 40, "b": 20, "l": 20, "r": 20})
    return fig


def sweep_figure(points: list[SweepPoint], parameter: str, current: float) -> go.Figure:
    """Each signal's mean and the mean rewards as a function of ``parameter``, current value marked."""
    panels = [*SIGNALS, "reward"]
    titles = [SIGNAL_LABELS[s] for s in SIGNALS] + ["mean reward"]
    fig = make_subplots(rows=2, cols=3, subplot_titles=titles)
    x = [p.value for p in points]
    for k, name in enumerate(panels):
        row, col = divmod(k, 3)
        if name == "reward":
            series = [
                ("RM", [p.reward for p in points], "#1f77b4"),
                ("gold", [p.gold for p in points], "#2ca02c"),
            ]
        else:
            series = [(SIGNAL_LABELS[name], [p.summary[name] for p in points], CURRENT_COLOUR)]
        if name == "reward" and all(p.reward is None and p.gold is None for p in points):
            fig.add_annotation(text="no reward model", showarrow=False, row=row + 1, col=col + 1)
        for label, y, hue in series:
            if any(v is None for v in y):
                continue
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines+markers",
                    name=label,
                    line={"color": hue},
                    showlegend=name == "reward",
                ),
                row=row + 1,
                col=col + 1,
            )
        fig.add_vline(x=current, line_dash="dash", line_color="#444", row=row + 1, col=col + 1)
    fig.update_xaxes(title_text=parameter)
    fig.update_layout(height=520, margin={"t": 40, "b": 20, "l": 20, "r": 20})
    return fig


def quality_verdict(points: list[SweepPoint]) -> str | None:
    """One sentence on whether quality falls off sharply above temperature 1 for this model.

    Compares the fall from T=1 to ~1.5 with the change from ~0.5 to T=1: relative for the gold score
    (in [0, 1]), absolute for RM scores (which can be negative).
    """
    use_gold = bool(points) and points[0].gold is not None
    by_t = {p.value: (p.gold if use_gold else p.reward) for p in points}
    below = [t for t in by_t if t < 1]
    above = [t for t in by_t if t > 1]
    if any(v is None for v in by_t.values()) or 1.0 not in by_t or not below or not above:
        return None
    t_below = min(below, key=lambda t: abs(t - 0.5))
    t_above = min(above, key=lambda t: abs(t - 1.5))
    low, one, high = by_t[t_below], by_t[1.0], by_t[t_above]
    if use_gold:
        fall_above = (one - high) / max(one, 1e-9)
        fall_below = (low - one) / max(low, 1e-9)
        change = (
            f"{fall_above:.0%} lower from T=1 to T={t_above:g}, {fall_below:.0%} from T={t_below:g} to T=1"
        )
    else:
        fall_above, fall_below = one - high, low - one
        change = (
            f"{fall_above:.3g} lower from T=1 to T={t_above:g}, {fall_below:.3g} from T={t_below:g} to T=1"
        )
    sharp = fall_above > max(1.5 * fall_below, 0.05 if use_gold else 0.1 * abs(one))
    score = "gold score" if use_gold else "RM score"
    return (
        f"Mean {score}: {low:.3f} at T={t_below:g}, {one:.3f} at T=1, {high:.3f} at T={t_above:g} ({change}). "
        + (
            "For this model, quality falls off sharply above 1, as the seed says."
            if sharp
            else "For this model and these prompts, the fall above 1 is not much sharper than the change below 1."
        )
    )


def row_labels(batch: LabBatch, rows: Sequence[int]) -> list[str]:
    """'#3 RM 0.41 gold 0.70' per row: the sample index within its prompt and its scores."""
    labels = []
    for j, r in enumerate(rows):
        label = f"#{j}"
        if batch.rewards is not None:
            label += f" RM {batch.rewards[r]:.2f}"
        if batch.gold is not None:
            label += f" gold {batch.gold[r]:.2f}"
        labels.append(label)
    return labels


def batch_tokens_html(
    batch: LabBatch,
    signals: dict[str, np.ndarray],
    colour_by: str,
    scale: tuple[float, float],
    rows: Sequence[int],
) -> str:
    """The coloured token rows of some of a batch's samples (``signals`` from ``batch.signals()``)."""
    alternatives = batch.alternatives()
    rows = list(rows)
    return token_rows_html(
        [batch.tokens[r] for r in rows],
        {name: values[rows] for name, values in signals.items()},
        colour_by,
        scale,
        (alternatives.ids.numpy()[rows], alternatives.p.numpy()[rows], alternatives.q.numpy()[rows]),
        batch.token_strings,
        row_labels(batch, rows),
    )


def real_values(batch: LabBatch, signals: dict[str, np.ndarray], name: str) -> np.ndarray:
    return signals[name][batch.mask.numpy()]


def rewards_of(batch: LabBatch, reference: LabBatch) -> pd.DataFrame:
    """Scores of the samples under these settings and under the T=1 reference, in one long frame."""
    frames = [
        reward_frame(b.rewards, b.gold, b.prompt_index, b.prompts, setting)
        for b, setting in ((batch, "these settings"), (reference, "T=1"))
    ]
    return pd.concat(frames, ignore_index=True)


def reward_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, spread and mean within-prompt standard deviation of each score, per setting."""
    within = (
        frame.groupby(["kind", "setting", "prompt"])["raw"].std(ddof=0).groupby(["kind", "setting"]).mean()
    )
    table = frame.groupby(["kind", "setting"])["raw"].agg(["mean", "std", "min", "max"])
    table["within-prompt std"] = within
    return table.reset_index()


def compare_frame(
    first: str, first_summary: dict[str, float], second: str, second_summary: dict[str, float]
) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "signal": SIGNAL_LABELS[name],
                first: first_summary[name],
                second: second_summary[name],
                "difference (second - first)": second_summary[name] - first_summary[name],
            }
            for name in SIGNALS
        ]
    )
