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
from workbench.store_access import cached

RUN = "demo-default"


def render() -> None:
    st.markdown(
        "SFT and PPO both reduce entropy; on prompts SFT already fitted, SFT did the work and PPO has "
        "little room. The practitioner's note measured the SFT model's mean sampling entropy at **0.12** "
        "on its training prompts and **0.19** on the PPO prompts: barely different, so PPO gained "
        "little. PPO's real advantage is that it learns from *any* good sample, so it pays off on "
        "prompts **outside SFT's range**, where the SFT model is unsure. The built-in world has two such "
        "families (`praise`, `trait_list`: SFT templates with a slot missing or of the wrong kind)."
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
        f"small and {0.19 - 0.12:.2f} nats apart: the SFT model was nearly as sure on the PPO prompts as "
        "on its own, so PPO had little left to reduce. Here the PPO-only prompts leave it room."
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
    outside = change["prompt_family"].isin(ppo_only)
    st.caption(
        f"Mean gold change over `{RUN}`: {change.loc[outside, 'gold_change'].mean():+.2f} on PPO-only "
        f"families, {change.loc[~outside, 'gold_change'].mean():+.2f} on families in SFT data; mean "
        f"entropy change {change.loc[outside, 'entropy_change'].mean():+.2f} vs "
        f"{change.loc[~outside, 'entropy_change'].mean():+.2f} nats."
    )
    at_epoch = samples[(samples["epoch"] == epoch) & (samples["family"] == family)]["mean_entropy"]
    st.markdown(
        f"**{family}** ({'PPO-only' if family in ppo_only else 'in SFT data'}): the SFT model's entropy "
        f"there is {at_epoch.mean():.3f} nats at epoch {epoch}. Over `{RUN}` (probe steps "
        f"{int(mine['first_step'])}–{int(mine['last_step'])}) its gold went {mine['gold_first']:.2f} → "
        f"{mine['gold_last']:.2f} ({mine['gold_change']:+.2f}) and its entropy "
        f"{mine['entropy_first']:.2f} → {mine['entropy_last']:.2f} ({mine['entropy_change']:+.2f})."
    )
    family_steps = cached(store.probe_family_steps, run_dir)
    st.plotly_chart(probe_family_figure(family_steps, family), key="learn_range_curve")
    page_link("runs.py", "Runs: launch PPO on the families you choose")
