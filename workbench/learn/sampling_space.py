"""Step 1, the sampling space: one prompt, many samples of the SFT model, tokens coloured by entropy."""

from __future__ import annotations

import streamlit as st

from engine.config import SamplingConfig
from engine.lab import TEMPERATURE_GRID
from workbench.figures.tokens import legend_html
from workbench.lab_tables import batch_tokens_html
from workbench.learn.common import need_world
from workbench.navigation import page_link
from workbench.resources import sampling_lab

N_SAMPLES = 12
MAX_NEW_TOKENS = 24
SCALE = (0.0, 3.0)  # nats: one colour scale for every temperature, so the colours compare


def render() -> None:
    st.markdown(
        "A language model does not give *an* answer to a prompt: it gives a **distribution** over "
        "answers, built one token at a time. Sample it a dozen times and you see that distribution: "
        "where the samples agree, the model was sure (light tokens, low entropy); where they fork, it "
        "was not (dark tokens, high entropy). This set of answers the SFT model can produce is its "
        "**sampling space**. PPO never writes a new answer: it only moves probability between the "
        "answers in this space, towards those the reward model likes. So the space bounds what PPO "
        "can reach."
    )
    page_link("teaching.py", "Warm-up: one toy prompt, the same idea on a 12-answer toy")
    world = need_world()
    if world is None:
        return
    prompts = {p.prompt_id: p for p in world.prompts()}
    one_per_family = list({p.family: p.prompt_id for p in reversed(list(prompts.values()))}.values())[::-1]
    left, right = st.columns(2)
    prompt_id = left.selectbox(
        "Prompt",
        sorted(one_per_family),
        format_func=lambda i: f"{prompts[i].family}: {prompts[i].text}",
        key="learn_space_prompt",
    )
    temperature = right.select_slider(
        "Try it: temperature", TEMPERATURE_GRID, value=1.0, key="learn_space_temperature"
    )
    source = world.policy_source()
    lab = sampling_lab()
    with st.spinner(f"Sampling {N_SAMPLES} answers from {source}..."):
        batch = lab.sample(
            source,
            [prompts[prompt_id].text],
            SamplingConfig(temperature=float(temperature), max_new_tokens=MAX_NEW_TOKENS),
            n_samples=N_SAMPLES,
            seed=0,
        )
    summary = batch.summary()
    c = st.columns(4)
    c[0].metric("Distinct answers", f"{len(set(batch.responses))} of {N_SAMPLES}")
    c[1].metric(
        "Mean entropy (nats)", f"{summary['sampling_entropy']:.2f}", help="of the distribution sampled from"
    )
    c[2].metric("Mean gold", f"{float(batch.gold.mean()):.2f}", help="the hidden judge's score, 0..1")
    c[3].metric("Best gold", f"{float(batch.gold.max()):.2f}", help="the best answer in the space")
    st.html(
        legend_html("sampling_entropy", *SCALE)
        + batch_tokens_html(batch, batch.signals(), "sampling_entropy", SCALE, range(len(batch.tokens)))
    )
    st.caption(
        f"{N_SAMPLES} samples of `{source}` (the SFT model PPO starts from) at temperature {temperature:g}, "
        "scored by the reward model (RM) and the gold judge. Temperature divides the logits before "
        "sampling: below 1 the space shrinks towards the most likely answer; above 1 it widens, but "
        "into tokens the model itself thought unlikely, and the gold score falls. The best gold is what "
        "PPO could reach here by moving all probability onto the best sample; the mean is where it starts."
    )
    page_link("sampling_lab.py", "Sampling lab: every signal, top-p, top-k, any model")
