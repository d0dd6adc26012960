"""Step 8, PPO beside GRPO: the same world, start and steps, a value head's per-token advantages
(demo-default) against the group baseline of GRPO (demo-grpo), compared on gold and probe-set entropy."""

from __future__ import annotations

import streamlit as st

import engine.store as store
from workbench.figures.groups import METRIC_NAMES, compare_figure
from workbench.group_text import compare_sentence, methods_sentence
from workbench.learn.common import demo_run
from workbench.navigation import page_link
from workbench.store_access import cached

RUNS = ["demo-default", "demo-grpo"]
CURVES = ("objective/gold", "probe/entropy", "objective/kl", "objective/reward")


def render() -> None:
    st.markdown(
        "Most practitioners now train with critic-free **group methods**: GRPO samples several answers "
        "per prompt and uses the group's mean reward as the baseline (advantage = (r − mean) / std, the "
        "same for every token), with no value head. It is the same idea as the practitioner's "
        "per-prompt reward normalisation. Does it change the story? Both demo runs start from the same "
        "SFT epoch and run the same steps on the same prompts; only the advantage differs."
    )
    dirs = [demo_run(r) for r in RUNS]
    if None in dirs:
        return
    keys = st.multiselect("Try it: curves", list(CURVES), default=["objective/gold", "probe/entropy"],
                          format_func=METRIC_NAMES.get, key="learn_methods_keys")  # fmt: skip
    metrics = cached(store.metrics, dirs, keys=CURVES)
    st.plotly_chart(compare_figure(metrics, keys, RUNS), key="learn_methods_curves")
    lines = [compare_sentence(metrics, RUNS, k, METRIC_NAMES[k]) for k in ("objective/gold", "probe/entropy")]
    st.markdown("\n".join(f"- {line}" for line in lines if line))
    verdict = methods_sentence(metrics, RUNS, "probe/entropy")
    if verdict:
        st.markdown(f"**What it shows**: {verdict}")
    page_link("runs.py", "Runs: put any two runs side by side", {"run": RUNS[0]})
    page_link("failure_modes.py", "Failure modes: what group filters would drop", {"run": RUNS[1]})
