"""Warm-up (the teaching bandit): what entropy reduction in PPO looks like, on one prompt with a dozen responses."""

import streamlit as st

from engine.teaching import entropy, make_bandit, run, softmax
from workbench.figures import teaching as figures
from workbench.glossary import page_tooltip
from workbench.navigation import page_link

st.title("PPO as entropy reduction, in one picture", help=page_tooltip("teaching.py"))
st.markdown(
    """
Take **one prompt**. The SFT model can answer it in a dozen ways (the bars below), some good, some bad
(the colour is the *gold* quality a careful human would give). PPO samples answers, asks the **reward
model** for a score, and moves probability towards high-reward answers while a **KL penalty** holds it
near the SFT model. It never invents a new answer: it only **reweights the SFT model's sampling space**,
so the distribution gets sharper and its entropy falls. Two things decide where it ends up:

1. **How big the sampling space is.** Make the SFT model sharp (low temperature): there is little to
   choose from, rewards barely differ between samples, and PPO gains almost nothing.
2. **Whether the reward model is right on that space.** Give the RM a loophole (it over-rates a bad
   answer) or noise: PPO follows the RM, the RM reward keeps rising, and the gold quality falls.
"""
)

with st.sidebar:
    st.header("Toy settings")
    sft_temperature = st.slider("SFT sampling-space size (temperature of the SFT model)", 0.1, 3.0, 1.0, 0.1)
    rm_noise = st.slider("RM noise (random error)", 0.0, 0.5, 0.0, 0.05)
    loophole = st.slider("RM loophole (over-rating of a bad answer)", 0.0, 2.0, 0.0, 0.1)
    kl_coef = st.slider("KL coefficient", 0.0, 0.5, 0.05, 0.01)
    steps = st.slider("PPO steps", 10, 400, 150, 10)
    seed = st.number_input("Random seed", 0, 999, 0)

bandit = make_bandit(12, sft_temperature, rm_noise, loophole, int(seed))
history, final = run(bandit, kl_coef=kl_coef, steps=steps)
start = softmax(bandit.sft_logits)

c = st.columns(4)
c[0].metric(
    "Entropy (nats)", f"{entropy(final):.2f}", f"{entropy(final) - entropy(start):+.2f}", delta_color="off"
)
c[1].metric(
    "Expected RM reward",
    f"{history.expected_rm.iloc[-1]:.2f}",
    f"{history.expected_rm.iloc[-1] - history.expected_rm.iloc[0]:+.2f}",
)
c[2].metric(
    "Expected gold",
    f"{history.expected_gold.iloc[-1]:.2f}",
    f"{history.expected_gold.iloc[-1] - history.expected_gold.iloc[0]:+.2f}",
)
c[3].metric("KL to SFT", f"{history.kl.iloc[-1]:.2f}")

st.plotly_chart(figures.answer_bars(bandit, start, final, steps), width="stretch")
st.plotly_chart(figures.bandit_curves(history), width="stretch")

gap = float(bandit.gold.max() - start @ bandit.gold)
st.markdown(
    f"""
**Read it.** The SFT model's expected gold is {start @ bandit.gold:.2f}; the best answer it can sample
scores {bandit.gold.max():.2f}, so PPO has at most **{gap:.2f}** to gain on this prompt, and only by
making the distribution sharper. Try: a small SFT temperature (few reachable answers, little gain);
a loophole of 1.0 with KL 0 (RM reward rises, gold falls: over-optimisation); the same loophole with
KL 0.2 (the penalty keeps PPO where the RM is still right).

Then see it on real models:
"""
)
for page, text in (
    ("learn.py", "Learn path: the same argument step by step on the world's models and demo runs"),
    ("sampling_lab.py", "Sampling lab: the sampling space token by token"),
    ("sft_epochs.py", "SFT epochs: how much entropy each checkpoint leaves"),
    ("runs.py", "Runs: launch a PPO job and watch entropy fall"),
    ("reward_densities.py", "Reward densities: raw vs per-prompt normalised"),
    ("rm_accuracy.py", "RM accuracy: is the RM still right on PPO's samples?"),
):
    page_link(page, text)

with st.expander("The numbers behind the picture"):
    st.dataframe(figures.answers_table(bandit, start, final), hide_index=True)
