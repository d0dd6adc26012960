"""The Runs page's launch form, generated from PPOConfig, and its warnings about settings.

The form has one widget per PPOConfig leaf, chosen by the field's type (checkbox, select for a
``Literal``, number, text), with the field's docstring as its help, so a new config field appears in
the form with no change here. The algorithm comes first, above the form (a widget inside a form does
not rerun the page): the form then shows only the fields that algorithm reads
(:func:`engine.ppo.config.setting_applies`; the others keep their defaults). ``BASIC`` names the few
fields shown up front; the rest sit in the "Advanced settings" expander, by section. The hints and
warnings are pure functions of the config.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import streamlit as st

from engine.config import ConfigError
from engine.ppo.config import SECTION_TYPES, PPOConfig, field_choices, field_docs, setting_applies
from engine.runs import check_run_id
from engine.runs.layout import RUN_ID_MAX

HANDOFF_SFT_EPOCH = "handoff_sft_epoch"
"""Session key the SFT epochs page sets to pre-select the starting epoch of a new run."""

BASIC = (
    "families", "sft_epoch", "policy", "reward_model", "prompts_file", "steps", "prompts_per_step",
    "samples_per_prompt", "reward_norm", "kl_coef", "scale_rewards", "kl_loss_coef", "learning_rate",
    "temperature", "max_new_tokens",
)  # fmt: skip
"""The fields shown up front in the form, in this order, those the algorithm reads; every other field
is in the advanced expander (the algorithm itself is above the form)."""
WORLD_ONLY = ("sft_epoch", "families")  # meaningful only on the built-in world
BASIC_WITHOUT_WORLD = ("policy", "reward_model", "prompts_file")  # advanced when the world is built
LABELS = {
    "kl_coef": "KL coefficient", "kl_estimator": "KL estimator", "kl_target": "Adaptive KL target",
    "kl_horizon": "Adaptive KL horizon", "lam": "GAE lambda", "gamma": "GAE gamma", "top_p": "Top-p",
    "top_k": "Top-k", "min_p": "Min-p", "lora_r": "LoRA rank", "lora_alpha": "LoRA alpha",
    "vf_coef": "Value loss weight", "ppo_epochs": "PPO epochs", "num_minibatches": "Minibatches",
    "reward_norm": "Reward normalisation", "sft_epoch": "Starting SFT epoch", "families": "Prompt families",
    "policy": "Policy (path or HF name)", "reward_model": "Reward model (path, or gold)",
    "prompts_file": "Prompts file (one per line)", "max_new_tokens": "Max new tokens",
    "kl_loss_coef": "KL loss coefficient",
}  # fmt: skip
COLUMNS = 4


ACRONYMS = {"kl": "KL", "eos": "EOS", "cov": "Cov", "lora": "LoRA", "sft": "SFT", "rm": "RM"}
WIDE = ("families",)  # fields that get a row of their own


def label_of(name: str) -> str:
    """The form label of a field: curated, else its words with acronyms kept ("kl_cov_share" -> "KL Cov share")."""
    if name in LABELS:
        return LABELS[name]
    words = [ACRONYMS.get(w, w) for w in name.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


def _leaves() -> list[tuple[str, type, dataclasses.Field, Any]]:
    """(section, section class, field, default) of every PPOConfig leaf, in section order."""
    defaults = PPOConfig().to_dict()
    return [
        (section, cls, f, defaults[section][f.name])
        for section, cls in SECTION_TYPES.items()
        for f in dataclasses.fields(cls)
    ]


def _float_step(default: float) -> float:
    """A number input's step of about a tenth of the default's magnitude (0.1 for 1.0, 1e-5 for 3e-4)."""
    if not default:
        return 0.01
    return 10.0 ** (math.floor(math.log10(abs(default))) - (1 if abs(default) >= 1 else 0))


def field_widget(container, cls: type, f: dataclasses.Field, default: Any, world: Any) -> Any:
    """One widget for a PPOConfig field, chosen by its type; returns the value in the field's type."""
    name, kind, key = f.name, str(f.type), f"runs_{f.name}"
    doc = field_docs(cls).get(name, "")
    optional = kind.endswith("| None")
    help_text = f"`{name}`: {doc}" + (" Empty = None (off)." if optional and name != "sft_epoch" else "")
    label = label_of(name)
    if world is not None and name == "sft_epoch":
        epochs = list(world.sft_epochs)
        start = world.default_epoch if world.default_epoch in epochs else epochs[0]
        handoff = st.session_state.pop(HANDOFF_SFT_EPOCH, None)  # set by the SFT epochs page
        if handoff in epochs:
            start = handoff
            st.session_state.pop(key, None)  # let the hand-off win over an earlier choice
        return container.selectbox(label, epochs, index=epochs.index(start), key=key, help=help_text)
    if world is not None and name == "families":
        names = [fam.name for fam in world.families]
        ppo_only = {fam.name for fam in world.families if not fam.in_sft}
        picked = container.multiselect(
            label, names, default=names, key=key, help=help_text + " 'PPO only': never in SFT data.",
            format_func=lambda n: n + (" (PPO only)" if n in ppo_only else ""),
        )  # fmt: skip
        return tuple(picked)
    if kind == "bool":
        return container.checkbox(label, value=default, key=key, help=help_text)
    if name in field_choices(cls):
        choices = list(field_choices(cls)[name])
        return container.selectbox(label, choices, index=choices.index(default), key=key, help=help_text)
    if kind.startswith("tuple"):
        text = container.text_input(label + " (comma-separated)", ", ".join(default), key=key, help=help_text)
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if kind == "str":
        return container.text_input(label, default, key=key, help=help_text).strip()
    if kind.startswith(("int", "float")):
        # value=None makes the field clearable (with a number it silently refills the last value), so an
        # emptied field reaches the form as None: off for an optional field, an error for any other.
        if key not in st.session_state:
            st.session_state[key] = default
        if kind.startswith("int"):
            value = container.number_input(label, value=None, step=1, key=key, help=help_text)
            return None if value is None else int(value)
        step = _float_step(default if default is not None else 0.0)
        fmt = "%.1e" if default is not None and 0 < abs(default) < 1e-3 else "%g"
        value = container.number_input(label, value=None, step=step, format=fmt, key=key, help=help_text)
        return None if value is None else float(value)
    raise AssertionError(f"no form widget for {name}: {kind}")  # a new kind of field: add it above


def _grid(items: list, widget) -> dict[str, Any]:
    """Widgets in rows of ``COLUMNS``; a ``WIDE`` field takes a row of its own."""
    values = {}
    rows: list[list] = [[]]
    for item in items:
        if item[2].name in WIDE:
            rows += [[item], []]
        elif len(rows[-1]) == COLUMNS:
            rows.append([item])
        else:
            rows[-1].append(item)
    for row in (r for r in rows if r):
        columns = [st.container()] if row[0][2].name in WIDE else st.columns(COLUMNS)
        for column, (_, cls, f, default) in zip(columns, row, strict=False):
            values[f.name] = widget(column, cls, f, default)
    return values


def launch_form(world: Any, key: str = "runs_form") -> tuple[PPOConfig, str, list[str]] | None:
    """The launch form; on submit returns (validated config, run id or '', warnings), else None.

    Widget keys are ``runs_<setting>``. A ConfigError from validation is shown and None returned.
    """
    leaves = {f.name: (s, cls, f, d) for s, cls, f, d in _leaves()}

    def widget(column, cls, f, default):
        return field_widget(column, cls, f, default, world)

    # Outside the form, so that choosing it reruns the page and the form shows that algorithm's fields.
    algorithm = widget(st, *leaves["algorithm"][1:])
    skipped = BASIC_WITHOUT_WORLD if world is not None else WORLD_ONLY
    applies = {name for name in leaves if name != "algorithm" and setting_applies(name, algorithm)}
    basic = [name for name in BASIC if name not in skipped and name in applies]
    shown = [leaves[name] for name in basic]
    hidden = [
        leaf
        for name, leaf in leaves.items()
        if name in applies and name not in basic and (world or name not in WORLD_ONLY)
    ]

    optional = {name: str(f.type).endswith("| None") for name, (_, _, f, _) in leaves.items()}

    with st.form(key):
        values = {"algorithm": algorithm, **_grid(shown, widget)}
        run_id = st.text_input(
            "Run id (optional)",
            key="runs_run_id",
            help=f"Letters, digits, '-', '_' and '.' (not first), at most {RUN_ID_MAX}. "
            "Default: ppo-<date>-<time>-<random>",
        )
        with st.expander("Advanced settings (every other setting of this algorithm)"):
            for section in SECTION_TYPES:
                items = [leaf for leaf in hidden if leaf[0] == section]
                if items:
                    doc = (SECTION_TYPES[section].__doc__ or "").strip().splitlines()[0]
                    st.markdown(f"**{section}** · {doc}")
                    values.update(_grid(items, widget))
        # "run", not "PPO run": the algorithm (PPO, GRPO, RLOO) is picked above the form
        submitted = st.form_submit_button("Launch run", type="primary")
    if not submitted:
        return None
    emptied = [label_of(name) for name, value in values.items() if value is None and not optional[name]]
    if emptied:
        st.error(f"Empty: {', '.join(emptied)}. Give a number (the field's help says what it does).")
        return None
    try:
        config = PPOConfig().replace(**values)
        if run_id.strip():
            check_run_id(run_id.strip())
        with st.spinner("Checking the models and prompts..."):
            check_inputs(config)
    except ConfigError as exc:
        st.error(f"{exc}. {fix_hint(str(exc))}".strip())
        return None
    return config, run_id.strip(), run_warnings(config)


def check_inputs(config: PPOConfig) -> None:
    """The engine's own check of a config's sources, prompts and context (``engine.ppo.build``), so the
    form refuses at once what the job would refuse after starting. Imported on submit: the module
    loads torch, which the Runs page does not need until a run is launched."""
    from engine.ppo.build import check_inputs as engine_check

    engine_check(config)


def fix_hint(message: str) -> str:
    """What to change in the form for a validation message that names a setting."""
    if "reward_norm='prompt' needs samples_per_prompt" in message:
        return (
            "Per-prompt normalisation compares the samples of one prompt with each other: with one sample "
            "there is nothing to compare. Set 'Samples per prompt' to 2 or more, or 'Reward normalisation' "
            "to batch or none."
        )
    if "not divisible by num_minibatches" in message:
        return "Change 'Prompts per step', 'Samples per prompt' or 'Minibatches' (advanced) so they divide."
    return ""


def run_warnings(config: PPOConfig) -> list[str]:
    """Settings that make a run not worth looking at, each with the reason (the run still starts)."""
    s, r = config.sampling, config.run
    out = []
    if s.max_new_tokens < 4:
        out.append(
            f"{s.max_new_tokens} new token(s) per response: too short for any answer of the world "
            "(its answers take 5 to 12 tokens), so every response scores alike and PPO has nothing to learn."
        )
    if r.prompts_per_step < 2:
        out.append(
            "1 prompt per step: each update follows the one prompt that was drawn, so the curves jump with "
            "the prompt, not with what PPO learned."
        )
    if r.batch_size < 8:
        out.append(
            f"{r.batch_size} responses per step: too few to estimate advantages; the curves are noise."
        )
    if r.steps < 5:
        out.append(f"{r.steps} step(s): too short for a trend (the curves average about a tenth of the run).")
    if s.temperature > 1.5:
        out.append(
            f"temperature {s.temperature:g}: above about 1.5 samples fall apart (see the Sampling lab)."
        )
    return out
