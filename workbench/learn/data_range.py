"""Step 5, data range: the SFT model's entropy on its own prompts vs PPO-only prompts, and which prompt
families a PPO run improved most."""

from __future__ import annotations

import streamlit as st

import engine.store as store
from engine.world_tools.epochs import epoch_table
from workbench.figures.learn import family_change_figure, probe_family_figure, split_entropy_figure
from workbench.figures.sft_epochs import ratio_text
from workbench.learn.common import demo_run, world_and_samples
from workbench.navigation import page_link
from workbench.run_text import data_range_sentence, family_sentence, sft_gap_sentence
from workbench.store_access import cached

RUN = "demo-default"
NOTE_ENTROPY = (0.12, 0.19)  # the note's SFT entropy on its training prompts and on the PPO prompts


def render() -> None:
    st.markdown(
        "SFT and PPO both reduce entropy; on prompts SFT already fitted, SFT did the work and PPO has "
        f"little room. The practitioner's note measured the SFT model's mean sampling entropy at "
        f"**{NOTE_ENTROPY[0]}** on its training prompts and **{NOTE_ENTROPY[1]}** on the PPO prompts: barely "
        "different, so PPO gained little. The note's claim: PPO learns from *any* good sample, so it should "
        "pay off on prompts **outside SFT's range**, where the SFT model is unsure. The built-in world has "
        "two such families (`praise`, `trait_list`: SFT templates with a slot missing or of the wrong "
        "kind); below, whether a run shows it."
    )
    found = world_and_samples()
    if found is None:
        return
    world, samples = found
    epoch = world.default_epoch
    table = epoch_table(samples)
    row = table.set_index("epoch").loc[epoch]
    left, right = st.columns(2)
    left.plotly_chart(split_entropy_figure(table, epoch), key="learn_range_splits")
    right.markdown(
        f"Measured now on the world's SFT samples at epoch {epoch} (8 per prompt, temperature 1): "
        f"**{row['entropy_sft_train']:.3f}** nats on SFT-train prompts vs **{row['entropy_ppo_only']:.3f}** "
        f"on PPO-only prompts, {ratio_text(float(row['entropy_ratio_ppo_only_vs_sft']))}: a gap of "
        f"{row['entropy_ppo_only'] - row['entropy_sft_train']:.2f} nats. In the note both numbers were "
        f"small and {NOTE_ENTROPY[1] - NOTE_ENTROPY[0]:.2f} nats apart: the SFT model was nearly as sure on "
        "the PPO prompts as on its own, so PPO had little left to reduce. "
        + sft_gap_sentence(
            float(row["entropy_sft_train"]), float(row["entropy_ppo_only"]), NOTE_ENTROPY[1] - NOTE_ENTROPY[0]
        )
    )
    run_dir = demo_run(RUN)
    if run_dir is None:
        return
    change = cached(store.probe_family_change, run_dir)
    if change.empty:
        st.info(f"`{RUN}` has no probe rows: rebuild the demo runs (`python -m engine demo build`).")
        return
    ppo_only = {f.name for f in world.families if not f.in_sft}
    families = change["prompt_family"].tolist()  # largest gold gain first
    family = st.selectbox(
        "Try it: family",
        families,
        format_func=lambda f: f"{f} ({'PPO-only' if f in ppo_only else 'in SFT data'})",
        key="learn_range_family",
    )
    st.plotly_chart(family_change_figure(change, family, ppo_only), key="learn_range_change")
    mine = change.set_index("prompt_family").loc[family]
    st.markdown(data_range_sentence(change, ppo_only, RUN))
    at_epoch = samples[(samples["epoch"] == epoch) & (samples["family"] == family)]["mean_entropy"]
    where = "PPO-only" if family in ppo_only else "in SFT data"
    st.markdown(
        f"The SFT model's entropy on **{family}** is {at_epoch.mean():.3f} nats at epoch {epoch}. "
        + family_sentence(mine, family, where, RUN)
    )
    family_steps = cached(store.probe_family_steps, run_dir)
    st.plotly_chart(probe_family_figure(family_steps, family), key="learn_range_curve")
    page_link("runs.py", "Runs: launch PPO on the families you choose")
