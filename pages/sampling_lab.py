"""Sampling lab: feel how temperature / top-p / top-k change the sampling space, token by token."""

import streamlit as st

from engine.lab import SIGNAL_HELP, SIGNALS, TEMPERATURE_GRID, TOP_P_GRID, reference_config
from workbench import lab_views as views
from workbench.lab_inputs import model_picker, prompt_picker, sample_with_progress, sampling_settings
from workbench.resources import sampling_lab, world_or_none

SHOWN = 8  # samples per prompt shown before an expander, so the summaries stay in view

st.title("Sampling lab")
st.caption(
    "Pick a model and prompts, move the sliders: samples, signals and rewards update on their own. "
    "The seed is fixed per setting, so moving a slider back brings back the same samples."
)
world = world_or_none()
lab = sampling_lab()

with st.sidebar:
    st.header("Model and prompts")
    source = model_picker(world, key="lab_model")
    prompts = prompt_picker(world, key="lab")
    n_samples = st.slider("Samples per prompt", 4, 64, 16, 4, key="lab_n")
    max_new_tokens = st.slider("Max new tokens", 4, 64, 32, 4, key="lab_max_new_tokens")
    seed = int(st.number_input("Seed", 0, 2**31 - 1, 0, key="lab_seed"))
    reward_source = st.text_input(
        "Reward model (optional)",
        key="lab_rm",
        help="World models use the world's RM and gold judge by default; name an HF sequence classifier or dir.",
    ).strip()

config = sampling_settings(max_new_tokens, key="lab")
colour_by = (
    st.segmented_control(
        "Colour tokens by", SIGNALS, default="entropy", key="lab_colour", format_func=views.SIGNAL_LABELS.get
    )
    or "entropy"
)
st.caption(f"**{views.SIGNAL_LABELS[colour_by]}**: {SIGNAL_HELP[colour_by]}.")

if not prompts:
    st.warning("The prompt is empty: pick a prompt or type at least one word.")
if source is None or config is None or not prompts:
    st.stop()

common = {"n_samples": n_samples, "seed": seed, "reward_source": reward_source or None}
batch = sample_with_progress(lab, source, prompts, config, what="these settings", **common)
reference = sample_with_progress(
    lab, source, prompts, reference_config(config), what="T=1 reference", **common
)
if batch is None or reference is None:
    st.stop()

current_signals = batch.signals()
reference_values = reference.signal_values()
tab_samples, tab_rewards, tab_sweeps, tab_compare = st.tabs(
    ["Samples and signals", "Rewards", "Sweeps", "Compare checkpoints"]
)

with tab_samples:
    left, right = st.columns([3, 2])
    with left:
        scale = views.colour_range(colour_by, [views.real_values(batch, current_signals, colour_by)])
        st.html(views.legend_html(colour_by, *scale))
        for i, prompt in enumerate(batch.prompts):
            st.markdown(f"**Prompt:** `{prompt}`")
            rows = [r for r, p in enumerate(batch.prompt_index) if p == i]
            st.html(views.batch_tokens_html(batch, current_signals, colour_by, scale, rows[:SHOWN]))
            if len(rows) > SHOWN:
                with st.expander(f"{len(rows) - SHOWN} more samples of this prompt"):
                    st.html(views.batch_tokens_html(batch, current_signals, colour_by, scale, rows[SHOWN:]))
    with right:
        st.markdown("**Signals: mean over sampled tokens**")
        summary = views.summary_frame(batch.summary(), reference.summary())
        st.dataframe(summary, hide_index=True, width="stretch")
        st.caption("T=1 reference: fresh samples at temperature 1, top-p 1, top-k 0 (same seed).")
    st.markdown("**Signals: distribution over sampled tokens** (box: quartiles, dashed line: mean)")
    st.plotly_chart(
        views.signal_distributions_figure(batch.signal_values(), reference_values), key="lab_dist"
    )

with tab_rewards:
    frame = views.rewards_of(batch, reference)
    if frame.empty:
        st.info("No reward model for this model: world models use the world's RM; name an RM in the sidebar.")
    else:
        st.dataframe(views.reward_summary(frame), hide_index=True)
        st.plotly_chart(views.reward_figure(frame, "raw"), key="lab_reward_raw")
        if len(batch.prompts) > 1:
            st.caption(
                "Per-prompt normalised: reward - mean of the same prompt's samples + global mean (the seed's view)."
            )
            st.plotly_chart(views.reward_figure(frame, "normalised"), key="lab_reward_norm")
        else:
            st.caption("Pick several prompts to see the per-prompt normalised distribution.")

with tab_sweeps:
    st.markdown(
        "The seed's author found top-k and top-p matter little, temperature matters little **below 1**, "
        "but **above 1 quality falls off sharply**. The curves below sample the current prompts at each grid "
        "value (other settings as set) and mark the current value."
    )
    if st.toggle("Compute sweep curves", value=True, key="lab_sweep_on"):
        progress = st.progress(0.0)
        sweeps = {}
        for parameter, grid in (("temperature", TEMPERATURE_GRID), ("top_p", TOP_P_GRID)):
            sweeps[parameter] = lab.sweep(
                source,
                prompts,
                config,
                parameter=parameter,
                values=grid,
                progress=lambda f, text, p=parameter: progress.progress(f, text=f"Sweeping {p}: {text}"),
                **common,
            )
        progress.empty()
        verdict = views.quality_verdict(sweeps["temperature"])
        if verdict:
            st.info(verdict)
        st.markdown("**Against temperature** (dashed line: the current setting)")
        figure = views.sweep_figure(sweeps["temperature"], "temperature", config.temperature)
        st.plotly_chart(figure, key="lab_sweep_t")
        st.markdown("**Against top-p**")
        st.plotly_chart(views.sweep_figure(sweeps["top_p"], "top_p", config.top_p), key="lab_sweep_p")

with tab_compare:
    st.markdown("The same prompts, settings and seed on a second model, coloured on one shared scale.")
    if st.toggle("Compare with a second model", value=False, key="lab_compare_on"):
        first_epoch = world.sft_epochs[0] if world is not None else None
        other_source = model_picker(world, key="lab_other", label="Second model", default_epoch=first_epoch)
        other = (
            sample_with_progress(lab, other_source, prompts, config, what="second model", **common)
            if other_source
            else None
        )
        if other is not None:
            other_signals = other.signals()
            scale = views.colour_range(
                colour_by,
                [
                    views.real_values(b, sig, colour_by)
                    for b, sig in ((batch, current_signals), (other, other_signals))
                ],
            )
            st.dataframe(
                views.compare_frame(source, batch.summary(), other_source, other.summary()), hide_index=True
            )
            st.html(views.legend_html(colour_by, *scale))
            for column, name, b, sig in zip(
                st.columns(2),
                (source, other_source),
                (batch, other),
                (current_signals, other_signals),
                strict=True,
            ):
                with column:
                    st.markdown(f"**{name}**")
                    st.html(views.batch_tokens_html(b, sig, colour_by, scale, range(len(b.tokens))))
