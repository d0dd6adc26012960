"""The ceiling section (the Ceiling page, the Learn path's ceiling step): pass@k of a run's last
checkpoint beside its SFT start, from the run's coverage samples (``evals/coverage.parquet``; for a
read-only demo run, the user's own under ``runs/.coverage/<run>/``, else those it ships with), with
where the curves cross and each difference's interval over prompts; without a file, the command that makes one and
a button that makes a small one here (16 samples on 16 prompts, seconds on the world's models)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
import streamlit as st

from engine.analysis.coverage import coverage_stats, crossing_k, pass_at_k_from_file, pass_at_k_gaps
from engine.config import ConfigError
from engine.paths import runs_dir
from engine.runs import RUN_FILE, read_json
from workbench.figures.groups import pass_at_k_figure
from workbench.group_text import ceiling_sentence
from workbench.resources import BUILD_COMMAND, world_or_none
from workbench.store_access import is_demo
from workbench.widgets import show_error

QUICK_SAMPLES = 16  # per prompt: pass@k up to k = 16
QUICK_PROMPTS = 16  # spread over the PPO prompt set
SAMPLES_NAME = "coverage.parquet"


def samples_folder(run_dir: Path) -> tuple[Path, str | None]:
    """Where the run's coverage samples are (its ``evals/``), or for a shipped demo run (read-only) a
    folder of the user's runs directory that the run list skips; with the ``--out`` it needs."""
    if is_demo(run_dir):
        folder = runs_dir() / ".coverage" / run_dir.name
        return folder, str(folder)
    return run_dir / "evals", None


def start_source(run_dir: Path, world) -> str | None:
    """The policy the run started from: its ``model.policy``, else the world's SFT epoch it names (the
    trainer's rule); None when neither the record nor the world says."""
    model = ((read_json(run_dir / RUN_FILE) or {}).get("config") or {}).get("model") or {}
    if model.get("policy"):
        return model["policy"]
    return None if world is None else world.policy_source(model.get("sft_epoch"))


def command(policies: list[str], out: str | None, *, samples: int, prompts: int | None) -> str:
    """The ``analyse coverage`` command line that writes the samples the section reads."""
    args = ["python", "-m", "engine", "analyse", "coverage"]
    for p in policies:
        args += ["--policy", p]
    args += ["--prompts", "ppo", "--samples", str(samples)]
    if prompts is not None:
        args += ["--max-prompts", str(prompts)]
    if out is not None:
        args += ["--out", out]
    return shlex.join(args)


@st.cache_data(show_spinner=False)
def _read(path: str, mtime: float) -> tuple[dict, dict]:
    return pass_at_k_from_file(path), coverage_stats(pd.read_parquet(path))


@st.cache_data(show_spinner=False)
def _gaps(path: str, mtime: float, policy: str, start: str) -> dict:
    return pass_at_k_gaps(pd.read_parquet(path, columns=["policy", "prompt_id", "correct"]), policy, start)


def _measure(world, policies: list[str], out: str | None) -> None:
    from engine.world_tools.coverage import measure_coverage  # loads torch: only on the button

    bar = st.progress(0.0, text="Loading the models...")
    try:
        measure_coverage(world, policies, "ppo", samples=QUICK_SAMPLES, max_prompts=QUICK_PROMPTS, out=out,
                         progress=lambda done, total: bar.progress(done / total, text=f"{done}/{total} samples"))  # fmt: skip
    except (ConfigError, OSError) as exc:
        show_error(exc, "Could not measure the coverage")
        return
    st.rerun()


def render(run_dir: Path) -> None:
    run = run_dir.name
    world = world_or_none()
    start = start_source(run_dir, world)
    policies = [p for p in (start, f"{run}@last") if p]
    folder, out = samples_folder(run_dir)
    path = folder / SAMPLES_NAME
    shipped = run_dir / "evals" / SAMPLES_NAME  # a demo run's samples, when they ship with it
    if not path.is_file() and shipped.is_file():
        path = shipped
    if not path.is_file():
        st.info(f"No coverage samples for `{run}` yet. Make them in a terminal (N >= 128 for the note):")
        st.code(command(policies, out, samples=128, prompts=None), language="bash", wrap_lines=True)
        if world is None:
            st.warning("The built-in world is not built, so they cannot be made here. Build it with:")
            st.code(BUILD_COMMAND, language="bash")
            return
        st.caption(
            f"…or a quick look here: `{command(policies, out, samples=QUICK_SAMPLES, prompts=QUICK_PROMPTS)}`"
        )
        if st.button(f"Measure {QUICK_SAMPLES} samples on {QUICK_PROMPTS} prompts", key="ceiling_measure"):
            _measure(world, policies, out)
        return
    curves, stats = _read(str(path), path.stat().st_mtime)
    labels = list(curves)
    st.caption(f"From `{path}`: " + "; ".join(
        f"`{p}` {s['n_samples']:,} samples on {s['n_prompts']} prompts" for p, s in stats.items()))  # fmt: skip
    crossing = crossing_k(curves[labels[0]], curves[labels[1]]) if len(labels) > 1 else None
    st.plotly_chart(pass_at_k_figure(curves, crossing), key="ceiling_plot")
    if len(labels) > 1:
        gaps = _gaps(str(path), path.stat().st_mtime, labels[1], labels[0])  # trained minus start, per k
        st.markdown(ceiling_sentence(curves, labels[0], labels[1], crossing, gaps))
    table = pd.DataFrame(
        [{"policy": p, **{f"Cover@{t}": v for t, v in s["cover_at_tau"].items()},
          "answer entropy (nats)": s["answer_entropy"], "token entropy (nats)": s["token_entropy"],
          "mean gold": s.get("mean_gold")} for p, s in stats.items()]
    )  # fmt: skip
    st.dataframe(table, hide_index=True, key="ceiling_table")
