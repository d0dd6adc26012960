"""The RM accuracy page's evaluation panel: start the background job that scores a run's checkpoints
by log-prob accuracy (on the preference test set and the run's own labels), and follow it live."""

from pathlib import Path

import streamlit as st

import engine.store as store
from engine.config import ConfigError
from engine.ppo import launch
from engine.runs import list_checkpoints
from engine.runs.layout import EVAL_LOG
from workbench.store_access import is_demo
from workbench.widgets import show_error


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
            process = launch.launch_eval(
                run_dir.name, run_dir.parent
            )  # looked up per click: tests stand in for it
        except ConfigError as exc:
            show_error(exc, "The evaluation could not start")
            return
        done = len(set(store.logprob_accuracy(run_dir)["checkpoint"]))
        jobs[str(run_dir)] = {"process": process, "offset": offset, "done": done}
    eval_progress(run_dir)
