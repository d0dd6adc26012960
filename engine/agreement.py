"""Pairwise agreement of a score with a reference score on pairs of samples of the same prompt: the
RM's accuracy against the gold judge (world checks W3 and W5, the RM accuracy page).

The one tie rule, everywhere (the store's SQL in :func:`engine.store.rm_gold_agreement` follows it):
pairs whose *reference* scores tie carry no order and are left out; a tie of the *score* on a pair
the reference orders counts one half (a coin flip would be right half of the time).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

REFERENCE_TIE = 1e-9  # reference gaps at or below this are ties


def within_prompt_pairs(prompt_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i < j, of samples of the same prompt: two (n_pairs,) arrays."""
    groups: dict[str, list[int]] = {}
    for i, pid in enumerate(prompt_ids):
        groups.setdefault(pid, []).append(i)
    left, right = [], []
    for idx in groups.values():
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                left.append(idx[a])
                right.append(idx[b])
    return np.array(left, dtype=int), np.array(right, dtype=int)


def pairwise_agreement(
    scores: np.ndarray, reference: np.ndarray, prompt_ids: Sequence[str]
) -> tuple[float, int]:
    """(share of within-prompt pairs ordered by ``scores`` as by ``reference``, number of pairs counted).

    Naive equivalent: for every pair of samples of one prompt with different reference scores, 1 if
    the scores order them the same way, 1/2 if the scores tie, 0 otherwise; averaged. nan without pairs.
    """
    scores, reference = np.asarray(scores, dtype=float), np.asarray(reference, dtype=float)
    i, j = within_prompt_pairs(prompt_ids)
    ref_gap = reference[i] - reference[j]
    keep = np.abs(ref_gap) > REFERENCE_TIE
    if not keep.any():
        return float("nan"), 0
    score_sign = np.sign(scores[i] - scores[j])[keep]
    credit = np.where(score_sign == 0, 0.5, (score_sign == np.sign(ref_gap[keep])).astype(float))
    return float(credit.mean()), int(keep.sum())
