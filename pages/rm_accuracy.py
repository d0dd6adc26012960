"""RM accuracy during PPO, three ways: reward spread, agreement with the gold judge, log-prob accuracy."""

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd
import streamlit as st

import engine.store as store
from engine.runs import reward_is_judge
from workbench.figures.curves import per_step_lines
from workbench.glossary import page_tooltip
from workbench.sections.rm_eval import eval_panel
from workbench.store_access import cached, is_demo, pick_runs

st.title("RM accuracy", help=page_tooltip("rm_accuracy.py"))
st.caption(
    "PPO moves probability mass towards what the RM rewards, so the RM must stay right on what PPO now "
    "samples. Three monitors, from coarse to direct."
)


def section(title: str, intro: str, query: Callable[..., pd.DataFrame], run_dirs: list[Path]) -> pd.DataFrame:
    """One numbered section: its title, what it measures, and ``query`` over the picked runs."""
    st.subheader(title)
    st.markdown(intro)
    return cached(query, run_dirs)


run_dirs = pick_runs("rm_runs", multi=True)
if run_dirs:
    lines = partial(per_step_lines, refreshes=cached(store.rm_refreshes, run_dirs))  # marks each RM refresh
    spread = section(
        "1. Reward distribution: variance and tail",
        "From the PPO-max paper: a reward variance that explodes or a long tail (samples beyond mean ± 3 sd) "
        "catches big failures such as RM loopholes or KL blow-up, not a slow loss of accuracy.",
        store.reward_spread,
        run_dirs,
    )
    left, right = st.columns(2)
    left.plotly_chart(
        lines(
            spread,
            {"reward_std": "reward sd", "reward_kurtosis": "excess kurtosis"},
            title="Spread and tail weight",
        ),
        key="rm_spread",
    )
    right.plotly_chart(
        lines(
            spread,
            {"tail_share": "share beyond ±3 sd"},
            title="Long tail",
            y_title="share of samples",
        ),
        key="rm_tail",
    )

    agreement = section(
        "2. Agreement with the gold judge on the step's own samples",
        "For every pair of samples of the same prompt whose gold scores differ: does the RM order them like "
        "the judge? (An RM tie counts half.) This measures the RM on the *current* sampling space.",
        store.rm_gold_agreement,
        run_dirs,
    )
    judged = [d.name for d in run_dirs if reward_is_judge(d)]  # reward_model='gold': no RM to measure
    if judged:
        st.info(
            f"{', '.join(f'`{r}`' for r in judged)}: the reward is the judge itself, so there is no RM to "
            "agree with it; left out here."
        )
    if agreement.empty and len(judged) < len(run_dirs):
        st.info(
            "No gold (judge) scores in these runs: pairwise agreement needs them. The runs trained here have "
            "them (the judge or the checker scores every sample); for an imported run, map a judge-score "
            "column on the **Import** page."
        )
    elif not agreement.empty:
        fig = lines(
            agreement,
            {"agreement": "RM-gold pairwise agreement"},
            title="Pairwise agreement",
            y_title="agreement",
        )
        fig.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
        st.plotly_chart(fig, key="rm_agreement")

    accuracy = section(
        "3. Log-prob accuracy on the labelled preference test set",
        "Share of test pairs where the policy gives the chosen answer a higher log-probability than the "
        "rejected one, per checkpoint (a background job writes `evals/logprob_accuracy.parquet`; when the run "
        "has labels made in the Rollout browser, the same on them, `evals/label_accuracy.parquet`).",
        store.logprob_accuracy,
        run_dirs,
    )
    if accuracy.empty:
        own = not all(is_demo(d) for d in run_dirs)
        st.info(
            "Log-prob accuracy: none computed for these runs (it needs a world's preference test set, the "
            "built-in world's or the real world's checker-ordered answers, or labels made in the Rollout browser)."
            + (" Start the evaluation below." if own else "")
        )
    else:
        st.plotly_chart(
            lines(accuracy, {"accuracy": "log-prob accuracy"}, title="Log-prob accuracy", y_title="accuracy"),
            key="rm_logprob",
        )
    labelled = cached(store.logprob_accuracy, run_dirs, name=store.LABEL_ACCURACY)
    if not labelled.empty:  # the runs' own labels made in the Rollout browser: a second test set
        n_pairs = ", ".join(
            f"`{r}`: {int(n)}" for r, n in labelled.groupby("run_id")["n_pairs"].max().items()
        )
        st.plotly_chart(
            lines(labelled, {"accuracy": "log-prob accuracy on the run's labels"},
                  title=f"Log-prob accuracy on the labels made in the app (pairs: {n_pairs})", y_title="accuracy"),
            key="rm_label_accuracy",
        )  # fmt: skip
    eval_panel(run_dirs)
