"""Step 7, data range: the SFT model's entropy on its own prompts vs PPO-only prompts, whether a PPO run
gained more gold on the PPO-only families (computed, whichever way it comes out), and what choosing
PPO's prompts by their sampling space measured."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import engine.store as store
from engine.world_tools.epochs import epoch_table
from workbench.figures.learn import family_change_figure, probe_family_figure, split_entropy_figure
from workbench.figures.sft_epochs import ratio_text
from workbench.group_text import selection_sentence
from workbench.learn.common import demo_run, world_and_samples
from workbench.navigation import page_link
from workbench.run_text import data_range_sentence, family_sentence, sft_gap_sentence
from workbench.store_access import cached

RUN = "demo-default"
NOTE_ENTROPY = (0.12, 0.19)  # the note's SFT entropy on its training prompts and on the PPO prompts
# The prompt-selection measurement of docs/world.md (its runs do not ship): held-out gold per step.
SELECTION_STEPS = (0, 10, 20, 30, 40, 50, 60)
SELECTION_GOLD = {
    "high RM-score variance": (0.276, 0.301, 0.299, 0.303, 0.305, 0.329, 0.335),
    "low RM-score variance": (0.276, 0.273, 0.268, 0.311, 0.296, 0.288, 0.284),
}
SELECTION_CONFOUND = {"correlation": -0.53, "high_entropy": 0.67, "low_entropy": 1.06, "ppo_only_prompts": 28}
SELECTION_SOURCE = (
    "Recorded in docs/world.md (2026-12-06, 2-core AMD EPYC, one seed per arm): `python -m engine ppo "
    "--prompt-selection high_variance | low_variance --prompt-selection-share 0.5 --steps 60 --seed 0` "
    "on the 106 prompts outside the held-out split."
)


def render() -> None:
    st.markdown(
        "SFT and PPO both reduce entropy; on prompts SFT already fitted, SFT did the work and PPO has "
        f"little room. The practitioner's note measured the SFT model's mean sampling entropy at "
        f"**{NOTE_ENTROPY[0]}** on its training prompts and **{NOTE_ENTROPY[1]}** on the PPO prompts: barely "
        "different, so PPO gained little. The note expects PPO, which learns from *any* good sample, to "
        "pay off more on prompts **outside SFT's range**, where the SFT model is unsure. The built-in world "
        "has two such families (`praise`, `trait_list`: SFT templates with a slot missing or of the wrong "
        "kind). This step measures two things and says what each shows: **(1)** the SFT model's entropy on "
        "its own prompts vs the PPO-only ones (is there more room outside its range?), **(2)** on "
        f"`{RUN}`, each family's gold and entropy change on the probe prompts from the first probe step to "
        "the last (did PPO gain more gold on the PPO-only families than on those in SFT data?)."
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
        "**(1) More room outside SFT's range?** "
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
    st.markdown(
        "**(2) Did PPO gain more gold outside SFT's range?** " + data_range_sentence(change, ppo_only, RUN)
    )
    families = change["prompt_family"].tolist()  # largest gold gain first
    family = st.selectbox(
        "Try it: family",
        families,
        format_func=lambda f: f"{f} ({'PPO-only' if f in ppo_only else 'in SFT data'})",
        key="learn_range_family",
    )
    st.plotly_chart(family_change_figure(change, family, ppo_only), key="learn_range_change")
    mine = change.set_index("prompt_family").loc[family]
    at_epoch = samples[(samples["epoch"] == epoch) & (samples["family"] == family)]["mean_entropy"]
    where = "PPO-only" if family in ppo_only else "in SFT data"
    st.markdown(
        f"The SFT model's entropy on **{family}** is {at_epoch.mean():.3f} nats at epoch {epoch}. "
        + family_sentence(mine, family, where, RUN)
    )
    family_steps = cached(store.probe_family_steps, run_dir)
    st.plotly_chart(probe_family_figure(family_steps, family), key="learn_range_curve")
    selection_measurement()
    page_link("runs.py", "Runs: launch PPO on the families you choose")


def selection_measurement() -> None:
    """The prompt-selection experiment (docs/world.md): what it measured, from its recorded table."""
    st.markdown(
        "**Choosing PPO's prompts by their sampling space.** The note's remedy is to widen PPO's prompts "
        "where the SFT model's space is still large. `--prompt-selection` measures each candidate prompt "
        "on the starting policy before step 1 and keeps a share; the experiment below kept the half with "
        "the highest vs the lowest RM-score variance over a few samples, trained 60 steps from the same "
        "start and seed, and scored gold on the held-out prompts (20 prompts x 16 samples, T = 1)."
    )
    table = pd.DataFrame(SELECTION_GOLD, index=SELECTION_STEPS).T
    st.dataframe(table, key="learn_range_selection")
    st.markdown(
        selection_sentence(
            SELECTION_STEPS, SELECTION_GOLD["high RM-score variance"], SELECTION_GOLD["low RM-score variance"]
        )  # fmt: skip
        + " On this world the two halves differ in more than variance: RM-score variance and token entropy "
        f"point opposite ways (correlation {SELECTION_CONFOUND['correlation']:+.2f}); the high-variance half "
        f"is all SFT-train families (entropy {SELECTION_CONFOUND['high_entropy']:.2f}), the low-variance half "
        f"holds all {SELECTION_CONFOUND['ppo_only_prompts']} PPO-only prompts (entropy "
        f"{SELECTION_CONFOUND['low_entropy']:.2f}), and the held-out prompts are SFT families only. So it "
        "measures *train where the RM separates the samples, test on the same families*, not the note's "
        "*widen PPO's prompts where SFT's space is still large*."
    )
    st.caption(SELECTION_SOURCE)
