"""The sampling-space ceiling: pass@k, Cover@tau and answer-level entropy of a policy's samples.

PPO moves probability mass between answers the starting policy can already produce, so what SFT can
sample bounds what PPO can reach (Yue et al. 2025, arXiv 2504.13837: RL beats its base at pass@1
and loses at large k). Given N samples per prompt, each marked correct or not:

- pass@k: the chance that at least one of k samples drawn without replacement from the N is
  correct, averaged over prompts, with the unbiased estimator 1 - C(n-c, k) / C(n, k) (Chen et al.
  2021, arXiv 2107.03374).
- Cover@tau: the share of prompts with at least ``tau`` of their samples correct. On a small
  answer space pass@k at large k rewards guessing; Cover@tau asks for a reliable answer instead.
- answer entropy: the entropy (nats) of the distribution of distinct answers among a prompt's
  samples, averaged over prompts, beside the mean token entropy: the two can move apart (token
  entropy up while the answers narrow).

All functions are pure; :func:`coverage_stats` reads a samples frame with one row per sample
(``policy``, ``prompt_id``, ``correct``, ``answer``, ``token_entropy``, ``n_tokens``), which is what
the samples Parquet file holds, so :func:`pass_at_k_from_file` recomputes any figure from it alone.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

COVER_TAUS = (0.25, 0.5)


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k): the chance that k of ``n`` samples (``c`` correct), drawn without
    replacement, hold a correct one. Computed as 1 - prod_{i=n-c+1}^{n} (1 - k / i) (the numerically
    stable form of Chen et al. 2021), never with the binomials, which overflow floats past n ~ 1000.

    Naive equivalent: the share of the k-subsets of range(n) that meet range(c).
    """
    if not 1 <= k <= n or not 0 <= c <= n:
        raise ValueError(f"need 1 <= k <= n and 0 <= c <= n, got n={n}, c={c}, k={k}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def ks_up_to(n: int) -> list[int]:
    """k = 1, 2, 4, ... up to ``n``, and ``n`` itself."""
    ks = [2**i for i in range(int(math.log2(n)) + 1)] if n >= 1 else []
    return ks if not ks or ks[-1] == n else [*ks, n]


def mean_pass_at_k(ns: Sequence[int], cs: Sequence[int], ks: Iterable[int]) -> dict[int, float]:
    """pass@k averaged over prompts (prompt i: ``ns[i]`` samples, ``cs[i]`` correct), for each k."""
    return {k: float(np.mean([pass_at_k(n, c, k) for n, c in zip(ns, cs, strict=True)])) for k in ks}


def cover_at_tau(
    ns: Sequence[int], cs: Sequence[int], taus: Iterable[float] = COVER_TAUS
) -> dict[float, float]:
    """Share of prompts with at least ``tau`` of their samples correct, for each tau."""
    share = np.asarray(cs, dtype=np.float64) / np.asarray(ns, dtype=np.float64)  # (prompts,)
    return {tau: float(np.mean(share >= tau)) for tau in taus}


def answer_entropy(answers: Iterable[str]) -> float:
    """Entropy (nats) of the empirical distribution of distinct answers among one prompt's samples.

    The plug-in estimate: with N samples it is at most log N, and it reads low when N is small
    beside the number of answers the policy can give.
    """
    counts = np.array(list(Counter(answers).values()), dtype=np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def crossing_k(a: dict[int, float], b: dict[int, float]) -> int | None:
    """The first k at which pass@k of ``a`` minus that of ``b`` takes the other sign from at k = 1
    (ties at k = 1 take the sign of the first k where they differ); None when the order never flips."""
    signs = [np.sign(a[k] - b[k]) for k in sorted(a)]
    first = next((s for s in signs if s != 0), 0)
    return next((k for k, s in zip(sorted(a), signs, strict=True) if s == -first != 0), None)


def correct_counts(rows: pd.DataFrame) -> tuple[list[int], list[int]]:
    """(samples, correct samples) of each prompt of one policy's rows, in order of first appearance."""
    per_prompt = rows.groupby("prompt_id", sort=False)["correct"].agg(["size", "sum"])
    return per_prompt["size"].tolist(), per_prompt["sum"].astype(int).tolist()


def coverage_stats(samples: pd.DataFrame, taus: Iterable[float] = COVER_TAUS) -> dict[str, dict]:
    """Per policy (in order of first appearance): ``pass_at_k`` (k -> value, k = 1, 2, 4, ... up to
    the fewest samples any prompt has), ``cover_at_tau`` (tau -> share), ``answer_entropy``,
    ``token_entropy`` (mean over all response tokens), ``n_prompts``, ``n_samples``, ``mean_gold``
    when there is a ``gold`` column."""
    taus = tuple(taus)
    stats = {}
    for policy, rows in samples.groupby("policy", sort=False):
        ns, cs = correct_counts(rows)
        tokens = rows["n_tokens"].to_numpy(dtype=np.float64)
        stats[str(policy)] = {
            "pass_at_k": mean_pass_at_k(ns, cs, ks_up_to(min(ns))),
            "cover_at_tau": cover_at_tau(ns, cs, taus),
            "answer_entropy": float(
                rows.groupby("prompt_id", sort=False)["answer"].agg(answer_entropy).mean()
            ),
            "token_entropy": float(
                (rows["token_entropy"].to_numpy() * tokens).sum() / max(tokens.sum(), 1.0)
            ),
            "n_prompts": len(ns),
            "n_samples": len(rows),
            **({"mean_gold": float(rows["gold"].mean())} if "gold" in rows else {}),
        }
    return stats


class PassGap(NamedTuple):
    """pass@k of policy a minus that of policy b, averaged over the prompts both sampled, with its
    standard error over those prompts (paired: s.d. of the per-prompt differences / sqrt(prompts);
    None below two prompts)."""

    gap: float
    se: float | None
    n_prompts: int


def pass_at_k_gaps(samples: pd.DataFrame, a: str, b: str) -> dict[int, PassGap]:
    """For k = 1, 2, 4, ... up to the fewest samples either policy has on a shared prompt: the paired
    difference of pass@k between policies ``a`` and ``b`` over their shared prompts (the figure's
    uncertainty: prompts are the unit that varies; the per-prompt estimator is unbiased, so the mean of
    the differences is the difference of the means over those prompts)."""
    per_policy = {
        p: samples[samples["policy"] == p].groupby("prompt_id")["correct"].agg(["size", "sum"])
        for p in (a, b)
    }
    shared = per_policy[a].index.intersection(per_policy[b].index)
    if shared.empty:
        return {}
    counts = {p: frame.loc[shared] for p, frame in per_policy.items()}  # (prompts, [size, sum]) each
    ks = ks_up_to(int(min(counts[a]["size"].min(), counts[b]["size"].min())))
    gaps = {}
    for k in ks:
        per_prompt = [
            np.array([pass_at_k(int(n), int(c), k) for n, c in counts[p].itertuples(index=False)])
            for p in (a, b)
        ]
        diff = per_prompt[0] - per_prompt[1]  # (prompts,)
        se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else None
        gaps[k] = PassGap(float(diff.mean()), se, len(diff))
    return gaps


def pass_at_k_from_file(path: Path | str) -> dict[str, dict[int, float]]:
    """pass@k per policy recomputed from a samples Parquet file alone (its ``policy``, ``prompt_id``
    and ``correct`` columns)."""
    samples = pd.read_parquet(path, columns=["policy", "prompt_id", "correct"])
    out = {}
    for policy, rows in samples.groupby("policy", sort=False):
        ns, cs = correct_counts(rows)
        out[str(policy)] = mean_pass_at_k(ns, cs, ks_up_to(min(ns)))
    return out
