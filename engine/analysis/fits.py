"""The fits of a run's entropy dynamics, each with its bootstrap interval over steps
(``engine.analysis.uncertainty``) and each refusing a number on fewer than ``MIN_FIT_STEPS`` steps:

- the **entropy-reward law** ``R = -a * exp(H) + b`` (Cui et al. 2025, arXiv 2505.22617) and its
  ceiling ``b - a`` at zero entropy, and the room left: ceiling minus the last tenth's mean reward;
- **gold against sqrt(KL)** ``R_gold(d) = d * (alpha - beta * log d)`` (Gao et al. 2022, arXiv
  2210.10760) and its peak ``d* = exp(alpha / beta - 1)``; "past the peak" only when the whole
  interval of ``d*`` lies below the run's last ``d``;
- the **correlation** of two per-step series (the covariance driver against the entropy change).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from engine.analysis.uncertainty import (
    MIN_FIT_STEPS,
    bootstrap_interval,
    first_last_tenth,
    not_enough,
)
from engine.config import ConfigError

PEAK_EXPONENT_LIMIT = 50.0
"""A fitted peak beyond exp(50) in sqrt(KL) is "no peak in sight" (an unbounded interval end)."""


def _pairs(x: Sequence[float | None], y: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """The steps where both series are finite, in order, as float64."""
    a = np.array([np.nan if v is None else v for v in x], dtype=np.float64)
    b = np.array([np.nan if v is None else v for v in y], dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


# ----------------------------------------------------------------------------------------------
# The covariance correlation


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    da, db = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((da * da).sum()) * float((db * db).sum()))
    return float((da * db).sum() / denom) if denom > 0 else math.nan


def correlation(x: Sequence[float | None], y: Sequence[float | None]) -> float | None:
    """Pearson correlation over the pairs where both are finite; None with fewer than 3 or no spread."""
    a, b = _pairs(x, y)
    if len(a) < 3:
        return None
    r = _pearson(a, b)
    return None if math.isnan(r) else r


def correlation_fit(x: Sequence[float | None], y: Sequence[float | None]) -> dict:
    """``{"r", "interval", "n_steps", "reason"}``: the correlation with its bootstrap interval over
    steps; ``r`` None (with the reason) below ``MIN_FIT_STEPS`` steps or without spread."""
    a, b = _pairs(x, y)
    out = {"r": None, "interval": None, "n_steps": len(a)}
    if len(a) < MIN_FIT_STEPS:
        return {**out, "reason": not_enough(len(a))}
    r = correlation(a, b)
    if r is None:
        return {**out, "reason": "one of the series does not vary"}
    return {
        **out,
        "r": r,
        "interval": bootstrap_interval(len(a), lambda i: _pearson(a[i], b[i])),
        "reason": None,
    }


# ----------------------------------------------------------------------------------------------
# The entropy-reward law


def fit_steps(n_steps: int, fit_fraction: float) -> int:
    """How many leading steps a fit over ``fit_fraction`` of ``n_steps`` uses: ceil(fraction * n), >= 2."""
    if not (isinstance(fit_fraction, int | float) and 0 < fit_fraction <= 1):
        raise ConfigError(f"fit fraction must be in (0, 1], got {fit_fraction!r}")
    return min(n_steps, max(2, math.ceil(fit_fraction * n_steps - 1e-9)))


def _law(h: np.ndarray, r: np.ndarray) -> tuple[float, float] | None:
    """(a, b) of ``R = -a exp(H) + b`` by least squares (linear in ``x = exp(H)``); None when H is flat."""
    x = np.exp(h)
    var = float(((x - x.mean()) ** 2).sum())
    if var <= 1e-12 * max(1.0, float((x * x).sum())):
        return None
    c1 = float(((x - x.mean()) * (r - r.mean())).sum()) / var
    return -c1, float(r.mean()) - c1 * float(x.mean())


def fit_entropy_reward_law(
    entropy: Sequence[float | None],
    reward: Sequence[float | None],
    fit_fraction: float = 0.3,
    *,
    min_steps: int = MIN_FIT_STEPS,
) -> dict:
    """Least-squares fit of ``R = -a * exp(H) + b`` on the first ``fit_fraction`` of the steps.

    ``entropy`` and ``reward`` are per-step means in step order; steps where either is missing are
    dropped first. The law is linear in ``x = exp(H)``: ``R = c0 + c1 x`` with ``c1 = cov(x, R) / var(x)``,
    ``c0 = mean R - c1 mean x``; ``a = -c1``, ``b = c0``. Returns ``a``, ``b``, ``ceiling`` (``b - a``,
    R at H = 0) and ``ceiling_interval`` (bootstrap over the fitted steps), ``fit_steps``,
    ``rmse_later`` (RMSE of the law on the steps after the fit, None if none), ``final_measured`` /
    ``final_predicted`` (R at the last step, measured and from its H), ``final_tenth`` (the mean R of
    the last tenth of the steps), ``gain`` / ``gain_interval`` (ceiling minus ``final_tenth``: the room
    left), and ``reason`` (None when fitted; a refusal below ``min_steps`` fitted steps).
    """
    h, r = _pairs(entropy, reward)
    keys = ("a", "b", "ceiling", "ceiling_interval", "rmse_later", "final_measured", "final_predicted")
    out = dict.fromkeys((*keys, "final_tenth", "gain", "gain_interval"))
    n_fit = fit_steps(len(h), fit_fraction)
    out["fit_steps"] = n_fit
    if n_fit < max(2, min_steps):
        return {
            **out,
            "reason": f"{not_enough(n_fit, 'fitted steps')} (the first {fit_fraction:.0%} of {len(h)})",
        }
    coefficients = _law(h[:n_fit], r[:n_fit])
    if coefficients is None:
        return {
            **out,
            "reason": "mean entropy does not change over the fitted steps: the law is not identified",
        }
    a, b = coefficients
    predicted = -a * np.exp(h) + b
    later = slice(n_fit, None)
    hf, rf = h[:n_fit], r[:n_fit]

    def ceiling(idx: np.ndarray) -> float:
        refit = _law(hf[idx], rf[idx])
        return math.nan if refit is None else refit[1] - refit[0]

    interval = bootstrap_interval(n_fit, ceiling)
    final_tenth = first_last_tenth(r).last
    out.update(
        a=a,
        b=b,
        ceiling=b - a,
        ceiling_interval=interval,
        rmse_later=float(np.sqrt(np.mean((predicted[later] - r[later]) ** 2))) if len(h) > n_fit else None,
        final_measured=float(r[-1]),
        final_predicted=float(predicted[-1]),
        final_tenth=final_tenth,
        gain=b - a - final_tenth,
        gain_interval=None if interval is None else (interval[0] - final_tenth, interval[1] - final_tenth),
        reason=None,
    )
    return out


# ----------------------------------------------------------------------------------------------
# Gold against sqrt(KL)


def _gold_kl(d: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """(alpha, beta) of ``y = d (alpha - beta log d)`` by the 2x2 normal equations (no intercept);
    None when the features are collinear (sqrt(KL) barely varies)."""
    f1 = d
    f2 = -np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
    s11, s12, s22 = float(f1 @ f1), float(f1 @ f2), float(f2 @ f2)
    det = s11 * s22 - s12 * s12
    if det <= 1e-12 * max(1.0, s11 * s22):
        return None
    t1, t2 = float(f1 @ y), float(f2 @ y)
    return (s22 * t1 - s12 * t2) / det, (s11 * t2 - s12 * t1) / det


def _peak(alpha: float, beta: float) -> float:
    """The fitted peak ``d* = exp(alpha / beta - 1)``; ``inf`` when gold never turns down."""
    if beta <= 0 or alpha / beta - 1 > PEAK_EXPONENT_LIMIT:
        return math.inf
    return math.exp(alpha / beta - 1)


def peak_position(d_now: float, interval: tuple[float, float] | None) -> str:
    """Where the run's last sqrt(KL) is against the peak's interval: past or before it only when the
    whole interval says so."""
    if interval is None:
        return "undecided: too few resamples identify the peak"
    lo, hi = interval
    if hi < d_now:
        return "past the peak"
    if lo > d_now:
        return "before the peak"
    return "undecided: the peak's interval holds the run's sqrt(KL)"


def fit_gold_sqrt_kl(
    kl: Sequence[float | None], gold: Sequence[float | None], *, min_steps: int = MIN_FIT_STEPS
) -> dict | None:
    """Fit ``R(d) = d * (alpha - beta * log d)``, ``d = sqrt(KL)``, ``R`` = gold minus the first step's gold.

    Per-step mean KL to the reference (nats per sequence) and mean gold, in step order. The form is
    linear in the features ``d`` and ``-d log d`` (no intercept: R(0) = 0, Gao et al.'s convention), so
    the fit solves the 2x2 normal equations. When ``beta > 0`` the fitted gold peaks at
    ``d* = exp(alpha / beta - 1)`` with ``R(d*) = beta * d*``; ``d_peak_interval`` is its bootstrap
    interval over steps (an upper end ``inf``: in some resamples gold never turns down), and
    ``position`` compares the run's last ``d`` with that interval (:func:`peak_position`).
    None when no step has gold (no judge).
    """
    g_all = np.array([np.nan if v is None else v for v in gold], dtype=np.float64)
    if not np.isfinite(g_all).any():
        return None
    k, g = _pairs(kl, gold)
    names = (
        "alpha",
        "beta",
        "gold_offset",
        "d_peak",
        "kl_peak",
        "gold_peak",
        "d_now",
        "kl_now",
        "d_now_over_peak",
    )
    out = dict.fromkeys(names)
    out.update(position=None, d_peak_interval=None, n_steps=len(g))
    if len(g) < max(3, min_steps):
        return {**out, "reason": f"{not_enough(len(g))} with both gold and KL"}
    d = np.sqrt(np.clip(k, 0.0, None))  # a k1 KL estimate can dip below 0 early on
    offset = float(g[0])
    y = g - offset
    out.update(gold_offset=offset, d_now=float(d[-1]), kl_now=float(k[-1]))
    coefficients = _gold_kl(d, y)
    if coefficients is None:
        return {**out, "reason": "sqrt(KL) barely varies over the run: alpha and beta are not identified"}
    alpha, beta = coefficients

    def peak(idx: np.ndarray) -> float:
        refit = _gold_kl(d[idx], y[idx])
        return math.nan if refit is None else _peak(*refit)

    interval = bootstrap_interval(len(d), peak)
    out.update(alpha=alpha, beta=beta, d_peak_interval=interval, reason=None)
    d_peak = _peak(alpha, beta)
    if math.isinf(d_peak):
        out["reason"] = (
            "beta <= 0: fitted gold keeps rising with sqrt(KL), no over-optimisation peak"
            if beta <= 0
            else f"fitted peak beyond exp({PEAK_EXPONENT_LIMIT:g}): no over-optimisation in sight"
        )
        return out
    out.update(d_peak=d_peak, kl_peak=d_peak**2, gold_peak=offset + beta * d_peak)
    out["d_now_over_peak"] = out["d_now"] / d_peak
    out["position"] = peak_position(out["d_now"], interval)
    return out
