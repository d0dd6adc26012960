"""Rollout browser: prompts ranked by within-prompt reward variance, then every sample of one prompt."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from workbench.store_views import cached, entropy_legend_html, entropy_scale, pick_runs, sample_tokens_html

st.title("Rollout browser")
st.caption(
    "Prompts whose samples' rewards vary most come first: that is where PPO gets a learning signal. "
    "Pick one to see all its samples across steps, tokens coloured by per-token entropy."
)

run_dirs = pick_runs("browser_run")
if run_dirs:
    steps = cached("logged_steps", run_dirs)
    summary = cached("step_summary", run_dirs)
    with st.expander("Filters", expanded=False):
        c1, c2, c3 = st.columns(3)
        family = c1.selectbox("Prompt family", ["(all)", *cached("families", run_dirs)], key="browser_family")
        step_range = (
            c2.select_slider("Steps", steps, value=(steps[0], steps[-1]), key="browser_steps")
            if len(steps) > 1
            else (steps[0], steps[0])
        )
        eos = c3.selectbox("Ends with EOS", ["any", "yes", "no"], key="browser_eos")
        lo, hi = float(summary["reward_min"].min()), float(summary["reward_max"].max())
        reward_range = c1.slider(
            "Reward", lo, max(hi, lo + 1e-6), (lo, max(hi, lo + 1e-6)), key="browser_reward"
        )
        max_len = int(summary["length_max"].max()) if summary["length_max"].notna().any() else 0
        length_range = c2.slider("Length", 0, max(max_len, 1), (0, max(max_len, 1)), key="browser_length")
        search = c3.text_input("Search prompt / response", key="browser_search")
    prompts = cached(
        "top_variance_prompts",
        run_dirs,
        steps=tuple(step_range),
        family=None if family == "(all)" else family,
        reward_range=tuple(reward_range) if reward_range != (lo, hi) else None,
        length_range=tuple(length_range) if max_len and length_range != (0, max_len) else None,
        has_eos={"any": None, "yes": True, "no": False}[eos],
        search=search or None,
        limit=200,
    )
    if prompts.empty:
        st.info("No prompt matches these filters.")
    else:
        st.dataframe(
            prompts[
                [
                    "prompt_id",
                    "prompt_family",
                    "prompt",
                    "reward_var",
                    "reward_mean",
                    "gold_mean",
                    "entropy_mean",
                    "n_samples",
                    "n_steps",
                ]
            ],
            hide_index=True,
            height=240,
            key="browser_table",
        )
        labels = {
            pid: f"{pid} · var {var:.3g} · {str(prompt)[:60]}"
            for pid, var, prompt in prompts[["prompt_id", "reward_var", "prompt"]].itertuples(index=False)
        }
        prompt_id = st.selectbox("Prompt", list(labels), format_func=labels.get, key="browser_prompt")
        samples = cached(
            "prompt_drilldown",
            run_dirs,
            prompt_id=prompt_id,
            run_id=prompts.loc[prompts.prompt_id == prompt_id, "run_id"].iloc[0],
        )
        st.markdown(f"**Prompt** ({samples['prompt_family'].iloc[0]}): {samples['prompt'].iloc[0]}")

        per_step = (
            samples.groupby("step")
            .agg(
                reward=("reward", "mean"),
                reward_sd=("reward", "std"),
                gold=("gold", "mean"),
                entropy=("mean_entropy", "mean"),
            )
            .reset_index()
        )
        fig = go.Figure()
        fig.add_trace(
            go.Scatter(
                x=samples["step"],
                y=samples["reward"],
                mode="markers",
                name="sample reward",
                marker={"color": "#1f77b4", "opacity": 0.5},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=per_step["step"],
                y=per_step["reward"],
                mode="lines",
                name="mean reward",
                line={"color": "#1f77b4"},
            )
        )
        if per_step["gold"].notna().any():
            fig.add_trace(
                go.Scatter(
                    x=per_step["step"],
                    y=per_step["gold"],
                    mode="lines",
                    name="mean gold",
                    line={"color": "#2ca02c", "dash": "dash"},
                )
            )
        fig.add_trace(
            go.Scatter(
                x=per_step["step"],
                y=per_step["entropy"],
                mode="lines",
                name="mean entropy (right)",
                yaxis="y2",
                line={"color": "#d62728", "dash": "dot"},
            )
        )
        fig.update_layout(
            title="This prompt over training",
            xaxis_title="step",
            yaxis_title="reward",
            height=320,
            yaxis2={"title": "entropy (nats)", "overlaying": "y", "side": "right", "showgrid": False},
            margin={"l": 10, "r": 10, "t": 50, "b": 40},
            legend={"orientation": "h", "y": -0.25},
        )
        st.plotly_chart(fig, key="browser_prompt_plot")

        prompt_steps = sorted(samples["step"].unique())
        step = (
            st.select_slider("Step", prompt_steps, value=prompt_steps[-1], key="browser_step")
            if len(prompt_steps) > 1
            else prompt_steps[0]
        )
        at_step = samples[samples["step"] == step]
        high = entropy_scale([samples])
        st.dataframe(
            at_step[
                ["sample_idx", "reward", "reward_norm", "gold", "kl", "length", "has_eos", "mean_entropy"]
            ],
            hide_index=True,
            key="browser_samples",
        )
        st.html(entropy_legend_html(0.0, high) + sample_tokens_html(at_step, high))
        if not at_step["entropy"].map(lambda v: isinstance(v, list | tuple | np.ndarray)).any():
            st.info(
                "No per-token entropy logged for these samples (an imported run?): tokens are shown "
                f"uncoloured. Compute it with `python -m engine import signals {at_step['run_id'].iloc[0]} "
                "--model PATH_OR_NAME`."
            )
        if pd.notna(at_step["reward"]).any() and len(prompt_steps) > 1:
            st.caption("Move the step slider to watch the same prompt's samples drift as PPO trains.")
