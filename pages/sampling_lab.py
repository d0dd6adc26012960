"""Sampling lab: feel how temperature / top-p / top-k / min-p change the sampling space, token by token."""

import streamlit as st

from engine.lab import SIGNAL_HELP, SIGNALS, SWEEP_GRIDS, forking_tokens
from engine.models.gguf_cache import describe_source
from workbench import lab_inputs as inputs
from workbench import lab_tables as views
from workbench.figures import lab as figures
from workbench.glossary import page_tooltip
from workbench.resources import sampling_lab, world_or_none
from workbench.run_text import forking_sentence

SHOWN = 8  # samples per prompt shown before an expander, so the summaries stay in view

st.title("Sampling lab", help=page_tooltip("sampling_lab.py"))
st.caption(
    "Pick a model and prompts, move the sliders: samples, signals and rewards update on their own. "
    "The random seed is fixed per setting, so moving a slider back brings back the same samples."
)
inputs.restore_settings("lab_")
world = world_or_none()
lab = sampling_lab()

with st.sidebar:
    st.header("Model and prompts")
    source = inputs.model_picker(world, key="lab_model")
    prompts = inputs.prompt_picker(world, key="lab", real=inputs.is_real(source))
    n_samples, max_new_tokens = inputs.length_sliders(real=inputs.is_real(source))
    seed = int(st.number_input("Random seed", 0, 2**31 - 1, key=inputs.default("lab_seed", 0)))
    reward_source = st.text_input(
        "Reward model (optional)",
        key="lab_rm",
        help="World models use the world's RM and gold judge by default; name an HF sequence classifier or "
        "dir, or `gold` to reward with the gold judge itself (as a PPO run with reward model gold).",
    ).strip()

config = inputs.sampling_settings(max_new_tokens, key="lab")
colour_by = st.segmented_control(
    "Colour tokens by", SIGNALS, key=inputs.default("lab_colour", "entropy"), format_func=views.SIGNAL_LABELS.get
) or "entropy"  # fmt: skip
st.caption(f"**{views.SIGNAL_LABELS[colour_by]}**: {SIGNAL_HELP[colour_by]}.")
inputs.keep_settings("lab_")

if not prompts:
    st.warning("The prompt is empty: pick a prompt or type at least one word.")
if source is None or config is None or not prompts:
    st.stop()

common = {"n_samples": n_samples, "seed": seed, "reward_source": reward_source or None}
pair = inputs.sample_with_reference(lab, source, prompts, config, **common)
if pair is None:
    st.stop()
batch, reference = pair
inputs.real_model_caption(source)

signals = batch.signals()
tabs = st.tabs(
    ["Samples and signals", "Forking tokens", "Rewards", "Sweeps", "Compare checkpoints"],
    key="lab_tab", on_change="rerun",
)  # fmt: skip

if tabs[0].open:
    with tabs[0]:
        left, right = st.columns([3, 2])
        with left:
            scale = views.colour_range(colour_by, [views.real_values(batch, signals, colour_by)])
            st.html(views.legend_html(colour_by, *scale))
            inputs.show_samples(batch, signals, colour_by, scale, shown=SHOWN)
        with right:
            st.markdown("**Signals: mean over sampled tokens**")
            summary = views.summary_frame(batch.summary(), reference.summary())
            st.dataframe(summary, hide_index=True, width="stretch")
            st.caption(
                "T=1 reference: fresh samples at temperature 1, top-p 1, top-k 0, min-p 0 (same seed)."
            )
        st.markdown("**Signals: distribution over sampled tokens** (box: quartiles, dashed line: mean)")
        figure = figures.signal_distributions_figure(batch.signal_values(), reference.signal_values())
        st.plotly_chart(figure, key="lab_dist")

if tabs[1].open:
    with tabs[1]:
        forking = forking_tokens(batch)
        dist = forking["distribution"]
        st.markdown(views.FORKING_INTRO)
        cols = st.columns(4)
        cols[0].metric("near zero (< 0.01 nats)", f"{dist['share_near_zero']:.0%}")
        for col, q in zip(cols[1:], ("p50", "p80", "p90"), strict=True):
            col.metric(f"{q} entropy (nats)", f"{dist[q]:.3f}")
        st.plotly_chart(figures.forking_figure(forking["entropy"], dist), key="lab_forking")
        st.caption(forking_sentence(dist))
        st.markdown("**The highest-entropy positions**: where the samples fork")
        st.dataframe(views.forking_frame(forking["top"]), hide_index=True, width="stretch")

if tabs[2].open:
    with tabs[2]:
        frame = views.rewards_of(batch, reference)
        if note := views.reward_note(batch, real=inputs.is_real(source), scored=not frame.empty):
            st.info(note)
        if not frame.empty:
            st.dataframe(views.reward_summary(frame), hide_index=True)
            st.plotly_chart(figures.reward_figure(frame, "raw"), key="lab_reward_raw")
            if len(batch.prompts) > 1:
                st.caption("Per-prompt normalised: reward - mean of the same prompt's samples + global mean.")
                st.plotly_chart(figures.reward_figure(frame, "normalised"), key="lab_reward_norm")
            else:
                st.caption("Pick several prompts to see the per-prompt normalised distribution.")

if tabs[3].open:
    with tabs[3]:
        st.markdown(views.SWEEP_INTRO)
        parameter = st.segmented_control(
            "Sweep", list(SWEEP_GRIDS), key=inputs.default("lab_sweep", "temperature")
        )
        parameter = parameter or "temperature"
        progress = st.progress(0.0)
        points = lab.sweep(
            source, prompts, config, parameter=parameter, values=SWEEP_GRIDS[parameter],
            progress=lambda f, text: progress.progress(f, text=f"Sweeping {parameter}: {text}"), **common,
        )  # fmt: skip
        progress.empty()
        if parameter == "temperature" and (verdict := views.quality_verdict(points)):
            st.info(verdict)
        st.markdown(f"**Against {parameter}** (dashed line: the current setting)")
        figure = figures.sweep_figure(points, parameter, getattr(config, parameter))
        st.plotly_chart(figure, key="lab_sweep_fig")

if tabs[4].open:
    with tabs[4]:
        st.markdown("The same prompts, settings and seed on a second model, coloured on one shared scale.")
        first_epoch = world.sft_epochs[0] if world is not None else None
        other_source = inputs.model_picker(
            world, key="lab_other", label="Second model", default_epoch=first_epoch
        )
        other = other_source and inputs.sample_with_progress(
            lab, other_source, prompts, config, what="second model", **common
        )
        if other:
            pairs = ((source, batch, signals), (other_source, other, other.signals()))
            scale = views.colour_range(
                colour_by, [views.real_values(b, sig, colour_by) for _, b, sig in pairs]
            )
            table = views.compare_frame(source, batch.summary(), other_source, other.summary())
            st.dataframe(table, hide_index=True)
            st.html(views.legend_html(colour_by, *scale))
            for column, (name, b, sig) in zip(st.columns(2), pairs, strict=True):
                with column:
                    st.markdown(f"**{describe_source(name)}**")
                    st.html(views.batch_tokens_html(b, sig, colour_by, scale, range(len(b.tokens))))
