"""Step 3, PPO as entropy reduction: one probe prompt's samples at steps 0, k and n of a demo run, and
the reward density raw vs per-prompt normalised."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import engine.store as store
from engine.analysis.entropy_dynamics import entropy_report
from workbench.figures.learn import probe_family_figure
from workbench.figures.ridgeline import (
    HISTOGRAM_BINS,
    common_range,
    histogram_moments,
    ridgeline,
    smooth_density,
)
from workbench.figures.tokens import entropy_legend_html, entropy_scale, sample_tokens_html
from workbench.learn.common import pick_demo_run
from workbench.navigation import browser_link, page_link
from workbench.run_text import probe_path_sentence, room_left
from workbench.store_access import cached

RUNS = ("demo-default", "demo-late-epoch")


@st.cache_data(show_spinner=False, max_entries=64)
def _smooth(hist: pd.DataFrame, upto: int) -> pd.DataFrame:
    return smooth_density(hist[hist["step"] <= upto])


def _densities(run_dir, upto: int) -> None:
    # One query per run over every step (cached); a slider move only filters and smooths.
    raw, norm = (
        cached(store.reward_norm_density, run_dir, value="reward", normalised=n, bins=HISTOGRAM_BINS)
        for n in (False, True)
    )
    if raw.empty:
        return
    raw, norm = raw[raw["step"] <= upto], norm[norm["step"] <= upto]
    smooth_raw, smooth_norm = _smooth(raw, upto), _smooth(norm, upto)
    x_range = common_range(smooth_raw, smooth_norm)
    left, right = st.columns(2)
    for col, frame, title in (
        (left, smooth_raw, "raw RM reward"),
        (right, smooth_norm, "per-prompt normalised"),
    ):
        fig = ridgeline(
            frame, title=f"{title}, steps up to {upto}", x_title="RM reward", max_steps=10, x_range=x_range
        )
        col.plotly_chart(fig, key=f"learn_ppo_{title}")
    (raw_first, raw_last), (norm_first, norm_last) = (
        histogram_moments(h).iloc[[0, -1]].itertuples() for h in (raw, norm)
    )
    st.caption(
        "All samples PPO trained on, one curve per step (the first at the bottom). The raw density mixes "
        "easy and hard prompts; normalised (`reward - prompt mean + step mean`), only the spread *within* "
        "each prompt is left. The note found the raw one barely moving while the normalised one narrows "
        f"(entropy reduction) and shifts (better samples). Here, step {raw_first.step} → {raw_last.step}: "
        f"mean {raw_first.mean:.2f} → {raw_last.mean:.2f} (the same for both by construction); sd raw "
        f"{raw_first.sd:.2f} → {raw_last.sd:.2f}, normalised {norm_first.sd:.2f} → {norm_last.sd:.2f}."
    )


def render() -> None:
    st.markdown(
        "PPO repeats three stages: **sample** answers from the current model, **score** them with the "
        "RM, **optimise** the model towards the answers that scored above that prompt's average (and "
        "away from those below), with a KL penalty that keeps it near the SFT model. The note's claim: on "
        "a prompt, the answers it samples become fewer and better and their entropy falls, so **PPO is "
        "entropy reduction inside the SFT model's sampling space**. Below: the run's fixed probe prompts, "
        "8 samples at temperature 1 every 5 steps, and what each one shows."
    )
    picked = pick_demo_run(RUNS, "Run", "learn_ppo_run")
    if picked is None:
        return
    run, run_dir = picked
    prompts = cached(store.probe_prompts, run_dir)
    steps = cached(store.probe_steps, run_dir)
    if prompts.empty or len(steps) < 2:
        st.info(
            f"`{run}` has fewer than two probe steps: rebuild the demo runs (`python -m engine demo build`)."
        )
        return
    change = cached(store.probe_family_change, run_dir)
    falling = change.sort_values("entropy_change")["prompt_family"].iloc[0]  # the clearest fall first
    ids = prompts["prompt_id"].tolist()
    texts = dict(zip(prompts["prompt_id"], prompts["prompt_family"] + ": " + prompts["prompt"], strict=True))
    default = ids.index(prompts.loc[prompts["prompt_family"] == falling, "prompt_id"].iloc[0])
    left, right = st.columns([1, 2])
    prompt_id = left.selectbox(
        "Probe prompt", ids, index=default, format_func=texts.get, key="learn_ppo_prompt"
    )
    k = right.select_slider("Try it: step k", steps, value=steps[len(steps) // 2], key="learn_ppo_step")
    shown = sorted({steps[0], int(k), steps[-1]})
    samples = cached(store.probe_samples, run_dir, prompt_id=prompt_id, steps=tuple(shown))
    high = entropy_scale([samples])
    st.html(entropy_legend_html(0.0, high))
    for step, part in samples.groupby("step"):
        name = {steps[0]: "start", steps[-1]: "end"}.get(step, "step k")
        st.markdown(
            f"**Step {step}** ({name}): {part['response'].nunique()} distinct answers of {len(part)}, "
            f"mean entropy {part['mean_entropy'].mean():.2f} nats, mean gold {part['gold'].mean():.2f}"
        )
        st.html(sample_tokens_html(part, high))
    st.markdown(probe_path_sentence(samples, shown))
    family = texts[prompt_id].split(":")[0]
    st.plotly_chart(
        probe_family_figure(cached(store.probe_family_steps, run_dir), family, int(k)), key="learn_ppo_curve"
    )
    room = room_left(cached(entropy_report, run_dir))
    if room:
        st.markdown(room)
    if run == "demo-late-epoch":
        st.caption(
            "This run starts from the last SFT epoch (step 2 shows each epoch's entropy). Whatever it "
            "gains, it gains by moving probability between answers it already samples: it cannot find "
            "answers it never samples. Switch to demo-default to compare."
        )
    _densities(run_dir, int(k))
    browser_link(run, prompt_id, f"Rollout browser: {prompt_id} in {run}, step by step", step=int(k))
    page_link("reward_densities.py", "Reward densities of every run", {"run": run})
