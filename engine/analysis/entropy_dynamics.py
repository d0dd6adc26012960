"""Entropy dynamics of a run: what drives entropy down, where it goes, how much PPO can still gain.

Four analyses, each a pure function over per-step or per-token data, and :func:`entropy_report`,
which loads a run through ``engine.store.entropy_queries`` and runs them all (the ``analyse entropy``
command and the pages call it):

1. **Covariance driver** (Cui et al. 2025, arXiv 2505.22617): under a policy-gradient step the
   entropy changes by about ``-lr * Cov(log pi(y), A(y))``. Per step, ``cov`` = mean over all response
   tokens of ``(lp_i - mean lp) * (A_i - mean A)`` with the sampling-time log-prob ``lp`` and the
   advantage ``A`` the update used; a likely token with a high advantage (positive term) sharpens the
   distribution, a rare one with a high advantage (negative term) flattens it. The paper predicts a
   *negative* correlation over a run between ``cov`` and the entropy change of the step.
2. **Entropy-reward law** (same paper): ``R = -a * exp(H) + b`` fitted on the first part of a run;
   at H = 0 the law predicts the ceiling ``b - a`` (``engine.analysis.fits``).
3. **Forking tokens** (Wang et al. 2025, arXiv 2506.01939): the per-token entropy distribution of a
   step; in their data over half of the tokens have entropy below 0.01 nats (:data:`NEAR_ZERO_NATS`,
   the threshold used here) and the 80th percentile is 0.672 nats.
4. **Gold against sqrt(KL)** (Gao et al. 2022, arXiv 2210.10760): with ``d = sqrt(KL)``, the RL form
   ``R_gold(d) = d * (alpha - beta * log d)`` (gold relative to the first step, so R(0) = 0) and its
   peak ``d* = exp(alpha / beta - 1)``: how far the run is from over-optimising its reward model
   (``engine.analysis.fits``).

The fits and the covariance correlation carry a bootstrap interval over steps and give no number on
fewer than ``MIN_FIT_STEPS`` steps (``engine.analysis.uncertainty``).
Missing inputs never raise: a result is None together with a ``reason`` naming what is missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from engine.analysis.fits import (  # re-exported: the analyses of a run have one entry module
    correlation,
    correlation_fit,
    fit_entropy_reward_law,
    fit_gold_sqrt_kl,
    fit_steps,
)
from engine.config import ConfigError

__all__ = [
    "correlation",
    "correlation_fit",
    "covariance_terms",
    "entropy_changes",
    "entropy_distribution",
    "entropy_report",
    "fit_entropy_reward_law",
    "fit_gold_sqrt_kl",
    "fit_steps",
    "top_covariance_tokens",
    "top_entropy_tokens",
]

NEAR_ZERO_NATS = 0.01
"""Per-token entropy below this many nats counts as "near zero" (Wang et al. 2025's threshold)."""
FORKING_PERCENTILES = (50, 80, 90, 99)
DEFAULT_FIT_FRACTION = 0.3

COV_SHARE_DEFINITION = (
    "share = sum of the listed tokens' positive covariance terms / sum of all positive terms of the step "
    "(a share: between 0 and 1). Cui et al.: the entropy change of a step is about -lr * cov, a sum of "
    "per-token contributions; a positive term predicts a drop. ratio_to_net = sum of the listed tokens' "
    "terms / sum of all terms (= n * cov): above 1 when other tokens' terms are negative and offset part "
    "of it; entropy_drop_attributed = ratio_to_net * (measured drop). Both undefined (null) when "
    "cov <= 0 (entropy is predicted to rise)."
)


def _num(x) -> float | None:
    """A JSON-ready float: None for None, NaN and infinities."""
    if x is None:
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# ----------------------------------------------------------------------------------------------
# 1. The covariance driver


def covariance_terms(logprob: np.ndarray, advantage: np.ndarray) -> np.ndarray:
    """``(lp_i - mean lp) * (A_i - mean A)`` over flat token arrays, in float64; their mean is ``cov``.

    The very terms the entropy-control losses rank (one definition:
    ``engine.ppo.entropy_control.covariance_terms``, here with every token real).
    Naive equivalent: ``[(l - mean(lp)) * (a - mean(A)) for l, a in zip(lp, A)]``.
    """
    # torch (for the loss's own definition) only when terms are computed: pages import this module
    import torch

    from engine.ppo.entropy_control import covariance_terms as masked_covariance_terms

    lp = torch.from_numpy(np.array(logprob, dtype=np.float64))  # a copy: DuckDB's arrays are read-only
    adv = torch.from_numpy(np.array(advantage, dtype=np.float64))
    if lp.shape != adv.shape:
        raise ConfigError(f"logprob and advantage must have the same shape, got {lp.shape} and {adv.shape}")
    if lp.numel() == 0:
        return lp.numpy()
    return masked_covariance_terms(lp, adv, torch.ones_like(lp, dtype=torch.bool)).numpy()


def top_covariance_tokens(tokens: pd.DataFrame, k: int = 20, entropy_change: float | None = None) -> dict:
    """The ``k`` tokens of one step with the largest covariance terms, and their share.

    ``tokens``: one row per token with ``row``, ``prompt_id``, ``sample_idx``, ``position``, ``token``,
    ``logprob``, ``advantage`` (``engine.store.step_tokens``); tokens lacking either value are left out.
    ``entropy_change``: the step's measured entropy change, for ``entropy_drop_attributed``.
    Returns ``{"cov", "n_tokens", "tokens": [...], "share", "ratio_to_net", "entropy_drop_attributed",
    "definition", "reason"}``; see :data:`COV_SHARE_DEFINITION` for ``share`` and ``ratio_to_net``.
    """
    out = {"cov": None, "n_tokens": 0, "tokens": [], "share": None, "ratio_to_net": None}
    out["entropy_drop_attributed"] = None
    out["definition"] = COV_SHARE_DEFINITION
    usable = tokens.dropna(subset=["logprob", "advantage"]) if len(tokens) else tokens
    if not len(usable):
        reason = "no tokens" if not len(tokens) else _missing_list_reason(tokens, ("logprob", "advantage"))
        return {**out, "reason": reason}
    terms = covariance_terms(usable["logprob"].to_numpy(), usable["advantage"].to_numpy())
    total = float(terms.sum())
    positive = float(np.clip(terms, 0.0, None).sum())
    order = np.argsort(-terms, kind="stable")[:k]
    picked = usable.iloc[order]
    out["cov"] = total / len(terms)
    out["n_tokens"] = int(len(terms))
    for (_, row), term in zip(picked.iterrows(), terms[order], strict=True):
        out["tokens"].append(
            {
                **_token_ref(row),
                "logprob": _num(row["logprob"]),
                "advantage": _num(row["advantage"]),
                "term": _num(term),
                "share": _num(max(term, 0.0) / positive) if total > 0 else None,
            }
        )
    if total > 0:
        out["share"] = float(np.clip(terms[order], 0.0, None).sum() / positive)
        out["ratio_to_net"] = float(terms[order].sum() / total)
        if entropy_change is not None and math.isfinite(entropy_change):
            out["entropy_drop_attributed"] = out["ratio_to_net"] * -entropy_change
        out["reason"] = None
    else:
        out["reason"] = f"cov = {total / len(terms):.4g} <= 0: the step's tokens predict no entropy drop"
    return out


def _token_ref(row: pd.Series) -> dict:
    """Where a token is: its rollout row in the step, prompt, sample, position and string."""
    return {
        "row": int(row["row"]),
        "prompt_id": row["prompt_id"],
        "sample_idx": None if pd.isna(row["sample_idx"]) else int(row["sample_idx"]),
        "position": int(row["position"]),
        "token": None if pd.isna(row["token"]) else str(row["token"]),
    }


def _missing_list_reason(tokens: pd.DataFrame, columns: Sequence[str]) -> str:
    missing = [c for c in columns if c not in tokens or tokens[c].isna().all()]
    return f"no per-token {' / '.join(missing) or 'values'} stored for this step"


def entropy_changes(
    mean_entropy: np.ndarray, before: np.ndarray | None = None, after: np.ndarray | None = None
) -> tuple[np.ndarray, str]:
    """Per-step entropy change and where it comes from, over steps in order.

    Measured (``"measured"``): ``after - before`` of the update on the step's own tokens (the metrics
    ``entropy/before_update`` / ``entropy/after_update``), NaN where a step lacks them; used whenever any
    step has both. Otherwise (``"next_step"``): ``mean_entropy[s + 1] - mean_entropy[s]``, the change of
    the sampled tokens' mean entropy to the next logged step (NaN for the last step).
    """
    mean_entropy = np.asarray(mean_entropy, dtype=np.float64)
    if before is not None and after is not None:
        measured = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
        if np.isfinite(measured).any():
            return measured, "measured"
    change = np.full(mean_entropy.shape, np.nan)
    change[:-1] = mean_entropy[1:] - mean_entropy[:-1]
    return change, "next_step"


# ----------------------------------------------------------------------------------------------
# 2. The entropy-reward law


# ``fit_steps`` and ``fit_entropy_reward_law`` live in ``engine.analysis.fits``, with their intervals.


# ----------------------------------------------------------------------------------------------
# 3. Forking tokens


def entropy_distribution(entropy: np.ndarray, near_zero: float = NEAR_ZERO_NATS) -> dict:
    """Share of tokens below ``near_zero`` nats, mean and p50/p80/p90/p99 of per-token entropies.

    Percentiles interpolate linearly between order statistics (numpy's default, DuckDB's
    ``quantile_cont``). Non-finite values are ignored; all None without tokens.
    """
    e = np.asarray(entropy, dtype=np.float64)
    e = e[np.isfinite(e)]
    out: dict = {"n_tokens": int(e.size), "near_zero_threshold": near_zero}
    if not e.size:
        return {**out, "share_near_zero": None, "mean": None, **{f"p{q}": None for q in FORKING_PERCENTILES}}
    out["share_near_zero"] = float((e < near_zero).mean())
    out["mean"] = float(e.mean())
    for q, value in zip(FORKING_PERCENTILES, np.percentile(e, FORKING_PERCENTILES), strict=True):
        out[f"p{q}"] = float(value)
    return out


def top_entropy_tokens(tokens: pd.DataFrame, k: int = 20) -> list[dict]:
    """The ``k`` highest-entropy token positions of one step: row, prompt, position, token, entropy."""
    usable = tokens.dropna(subset=["entropy"]) if len(tokens) else tokens
    if not len(usable):
        return []
    top = usable.sort_values(["entropy", "row", "position"], ascending=[False, True, True]).head(k)
    return [{**_token_ref(row), "entropy": _num(row["entropy"])} for _, row in top.iterrows()]


# ----------------------------------------------------------------------------------------------
# 4. Gold against sqrt(KL)


# ``fit_gold_sqrt_kl`` lives in ``engine.analysis.fits``, with the interval of its peak.


# ----------------------------------------------------------------------------------------------
# The report


def entropy_report(
    run_dir: Path | str,
    fit_fraction: float = DEFAULT_FIT_FRACTION,
    *,
    token_step: int | None = None,
    top_k: int = 20,
    near_zero: float = NEAR_ZERO_NATS,
) -> dict:
    """Every analysis of one run directory as one JSON-ready dict (the ``analyse entropy`` contract).

    ``token_step``: the step whose tokens are listed (top covariance terms, highest entropies);
    default the step with the largest ``cov`` (the most entropy-collapsing one), else the last step.
    """
    from engine.store import (
        ENTROPY_AFTER_UPDATE,
        ENTROPY_BEFORE_UPDATE,
        entropy_step_stats,
        step_metrics,
        step_tokens,
    )

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist")
    fit_steps(2, fit_fraction)  # validates the fraction before any work
    stats = entropy_step_stats(run_dir, near_zero)
    if stats["run_id"].nunique() > 1:
        raise ConfigError(f"{run_dir} holds rollouts of several runs: {sorted(stats['run_id'].unique())}")
    report: dict = {"run_dir": str(run_dir), "fit_fraction": fit_fraction, "n_steps": int(len(stats))}
    if stats.empty:
        return {
            **report, "per_step": [], "entropy_change_source": None, "cov_entropy_corr": None,
            "cov_entropy_corr_interval": None, "cov_entropy_corr_reason": "no rollouts logged",
            "cov_reason": "no rollouts logged", "law": fit_entropy_reward_law([], [], fit_fraction),
            "law_gold": None, "forking": None, "top_cov_tokens": None, "gold_sqrt_kl": None,
        }  # fmt: skip
    metric_frame = step_metrics(run_dir, [ENTROPY_BEFORE_UPDATE, ENTROPY_AFTER_UPDATE, "objective/kl"])
    per = stats.merge(metric_frame.drop(columns="run_id"), on="step", how="left").sort_values("step")
    mean_entropy = per["mean_token_entropy"].fillna(per["mean_row_entropy"]).to_numpy(dtype=np.float64)
    change, source = entropy_changes(
        mean_entropy, per[ENTROPY_BEFORE_UPDATE].to_numpy(float), per[ENTROPY_AFTER_UPDATE].to_numpy(float)
    )
    cov = np.where(per["n_cov_tokens"].to_numpy() > 0, per["cov"].to_numpy(dtype=np.float64), np.nan)
    kl = per["mean_kl"].fillna(per["objective/kl"]).to_numpy(dtype=np.float64)
    steps = per["step"].to_numpy(dtype=int)
    report["per_step"] = [
        {
            "step": int(s),
            "cov": _num(c),
            "entropy_change": _num(dh),
            "mean_entropy": _num(h),
            "mean_reward": _num(r),
            "mean_gold": _num(g),
            "kl": _num(k_),
        }  # fmt: skip
        for s, c, dh, h, r, g, k_ in zip(
            steps, cov, change, mean_entropy, per["mean_reward"], per["mean_gold"], kl, strict=True
        )
    ]
    report["entropy_change_source"] = source
    report["cov_reason"] = None if np.isfinite(cov).any() else _cov_reason(per)
    corr = correlation_fit(cov, change)
    report["cov_entropy_corr"] = corr["r"]
    report["cov_entropy_corr_interval"] = corr["interval"]
    report["cov_entropy_corr_reason"] = corr["reason"]
    report["law"] = fit_entropy_reward_law(mean_entropy, per["mean_reward"].to_numpy(float), fit_fraction)
    has_gold = bool((per["n_gold"] > 0).any())
    gold = per["mean_gold"].to_numpy(dtype=np.float64)
    report["law_gold"] = fit_entropy_reward_law(mean_entropy, gold, fit_fraction) if has_gold else None
    report["gold_sqrt_kl"] = fit_gold_sqrt_kl(kl, gold) if has_gold else None

    if token_step is None:
        token_step = int(steps[np.nanargmax(cov)]) if np.isfinite(cov).any() else int(steps[-1])
    elif token_step not in set(steps.tolist()):
        raise ConfigError(f"step {token_step} is not logged in {run_dir} (steps {steps[0]}..{steps[-1]})")
    tokens = step_tokens(run_dir, token_step)
    at = int(np.flatnonzero(steps == token_step)[0])
    report["top_cov_tokens"] = {
        "step": token_step,
        **top_covariance_tokens(tokens, top_k, change[at] if source == "measured" else None),
    }
    report["forking"] = _forking(per, tokens, token_step, top_k, near_zero)
    return report


def _cov_reason(per: pd.DataFrame) -> str:
    missing = [c for c in ("logprob", "advantage") if int(per[f"rows_with_{c}"].sum()) == 0]
    if missing:
        return f"no per-token {' and '.join(missing)} stored in any rollout (column {', '.join(missing)} is null)"
    return "no token has both a finite logprob and advantage"


def _forking(per: pd.DataFrame, tokens: pd.DataFrame, token_step: int, top_k: int, near_zero: float) -> dict:
    keys = ("share_near_zero", *(f"p{q}" for q in FORKING_PERCENTILES))
    series = [
        {"step": int(row["step"]), "mean": _num(row["mean_token_entropy"]), **{k: _num(row[k]) for k in keys}}
        for _, row in per.iterrows()
        if row["n_entropy_tokens"] > 0
    ]
    if not series:
        return {"near_zero_threshold": near_zero, "reason": "no per-token entropy stored", "per_step": []}
    last, first = series[-1], series[0]
    return {
        "near_zero_threshold": near_zero,
        **last,
        "first_step": first,
        "per_step": series,
        "top_entropy_step": token_step,
        "top_entropy_tokens": top_entropy_tokens(tokens, top_k),
        "reason": None,
    }
