"""The workbench from a notebook: the same queries and figures the pages show, without Streamlit.

    from workbench.notebook import open_run, sample
    run = open_run("demo-default")            # a run id (own or demo), or any run directory
    run.summary()                             # per-step DataFrame
    run.figure_reward_densities().show()      # raw vs per-prompt normalised ridgelines (plotly)
    sample("world:sft-epoch-3", ["describe the cat :"], temperature=1.2).signals()["entropy"]

Every method is a thin call of an ``engine.store`` query (the pages call the same ones through
their cache) or of a ``workbench.figures`` function (the pages render the same figures): one
implementation, two front ends. Nothing here imports Streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

import engine.store as store
from engine.config import ConfigError, SamplingConfig
from engine.paths import demo_runs_dir, runs_dir
from workbench.figures.ridgeline import VALUE_LABELS, common_range, ridgeline, smooth_density, spread_figure

HISTOGRAM_BINS = 200


def open_run(run: str | Path) -> Run:
    """A run by directory, or by id among the user's runs (``WORKBENCH_RUNS_DIR``) then the demo runs."""
    path = Path(run).expanduser()
    if not path.is_dir():
        for root in (runs_dir(), demo_runs_dir()):
            if (root / str(run)).is_dir():
                path = root / str(run)
                break
        else:
            raise ConfigError(
                f"no run {str(run)!r}: not a directory, nor a run id under {runs_dir()} or {demo_runs_dir()}"
            )
    return Run(path)


def runs(with_demo: bool = True) -> pd.DataFrame:
    """The runs table the pages' run pickers show (the user's, then the demo runs)."""
    return store.runs_frame(runs_dir(), with_demo=with_demo)


@dataclass(frozen=True)
class Run:
    """One run directory of the store (a PPO run of the engine, an import, or a demo run)."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    # ------------------------------------------------------------------ queries (DataFrames)

    def summary(self) -> pd.DataFrame:
        """Per step: counts, reward / normalised reward / gold spread, entropy, KL, length, EOS rate."""
        return store.step_summary(self.path)

    def metrics(self, keys: list[str] | None = None) -> pd.DataFrame:
        """The logged metrics, long format (run_id, step, key, value)."""
        return store.metrics(self.path, keys)

    def reward_density(self, value: str = "reward", normalised: bool = True, bins: int = 60) -> pd.DataFrame:
        """Histogram of ``value`` per step, raw or per-prompt normalised."""
        return store.reward_norm_density(self.path, value=value, normalised=normalised, bins=bins)

    def top_variance_prompts(self, limit: int = 50, **filters: Any) -> pd.DataFrame:
        """Prompts ranked by within-prompt reward variance (the rollout browser's default ranking)."""
        return store.top_variance_prompts(self.path, limit=limit, **filters)

    def prompt(self, prompt_id: str) -> pd.DataFrame:
        """Every sample of one prompt across steps, with normalised reward and per-token lists."""
        return store.prompt_drilldown(self.path, prompt_id)

    def failures(self, **thresholds: float) -> pd.DataFrame:
        """Per step and detector: how many samples each failure-mode detector flags; ``thresholds``
        are fields of ``engine.store.DetectorParams`` (``run.failures(kl_threshold=5.0)``)."""
        return store.failure_counts(self.path, store.DetectorParams.of(**thresholds))

    def failure_examples(self, detector: str, limit: int = 20, **thresholds: float) -> pd.DataFrame:
        """The ``limit`` worst samples ``detector`` flags (a key of ``engine.store.DETECTORS``), with the
        values that flagged them; ``thresholds`` as in :meth:`failures`."""
        return store.failure_examples(self.path, detector, store.DetectorParams.of(**thresholds), limit=limit)

    def rm_gold_agreement(self) -> pd.DataFrame:
        """Per step: the RM's pairwise agreement with the gold judge on the step's own samples."""
        return store.rm_gold_agreement(self.path)

    def entropy_report(self, fit_fraction: float = 0.3) -> dict:
        """Entropy dynamics: covariance driver, entropy-reward law and ceiling, forking tokens, gold vs
        sqrt(KL) (the Entropy dynamics page and ``python -m engine analyse entropy``)."""
        from engine.analysis.entropy_dynamics import entropy_report

        return entropy_report(self.path, fit_fraction=fit_fraction)

    # ------------------------------------------------------------------ figures (plotly)

    def figure_reward_densities(self, value: str = "reward") -> go.Figure:
        """Raw and per-prompt normalised ridgelines on one x axis (the Reward densities page)."""
        raw, norm = (
            smooth_density(self.reward_density(value, normalised, HISTOGRAM_BINS))
            for normalised in (False, True)
        )
        if raw.empty:
            raise ConfigError(f"run {self.run_id} logged no {value}")
        label = VALUE_LABELS.get(value, value)
        x_range = common_range(raw, norm)
        return ridgeline(norm, title=f"per-prompt normalised {label}", x_title=label, x_range=x_range)

    def figure_raw_density(self, value: str = "reward") -> go.Figure:
        raw = smooth_density(self.reward_density(value, False, HISTOGRAM_BINS))
        label = VALUE_LABELS.get(value, value)
        return ridgeline(raw, title=f"raw {label}", x_title=label)

    def figure_spread(self, value: str = "reward") -> go.Figure:
        """Mean and sd per step of the raw and normalised densities."""
        raw = self.reward_density(value, False, HISTOGRAM_BINS)
        norm = self.reward_density(value, True, HISTOGRAM_BINS)
        return spread_figure(raw, norm, VALUE_LABELS.get(value, value))


def sample(
    source: str,
    prompts: list[str],
    *,
    n_samples: int = 8,
    seed: int = 0,
    **settings: Any,
):
    """Sample with the per-token signals, as the sampling lab does: ``source`` is ``world:sft-epoch-N``,
    a local directory or a cached HF name; ``settings`` are SamplingConfig fields (temperature, top_k,
    top_p, min_p, max_new_tokens). Returns the lab's batch (``.tokens``, ``.signals()``, ``.rewards``,
    ``.gold``, ``.summary()``)."""
    from engine.lab import SamplingLab
    from engine.world import try_load_world

    world, _ = try_load_world()
    return SamplingLab(world=world).sample(
        source, prompts, SamplingConfig(**settings), n_samples=n_samples, seed=seed
    )
