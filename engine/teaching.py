"""A miniature of PPO for the teaching page: one prompt, N candidate responses, exact updates.

The policy is a softmax over N responses the SFT model can sample. Each step ascends the KL-
regularised objective J = E_pi[r] - beta * KL(pi || pi_sft) exactly (no sampling noise), which is
what PPO estimates from samples. Two knobs show the seed's two conditions: the SFT distribution's
entropy (the size of the sampling space) and the RM's error on the responses (its accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Bandit:
    gold: np.ndarray  # (N,) true quality of each response
    rm: np.ndarray  # (N,) what the reward model says
    sft_logits: np.ndarray  # (N,) the SFT model's preference


def make_bandit(
    n: int = 12, sft_temperature: float = 1.0, rm_noise: float = 0.0, loophole: float = 0.0, seed: int = 0
) -> Bandit:
    """Responses with gold in [0, 1]; the SFT model mildly prefers average ones.

    ``sft_temperature`` spreads or sharpens the SFT distribution (its entropy); ``rm_noise`` adds
    random RM error; ``loophole`` over-rates a bad response (what PPO finds and exploits).
    """
    rng = np.random.default_rng(seed)
    gold = np.sort(rng.uniform(0, 1, n))
    base = -4.0 * (gold - 0.45) ** 2 + rng.normal(0, 0.5, n)
    sft_logits = base / max(sft_temperature, 1e-3)
    rm = gold + rng.normal(0, rm_noise, n)
    worst_reachable = int(np.argsort(gold)[1])  # a bad answer the SFT model does sample sometimes
    rm[worst_reachable] += loophole
    return Bandit(gold=gold, rm=rm, sft_logits=sft_logits)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def entropy(p: np.ndarray) -> float:
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def run(
    bandit: Bandit, *, kl_coef: float = 0.05, lr: float = 2.0, steps: int = 60
) -> tuple[pd.DataFrame, np.ndarray]:
    """Exact gradient ascent on J; returns per-step metrics and the final distribution."""
    logits = bandit.sft_logits.astype(float).copy()
    p0 = softmax(bandit.sft_logits)
    rows = []
    for step in range(steps + 1):
        p = softmax(logits)
        kl_terms = np.log(p / p0)
        rows.append(
            {
                "step": step,
                "entropy": entropy(p),
                "expected_rm": float(p @ bandit.rm),
                "expected_gold": float(p @ bandit.gold),
                "kl": float(p @ kl_terms),
                "max_prob": float(p.max()),
            }
        )
        shaped = bandit.rm - kl_coef * kl_terms
        advantage = shaped - p @ shaped  # the baseline PPO's critic provides
        logits += lr * p * advantage  # dJ/dlogits
    return pd.DataFrame(rows), softmax(logits)
