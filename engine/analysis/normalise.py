"""Per-prompt reward normalisation, the practitioner's note's view of a reward density:
``reward - mean(reward of the same prompt) + global mean``.

It removes how hard each prompt is (the between-prompt part of the variance), leaving the spread
PPO can actually work with. The store's queries compute the same in SQL (one CTE,
:data:`engine.store.queries.PROMPT_SHIFT_CTE`); the sampling lab and the SFT-epochs page call
:func:`normalise_per_prompt`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def normalise_per_prompt(rewards: np.ndarray, prompt_index: Sequence) -> np.ndarray:
    """reward - mean(reward of the same prompt) + global mean: (N,), (N,) -> (N,).

    ``prompt_index`` holds any hashable group label per sample (ids or integers). Naive equivalent:
    a Python loop over the groups subtracting each group's mean and adding the overall mean.
    """
    rewards = np.asarray(rewards, dtype=float)
    _, groups = np.unique(np.asarray(prompt_index), return_inverse=True)
    sums = np.bincount(groups, weights=rewards)
    counts = np.bincount(groups)
    return rewards - (sums / counts)[groups] + rewards.mean()
