"""Widgets of the sampling lab that pick a model, prompts and settings, and sampling with progress."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from engine.config import ConfigError, SamplingConfig
from engine.lab import LabBatch, SamplingLab, list_checkpoints
from engine.paths import runs_dir

WORLD, CHECKPOINT, OTHER = "Built-in world SFT epoch", "PPO checkpoint", "Hugging Face name or local path"


def model_picker(world, *, key: str, label: str = "Model", default_epoch: int | None = None) -> str | None:
    """A model source string, or None (with a message) when nothing usable is picked."""
    checkpoints = list_checkpoints(runs_dir())
    kinds = [
        k for k, ok in ((WORLD, world is not None), (CHECKPOINT, bool(checkpoints)), (OTHER, True)) if ok
    ]
    kind = st.radio(label, kinds, key=f"{key}_kind")
    if kind == WORLD:
        epochs = world.sft_epochs
        epoch = st.select_slider(
            "SFT epoch",
            epochs,
            value=default_epoch if default_epoch in epochs else world.default_epoch,
            key=f"{key}_epoch",
        )
        return world.policy_source(epoch)
    if kind == CHECKPOINT:
        labels = [label for label, _ in checkpoints]
        picked = st.selectbox("Checkpoint (runs/<id>/checkpoints/step-N)", labels, key=f"{key}_checkpoint")
        return str(dict(checkpoints)[picked])
    name = st.text_input(
        "Model name or path",
        key=f"{key}_name",
        placeholder="gpt2, Qwen/Qwen2.5-0.5B, ./my-model",
        help="Loaded offline: a Hugging Face name must already be in the local cache.",
    ).strip()
    if not name:
        st.info("Type a Hugging Face model name (from the local cache) or a local directory.")
        return None
    return name


def prompt_picker(world, *, key: str) -> list[str]:
    """Prompts from the world's families and/or typed freely (one per line)."""
    picked: list[str] = []
    if world is not None:
        families = [f.name for f in world.families]
        tags = {f.name: "in SFT" if f.in_sft else "PPO only" for f in world.families}
        family = st.selectbox(
            "Prompt family", families, format_func=lambda f: f"{f} ({tags[f]})", key=f"{key}_family"
        )
        options = [p.text for p in world.prompts("ppo", families=[family])]
        picked = st.multiselect("Prompts", options, default=options[:1], key=f"{key}_prompts")
    typed = st.text_area(
        "Or type prompts, one per line" if world is not None else "Prompts, one per line",
        key=f"{key}_typed",
        height=80,
    )
    return picked + [line for line in typed.splitlines() if line.strip()]


def sampling_settings(max_new_tokens: int, *, key: str) -> SamplingConfig | None:
    """Temperature / top-p / top-k sliders in one row; None (with a message) when invalid."""
    left, middle, right = st.columns(3)
    temperature = left.slider(
        "Temperature",
        0.0,
        3.0,
        1.0,
        0.05,
        key=f"{key}_temperature",
        help="0 = greedy: always the most likely token",
    )
    top_p = middle.slider(
        "Top-p", 0.0, 1.0, 1.0, 0.01, key=f"{key}_top_p", help="in (0, 1]; 1 keeps every token"
    )
    top_k = right.slider("Top-k", 0, 100, 0, 1, key=f"{key}_top_k", help="0 keeps every token")
    try:
        config = SamplingConfig(
            temperature=temperature, top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens
        )
    except ConfigError as exc:
        st.error(f"Invalid setting: {exc}")
        return None
    if config.greedy:
        st.info(
            "Temperature 0 means **greedy decoding**: every sample takes the most likely token, so all samples "
            "are the same, n candidates is 1 and the sampling entropy is 0."
        )
    return config


def sample_with_progress(
    lab: SamplingLab,
    source: str,
    prompts: Sequence[str],
    config: SamplingConfig,
    *,
    n_samples: int,
    seed: int,
    reward_source: str | None,
    what: str,
) -> LabBatch | None:
    """A batch from the lab, with a spinner while a model loads and a progress bar while sampling."""
    try:
        if not lab.is_loaded(source):
            with st.spinner(f"Loading {source} (once per process)..."):
                lab.model(source)
        bar = st.empty()

        def on_step(done: int, total: int) -> None:
            bar.progress(done / total, text=f"Sampling {what}: token {done} of {total}")

        batch = lab.sample(
            source,
            prompts,
            config,
            n_samples=n_samples,
            seed=seed,
            reward_source=reward_source,
            on_step=on_step,
        )
        bar.empty()
        return batch
    except ConfigError as exc:
        st.error(str(exc))
        return None
