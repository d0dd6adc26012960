"""Runs: launch a PPO job on the built-in world, watch it live, stop and resume it, list past runs."""

import sys
from pathlib import Path

# Make `import engine` work when this page runs standalone (`streamlit run pages/runs.py`).
REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import streamlit as st  # noqa: E402

import engine.runs as jobs  # noqa: E402
from engine.config import ConfigError  # noqa: E402
from engine.paths import runs_dir  # noqa: E402
from engine.store import metrics as read_metrics  # noqa: E402
from workbench.resources import world_or_none  # noqa: E402
from workbench.runs_views import (  # noqa: E402
    HANDOFF_SFT_EPOCH,
    LIVE_STATES,
    curves_figure,
    launch_form,
    runs_frame,
    status_caption,
)

POLL_SECONDS = 2.0

st.title("Runs")
st.markdown(
    "Launch a LoRA PPO job (a separate process: `python -m engine ppo ...`), watch its reward, gold "
    "score, KL and entropy while it trains, stop it (it finishes its step and checkpoints) and resume it. "
    "PPO should raise the gold score while the per-token entropy falls: entropy reduction inside the "
    "SFT model's sampling space."
)

with st.expander("Launch a run", expanded=HANDOFF_SFT_EPOCH in st.session_state or not jobs.list_runs()):
    submitted = launch_form(world_or_none())
    if submitted is not None:
        config, run_id = submitted
        try:
            with st.spinner("Starting the job..."):
                job = jobs.launch(config, run_id=run_id or None, wait=True)
            st.session_state["runs_selected"] = job.run_id
            st.success(f"Started {job.run_id} (pid {job.pid}).")
        except ConfigError as exc:
            st.error(str(exc))

runs = [r for r in jobs.list_runs() if r.kind == "ppo"]
if not runs:
    st.info(f"No PPO runs in {runs_dir()} yet: launch one above, or `python -m engine ppo --help`.")
    st.stop()

st.subheader("Past and current runs")
st.dataframe(runs_frame(runs), hide_index=True, width="stretch")
ids = [r.run_id for r in runs]
selected = st.session_state.get("runs_selected")
run_id = st.selectbox("Run", ids, index=ids.index(selected) if selected in ids else 0, key="runs_pick")
run_dir = jobs.run_dir_of(run_id)
live = jobs.is_live(run_dir)


def live_view() -> None:
    status = jobs.read_status(run_dir)
    state = jobs.effective_state(run_dir, status)
    st.markdown(status_caption(status, state))
    if status and status.get("steps"):
        st.progress(min(1.0, status.get("step", 0) / status["steps"]))
    try:
        frame = read_metrics(
            [run_dir], keys=["objective/reward", "objective/gold", "objective/kl", "objective/entropy"]
        )
    except ConfigError as exc:
        st.warning(str(exc))
        return
    if frame.empty:
        st.caption("No logged step yet.")
    else:
        st.plotly_chart(curves_figure(frame), key="runs_curves")
    if live != (state in LIVE_STATES):  # the job started or ended since the page ran: redraw buttons
        st.rerun()


st.fragment(run_every=POLL_SECONDS if live else None)(live_view)()

left, right, _ = st.columns([1, 1, 4])
if live:
    if left.button("Stop", key="runs_stop", help="SIGTERM: the job finishes its step, checkpoints and exits"):
        jobs.stop(run_id)
        st.toast(f"Asked {run_id} to stop after its current step.")
else:
    state = jobs.effective_state(run_dir)
    if state in ("stopped", "interrupted", "failed") and right.button("Resume", key="runs_resume"):
        try:
            with st.spinner("Resuming..."):
                jobs.launch(run_id=run_id, resume=True, wait=True)
            st.rerun()
        except ConfigError as exc:
            st.error(str(exc))
