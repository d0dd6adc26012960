"""Step 3, PPO as entropy reduction: one probe prompt's samples at steps 0, k and n of a demo run, and
the reward density raw vs per-prompt normalised."""

from __future__ import annotations

import streamlit as st

import engine.store as store
from workbench.figures.learn import probe_family_figure
from workbench.figures.ridgeline import HISTOGRAM_BINS, common_range, ridgeline, smooth_density
from workbench.figures.tokens import entropy_legend_html, entropy_scale, sample_tokens_html
from workbench.learn.common import pick_demo_run
from workbench.store_views import browser_link, cached, page_link

RUNS = ("demo-default", "demo-late-epoch")


def _densities(run_dir, upto: int) -> None:
    raw, norm = (
        cached(
            store.reward_norm_density,
            run_dir,
            value="reward",
            normalised=n,
            bins=HISTOGRAM_BINS,
            steps=(0, upto),
        )
        for n in (False, True)
    )
    if raw.empty:
        return
    smooth_raw, smooth_norm = smooth_density(raw), smooth_density(norm)
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
    st.caption(
        "All samples PPO trained on, one curve per step (the first at the bottom). The raw density mixes "
        "easy and hard prompts, so it barely moves. Normalised (`reward - prompt mean + step mean`), only "
        "the spread *within* each prompt is left: it **narrows** as PPO concentrates each prompt's samples, "
        "and **shifts** right as they get better."
    )


def render() -> None:
    st.markdown(
        "PPO repeats three stages: **sample** answers from the current model, **score** them with the "
        "RM, **optimise** the model towards the answers that scored above that prompt's average (and "
        "away from those below), with a KL penalty that keeps it near the SFT model. Watch what that does "
        "to one prompt: the answers it samples become fewer and better. The entropy falls: **PPO is "
        "entropy reduction inside the SFT model's sampling space**. Below: the run's fixed probe prompts, "
        "8 samples at temperature 1 every 5 steps."
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
    family = texts[prompt_id].split(":")[0]
    st.plotly_chart(
        probe_family_figure(cached(store.probe_family_steps, run_dir), family, int(k)), key="learn_ppo_curve"
    )
    if run == "demo-late-epoch":
        st.caption(
            "From the last SFT epoch the samples already agree at step 0: there is little entropy to "
            "reduce and little gold to gain. Switch to demo-default to compare."
        )
    _densities(run_dir, int(k))
    browser_link(run, prompt_id, f"Rollout browser: {prompt_id} in {run}, step by step", step=int(k))
    page_link("reward_densities.py", "Reward densities of every run", ":material/area_chart:", {"run": run})
