"""Learn: the practitioner's note in steps over the world's real models and the shipped demo runs."""

import streamlit as st

from workbench.glossary import LEARN_STEP_TERMS, page_tooltip, tooltip
from workbench.learn import STEPS
from workbench.navigation import apply_query_param, set_link

KEYS = [s.key for s in STEPS]
BY_KEY = {s.key: s for s in STEPS}


def _move(offset: int) -> None:
    index = KEYS.index(st.session_state["learn_step"]) + offset
    st.session_state["learn_step"] = KEYS[min(max(index, 0), len(KEYS) - 1)]


st.title("Learn: PPO is entropy reduction", help=page_tooltip("learn.py"))
st.markdown(
    f"A practitioner's note on PPO for language models, in {len(STEPS)} steps. Its claim: PPO does not teach "
    "the model new answers, it **narrows the SFT model's sampling space** towards what the reward "
    "model likes. So what decides the result is (1) **how big that space is** and (2) **whether the "
    "reward model stays right** on what PPO samples. Every figure below is live, on the built-in "
    "world's models and on real PPO runs shipped with the workbench; each step has a control to try."
)
apply_query_param("lesson", "learn_step", KEYS)
st.session_state.setdefault("learn_step", KEYS[0])
key = st.radio(
    "Step",
    KEYS,
    format_func=lambda k: BY_KEY[k].title,
    horizontal=True,
    key="learn_step",
    label_visibility="collapsed",
)
set_link("lesson", key, "learn_step")
step = BY_KEY[key]
st.header(step.title, help=tooltip(*LEARN_STEP_TERMS[key]))
st.caption(f"The idea: {step.idea}.")
step.render()

st.divider()
back, _, forward = st.columns([1, 4, 1])
index = KEYS.index(key)
back.button("← Previous", on_click=_move, args=(-1,), disabled=index == 0, key="learn_back")
forward.button("Next →", on_click=_move, args=(1,), disabled=index == len(KEYS) - 1, key="learn_next")
