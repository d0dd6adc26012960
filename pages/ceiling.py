"""Ceiling: pass@k of a run's last checkpoint beside its SFT start, and where the curves cross."""

import streamlit as st

from workbench.glossary import page_tooltip
from workbench.sections import ceiling
from workbench.store_access import pick_runs

st.title("Ceiling", help=page_tooltip("ceiling.py"))
st.markdown(
    "PPO moves probability between answers its start can already sample, so what the SFT model can "
    "sample bounds what PPO reaches (Yue et al. 2025: RL beats its base at pass@1 and loses at large "
    "k). **pass@k**: the chance that at least one of k samples is correct (gold above its family's "
    "threshold), with the unbiased estimator of Chen et al. 2021. Where the start's curve passes the "
    "trained policy's, the trained policy has given up answers its start could find."
)
run_dirs = pick_runs("ceiling_run")
if run_dirs:
    ceiling.render(run_dirs[0])
