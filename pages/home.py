"""Home: the built-in world at a glance, the seed's thesis, and where to go next."""

import pandas as pd
import streamlit as st

from workbench.navigation import sections
from workbench.resources import BUILD_COMMAND, world_error, world_or_none

THESIS = """
**PPO is entropy reduction inside the SFT model's sampling space.** PPO only moves probability mass
between responses the SFT model can already sample: it lowers the density of low-reward regions and
raises it in high-reward ones. So it helps only under two conditions: **(1) the sampling space is
large enough** (the SFT model still has entropy on the PPO prompts; otherwise the samples barely
differ, advantages vanish and learning stops), and **(2) the reward model stays accurate on that
space** (it must rank correctly what PPO actually samples, which drifts during training). The pages
below let you measure both: per-token entropy and the other sampling signals, reward densities
(raw and per-prompt normalised), which SFT epoch to start from, and RM accuracy on PPO's samples.
"""

st.title("PPO Entropy Workbench")
st.markdown(THESIS)

world = world_or_none()
st.subheader("The built-in world")
if world is None:
    st.warning(
        f"The built-in toy world is not built yet ({world_error()}). "
        "Build it once from the repository root, then reload this page:"
    )
    st.code(BUILD_COMMAND, language="bash")
    st.caption(
        "Everything else still works with a Hugging Face model (by name, from the local cache) or a local path."
    )
else:
    summary = world.summary()
    families = pd.DataFrame(summary["families"])
    in_sft = int(families["in_sft"].sum())
    cols = st.columns(5)
    cols[0].metric(
        "Prompt families",
        len(families),
        help=f"{in_sft} covered by SFT data, {len(families) - in_sft} PPO-only",
    )
    cols[1].metric("Prompts", summary["n_prompts"])
    cols[2].metric(
        "SFT epochs",
        len(summary["sft_epochs"]),
        help=f"epochs {summary['sft_epochs']}; default {summary['default_epoch']}",
    )
    cols[3].metric("Policy parameters", f"{summary['policy_params']:,}")
    cols[4].metric("RM parameters", f"{summary['rm_params']:,}")
    families["coverage"] = families["in_sft"].map({True: "in SFT", False: "PPO only"})
    st.dataframe(
        families[
            ["family", "coverage", "description", "sft_train_prompts", "eval_prompts", "ppo_only_prompts"]
        ],
        hide_index=True,
        width="stretch",
    )
    st.caption(
        f"SFT checkpoints `world:sft-epoch-N` for N in {summary['sft_epochs']} (default {summary['default_epoch']}), "
        f"reward model `{world.rm_source}`, vocabulary {summary['vocab_size']} words, built with seed "
        f'{summary["seed"]} at `{summary["path"]}`. PPO-only families are the seed\'s "wider data range": '
        "the SFT model is unsure there, which is where PPO has room to learn."
    )

st.subheader("Pages")
for section, specs in sections().items():
    st.markdown(f"**{section}**")
    for spec in specs:
        if spec.file != "home.py":
            st.page_link(str(spec.path), label=f"{spec.title}: {spec.blurb}", icon=spec.icon)
