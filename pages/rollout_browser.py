"""Rollout browser: prompts ranked by a learning-signal measure; click one to see all its samples."""

import streamlit as st

import engine.store as store
from workbench.figures.prompt import prompt_over_training
from workbench.figures.tokens import entropy_legend_html, entropy_scale, is_token_list, sample_tokens_html
from workbench.glossary import page_tooltip
from workbench.navigation import apply_query_param, entropy_link, int_param, query_param, set_link
from workbench.sections.labelling import labelling_section
from workbench.store_access import cached, pick_runs
from workbench.widgets import clicked_row, row_table, sample_filters

PROMPT_COLUMNS = ["prompt_id", "prompt_family", "prompt", "score", "reward_var", "gold_var", "entropy_drop",
                  "reward_mean", "gold_mean", "entropy_mean", "n_samples", "n_steps"]  # fmt: skip
SAMPLE_COLUMNS = [
    "sample_idx",
    "reward",
    "reward_norm",
    "gold",
    "kl",
    "length",
    "has_eos",
    "mean_entropy",
    "response",
]

st.title("Rollout browser", help=page_tooltip("rollout_browser.py"))
st.caption(
    "Prompts whose samples differ most come first: that is where PPO gets a learning signal. "
    "**Click a row** to see all its samples across steps, tokens coloured by per-token entropy."
)

run_dirs = pick_runs("browser_run")
if run_dirs:
    run_id = st.session_state["browser_run"]
    entropy_link(run_id)
    steps = cached(store.logged_steps, run_dirs)
    summary = cached(store.step_summary, run_dirs)  # per step: reward and length ranges, gold
    has_gold = bool(summary["gold_mean"].notna().any())
    rankings = [r for r in store.RANKINGS if has_gold or r != "gold_var"]
    apply_query_param("ranking", "browser_ranking", rankings)
    ranking = st.radio(
        "Rank prompts by",
        rankings,
        format_func=store.RANKING_LABELS.get,
        horizontal=True,
        key="browser_ranking",
    )
    set_link("ranking", ranking, "browser_ranking")
    st.caption(
        f"Ranking on: **{store.RANKINGS[ranking][1]}**."
        + ("" if has_gold else " No gold (judge) scores in this run, so gold variance is not offered.")
    )
    filters = sample_filters(cached(store.families, run_dirs), steps, summary)
    prompts = cached(store.rank_prompts, run_dirs, ranking=ranking, limit=200, **filters)
    if prompts.empty:
        st.info("No prompt matches these filters.")
        st.stop()
    event = row_table(
        prompts[[c for c in PROMPT_COLUMNS if c != ranking]],  # "score" is the ranking's column
        "browser_table",
        height=240,
        column_config={"score": st.column_config.NumberColumn(store.RANKING_LABELS[ranking], format="%.3g")},
    )
    # The open prompt: a click on the table, else a deep link (?prompt=), else the one already open
    # (it survives reruns and filter changes), else the top-ranked prompt.
    clicked = clicked_row(event, prompts, "browser_table")
    if clicked is not None:
        st.session_state["browser_prompt"] = (run_id, clicked["prompt_id"])
    elif (linked := query_param("prompt")) and st.session_state.get("_linked_browser_prompt") != linked:
        st.session_state["browser_prompt"] = (run_id, linked)
    if st.session_state.get("browser_prompt", (None,))[0] != run_id:
        st.session_state["browser_prompt"] = (run_id, prompts["prompt_id"].iloc[0])
    prompt_id = st.session_state["browser_prompt"][1]
    set_link("run", run_id, "browser_run")
    set_link("prompt", prompt_id, "browser_prompt")

    samples = cached(store.prompt_drilldown, run_dirs, prompt_id=prompt_id, run_id=run_id)
    if samples.empty:
        st.info(f"Prompt `{prompt_id}` has no samples in run {run_id}: click a row of the table.")
        st.stop()
    per_step = cached(store.prompt_step_table, run_dirs, prompt_id=prompt_id, run_id=run_id)
    st.markdown(f"**Prompt `{prompt_id}`** ({samples['prompt_family'].iloc[0]}): {samples['prompt'].iloc[0]}")
    st.plotly_chart(prompt_over_training(samples, per_step), key="browser_prompt_plot")

    prompt_steps = per_step["step"].tolist()
    apply_query_param("step", "browser_step", prompt_steps, int)
    if st.session_state.get("browser_step") not in prompt_steps:
        st.session_state["browser_step"] = prompt_steps[-1]
    step = (
        st.select_slider("Step", prompt_steps, key="browser_step")
        if len(prompt_steps) > 1
        else prompt_steps[0]
    )
    set_link("step", step, "browser_step")
    at_step = samples[samples["step"] == step]
    chosen = row_table(
        at_step[SAMPLE_COLUMNS],
        "browser_samples",
        column_config={"response": st.column_config.TextColumn(width="large")},
    )
    rows = chosen.selection.rows if chosen is not None else []
    token, sample = int_param("token"), int_param("sample")
    highlight = (sample, token) if token is not None and sample is not None else None
    if rows:  # the clicked sample goes into the URL, so a reload or a shared link shows it again
        sample = int(at_step["sample_idx"].iloc[rows[0]])
        set_link("sample", sample, "browser_sample")
    elif st.session_state.pop("_browser_sample_clicked", False):  # clicked again: all samples
        st.query_params.pop("sample", None)
        sample = None
    st.session_state["_browser_sample_clicked"] = bool(rows)
    one = highlight is None and sample is not None and (at_step["sample_idx"] == sample).any()
    shown = at_step[at_step["sample_idx"] == sample] if one else at_step
    high = entropy_scale([samples])
    if one:
        st.caption(f"Showing sample {sample} (the one clicked, or the link's); click it again to show all.")
    st.html(entropy_legend_html(0.0, high) + sample_tokens_html(shown, high, highlight=highlight))
    if highlight is not None:
        st.caption(f"Ringed: token {highlight[1]} of sample {highlight[0]} (from the entropy dynamics page).")
    if not at_step["entropy"].map(is_token_list).any():
        st.info(
            "No per-token entropy logged for these samples (an imported run?): tokens are shown "
            f"uncoloured. Compute it with `python -m engine import signals {run_id} --model PATH_OR_NAME`."
        )
    if len(prompt_steps) > 1:
        st.caption("Move the step slider to watch the same prompt's samples drift as PPO trains.")
    labelling_section(run_dirs[0], at_step, high)
