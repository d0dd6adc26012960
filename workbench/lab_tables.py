"""The sampling lab's tables and token HTML of a batch (figures live in
``workbench.figures.lab``, the token renderer in ``workbench.figures.tokens``).

Pure functions from batches and arrays to HTML strings and DataFrames; no torch, no Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from engine.analysis.normalise import normalise_per_prompt
from engine.lab import SIGNALS, LabBatch, SweepPoint
from workbench.figures.tokens import SIGNAL_LABELS, colour, colour_range, legend_html, token_rows_html  # noqa: F401

FORKING_INTRO = (
    "A minority of high-entropy **forking tokens** decides where a response goes (Wang et al. 2025, "
    "arXiv 2506.01939: in their data over half of the tokens have entropy below 0.01 nats and the 80th "
    "percentile is 0.672 nats). Here: the sampled tokens of these settings."
)
SWEEP_INTRO = (
    "The practitioner's note found top-k and top-p matter little, temperature matters little **below 1**, "
    "but **above 1 quality falls off sharply**; min-p's authors claim it holds quality at high temperature "
    "(arXiv 2407.01082; disputed by arXiv 2506.13681). Each curve samples the current prompts at every grid "
    "value, the other settings as set."
)


def signed(x: float) -> str:
    """A short difference with its sign always shown, the minus as the typographic minus ("−152.5",
    "+0.031", "0"): text, so a narrow column never clips the sign away."""
    if x == 0:
        return "0"
    return (f"{x:+.1f}" if abs(x) >= 10 else f"{x:+.3f}").replace("-", "\u2212")


def summary_frame(current: dict[str, float], reference: dict[str, float]) -> pd.DataFrame:
    """Mean of each signal under the settings, at T=1 / top-p 1 / top-k 0 / min-p 0, and the change
    (text, so the sign is never lost to a narrow column)."""
    rows = [
        {
            "signal": SIGNAL_LABELS[name],
            "these settings": round(current[name], 4),
            "T=1": round(reference[name], 4),
            "change": signed(current[name] - reference[name]),
        }
        for name in SIGNALS
    ]
    return pd.DataFrame(rows)


def forking_frame(top: list[dict]) -> pd.DataFrame:
    """The highest-entropy positions (from ``engine.lab.forking_tokens``) as a table."""
    return pd.DataFrame(
        [
            {"prompt": t["prompt_id"], "sample": f"#{t['sample_idx']}", "position": t["position"],
             "word": t["token"], "entropy (nats)": round(t["entropy"], 3)}
            for t in top
        ],
        columns=["prompt", "sample", "position", "word", "entropy (nats)"],
    )  # fmt: skip


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
            "For this model, quality falls off sharply above 1, as the practitioner's note says."
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
                "difference (second - first)": signed(second_summary[name] - first_summary[name]),
            }
            for name in SIGNALS
        ]
    )


def real_scoring_note(batch: LabBatch) -> str:
    """What scored a real model's batch, from the batch: the real world's RM (or that there is none
    yet) and its checkers (their mean score with a 95% interval, or why they did not score)."""
    if batch.rewards is None:
        rm = (
            "There is no real RM yet (`python -m engine real build` trains one into `data/real/rm`), "
            "so no RM scores."
        )
    else:
        rm = f"RM: the real world's reward model scored all {len(batch.rewards)} samples."
    if batch.gold is None:
        return f"{rm} The checker scores only the real world's task prompts: pick them under *Task family*."
    n = len(batch.gold)
    mean = float(np.mean(batch.gold))
    half = 1.96 * float(np.std(batch.gold, ddof=1)) / np.sqrt(n) if n > 1 else float("nan")
    return f"{rm} Checker: mean score {mean:.2f} ± {half:.2f} (95% interval) over {n} samples."


def reward_note(batch: LabBatch, *, real: bool, scored: bool) -> str | None:
    """The Rewards tab's note: what scored a real model's batch; for another model without RM scores,
    where its scores come from; None when there is nothing to add."""
    if real:
        return real_scoring_note(batch)
    if not scored:
        return "No reward model for this model: world models use the world's RM; name an RM in the sidebar."
    return None
