"""Step 6, the RM refreshed: the KL-0 run beside the same run whose RM is retrained every 25 steps on
PPO's own samples (the practitioner's remedy), over the steps both ran: gold and the RM-gold agreement
on what PPO samples, side by side, with each refresh marked."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import engine.store as store
from workbench.figures.curves import mark_refreshes
from workbench.figures.groups import METRIC_NAMES, compare_figure
from workbench.group_text import compare_sentence, refresh_sentence, same_start_sentence
from workbench.learn.common import demo_run
from workbench.navigation import page_link
from workbench.store_access import cached

RUNS = ["demo-kl0", "demo-kl0-refresh"]
AGREEMENT = "rm/gold_agreement"  # the agreement series as one more metric key, for the side-by-side figure
NAMES = {key: METRIC_NAMES[key] for key in ("objective/gold", AGREEMENT)}


def same_steps(metrics: pd.DataFrame, agreement: pd.DataFrame) -> pd.DataFrame:
    """Gold and the RM-gold agreement of the runs as one long (run_id, step, key, value) frame, over the
    steps every run logged (up to the shortest run's last step; agreement only where every run kept the
    step's rollouts), so the two runs are compared over the same steps."""
    gold = metrics[metrics["key"] == "objective/gold"][["run_id", "step", "key", "value"]]
    last = int(gold.groupby("run_id")["step"].max().min())
    per_run = agreement.groupby("run_id")["step"].apply(set)
    shared = set.intersection(*per_run) if len(per_run) else set()
    agreed = agreement[agreement["step"].isin(shared)]
    agreed = agreed.assign(key=AGREEMENT, value=agreed["agreement"])[["run_id", "step", "key", "value"]]
    both = pd.concat([gold, agreed], ignore_index=True)
    return both[both["step"] <= last].sort_values(["run_id", "key", "step"], ignore_index=True)


def render() -> None:
    st.markdown(
        "The previous step showed the RM going wrong where PPO now samples. The practitioner's remedy: **keep "
        "sampling from the PPO policy and keep training the RM on those samples**, so it stays right "
        "where PPO is. `demo-kl0-refresh` is `demo-kl0` (no KL penalty, the same seed) with the RM "
        "retrained every 25 steps on within-prompt pairs of PPO's latest rollouts, labelled by the gold "
        "judge with the world's own label noise (with a replay of its original data). Below, the two "
        "over the same steps: does the refreshed RM stay accurate, and does gold follow?"
    )
    dirs = [demo_run(r) for r in RUNS]
    if None in dirs:
        return
    metrics = cached(store.metrics, dirs, keys=("objective/gold",))
    frame = same_steps(metrics, cached(store.rm_gold_agreement, dirs))
    if frame.empty:
        st.info("The two runs share no logged step.")
        return
    keys = st.multiselect("Try it: curves", list(NAMES), default=list(NAMES), format_func=NAMES.get,
                          key="learn_refresh_keys")  # fmt: skip
    figure = compare_figure(frame, keys, RUNS)
    refreshes = cached(store.rm_refreshes, dirs)
    refreshes = refreshes[refreshes["step"] <= frame["step"].max()]
    if not refreshes.empty:
        mark_refreshes(figure, refreshes)
    st.plotly_chart(figure, key="learn_refresh_curves")
    last = int(frame["step"].max())
    lines = [
        same_start_sentence(frame, RUNS, "objective/gold", "gold", int(refreshes["step"].min()))
        if not refreshes.empty
        else f"`{RUNS[1]}` has no RM refresh up to step {last}: it is not the refreshed run this step needs.",
        compare_sentence(frame, RUNS, "objective/gold", "gold"),
        compare_sentence(frame, RUNS, AGREEMENT, "RM-gold agreement"),
    ]
    st.markdown(f"Over steps 1–{last} of both runs:\n" + "\n".join(f"- {line}" for line in lines if line))
    verdict = refresh_sentence(frame, RUNS[0], RUNS[1], AGREEMENT)
    if verdict:
        st.markdown(f"**What it shows**: {verdict}")
    st.caption(
        "Dotted lines: the RM refreshes (hover the triangles for the agreement on fresh samples just "
        "before and after each). Agreement: of two samples of the same prompt whose gold differs, how often "
        "the RM prefers the one gold prefers, on the step's own rollouts (the steps both runs kept)."
    )
    page_link("rm_accuracy.py", "RM accuracy: the refreshes on the three monitors", {"run": RUNS[1]})
    page_link("runs.py", "Runs: launch PPO with --rm-refresh-every, labelled by the judge or by you")
