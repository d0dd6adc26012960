"""SFT epochs: the sampling space of every SFT checkpoint, and the hand-off to a PPO run."""

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from engine.world.epochs import entropy_floor, epoch_table, load_or_sample, report_path
from workbench.navigation import PAGES_DIR
from workbench.resources import BUILD_COMMAND, world_error, world_or_none
from workbench.runs_views import HANDOFF_SFT_EPOCH

SPLIT_LABELS = {
    "sft_train": "SFT-train prompts",
    "eval": "held-out SFT-family prompts",
    "ppo_only": "PPO-only prompts",
}

st.title("Which SFT epoch should PPO start from?")
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
    fig = go.Figure()
    for split, label in SPLIT_LABELS.items():
        column = f"entropy_{split}"
        if column in table:
            fig.add_trace(go.Scatter(x=table["epoch"], y=table[column], mode="lines+markers", name=label))
    fig.add_vline(x=floor, line_dash="dot", annotation_text=f"floor reached (epoch {floor})")
    fig.add_vline(
        x=world.default_epoch,
        line_dash="dash",
        line_color="green",
        annotation_text="default start",
        annotation_position="bottom right",
    )
    fig.update_layout(
        title="Mean per-token entropy of samples (nats)",
        xaxis_title="SFT epoch",
        yaxis_title="entropy",
        height=380,
        margin=dict(t=50, b=40),
        legend=dict(orientation="h", y=-0.25),
    )
    st.plotly_chart(fig, width="stretch")
with right:
    epoch = st.select_slider(
        "SFT epoch", options=list(table["epoch"]), value=world.default_epoch, key="sft_epoch_pick"
    )
    row = table.set_index("epoch").loc[epoch]
    c1, c2 = st.columns(2)
    c1.metric("Entropy, SFT-train prompts", f"{row['entropy_sft_train']:.3f}")
    c2.metric(
        "Entropy, PPO-only prompts",
        f"{row['entropy_ppo_only']:.3f}",
        delta=f"x{row['entropy_ratio_ppo_only_vs_sft']:.2f}",
        delta_color="off",
    )
    st.caption(
        "The seed measured 0.12 on SFT prompts vs 0.19 on PPO prompts: barely different, so PPO had "
        "little room. A large ratio means PPO's prompts lie outside what SFT already fitted."
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
frame = samples[["epoch", "prompt_id", "split", value]].copy()
if normalise:
    keys = ["epoch", "prompt_id"]
    frame[value] = (
        frame[value]
        - frame.groupby(keys)[value].transform("mean")
        + frame.groupby("epoch")[value].transform("mean")
    )
frame["prompts"] = frame["split"].map(SPLIT_LABELS)
fig = px.box(frame, x="epoch", y=value, color="prompts", points=False, height=380)
fig.update_layout(margin=dict(t=30, b=40), legend=dict(orientation="h", y=-0.2), boxmode="group")
st.plotly_chart(fig, width="stretch")
st.caption(
    "Normalised, each prompt's samples are centred on the global mean: the width left is the spread "
    "*within* prompts, i.e. what PPO can choose from. It narrows as epochs memorise the data."
)

st.subheader("Mean vs best-of-N: room for PPO")
fig = go.Figure()
fig.add_trace(go.Bar(x=table["epoch"], y=table["gold"], name="mean gold"))
fig.add_trace(go.Bar(x=table["epoch"], y=table["best_gold"] - table["gold"], name="best-of-8 gap"))
fig.update_layout(
    barmode="stack", height=320, xaxis_title="SFT epoch", yaxis_title="gold", margin=dict(t=20, b=40)
)
st.plotly_chart(fig, width="stretch")
st.dataframe(table.round(3), hide_index=True, width="stretch")
