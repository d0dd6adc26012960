"""Where things live on disk. Environment variables override the defaults (tests use them)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Shipped artifacts of the built-in world (``WORKBENCH_DATA_DIR`` overrides)."""
    return Path(os.environ.get("WORKBENCH_DATA_DIR", REPO_ROOT / "data"))


def world_dir() -> Path:
    return data_dir() / "world"


def demo_runs_dir() -> Path:
    """The shipped demo runs (read-only), shown next to the user's own runs: ``data/demo_runs``."""
    return data_dir() / "demo_runs"


def runs_dir() -> Path:
    """Run directories, one per PPO job or import (``WORKBENCH_RUNS_DIR`` overrides)."""
    return Path(os.environ.get("WORKBENCH_RUNS_DIR", REPO_ROOT / "runs"))


def model_cache_dir() -> Path:
    """Models converted once for local use, e.g. ``smollm2`` dequantised from its GGUF
    (``WORKBENCH_MODEL_CACHE`` overrides; default ``$XDG_CACHE_HOME/ppo-entropy-workbench/models``).

    Outside the clone: a converted model is ~0.5 GB, rebuilt from an installed package, never committed.
    """
    override = os.environ.get("WORKBENCH_MODEL_CACHE")
    if override:
        return Path(override).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home).expanduser() / "ppo-entropy-workbench" / "models"


def real_dir() -> Path:
    """The real world's shipped artifacts (task sets, the reward model on SmolLM2): ``data/real``."""
    return data_dir() / "real"


def real_rm_dir() -> Path:
    """The real world's reward model (an adapter and a scalar head on SmolLM2): ``data/real/rm``."""
    return real_dir() / "rm"
