"""Widgets of the sampling lab that pick a model, prompts and settings, and sampling with progress.

The lab's settings survive leaving the page: Streamlit drops a widget's state once a run does not draw
it, so :func:`keep_settings` copies them aside and :func:`restore_settings` puts them back. Widgets take
their defaults from session state (:func:`default`), never from ``value=``, so a restored value wins.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import streamlit as st

from engine.config import ConfigError, SamplingConfig
from engine.lab import (
    LabBatch,
    SamplingLab,
    checkpoint_choices,
    real_tasks,
    reference_config,
)
from engine.models.gguf_cache import GGUF_SOURCES, describe_source, named_source, needs_conversion
from engine.paths import runs_dir
from engine.ppo.config import field_docs
from workbench.lab_tables import batch_tokens_html
from workbench.widgets import show_error

WORLD, CHECKPOINT, OTHER = "Built-in world SFT epoch", "PPO checkpoint", "Hugging Face name or local path"
REAL = "Real chat model"
_KEPT = "_kept_settings"
PROGRESS_AFTER_S = 0.5  # a sampling that takes longer than this shows a progress bar


def restore_settings(prefix: str) -> None:
    """Put back the widget values of keys starting with ``prefix`` kept when the page last ran."""
    for key, value in st.session_state.get(_KEPT, {}).items():
        if key.startswith(prefix) and key not in st.session_state:
            st.session_state[key] = value


def keep_settings(prefix: str) -> None:
    """Keep the current values of the widgets whose keys start with ``prefix`` (call at the end of a run)."""
    kept = st.session_state.setdefault(_KEPT, {})
    kept.update({k: v for k, v in st.session_state.items() if isinstance(k, str) and k.startswith(prefix)})


def default(key: str, value) -> str:
    """Give widget ``key`` its default through session state (unless it holds a value); returns the key."""
    st.session_state.setdefault(key, value)
    return key


def model_picker(world, *, key: str, label: str = "Model", default_epoch: int | None = None) -> str | None:
    """A model source string, or None (with a message) when nothing usable is picked."""
    checkpoints = checkpoint_choices(runs_dir())
    kinds = [
        k
        for k, ok in (
            (WORLD, world is not None),
            (CHECKPOINT, bool(checkpoints)),
            (OTHER, True),
            (REAL, True),
        )
        if ok
    ]
    kind = st.radio(label, kinds, key=f"{key}_kind")
    if kind == REAL:
        name = st.selectbox("Model", list(GGUF_SOURCES), key=f"{key}_real", format_func=describe_source)
        st.caption(f"`{name}`: {describe_source(name)}, not the original float weights.")
        return name
    if kind == WORLD:
        epochs = world.sft_epochs
        start = default_epoch if default_epoch in epochs else world.default_epoch
        if st.session_state.get(f"{key}_epoch") not in epochs:
            st.session_state[f"{key}_epoch"] = start
        epoch = st.select_slider("SFT epoch", epochs, key=f"{key}_epoch")
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


def is_real(source: str | None) -> bool:
    """Whether ``source`` is a real model of the registry (``smollm2``): the real world's tasks go with it."""
    return source is not None and named_source(source) is not None


# (samples per prompt, max new tokens) by default. A real model's decode on CPU streams all its weights
# once per token step, whatever the batch (SmolLM2: ~0.1 s per step at 8 or 16 rows, one thread), so a
# notch costs about its token steps: its own defaults keep one to a few seconds. Its 16 new tokens are
# what PPO samples on it (the smollm2-cpu preset, the demo-smollm2 run): the lab shows the responses,
# cut where they are cut, that the checker and the RM score in training; 8 token steps fewer than 24.
LENGTH_DEFAULTS = (16, 32)
REAL_LENGTH_DEFAULTS = (8, 16)


def length_sliders(*, real: bool) -> tuple[int, int]:
    """Samples per prompt and max new tokens; a real model's sliders have their own keys and smaller
    defaults (:data:`REAL_LENGTH_DEFAULTS`), said under them."""
    suffix, (samples, tokens) = ("_real", REAL_LENGTH_DEFAULTS) if real else ("", LENGTH_DEFAULTS)
    n_samples = st.slider("Samples per prompt", 4, 64, step=4, key=default(f"lab_n{suffix}", samples))
    max_new_tokens = st.slider(
        "Max new tokens", 4, 64, step=4, key=default(f"lab_max_new_tokens{suffix}", tokens)
    )
    if real:
        st.caption(
            f"A real model samples on the CPU here: {samples} samples x {tokens} new tokens by default (as PPO "
            "samples it), so that a slider notch re-samples in a few seconds; raise them for steadier means "
            "or longer answers."
        )
    return n_samples, max_new_tokens


def real_model_caption(source: str) -> None:
    """Which release a real model is, and that the chat template is applied (nothing for other models)."""
    if is_real(source):
        st.caption(
            f"Model: **{describe_source(source)}**. Each prompt is read as a user turn of its chat template."
        )


def prompt_picker(world, *, key: str, real: bool = False) -> list[str]:
    """Prompts from the world's families (the real world's tasks for a ``real`` model) and/or typed
    freely (one per line)."""
    picked: list[str] = []
    if real:
        tasks = real_tasks()
        families = sorted({t.family for t in tasks.values()})
        family = st.selectbox("Task family (real world, with a checker)", families, key=f"{key}_real_family")
        options = [prompt for prompt, t in tasks.items() if t.family == family]
        current = st.session_state.get(f"{key}_real_prompts")
        if current is None or any(p not in options for p in current):
            st.session_state[f"{key}_real_prompts"] = options[:1]
        picked = st.multiselect("Prompts", options, key=f"{key}_real_prompts")
    elif world is not None:
        families = [f.name for f in world.families]
        tags = {f.name: "in SFT" if f.in_sft else "PPO only" for f in world.families}
        family = st.selectbox(
            "Prompt family", families, format_func=lambda f: f"{f} ({tags[f]})", key=f"{key}_family"
        )
        options = [p.text for p in world.prompts("ppo", families=[family])]
        current = st.session_state.get(f"{key}_prompts")
        if current is None or any(p not in options for p in current):  # a new family: its first prompt
            st.session_state[f"{key}_prompts"] = [p for p in current or [] if p in options] or options[:1]
        picked = st.multiselect("Prompts", options, key=f"{key}_prompts")
    typed = st.text_area(
        "Or type prompts, one per line" if world is not None or real else "Prompts, one per line",
        key=f"{key}_typed",
        height=80,
    )
    return picked + [line for line in typed.splitlines() if line.strip()]


def sampling_settings(max_new_tokens: int, *, key: str) -> SamplingConfig | None:
    """Temperature / top-p / top-k / min-p sliders in one row; None (with a message) when invalid."""
    docs = field_docs(SamplingConfig)
    d = SamplingConfig()
    c1, c2, c3, c4 = st.columns(4)
    temperature = c1.slider(
        "Temperature",
        0.0,
        3.0,
        step=0.05,
        key=default(f"{key}_temperature", d.temperature),
        help=docs["temperature"],
    )
    top_p = c2.slider("Top-p", 0.0, 1.0, step=0.01, key=default(f"{key}_top_p", d.top_p), help=docs["top_p"])
    top_k = c3.slider("Top-k", 0, 100, step=1, key=default(f"{key}_top_k", d.top_k), help=docs["top_k"])
    min_p = c4.slider("Min-p", 0.0, 0.95, step=0.01, key=default(f"{key}_min_p", d.min_p), help=docs["min_p"])
    try:
        config = SamplingConfig(
            temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p, max_new_tokens=max_new_tokens
        )  # fmt: skip
    except ConfigError as exc:
        st.error(f"Invalid setting: {exc}")
        return None
    if config.greedy:
        st.info(
            "Temperature 0 means **greedy decoding**: every sample takes the most likely token, so all samples "
            "are the same, n candidates is 1 and the sampling entropy is 0."
        )
    return config


def show_samples(
    batch: LabBatch, signals: dict, colour_by: str, scale: tuple[float, float], *, shown: int
) -> None:
    """Each prompt's samples as coloured token rows: the first ``shown``, the rest in an expander."""
    for i, prompt in enumerate(batch.prompts):
        st.markdown(f"**Prompt:** `{prompt}`")
        rows = [r for r, p in enumerate(batch.prompt_index) if p == i]
        st.html(batch_tokens_html(batch, signals, colour_by, scale, rows[:shown]))
        if len(rows) > shown:
            with st.expander(f"{len(rows) - shown} more samples of this prompt"):
                st.html(batch_tokens_html(batch, signals, colour_by, scale, rows[shown:]))


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
            if needs_conversion(source):
                message = (
                    f"Converting {describe_source(source)} once into the local model cache "
                    "(converting once, ~40 s on 2 CPU cores; later loads take seconds)..."
                )
            else:
                message = f"Loading {describe_source(source)} (once per process)..."
            with st.spinner(message, show_time=True):
                lab.model(source)
        bar = st.empty()
        start = time.perf_counter()

        def on_step(done: int, total: int) -> None:
            # Only a slow sampling gets a bar: on a small model each update (a message to the browser
            # per token) would cost more than the sampling itself.
            if time.perf_counter() - start > PROGRESS_AFTER_S:
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
    except OSError as exc:  # a model path the OS refuses to look at (a name too long, no permission)
        show_error(exc, "Could not load the model")
        return None


def sample_with_reference(
    lab: SamplingLab, source: str, prompts: Sequence[str], config: SamplingConfig, **common
) -> tuple[LabBatch, LabBatch] | None:
    """(the batch at ``config``, its T=1 reference), or None after the error; a model that fails to
    load is told once, not again for the reference."""
    batch = sample_with_progress(lab, source, prompts, config, what="these settings", **common)
    if batch is None:
        return None
    reference = sample_with_progress(
        lab, source, prompts, reference_config(config), what="T=1 reference", **common
    )
    return None if reference is None else (batch, reference)
