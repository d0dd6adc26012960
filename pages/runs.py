"""Runs: launch a PPO job on the built-in world, watch it live, stop and resume it, list past runs."""

import sys
from pathlib import Path

# Make `import engine` work when this page runs standalone (`streamlit run pages/runs.py`).
REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import streamlit as st  # noqa: E402

import engine.runs as jobs  # noqa: E402
from engine.analysis.entropy_dynamics import entropy_report  # noqa: E402
from engine.config import ConfigError  # noqa: E402
from engine.paths import runs_dir  # noqa: E402
from engine.ppo.launch import launch, stop  # noqa: E402
from engine.store import kl_per_step, metric_keys  # noqa: E402
from engine.store import metrics as read_metrics  # noqa: E402
from workbench import run_text as text  # noqa: E402
from workbench.figures import runs as figures  # noqa: E402
from workbench.glossary import page_tooltip  # noqa: E402
from workbench.launch_form import HANDOFF_SFT_EPOCH, launch_form  # noqa: E402
from workbench.navigation import follow_link, set_link  # noqa: E402
from workbench.resources import world_or_none  # noqa: E402
from workbench.sections import compare, prompt_selection  # noqa: E402
from workbench.store_access import cached  # noqa: E402
from workbench.widgets import show_error  # noqa: E402

POLL_SECONDS = 2.0
CURVE_KEYS = ["objective/reward", "objective/gold", "objective/kl", "objective/entropy", "probe/entropy"]

st.title("Runs", help=page_tooltip("runs.py"))
st.markdown(
    "Launch a LoRA PPO job (a separate process: `python -m engine ppo ...`), watch its reward, gold "
    "score, KL and entropy while it trains, stop it (it finishes its step and checkpoints) and resume it. "
    "PPO should raise the gold score while the per-token entropy falls (entropy reduction inside the "
    "SFT model's sampling space): each run's curves below say whether it does."
)

own = jobs.list_runs()
with st.expander("Launch a run", expanded=HANDOFF_SFT_EPOCH in st.session_state or not own):
    submitted = launch_form(world_or_none())
    if submitted is not None:
        config, run_id, warnings = submitted
        try:
            with st.spinner("Starting the job..."):
                job = launch(config, run_id=run_id or None, wait=True)
            st.session_state["runs_pick"] = job.run_id  # the picker follows the new run
            st.success(f"Started {job.run_id} (pid {job.pid}).")
            for warning in warnings:  # only once it did start: a refused launch says nothing of launching
                st.warning(f"Launched anyway: {warning}")
        except ConfigError as exc:
            st.error(str(exc))
        except OSError as exc:  # the runs directory cannot be written (read-only, full disk)
            show_error(exc, "Could not start the job")

runs = {r.run_id: r for r in jobs.list_runs(with_demo=True) if r.kind == "ppo"}
if not runs:
    st.info(f"No PPO runs in {runs_dir()} yet: launch one above, or `python -m engine ppo --help`.")
    st.stop()

st.subheader("Past and current runs")
table = st.empty()
if st.session_state.get("runs_pick") not in runs:
    st.session_state.pop("runs_pick", None)
follow_link("run", "runs_pick", list(runs), "No PPO run {} here: showing another.")
run_id = st.selectbox(
    "Run", list(runs), key="runs_pick", format_func=lambda r: r + (" (demo)" * runs[r].demo)
)
set_link("run", run_id, "runs_pick")  # a reload or a shared link reopens this run
info = runs[run_id]
run_dir = info.run_dir
live = not info.demo and jobs.is_live(run_dir)


def room_left_note() -> None:
    """'At this entropy, this run can still gain about X' (the Entropy dynamics page's law), or nothing
    when the run has too few steps to fit it."""
    try:
        note = text.room_left(cached(entropy_report, run_dir))
    except ConfigError:
        return
    if note:
        st.markdown(note)


def live_view() -> None:
    fresh = {r.run_id: r for r in jobs.list_runs(with_demo=True) if r.kind == "ppo"}
    status = jobs.read_status(run_dir)
    state = jobs.effective_state(run_dir, status)
    try:
        frame = read_metrics([run_dir], keys=CURVE_KEYS)
        keys = metric_keys([run_dir])
        kl = kl_per_step([run_dir])
    except ConfigError as exc:
        st.warning(str(exc))
        return
    step = text.shown_step((status or {}).get("step", 0), frame["step"].tolist())
    table.dataframe(text.runs_frame(list(fresh.values()), {run_id: step}), hide_index=True, width="stretch")
    if info.demo:
        st.caption("A shipped demo run: read-only (it cannot be stopped or resumed).")
    st.markdown(text.status_caption(status, state, step))
    if status and status.get("steps"):
        st.progress(min(1.0, step / status["steps"]))
    if live and st.button(
        "Stop this run", key="runs_stop", help="SIGTERM: the job finishes its step, checkpoints and exits"
    ):
        stop(run_id)
        st.toast(f"Asked {run_id} to stop after its current step.")
    if not live and not info.demo and state in ("stopped", "interrupted", "failed"):
        resume_button()
    if frame.empty:
        st.caption("No logged step yet.")
        return
    families = figures.probe_families(keys)
    record = jobs.read_json(run_dir / jobs.RUN_FILE) or {}
    estimator = record.get("config", {}).get("ppo", {}).get("kl_estimator", "k1")
    panels = figures.run_panels(frame, kl, kl_estimator=estimator, probes="probe/entropy" in keys)
    st.plotly_chart(figures.curves_figure(panels), key="runs_curves")
    st.caption(text.curves_caption(kl_k3=not kl.empty, estimator=estimator, probes=bool(families)))
    st.markdown(text.trend_sentence(frame, probes="probe/entropy" in keys))
    if not live:  # the analysis reads every step's tokens: once the run has stopped, not every refresh
        room_left_note()
    if families:
        st.markdown("**The fixed probe set, per family**: the same prompts at every probe step")
        probe_frame = read_metrics(
            [run_dir], keys=[f"probe/{f}/{v}" for f in families for v, _ in figures.PROBE_VALUES]
        )
        st.plotly_chart(figures.probe_figure(probe_frame, families), key="runs_probes")
    if live != (state in text.LIVE_STATES):  # the job started or ended since the page ran: redraw
        st.rerun()


def resume_button() -> None:
    """Resume, beside the run's status (it continues from the last checkpoint)."""
    if st.button("Resume this run", key="runs_resume", help="Continues from the run's last checkpoint"):
        try:
            with st.spinner("Resuming..."):
                launch(run_id=run_id, resume=True, wait=True)
            st.rerun(scope="app")
        except ConfigError as exc:
            st.error(str(exc))
        except OSError as exc:
            show_error(exc, "Could not resume the job")


st.fragment(run_every=POLL_SECONDS if live else None)(live_view)()
prompt_selection.render(run_dir)  # the prompts the run chose by sampling-space size, if it chose
compare.render(run_id, {r: i.run_dir for r, i in runs.items()})  # beside another run; its ceiling
