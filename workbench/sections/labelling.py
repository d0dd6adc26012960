"""The labelling section (the Rollout browser): two samples of the open prompt at the open step side by
side, tokens coloured by per-token entropy (without their reward or gold: a label must not echo the RM
or the judge), and "A better / B better / tie / skip" (buttons, and the
keys A, B, T, S). Each label is saved at once as its own Parquet file under the run's ``labels/``
(:func:`engine.runs.labels.append_labels`: written whole or not at all, so a reload loses nothing); the
RM refresh's ``human`` labeller reads them, and the next unlabelled pair of the prompt comes up.

A shipped demo run is read-only and never trains again, yet labelling it is how a new user tries the
flow: its labels go to a hidden folder of the user's runs directory (``runs/.labels/<run>/labels/``,
the run list skips it), the same place the Ceiling page keeps a demo run's coverage samples.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import streamlit as st

from engine.config import ConfigError
from engine.paths import runs_dir
from engine.runs.labels import append_labels, read_labels
from workbench.figures.tokens import entropy_legend_html, sample_tokens_html
from workbench.store_access import is_demo

CHOICES = (("a", "A better", "a"), ("b", "B better", "b"), ("tie", "tie", "t"), ("skip", "skip", "s"))


def labels_home(run_dir: Path) -> Path:
    """The directory whose ``labels/`` holds the run's labels: the run's own, or for a read-only demo
    run a hidden folder of the user's runs directory."""
    return runs_dir() / ".labels" / run_dir.name if is_demo(run_dir) else run_dir


def next_pair(samples: pd.DataFrame, labels: list[dict]) -> tuple[pd.Series, pd.Series] | None:
    """The first pair (in sample order) of ``samples`` (one prompt at one step) with different
    responses that no label of ``labels`` covers yet, in either order; None when every pair has one."""
    done = {(r["prompt_id"], r["step"], frozenset((r["response_a"], r["response_b"]))) for r in labels}
    rows = [row for _, row in samples.sort_values("sample_idx").iterrows()]
    for a, b in itertools.combinations(rows, 2):
        key = (a["prompt_id"], int(a["step"]), frozenset((a["response"], b["response"])))
        if a["response"] != b["response"] and key not in done:
            return a, b
    return None


def label_row(a: pd.Series, b: pd.Series, label: str) -> dict:
    """The labels-file row of ``label`` on the pair (a, b)."""
    return {
        "prompt_id": str(a["prompt_id"]),
        "prompt": str(a["prompt"]),
        "response_a": str(a["response"]),
        "response_b": str(b["response"]),
        "label": label,
        "step": int(a["step"]),
    }


def _save(home: Path, row: dict) -> None:
    # A button callback: it runs before the rerun, so the rerun shows the next pair and the new count.
    try:
        append_labels(home, [row])
    except (ConfigError, OSError) as exc:
        st.session_state["_labelling_error"] = f"The label could not be saved: {exc}"


def labelling_section(run_dir: Path, samples: pd.DataFrame, high: float) -> None:
    """Label pairs of ``samples`` (the open prompt's samples at the open step) for ``run_dir``."""
    st.subheader("Label pairs")
    home = labels_home(run_dir)
    labels = read_labels(home)
    where = f"`{home / 'labels'}`"
    st.caption(
        f"**{len(labels)} pair{'' if len(labels) == 1 else 's'} labelled** for run {run_dir.name}, saved in {where}"
        + (" (a demo run is read-only: its labels are kept apart)." if home != run_dir else ".")
        + " Keys: A, B, T (tie), S (skip). Runs with `rm_labeller = human` refresh their RM on them."
    )
    if error := st.session_state.pop("_labelling_error", None):
        st.error(error)
    pair = next_pair(samples, labels)
    if pair is None:
        st.info("Every pair of this prompt's samples at this step is labelled: open another prompt or step.")
        return
    st.html(entropy_legend_html(0.0, high))
    for column, sample, name in zip(st.columns(2), pair, "AB", strict=True):
        column.markdown(f"**{name}** (sample {int(sample['sample_idx'])})")
        column.html(sample_tokens_html(sample.to_frame().T, high, scores=False))
    row = label_row(*pair, "skip")
    for column, (label, text, key) in zip(st.columns(len(CHOICES)), CHOICES, strict=True):
        column.button(
            text,
            key=f"label_{label}",
            shortcut=key,
            on_click=_save,
            args=(home, {**row, "label": label}),
            width="stretch",
        )
