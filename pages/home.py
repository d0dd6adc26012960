"""Home, a first-run guide: what the workbench is, the state of the world and the runs, three doors."""

from pathlib import Path

import pandas as pd
import streamlit as st

import engine.store as store
from workbench.figures.runs import GLANCE_KEYS, glance_figure
from workbench.glossary import page_tooltip
from workbench.navigation import page_link, sections
from workbench.resources import BUILD_COMMAND, world_error, world_or_none
from workbench.run_text import shows_entropy_reduction, trend_sentence
from workbench.store_access import cached, runs_table

INTRO = """
**PPO is entropy reduction inside the SFT model's sampling space**: it only moves probability mass
between answers the starting model can already sample, so it helps only while that space is wide
enough and the reward model stays right on what PPO samples. This workbench makes both visible, on
a built-in toy world with a hidden gold judge: per-token entropy of samples, reward densities, which
SFT epoch to start from, and the reward model's accuracy as PPO moves. Start with a door below;
every page works on the shipped demo runs before you train anything.
"""

st.title("PPO Entropy Workbench", help=page_tooltip("home.py"))
st.markdown(INTRO)

st.subheader("Where to start")
runs = runs_table()
with_steps = runs[runs["n_rollouts"] > 0]
# the longest demo run; a tie (demo-default and demo-grpo run the same steps) goes by id, so it is stable
first_run = with_steps[with_steps["demo"]].sort_values(["n_steps", "run_id"], ascending=[False, True]).head(1)
if first_run.empty:
    first_run = with_steps.head(1)
doors = st.columns(3)
with doors[0]:
    st.markdown("**Learn**: the practitioner's note, one idea at a time, with live figures.")
    page_link("learn.py", "Open the Learn path")
with doors[1]:
    st.markdown("**Sampling lab**: one prompt, many samples, tokens coloured by entropy.")
    page_link("sampling_lab.py", "Open the Sampling lab")
with doors[2]:
    if first_run.empty:
        st.markdown("**Rollout browser**: no run with logged rollouts yet (launch one on **Runs**).")
        page_link("rollout_browser.py", "Open the Rollout browser")
    else:
        run = first_run.iloc[0]
        ranking = "gold_var"  # the judge's spread; RM variance puts rare off-task answers on top
        top = cached(store.rank_prompts, Path(run["run_dir"]), ranking=ranking, limit=1)
        if top.empty or pd.isna(top["score"].iloc[0]):  # no gold in this run
            ranking = "reward_var"
            top = cached(store.rank_prompts, Path(run["run_dir"]), ranking=ranking, limit=1)
        params = {"run": run["run_id"], "ranking": ranking}
        if not top.empty:
            params["prompt"] = top["prompt_id"].iloc[0]
        kind = "demo run" if run["demo"] else "run"
        st.markdown(f"**Rollout browser**: the {kind} `{run['run_id']}` on its most-varying prompt.")
        page_link("rollout_browser.py", "Open the highest-variance prompt", params)

if not first_run.empty:
    run = first_run.iloc[0]
    glance = cached(store.metrics, [Path(run["run_dir"])], keys=GLANCE_KEYS)
    figure = glance_figure(glance)
    if figure is not None:
        st.subheader(f"What the {'demo run' if run['demo'] else 'run'} `{run['run_id']}` shows")
        st.plotly_chart(figure, key="home_glance")
        why = (
            " The hidden judge's score rose while the policy grew surer of its answers: the **Learn** "
            "path explains why that is PPO's whole mechanism, and when it stops working."
        )
        reduced = shows_entropy_reduction(glance, probes=True)
        st.markdown(trend_sentence(glance, probes=True) + (why if reduced else ""))

st.subheader("Your runs and the demo runs")
own, demo = runs[~runs["demo"]], runs[runs["demo"]]
c1, c2 = st.columns(2)
c1.metric("Your runs", len(own), help="under WORKBENCH_RUNS_DIR (launch on Runs, or Import)")
c2.metric("Demo runs (read-only)", len(demo), help="shipped in data/demo_runs")
if not runs.empty:
    shown = runs.assign(owner=runs["demo"].map({True: "demo", False: "yours"}))
    st.dataframe(
        shown[["run_id", "owner", "kind", "state", "n_steps", "n_rollouts"]], hide_index=True, width="stretch"
    )
else:
    st.info("No runs yet, and no demo runs: launch a PPO job on the **Runs** page.")

world = world_or_none()
st.subheader("The built-in world")
if world is None:
    st.warning(
        f"The built-in toy world is not built yet ({world_error()}). "
        "Build it once from the repository root, then reload this page:"
    )
    st.code(BUILD_COMMAND, language="bash")
    st.caption(
        "Everything else still works with a Hugging Face model (from the local cache) or a local path."
    )
else:
    summary = world.summary()
    families = pd.DataFrame(summary["families"])
    in_sft = int(families["in_sft"].sum())
    cols = st.columns(4)
    cols[0].metric(
        "Prompt families", len(families), help=f"{in_sft} in SFT data, {len(families) - in_sft} PPO-only"
    )
    cols[1].metric("Prompts", summary["n_prompts"])
    cols[2].metric("SFT epochs", len(summary["sft_epochs"]), help=f"default start {summary['default_epoch']}")
    cols[3].metric("Policy parameters", f"{summary['policy_params']:,}")
    families["coverage"] = families["in_sft"].map({True: "in SFT", False: "PPO only"})
    st.dataframe(families[["family", "coverage", "description"]], hide_index=True, width="stretch")
    st.caption(
        f"SFT checkpoints `world:sft-epoch-N` (N in {summary['sft_epochs']}), reward model "
        f"`{world.rm_source}`. PPO-only families are the practitioner's note's \"wider data range\": "
        "the SFT model is unsure there, which is where PPO has room to learn."
    )

with st.expander("Every page"):
    for section, specs in sections().items():
        st.markdown(f"**{section}**")
        for spec in specs:
            if spec.file != "home.py":
                page_link(spec.file, f"{spec.title}: {spec.blurb}")
