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
