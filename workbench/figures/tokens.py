"""Token boxes: one line per sample, each token a box coloured by a per-token signal, with a hover
tooltip, and the colour legend. The one renderer of the sampling lab and the rollout browser."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

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
LAB_HINT = "hover a token for every signal and the top alternatives: p at T=1, q under the settings"
STORE_HINT = "hover a token for its logged signals"
UNCOLOURED = ("#eee", "#111")  # a token whose signal was not logged


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


def legend_html(signal: str, low: float, high: float, hint: str = LAB_HINT) -> str:
    """The colour bar of ``signal`` from ``low`` to ``high``, with how to read a token."""
    stops = ", ".join(colour(i / 10)[0] for i in range(11))
    return (
        '<div style="display:flex;align-items:center;gap:0.5em;font-size:0.85em;margin:0.25em 0 0.5em">'
        f"<b>{html.escape(SIGNAL_LABELS[signal])}</b><span>{low:.3g}</span>"
        f'<span style="display:inline-block;width:14em;height:0.9em;border:1px solid #999;'
        f'background:linear-gradient(to right, {stops})"></span><span>{high:.3g}</span>'
        f"<span style='color:#666'>({html.escape(hint)})</span></div>"
    )


def _span(token: str, tip: str, background: str, text: str, highlight: bool = False) -> str:
    ring = "outline:3px solid #1f77b4;outline-offset:1px;" if highlight else ""
    return (
        f'<span title="{tip}" style="background:{background};color:{text};padding:1px 3px;{ring}'
        f'margin:1px;border-radius:3px;white-space:pre;display:inline-block">{html.escape(token)}</span>'
    )


def _row(label_html: str, spans: Sequence[str]) -> str:
    return (
        '<div style="display:flex;align-items:flex-start;font-family:monospace;font-size:0.9em;margin-bottom:4px">'
        f'<div style="color:#555;flex:0 0 15em;padding-top:2px">{label_html}</div>'
        f'<div style="display:flex;flex-wrap:wrap">{"".join(spans)}</div></div>'
    )


def _tooltip(token: str, signals: dict[str, float | None], alternatives: Sequence = ()) -> str:
    lines = [f"token {token!r}"]
    lines += [f"{SIGNAL_LABELS.get(n, n)}: {v:.4g}" for n, v in signals.items() if v is not None]
    if alternatives:
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
    """The lab's samples: one line per sample, each token a box coloured by ``colour_by``.

    ``signals``: name -> (B, T) array; ``alternatives``: ids, p, q arrays of shape (B, T, K).
    """
    low, high = scale
    alt_ids, alt_p, alt_q = alternatives
    lines = []
    for row, row_tokens in enumerate(tokens):
        spans = []
        for t, token in enumerate(row_tokens):
            background, text = colour((float(signals[colour_by][row, t]) - low) / (high - low))
            alts = [
                (token_strings.get(int(i), str(int(i))), float(p), float(q))
                for i, p, q in zip(alt_ids[row, t], alt_p[row, t], alt_q[row, t], strict=True)
            ]
            tip = _tooltip(token, {n: float(v[row, t]) for n, v in signals.items()}, alts)
            spans.append(_span(token, tip, background, text))
        lines.append(_row(f'<span style="white-space:nowrap">{html.escape(row_labels[row])}</span>', spans))
    return "".join(lines)


def is_token_list(value: Any) -> bool:
    """A logged per-token list (a missing one reads as None or pd.NA, e.g. in an imported run)."""
    return isinstance(value, list | tuple | np.ndarray)


def entropy_legend_html(low: float, high: float) -> str:
    """The rollout browser's legend: the lab's, over per-token entropy."""
    return legend_html("entropy", low, high, STORE_HINT)


def sample_tokens_html(
    samples: pd.DataFrame,
    high: float,
    label_columns: Sequence[str] = ("sample_idx",),
    highlight: tuple[int, int] | None = None,
    scores: bool = True,
) -> str:
    """Logged samples, one line each, tokens coloured by per-token entropy (0 .. ``high`` nats) with
    the logged signals in the tooltip; ``highlight`` = (sample_idx, position) rings one token;
    ``scores=False`` leaves out the reward and gold (a labeller judges blind to them)."""
    names = [c for c in ("entropy", "sampled_prob", "max_prob", "n_candidates") if c in samples]
    lines = []
    for row in samples.itertuples(index=False):
        tokens = row.tokens if is_token_list(row.tokens) else str(row.response).split()
        spans = []
        for t, token in enumerate(tokens):
            values = {}
            for n in names:
                v = getattr(row, n)
                values[n] = float(v[t]) if is_token_list(v) and t < len(v) else None
            entropy = values.get("entropy")
            background, text = colour(entropy / high) if entropy is not None else UNCOLOURED
            ringed = highlight is not None and (int(row.sample_idx), t) == tuple(highlight)
            spans.append(_span(str(token), _tooltip(str(token), values), background, text, ringed))
        label = " · ".join(f"{c} {getattr(row, c)}" for c in label_columns)
        score = f"reward {row.reward:.3g}" + (f", gold {row.gold:.3g}" if pd.notna(row.gold) else "")
        small = f'<br><span style="font-size:0.85em">{html.escape(score)}</span>' if scores else ""
        lines.append(_row(html.escape(label) + small, spans))
    return "".join(lines)


def entropy_scale(frames: Sequence[pd.DataFrame]) -> float:
    """Upper end of the entropy colour scale shared by all shown samples: the 99th percentile of their
    per-token entropies (at least 1 nat), so one outlier token does not wash out every other box;
    tokens above it take the darkest colour."""
    values = [
        np.asarray(v, dtype=float) for f in frames if "entropy" in f for v in f["entropy"] if is_token_list(v)
    ]
    flat = np.concatenate(values) if values else np.empty(0)
    flat = flat[np.isfinite(flat)]
    return max(1.0, float(np.percentile(flat, 99))) if flat.size else 1.0
