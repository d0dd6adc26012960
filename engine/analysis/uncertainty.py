"""How sure a number of a run is: the one definition of "first vs last tenth" with its step-to-step
noise, and the bootstrap over steps that gives a fit its interval.

**First vs last tenth** (:func:`first_last_tenth`): over the points a series logged (a probe metric
logged every 5 steps has a fifth of the run's steps), the mean of the first ``k = max(1, n // 10)``
points and of the last ``k``. The README, Home, Runs and ``demo figures`` all use it.

**Step-to-step noise**: ``sigma`` of one point around the series' trend, estimated from the first
differences, ``sigma^2 = var(diff) / 2`` (the differences of a smooth trend are nearly constant, so
their spread is the noise's; ``/ 2``: a difference holds two points' noise). Each tenth's mean then
has a standard error ``sigma / sqrt(k)`` and their difference ``sigma * sqrt(2 / k)``; the change is
**noisy** when it is within :data:`NOISE_Z` of those standard errors. Fewer than 3 points: no noise
estimate, and the change counts as noisy (nothing tells it from noise).

**Bootstrap over steps** (:func:`bootstrap_interval`): the steps a fit uses are drawn with replacement
:data:`BOOTSTRAP_RESAMPLES` times (``numpy.random.default_rng(BOOTSTRAP_SEED)``, one draw of ``n``
indices per resample), the fit is redone on each, and the interval is the central
:data:`INTERVAL_LEVEL` of the refits (order statistics ``floor((1 - level) / 2 * m)`` and
``ceil((1 + level) / 2 * m) - 1`` of the ``m`` refits that gave a number). Steps are treated as
exchangeable: the interval ignores that neighbouring steps are correlated, so it is, if anything, too
narrow. A fit refuses to give a number on fewer than :data:`MIN_FIT_STEPS` steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

MIN_FIT_STEPS = 10
"""A fit (entropy-reward law, gold vs sqrt(KL), the covariance correlation) needs this many steps."""
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
INTERVAL_LEVEL = 0.9
NOISE_Z = 2.0
"""A first-vs-last change within this many standard errors of the difference is "noisy"."""


def finite(values: Sequence[float | None]) -> np.ndarray:
    """The finite values of a sequence (None and NaN dropped), in order, as float64."""
    a = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return a[np.isfinite(a)]


def not_enough(n: int, what: str = "steps") -> str:
    """The refusal of a fit on too few points: "not enough steps: 3 of at least 10"."""
    return f"not enough {what}: {n} of at least {MIN_FIT_STEPS}"


def tenth(n: int) -> int:
    """How many points "a tenth" of ``n`` points is: ``max(1, n // 10)``."""
    return max(1, n // 10)


def step_noise(values: Sequence[float | None]) -> float | None:
    """``sigma`` of one point around the trend, ``sqrt(var(diff) / 2)``; None below 3 finite points."""
    v = finite(values)
    if len(v) < 3:
        return None
    return math.sqrt(float(np.var(np.diff(v), ddof=1)) / 2)


@dataclass(frozen=True)
class Ends:
    """A series' first and last tenth: their means, the change, its standard error and whether it is
    within the noise. ``k``: points per tenth, ``n``: points in all."""

    first: float
    last: float
    se: float | None
    k: int
    n: int

    @property
    def change(self) -> float:
        return self.last - self.first

    @property
    def noisy(self) -> bool:
        return self.se is None or abs(self.change) <= NOISE_Z * self.se


def first_last_tenth(values: Sequence[float | None]) -> Ends | None:
    """The first and last tenth of a series in step order (see the module docstring); None below 2 points."""
    v = finite(values)
    if len(v) < 2:
        return None
    k = tenth(len(v))
    sigma = step_noise(v)
    se = None if sigma is None else sigma * math.sqrt(2 / k)
    return Ends(first=float(v[:k].mean()), last=float(v[-k:].mean()), se=se, k=k, n=len(v))


def bootstrap_interval(
    n: int,
    statistic: Callable[[np.ndarray], float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = INTERVAL_LEVEL,
) -> tuple[float, float] | None:
    """The central ``level`` interval of ``statistic`` over resamples of ``n`` steps (indices drawn
    with replacement). ``statistic(idx)`` returns a float: NaN where the resample does not identify it
    (left out), ``inf`` where it is unbounded (kept: an interval may be open to one side). None when
    fewer than half the resamples give a number."""
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(resamples)], dtype=np.float64)
    values = np.sort(values[~np.isnan(values)])
    m = len(values)
    if m < resamples / 2:
        return None
    return float(values[math.floor((1 - level) / 2 * m)]), float(values[math.ceil((1 + level) / 2 * m) - 1])


def interval_text(interval: tuple[float, float] | None, spec: str = ".3g") -> str:
    """ "90 % interval 0.41 to 0.52" (an unbounded end as "no bound"), or "no interval"."""
    if interval is None:
        return "no interval"
    lo, hi = (format(x, spec) if math.isfinite(x) else "no bound" for x in interval)
    return f"{INTERVAL_LEVEL:.0%} interval {lo} to {hi}"


def wilson_interval(share: float, n: int, level: float = INTERVAL_LEVEL) -> tuple[float, float] | None:
    """The Wilson score interval of a share observed over ``n`` trials (a share of 0 or 1 still gets
    a width, where the plain binomial standard error would claim certainty); None for no trials."""
    if n <= 0 or not math.isfinite(share):
        return None
    z = _normal_quantile((1 + level) / 2)
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def share_difference_interval(
    a: float, n_a: int, b: float, n_b: int, level: float = INTERVAL_LEVEL
) -> tuple[float, float] | None:
    """The interval of ``b - a`` for two independent shares: Newcombe's hybrid score method (1998),
    which combines each share's Wilson interval."""
    ia, ib = wilson_interval(a, n_a, level), wilson_interval(b, n_b, level)
    if ia is None or ib is None:
        return None
    d = b - a
    return d - math.hypot(b - ib[0], ia[1] - a), d + math.hypot(ib[1] - b, a - ia[0])


def _normal_quantile(p: float) -> float:
    """The standard normal quantile (by bisection on erf: exact to 1e-12, no scipy)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
