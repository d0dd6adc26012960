"""UI helpers of the Runs page: the launch form (built from PPOConfig), the runs table, live curves.

Figures and tables are pure functions of data (testable without Streamlit); the form and the live
fragment are the only parts that touch ``st``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from engine.config import ConfigError
from engine.runs import RunInfo
from engine.ppo.config import PPOConfig, PPOHyperConfig, RunConfig, field_docs

# (metric key, panel title, line name); panels in reading order
CURVES = (
    ("objective/reward", "RM reward (mean)", "RM reward"),
    ("objective/gold", "gold score (mean)", "gold"),
    ("objective/kl", "KL to the SFT policy (sum per response)", "KL"),
    ("objective/entropy", "per-token entropy (nats)", "entropy"),
)
LIVE_STATES = ("running", "starting")

HANDOFF_SFT_EPOCH = "handoff_sft_epoch"
"""Session key the SFT epochs page sets to pre-select the starting epoch of a new run."""


def _help(section: type, name: str) -> str:
    return field_docs(section).get(name, "")


def launch_form(world: Any, key: str = "runs_form") -> tuple[PPOConfig, str] | None:
    """The launch form; on submit returns (validated config, run id or ''), else None.

    Widget keys are ``runs_<setting>``. A ConfigError from validation is shown and None returned.
    """
    d = PPOConfig()
    hp, rn = PPOHyperConfig, RunConfig
    with st.form(key):
        leaves: dict[str, Any] = {}
        if world is not None:
            c1, c2 = st.columns([1, 2])
            epochs = list(world.sft_epochs)
            default = epochs.index(world.default_epoch) if world.default_epoch in epochs else 0
            handoff = st.session_state.pop(HANDOFF_SFT_EPOCH, None)  # set by the SFT epochs page
            if handoff in epochs:
                default = epochs.index(handoff)
                st.session_state.pop("runs_sft_epoch", None)  # let the hand-off win over an earlier choice
            leaves["sft_epoch"] = c1.selectbox(
                "Starting SFT epoch",
                epochs,
                index=default,
                key="runs_sft_epoch",
                help="Earlier epochs keep more entropy (a larger sampling space); later ones fit SFT's prompts better.",
            )
            names = [f.name for f in world.families]
            leaves["families"] = tuple(
                c2.multiselect(
                    "Prompt families",
                    names,
                    default=names,
                    key="runs_families",
                    format_func=lambda n: n + ("" if _in_sft(world, n) else " (PPO only)"),
                    help="Families marked 'PPO only' were never in SFT data: where PPO has room to learn.",
                )
            )
        else:
            c1, c2, c3 = st.columns(3)
            leaves["policy"] = c1.text_input(
                "Policy (path or HF name)", key="runs_policy", help="The built-in world is not built."
            )
            leaves["reward_model"] = c2.text_input("Reward model (path)", key="runs_reward_model")
            leaves["prompts_file"] = c3.text_input("Prompts file (one per line)", key="runs_prompts_file")
        c1, c2, c3, c4 = st.columns(4)
        leaves["kl_coef"] = c1.number_input(
            "KL coefficient",
            min_value=0.0,
            value=d.ppo.kl_coef,
            step=0.01,
            format="%.3f",
            key="runs_kl_coef",
            help=_help(hp, "kl_coef"),
        )
        leaves["learning_rate"] = c2.number_input(
            "Learning rate",
            min_value=1e-7,
            value=d.ppo.learning_rate,
            step=1e-5,
            format="%.1e",
            key="runs_learning_rate",
            help=_help(hp, "learning_rate"),
        )
        leaves["steps"] = int(
            c3.number_input("Steps", 1, 100_000, d.run.steps, key="runs_steps", help=_help(rn, "steps"))
        )
        leaves["samples_per_prompt"] = int(
            c4.number_input(
                "Samples per prompt",
                1,
                1024,
                d.run.samples_per_prompt,
                key="runs_samples_per_prompt",
                help=_help(rn, "samples_per_prompt"),
            )
        )
        c1, c2, c3, c4 = st.columns(4)
        leaves["temperature"] = c1.slider(
            "Temperature", 0.1, 2.0, float(d.sampling.temperature), 0.05, key="runs_temperature"
        )
        leaves["top_p"] = c2.slider("Top-p", 0.05, 1.0, float(d.sampling.top_p), 0.05, key="runs_top_p")
        leaves["top_k"] = int(
            c3.number_input("Top-k (0 = off)", 0, 100_000, d.sampling.top_k, key="runs_top_k")
        )
        run_id = c4.text_input(
            "Run id (optional)", key="runs_run_id", help="Default: ppo-<date>-<time>-<random>"
        )
        with st.expander("More settings"):
            c1, c2, c3, c4 = st.columns(4)
            leaves["prompts_per_step"] = int(
                c1.number_input(
                    "Prompts per step", 1, 4096, d.run.prompts_per_step, key="runs_prompts_per_step"
                )
            )
            leaves["ppo_epochs"] = int(
                c2.number_input("PPO epochs", 1, 64, d.ppo.ppo_epochs, key="runs_ppo_epochs")
            )
            leaves["num_minibatches"] = int(
                c3.number_input("Minibatches", 1, 4096, d.ppo.num_minibatches, key="runs_num_minibatches")
            )
            leaves["max_new_tokens"] = int(
                c4.number_input(
                    "Max new tokens", 1, 4096, d.sampling.max_new_tokens, key="runs_max_new_tokens"
                )
            )
            c1, c2, c3, c4 = st.columns(4)
            leaves["kl_estimator"] = c1.selectbox(
                "KL estimator", ["k1", "k3"], key="runs_kl_estimator", help=_help(hp, "kl_estimator")
            )
            target = c2.number_input(
                "Adaptive KL target (0 = fixed)", min_value=0.0, value=0.0, step=1.0, key="runs_kl_target"
            )
            leaves["kl_target"] = float(target) if target > 0 else None
            leaves["seed"] = int(c3.number_input("Seed", 0, 2**31 - 1, d.run.seed, key="runs_seed"))
            leaves["save_every"] = int(
                c4.number_input("Checkpoint every", 1, 10_000, d.run.save_every, key="runs_save_every")
            )
        submitted = st.form_submit_button("Launch PPO run", type="primary")
    if not submitted:
        return None
    try:
        return d.replace(**leaves), run_id.strip()
    except ConfigError as exc:
        st.error(str(exc))
        return None


def _in_sft(world: Any, name: str) -> bool:
    return next((f.in_sft for f in world.families if f.name == name), True)


def runs_frame(runs: list[RunInfo]) -> pd.DataFrame:
    """The runs table: id, state, progress, created, message."""
    return pd.DataFrame(
        [
            {
                "run": r.run_id,
                "state": r.state,
                "step": f"{r.step}/{r.steps}" if r.steps else str(r.step),
                "created": r.created_at,
                "message": r.message,
            }
            for r in runs
        ],
        columns=["run", "state", "step", "created", "message"],
    )


PANEL_COLOURS = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd")


def moving_average_window(n_steps: int) -> int:
    """Steps averaged by the trend line: about a tenth of the run, 1 to 20."""
    return max(1, min(20, n_steps // 10))


def curves_figure(metrics: pd.DataFrame) -> go.Figure:
    """2 x 2 panels of reward, gold, KL and entropy against step (long-format metrics in)."""
    fig = make_subplots(
        rows=2, cols=2, subplot_titles=[title for _, title, _ in CURVES], horizontal_spacing=0.08
    )
    for i, (key, _, name) in enumerate(CURVES):
        rows = metrics[metrics["key"] == key].sort_values("step") if not metrics.empty else metrics
        row, col = divmod(i, 2)
        if rows.empty:
            fig.add_annotation(
                text="not logged" if key != "objective/gold" else "no judge for this run",
                xref=f"x{i + 1 if i else ''} domain", yref=f"y{i + 1 if i else ''} domain",
                x=0.5, y=0.5, showarrow=False,
            )  # fmt: skip
            continue
        colour = PANEL_COLOURS[i % len(PANEL_COLOURS)]
        # Each step samples other prompts, so single steps are noisy: faint points, and a moving
        # average to read the trend by.
        window = moving_average_window(len(rows))
        fig.add_trace(
            go.Scatter(
                x=rows["step"], y=rows["value"], mode="markers", name=f"{name} (per step)",
                marker=dict(color=colour, size=4, opacity=0.35),
            ),
            row=row + 1, col=col + 1,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=rows["step"], y=rows["value"].rolling(window, min_periods=1).mean(), mode="lines",
                name=f"{name} (mean of last {window} steps)", line=dict(color=colour, width=2.5),
            ),
            row=row + 1, col=col + 1,
        )  # fmt: skip
    fig.update_layout(height=520, showlegend=False, margin=dict(l=40, r=20, t=40, b=30))
    fig.update_xaxes(title_text="step", row=2)
    return fig


def status_caption(status: dict | None, state: str) -> str:
    if not status:
        return f"state: **{state}**"
    steps = status.get("steps")
    progress = f"step {status.get('step', 0)}" + (f" of {steps}" if steps else "")
    text = f"state: **{state}** · {progress} · pid {status.get('pid', '?')}"
    if status.get("message"):
        text += f" · {status['message']}"
    return text
