"""Entropy dynamics of one run: what drives the entropy change, which tokens, and how much is left."""

import pandas as pd
import streamlit as st

from engine.analysis.entropy_dynamics import entropy_report
from engine.config import ConfigError
from workbench.figures.entropy import cov_vs_change_figure, forking_figure, gold_kl_figure, law_figure
from workbench.glossary import page_tooltip
from workbench.navigation import PAGES_DIR
from workbench.run_text import (
    correlation_sentence,
    cov_share_sentence,
    forking_sentence,
    gold_kl_sentence,
    room_left,
)
from workbench.store_access import cached, pick_runs
from workbench.widgets import clicked_row, row_table, show_error

st.title("Entropy dynamics", help=page_tooltip("entropy_dynamics.py"))
st.markdown(
    "PPO lowers entropy where it raises the probability of tokens with a positive advantage. Per step, "
    "the **covariance of each token's log-probability and its advantage** predicts the entropy change "
    "(Cui et al. 2025: a positive covariance lowers entropy). The same paper fits reward against "
    "entropy, `R = -a·exp(H) + b`, whose value at zero entropy is the run's **ceiling**: once entropy is "
    "spent, so is the room to learn. Every fitted number below carries a 90 % bootstrap interval over "
    "steps, and a fit on fewer than 10 steps gives none."
)

run_dirs = pick_runs("entropy_run")
if run_dirs:
    run_id = st.session_state["entropy_run"]
    try:
        report = cached(entropy_report, run_dirs[0])
    except ConfigError as exc:
        show_error(exc, "This run cannot be analysed")
        st.stop()
    per = pd.DataFrame(report["per_step"])

    st.subheader("1. Covariance next to the measured entropy change")
    if report["cov_reason"]:
        st.info(
            f"Covariance missing: {report['cov_reason']}. Runs trained before the per-token advantage was "
            "stored (or imported runs) lack it; a new PPO run from the **Runs** page logs it."
        )
    else:
        st.plotly_chart(cov_vs_change_figure(per, report["cov_entropy_corr"]), key="entropy_cov")
        source = {
            "measured": "measured before/after each update",
            "next_step": "the next step's entropy minus this one's",
        }
        st.caption(
            f"Entropy change: {source.get(report['entropy_change_source'], 'n/a')}. {correlation_sentence(report)}"
        )

    top = report["top_cov_tokens"] or {}
    st.subheader(f"2. Tokens with the largest covariance terms (step {top.get('step', '-')})")
    if top.get("tokens"):
        tokens = pd.DataFrame(top["tokens"])
        share = cov_share_sentence(top)
        st.caption(f"{share or top.get('reason') or ''} **Click one** to open it.")
        event = row_table(
            tokens[["token", "prompt_id", "sample_idx", "position", "logprob", "advantage", "term", "share"]],
            "entropy_tokens",
            height=240,
        )
        clicked = clicked_row(event, tokens, "entropy_tokens")
        if clicked is not None:
            params = {"run": run_id, "prompt": clicked["prompt_id"], "step": str(top["step"])}
            params |= {"sample": str(int(clicked["sample_idx"])), "token": str(int(clicked["position"]))}
            st.switch_page(str(PAGES_DIR / "rollout_browser.py"), query_params=params)
    else:
        st.info(f"No token list: {top.get('reason') or report['cov_reason']}.")

    st.subheader("3. Reward against entropy, and the ceiling")
    law = report["law"]
    if law.get("reason"):
        st.info(f"The law cannot be fitted: {law['reason']}.")
    else:
        st.plotly_chart(law_figure(per, law, "mean_reward", "RM reward"), key="entropy_law")
        st.markdown(room_left(report))

    st.subheader("4. Forking tokens")
    forking = report["forking"] or {}
    if forking.get("reason") or not forking.get("per_step"):
        st.info(
            f"No forking-token distribution: {forking.get('reason', 'no per-token entropy')}. For an imported "
            f"run, compute it with `python -m engine import signals {run_id} --model PATH_OR_NAME`."
        )
    else:
        series = pd.DataFrame(forking["per_step"])
        first = forking["first_step"]
        c1, c2, c3 = st.columns(3)
        change = forking["share_near_zero"] - first["share_near_zero"]
        c1.metric("Tokens near zero entropy", f"{forking['share_near_zero']:.1%}", delta_color="off",
                  delta=f"{change:+.1%} since step {first['step']}" if abs(change) >= 0.001 else None)  # fmt: skip
        c2.metric("Median token entropy", f"{forking['p50']:.3g} nats")
        c3.metric("90th percentile", f"{forking['p90']:.3g} nats")
        st.plotly_chart(forking_figure(series, forking["near_zero_threshold"]), key="entropy_forking")
        st.caption(forking_sentence(forking))

    st.subheader("5. Gold against sqrt(KL): over-optimisation")
    fit = report.get("gold_sqrt_kl")
    if fit is not None and fit.get("alpha") is not None:
        st.plotly_chart(gold_kl_figure(per, fit), key="entropy_gold_kl")
    st.caption(gold_kl_sentence(fit))
