"""RM accuracy during PPO, three ways: reward spread, agreement with the gold judge, log-prob accuracy."""

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd
import streamlit as st

import engine.store as store
from engine.config import ConfigError
from engine.ppo.launch import launch_eval
from engine.runs import list_checkpoints
from engine.runs.layout import EVAL_LOG
from workbench.figures.curves import per_step_lines
from workbench.glossary import page_tooltip
from workbench.store_access import cached, is_demo, pick_runs
from workbench.widgets import show_error

st.title("RM accuracy", help=page_tooltip("rm_accuracy.py"))
st.caption(
    "PPO moves probability mass towards what the RM rewards, so the RM must stay right on what PPO now "
    "samples. Three monitors, from coarse to direct."
)


@st.fragment(run_every=3)
def eval_progress(run_dir: Path) -> None:
    """Checkpoints evaluated / to evaluate (the SFT start counts as one), live while the job runs."""
    job = st.session_state.get("rm_eval_jobs", {}).get(str(run_dir))
    total = 1 + len(list_checkpoints(run_dir))
    done = len(set(store.logprob_accuracy(run_dir)["checkpoint"]))
    if job is not None:  # the job writes its rows at the end: count its log lines meanwhile
        path = run_dir / EVAL_LOG
        log = path.read_bytes()[job["offset"] :].decode(errors="replace") if path.is_file() else ""
        done = max(done, job["done"] + log.count("log-prob accuracy"))
    st.progress(
        min(done / total, 1.0), text=f"log-prob accuracy: {min(done, total)} of {total} checkpoints evaluated"
    )
    if job is not None and job["process"].poll() is None:
        st.caption(f"Evaluation running (pid {job['process'].pid}); log in `{run_dir / EVAL_LOG}`.")
    elif job is not None and job["process"].returncode:
        st.error(f"The evaluation stopped with an error; see the end of `{run_dir / EVAL_LOG}`.")


def eval_panel(run_dirs: list[Path]) -> None:
    own = [d for d in run_dirs if not is_demo(d)]
    if len(own) < len(run_dirs):
        st.info(
            "Demo runs are read-only: their log-prob accuracy ships with them and cannot be recomputed here."
        )
    if not own:
        return
    run_dir = (
        own[0]
        if len(own) == 1
        else st.selectbox("Evaluate run", own, format_func=lambda d: d.name, key="rm_eval_run")
    )
    jobs = st.session_state.setdefault("rm_eval_jobs", {})
    running = str(run_dir) in jobs and jobs[str(run_dir)]["process"].poll() is None
    if st.button("Evaluate this run's checkpoints", disabled=running, key="rm_eval_start"):
        log = run_dir / EVAL_LOG
        offset = log.stat().st_size if log.is_file() else 0
        try:
            process = launch_eval(run_dir.name, run_dir.parent)
        except ConfigError as exc:
            show_error(exc, "The evaluation could not start")
            return
        done = len(set(store.logprob_accuracy(run_dir)["checkpoint"]))
        jobs[str(run_dir)] = {"process": process, "offset": offset, "done": done}
    eval_progress(run_dir)


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
    if agreement.empty:
        st.info(
            "No gold (judge) scores in these runs: pairwise agreement needs them. Runs on the built-in world "
            "have them; for an imported run, map a judge-score column on the **Import** page."
        )
    else:
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
            "Log-prob accuracy: not computed yet for these runs."
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
