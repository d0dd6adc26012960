"""Process-wide cached resources shared by the pages (the world, the sampling lab and its models)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from engine.config import ConfigError
from engine.paths import world_dir

if TYPE_CHECKING:  # the lab brings torch: loaded on first use, so pages without models start fast
    from engine.lab import SamplingLab

BUILD_COMMAND = "python -m engine world build"


@st.cache_resource(show_spinner="Loading the built-in world...")
def _load_world(path: str):
    from engine.world import load_world

    return load_world(Path(path))


def world_or_none():
    """The built-in world, or None when it is not built (not cached, so a later build is picked up)."""
    try:
        return _load_world(str(world_dir()))
    except ConfigError:
        return None


def world_error() -> str | None:
    """Why the world cannot be loaded, or None when it can."""
    try:
        _load_world(str(world_dir()))
    except ConfigError as exc:
        return str(exc)
    return None


@st.cache_resource(show_spinner=False)
def _lab(world_path: str | None) -> SamplingLab:
    from engine.lab import SamplingLab

    return SamplingLab(world=world_or_none() if world_path else None)


def sampling_lab() -> SamplingLab:
    """One lab (models + sampled batches) per process and world, shared by every session."""
    world = world_or_none()
    return _lab(str(world.path) if world is not None else None)
