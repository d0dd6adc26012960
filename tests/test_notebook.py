"""The notebook half: workbench.notebook's API on a store fixture, and the example notebook executed
headless (nbclient) so it cannot rot."""

from __future__ import annotations

import os

import plotly.graph_objects as go
import pytest
from store_fixture import build_store

from engine.config import ConfigError
from engine.paths import REPO_ROOT, world_dir
from workbench.notebook import open_run


def test_run_api_returns_the_pages_queries_and_figures(tmp_path, monkeypatch):
    import engine.store as store

    runs = build_store(tmp_path / "runs")
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(runs))
    run = open_run("alpha")  # by id
    assert run.path == runs / "alpha"
    assert run.summary().equals(store.step_summary(runs / "alpha"))
    assert run.top_variance_prompts(limit=3).equals(store.top_variance_prompts(runs / "alpha", limit=3))
    assert isinstance(run.figure_reward_densities(), go.Figure)
    with pytest.raises(ConfigError, match="no run"):
        open_run("nope")


def test_failure_thresholds_are_validated_and_bound_not_spliced(tmp_path, monkeypatch):
    """A numpy float is a threshold like any number (its repr, ``np.float64(12.0)``, once broke the
    SQL); inf, NaN, text and unknown names are refused with a ConfigError."""
    import numpy as np

    import engine.store as store

    runs = build_store(tmp_path / "runs")
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(runs))
    run = open_run("alpha")
    counts = run.failures(kl_threshold=np.float64(11.0), tail_sd=np.float32(1.5))
    expected = store.failure_counts(runs / "alpha", store.DetectorParams(kl_threshold=11.0, tail_sd=1.5))
    assert counts.equals(expected)
    kl = counts[counts.detector == "kl_blowup"].set_index("step")["n_flagged"]
    assert kl.to_dict() == {0: 0, 1: 1}  # the one sample of KL 12 at step 1
    worst = run.failure_examples("kl_blowup", limit=np.int64(1), kl_threshold=np.float64(11.0))
    assert worst["kl"].tolist() == [12.0]
    for bad in (float("inf"), -float("inf"), float("nan"), np.float64("inf"), "10", True):
        with pytest.raises(ConfigError, match="kl_threshold must be a finite number"):
            run.failures(kl_threshold=bad)
    with pytest.raises(ConfigError, match="unknown detector threshold"):
        run.failures(kl_treshold=5.0)


@pytest.mark.slow
@pytest.mark.skipif(not world_dir().is_dir(), reason="the example samples the built-in world")
def test_example_notebook_runs_headless(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("PYTHONPATH", f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    notebook = nbformat.read(REPO_ROOT / "workbench" / "notebooks" / "imported_run.ipynb", as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert (tmp_path / "runs" / "verl-example" / "run.json").is_file()
