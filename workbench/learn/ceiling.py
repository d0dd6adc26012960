"""Step 4, the ceiling: pass@k of demo-default's last checkpoint beside its SFT start, where the curves
cross or that they do not (the Ceiling section's computation and figure, on the samples that ship with
the demo run or a quick set made here)."""

from __future__ import annotations

import streamlit as st

from workbench.learn.common import demo_run
from workbench.navigation import page_link
from workbench.sections import ceiling

RUN = "demo-default"


def render() -> None:
    st.markdown(
        "If PPO only narrows the SFT model's sampling space, that space is its **ceiling**: what SFT cannot "
        "sample, PPO cannot reach. Yue et al. (2025) measured it on large models: the RL-trained model "
        "beats its base at pass@1, and the base wins at large k, because it still samples answers RL "
        "gave up. **pass@k** is the chance that at least one of k samples is correct (gold at or above "
        "its family's threshold), estimated without bias from N samples per prompt (Chen et al. 2021). "
        f"Below, `{RUN}`'s last checkpoint beside its SFT start, on the PPO prompts: does PPO win at "
        "k = 1, and does SFT catch up or pass it at large k? Each difference is paired over prompts, "
        "with its interval."
    )
    run_dir = demo_run(RUN)
    if run_dir is None:
        return
    ceiling.render(run_dir)
    page_link("ceiling.py", "Ceiling: the same for any run, with Cover@tau and answer entropy", {"run": RUN})
