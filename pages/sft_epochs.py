"""SFT epochs: the sampling space of every SFT checkpoint, and the hand-off to a PPO run."""

import pandas as pd
import streamlit as st

from engine.world_tools.epochs import entropy_floor, epoch_table, load_or_sample, report_path
from workbench.figures.sft_epochs import (
    best_of_n_figure,
    entropy_figure,
    epoch_boxes,
    epoch_scores,
    ratio_text,
    spread_by_epoch,
    spread_trend,
)
from workbench.glossary import page_tooltip
from workbench.launch_form import HANDOFF_SFT_EPOCH
from workbench.navigation import PAGES_DIR
from workbench.resources import BUILD_COMMAND, world_error, world_or_none

st.title("Which SFT epoch should PPO start from?", help=page_tooltip("sft_epochs.py"))
st.markdown(
    "Every SFT epoch lowers the entropy of the model on its training prompts, towards a floor "
    "(mode collapse). PPO only reweights what the starting model can already sample, so it needs a "
    "checkpoint that **still has entropy where PPO is meant to learn**. If PPO's prompts differ from "
    "SFT's, prefer an earlier epoch; if they are the same, a later one. Below, each checkpoint is "
    "sampled (temperature 1, 8 samples per prompt) on every prompt of the built-in world."
)

world = world_or_none()
if world is None:
    st.warning(f"The built-in world is not built ({world_error()}). Build it with:")
    st.code(BUILD_COMMAND, language="bash")
    st.stop()


@st.cache_data(show_spinner=False)
def _samples(path: str, mtime: float) -> pd.DataFrame:
    return pd.read_parquet(path)


path = report_path(world)
if not path.is_file():
    st.info("The per-epoch samples are not computed yet (about a minute on 2 CPU cores).")
    if st.button("Sample every SFT epoch", type="primary"):
        bar = st.progress(0.0, text="sampling SFT epochs...")
        load_or_sample(
            world, progress=lambda done, total: bar.progress(done / total, text=f"epoch {done}/{total}")
        )
        st.rerun()
    st.stop()

samples = _samples(str(path), path.stat().st_mtime)
table = epoch_table(samples)
floor = entropy_floor(table)

left, right = st.columns([2, 1])
with left:
    st.plotly_chart(entropy_figure(table, floor, world.default_epoch), width="stretch")
with right:
    epoch = st.select_slider(
        "SFT epoch", options=list(table["epoch"]), value=world.default_epoch, key="sft_epoch_pick"
    )
    row = table.set_index("epoch").loc[epoch]
    c1, c2 = st.columns(2)
    c1.metric("Entropy, SFT-train prompts", f"{row['entropy_sft_train']:.3f}")
    ratio = float(row["entropy_ratio_ppo_only_vs_sft"])
    c2.metric(
        "Entropy, PPO-only prompts",
        f"{row['entropy_ppo_only']:.3f}",
        help=f"{ratio_text(ratio)} than on SFT-train prompts",
    )
    st.caption(
        f"PPO-only vs SFT-train entropy at this epoch: **{ratio_text(ratio)}**. The practitioner's note "
        "measured 0.12 on SFT prompts vs 0.19 on PPO prompts: barely different, so PPO had little room. "
        "A large ratio means PPO's prompts lie outside what SFT already fitted."
    )
    c1.metric("Mean gold", f"{row['gold']:.3f}")
    c2.metric(
        "Best-of-8 gold",
        f"{row['best_gold']:.3f}",
        help="mean over prompts of the best sample's gold: the ceiling of the sampling space",
    )
    if st.button(f"Start a PPO run from epoch {epoch}", type="primary"):
        st.session_state[HANDOFF_SFT_EPOCH] = int(epoch)
        st.switch_page(str(PAGES_DIR / "runs.py"))

st.subheader("Reward densities per epoch")
value = st.radio(
    "Score",
    ["gold", "reward"],
    horizontal=True,
    format_func=lambda v: {"gold": "gold judge", "reward": "RM reward"}[v],
)
normalise = st.toggle("Per-prompt normalised (reward - prompt mean + global mean)", value=True)
frame, clipped = epoch_scores(samples, value, normalise)
st.plotly_chart(epoch_boxes(frame, value), width="stretch")
trend = spread_trend(spread_by_epoch(frame, value))
first, last = int(table["epoch"].min()), int(table["epoch"].max())
if normalise:
    st.caption(
        "Normalised, each prompt's samples are centred on the epoch's mean: the box width left is the "
        f"spread *within* prompts, what PPO can choose from. On SFT-train prompts it **{trend}** from "
        f"epoch {first} to {last}"
        + (
            " (early epochs fail on almost every sample, so there is little to choose from yet)."
            if trend == "widens"
            else "."
        )
        + (
            f" {clipped:.0%} of normalised gold values fall outside gold's range [0, 1] and are drawn at its edge."
            if clipped
            else ""
        )
    )
else:
    st.caption(
        "Raw scores mix how hard each prompt is with the spread within its samples; switch on the "
        f"normalisation to see the second alone. On SFT-train prompts the box width {trend} from epoch {first} to {last}."
    )

st.subheader("Mean vs best-of-N: room for PPO")
st.plotly_chart(best_of_n_figure(table), width="stretch")
st.dataframe(table.round(3), hide_index=True, width="stretch")
