"""The Learn path: the practitioner's note in short steps, each a live figure over the built-in
world's models and the shipped demo runs, a "try it" control and a link to the full page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from workbench.learn import (
    ceiling,
    data_range,
    epochs,
    group_methods,
    real_model,
    reduction,
    refresh,
    rm_drift,
    sampling_space,
)


@dataclass(frozen=True)
class LearnStep:
    key: str
    title: str
    idea: str  # the one idea of the step, in a line
    render: Callable[[], None]


STEPS = (
    LearnStep("space", "1 · The sampling space", "what the SFT model can sample is all PPO can reach",
              sampling_space.render),
    LearnStep("epochs", "2 · SFT epochs", "each SFT epoch shrinks that space; pick where to start",
              epochs.render),
    LearnStep("reduction", "3 · PPO reduces entropy", "PPO moves mass to the good samples: entropy falls",
              reduction.render),
    LearnStep("ceiling", "4 · The ceiling: pass@k", "PPO wins at one sample; does SFT catch up when it may try many?",
              ceiling.render),
    LearnStep("rm", "5 · The RM on a moving space", "far from SFT, the RM is wrong and PPO exploits it",
              rm_drift.render),
    LearnStep("refresh", "6 · Refreshing the RM", "retrain the RM on PPO's own samples: does it stay right, does gold follow?",
              refresh.render),
    LearnStep("range", "7 · Data range", "does PPO gain more where SFT left entropy? measured, not assumed",
              data_range.render),
    LearnStep("methods", "8 · PPO and GRPO", "a group baseline instead of a value head, and what it does to the narrowing",
              group_methods.render),
    LearnStep("real", "9 · The same on a real model", "PPO on SmolLM2, read with the same curves and checks",
              real_model.render),
)  # fmt: skip
