"""Step 2, SFT epochs: each epoch of supervised fine-tuning shrinks the sampling space towards a floor."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.world_tools.epochs import entropy_floor, epoch_table
from workbench.figures.learn import PICKED, epoch_density_figure
from workbench.figures.sft_epochs import entropy_figure, epoch_scores, spread_by_epoch
from workbench.learn.common import world_and_samples
from workbench.navigation import page_link
from workbench.run_text import epochs_sentence


@st.cache_data(show_spinner=False)
def _views(samples: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Per-epoch table, normalised RM rewards, their IQR per epoch on SFT-train prompts, and the mean
    number of distinct answers per prompt by epoch."""
    # float64: epoch_scores writes normalised values back into the column (float32 refuses them)
    scores = epoch_scores(samples.astype({"reward": "float64"}), "reward", True)[0]
    spread = spread_by_epoch(scores, "reward")
    distinct = samples.groupby(["epoch", "prompt_id"])["response"].nunique().groupby("epoch").mean()
    iqr = spread[spread["split"] == "sft_train"].set_index("epoch")["iqr"]
    return epoch_table(samples), scores, iqr, distinct


def render() -> None:
    st.markdown(
        "PPO starts from an SFT checkpoint, and which one matters. Each epoch of supervised fine-tuning "
        "makes the model surer of its training answers: the entropy of its samples falls, epoch after "
        "epoch, towards a **floor** where it repeats one answer (mode collapse). A collapsed model has "
        "a tiny sampling space: its samples for a prompt barely differ, so their rewards barely differ, "
        "and PPO has nothing to choose between. Pick the checkpoint that still has entropy **where PPO "
        "is meant to learn**."
    )
    found = world_and_samples()
    if found is None:
        return
    world, samples = found
    table, scores, spread, distinct = _views(samples)
    floor = entropy_floor(table)
    epochs = [int(e) for e in table["epoch"]]
    epoch = st.select_slider("Try it: SFT epoch", epochs, value=world.default_epoch, key="learn_epoch")
    row = table.set_index("epoch").loc[epoch]
    c = st.columns(4)
    c[0].metric("Entropy, SFT-train prompts", f"{row['entropy_sft_train']:.3f}")
    c[1].metric("Entropy, PPO-only prompts", f"{row['entropy_ppo_only']:.3f}")
    c[2].metric("Mean gold", f"{row['gold']:.3f}")
    c[3].metric(
        "Best-of-8 gold", f"{row['best_gold']:.3f}", help="mean over prompts of the best of 8 samples"
    )
    left, right = st.columns(2)
    entropy = entropy_figure(table, floor, world.default_epoch)
    entropy.add_vline(x=epoch, line_color=PICKED, line_width=3, opacity=0.5)
    left.plotly_chart(entropy, key="learn_epoch_entropy")
    right.plotly_chart(epoch_density_figure(scores, "reward", epoch, "RM reward"), key="learn_epoch_density")
    room = float(row["best_gold"] - row["gold"])
    where = (
        "before the floor: the model still explores"
        if epoch < floor
        else f"at or past the floor (epoch {floor}): the space is about as small as it gets"
    )
    st.markdown(
        f"**Epoch {epoch}** is {where}. Its samples score {row['gold']:.2f} gold on average, the best of "
        f"8 per prompt {row['best_gold']:.2f}: **{room:.2f}** of room that PPO can reach by reweighting. "
        "The right plot shows each epoch's RM rewards *within* prompts (each prompt's samples centred on "
        f"the epoch's mean): a narrow curve is a small sampling space. {epochs_sentence(table, spread, distinct)} "
        f"The world's default start is epoch {world.default_epoch}; step 3 shows a PPO run from the last "
        "epoch for contrast."
    )
    page_link("sft_epochs.py", "SFT epochs: every checkpoint, gold and RM, raw and normalised")
