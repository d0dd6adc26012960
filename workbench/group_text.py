"""What the pages write about two runs side by side, group methods and the ceiling, as pure functions
of the data (the companion of ``workbench.run_text``, which holds a single run's findings): how two
runs end on a metric, whether the run with more gold is the narrower one, what the group filters drop,
where pass@k curves cross. Each is tested with data pointing both ways (tests/test_group_pages.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from engine.analysis.coverage import PassGap
from engine.analysis.uncertainty import NOISE_Z, first_last_tenth, step_noise


def _runs_series(metrics: pd.DataFrame, run: str, key: str) -> list[float]:
    """One run's values of ``key`` from a long (run_id, step, key, value) frame, in step order."""
    if metrics.empty:
        return []
    rows = metrics[(metrics["run_id"] == run) & (metrics["key"] == key)]
    return rows.sort_values("step")["value"].tolist()


def _last_gap(
    metrics: pd.DataFrame, runs: list[str], key: str
) -> tuple[dict[str, float], float, bool, float | None] | None:
    """The last-tenth mean of ``key`` per run, run a's minus run b's, whether that gap is more than
    the step-to-step noise of the two (``NOISE_Z`` standard errors of the difference of the two
    last-tenth means), and that standard error (None below 3 points a run); None when a run has fewer
    than two points of ``key``."""
    a, b = runs
    ends = {run: first_last_tenth(_runs_series(metrics, run, key)) for run in runs}
    if ends[a] is None or ends[b] is None:
        return None
    gap = ends[a].last - ends[b].last
    # each Ends.se is the s.e. of a difference of two tenth means; one tenth mean's is se / sqrt(2)
    se = (
        None
        if ends[a].se is None or ends[b].se is None
        else math.hypot(ends[a].se, ends[b].se) / math.sqrt(2)
    )
    return {run: e.last for run, e in ends.items()}, gap, se is not None and abs(gap) > NOISE_Z * se, se


def compare_sentence(metrics: pd.DataFrame, runs: list[str], key: str, name: str) -> str | None:
    """How two runs end on one metric: the means of their last tenths, which is higher, and whether
    the gap is more than the step-to-step noise; None when a run has fewer than two points of ``key``."""
    found = _last_gap(metrics, runs, key)
    if found is None:
        return None
    last, gap, clear, se = found
    a, b = runs
    interval = (
        "" if se is None else f"; the gap {abs(gap):#.2g} ± {NOISE_Z * se:#.2g}, {NOISE_Z:g} standard errors"
    )
    values = f"{name} ends at {last[a]:#.3g} on `{a}` and {last[b]:#.3g} on `{b}` (last tenth of each run{interval})"
    if not clear:
        return f"{values}: within the step-to-step noise of each other."
    higher, lower = (a, b) if gap > 0 else (b, a)
    return f"{values}: `{higher}` ends higher than `{lower}` by {abs(gap):#.2g}, more than the step-to-step noise."


def methods_sentence(metrics: pd.DataFrame, runs: list[str], entropy_key: str) -> str | None:
    """PPO beside a group method (``runs``: the two runs, same start and steps): does the run that ends
    with more gold also end with less entropy (it narrowed further, and that bought the gold), or not;
    None when a run lacks gold or entropy."""
    gold, entropy = _last_gap(metrics, runs, "objective/gold"), _last_gap(metrics, runs, entropy_key)
    if gold is None or entropy is None:
        return None
    (_, gold_gap, gold_clear, _), (_, entropy_gap, entropy_clear, _) = gold, entropy
    if not gold_clear:
        return "Both end with about the same gold (within the step-to-step noise): on this world the baseline matters little."
    better, other = (runs[0], runs[1]) if gold_gap > 0 else (runs[1], runs[0])
    if not entropy_clear:
        return (f"`{better}` ends with more gold than `{other}`, at about the same entropy: here the gold "
                "gap is not bought by narrowing further.")  # fmt: skip
    if (entropy_gap < 0) == (gold_gap > 0):
        return (f"`{better}` ends with more gold and less entropy than `{other}`: it narrowed the "
                "sampling space further, and that is what bought the gold.")  # fmt: skip
    return (f"`{better}` ends with more gold *and* more entropy than `{other}`: the other run narrowed "
            "further yet gained less, so narrowing alone does not buy gold; which answers keep the mass matters.")  # fmt: skip


def groups_sentence(overall: dict | None, has_gold: bool) -> str:
    """What the group audit finds over a run: how many groups carry no signal (zero reward std, advantage
    0 under GRPO/RLOO), what the mean filter and the binary gold gate would drop beside the std filter,
    and how many phantom-advantage groups (all fail by gold, rewards still vary) the run has."""
    if not overall or not overall["n_groups"]:
        return "No group (the samples of one prompt at one step) with a finite reward in this run."
    zero = overall["frac_zero_std"]
    parts = [
        f"Of {overall['n_groups']:,} groups, {zero:.0%} have zero reward std"
        + (
            " (GRPO and RLOO give them advantage 0; the std filter drops exactly these)"
            if zero > 0
            else ": no group is without signal, so the std filter drops nothing"
        ),  # fmt: skip
        f"the mean filter would drop {overall['mean_filter_drop']:.0%}",
    ]
    if not has_gold:
        return (
            "; ".join(parts) + ". Without gold scores the binary gate and the phantom groups cannot be found."
        )
    gate = overall["binary_gate_drop"]
    parts.append(
        f"the binary gold gate {gate:.0%}"
        + (
            ", more than the std filter: groups whose samples all pass or all fail by gold while the reward "
            "still varies"
            if gate > zero
            else ", no more than the std filter"
        )  # fmt: skip
    )
    phantom = overall["n_phantom"]
    if phantom:
        tail = (f"{phantom:,} phantom-advantage groups: every sample fails by gold, yet the rewards vary, "
                "so the update pushes them apart with nothing correct to learn from (listed below)")  # fmt: skip
    else:
        tail = "no phantom-advantage group: every group whose samples all fail by gold also has equal rewards"
    return "; ".join(parts) + ". " + tail[0].upper() + tail[1:] + "."


def ceiling_sentence(
    curves: dict[str, dict[int, float]],
    start: str,
    policy: str,
    crossing: int | None,
    gaps: dict[int, PassGap] | None = None,
) -> str:
    """Where a trained policy stands against its start on pass@k: who is higher at k = 1 and at the
    largest k measured, and whether the curves cross (the sampling-space ceiling) or not; with ``gaps``
    (:func:`engine.analysis.coverage.pass_at_k_gaps` of ``policy`` minus ``start``) each difference
    carries its interval over prompts and a crossing whose far side is within it says so."""
    ks = sorted(set(curves[start]) & set(curves[policy]))
    low, high = ks[0], ks[-1]

    def at(k: int) -> str:
        text = f"{curves[policy][k]:.2f} for `{policy}` vs {curves[start][k]:.2f} for `{start}`"
        gap = (gaps or {}).get(k)
        if gap is not None and gap.se is not None:
            noisy = abs(gap.gap) <= NOISE_Z * gap.se
            text += (f" (difference {gap.gap:+.2f} ± {NOISE_Z * gap.se:.2f}, {NOISE_Z:g} standard errors over "
                     f"{gap.n_prompts} prompts{': within the noise' if noisy else ''})")  # fmt: skip
        return text

    ends = f"pass@{low}: {at(low)}; pass@{high}: {at(high)}"
    far = (gaps or {}).get(high)
    unsure = far is not None and (far.se is None or abs(far.gap) <= NOISE_Z * far.se)
    if crossing is not None:
        first = policy if curves[policy][low] > curves[start][low] else start
        other = start if first == policy else policy
        text = (
            f"{ends}. The curves cross at k = {crossing}: `{first}` wins at small k, `{other}` from "
            f"k = {crossing} on" + (" — the start's sampling space covers more than the trained policy "
            "reaches, the ceiling PPO works under." if other == start else ".")
        )  # fmt: skip
        if unsure:
            text += f" But at k = {high} the difference is within the noise: this run does not show it beyond doubt."
        return text
    above = policy if curves[policy][high] >= curves[start][high] else start
    return (f"{ends}. The curves do not cross up to k = {high}: `{above}` is at or above at every k measured, "
            "so on this run they do not cross.")  # fmt: skip


def same_start_sentence(
    metrics: pd.DataFrame, runs: list[str], key: str, name: str, until: int
) -> str | None:
    """Two runs of one config and seed that part at step ``until`` (the first RM refresh): the largest
    difference of ``key`` over the steps before it, which is 0 when they are one run until then; None
    without a shared step before ``until``."""
    a, b = (metrics[(metrics["run_id"] == r) & (metrics["key"] == key) & (metrics["step"] < until)]
            .set_index("step")["value"] for r in runs)  # fmt: skip
    shared = a.index.intersection(b.index)
    if shared.empty:
        return None
    largest = float((a.loc[shared] - b.loc[shared]).abs().max())
    before = f"Up to the first RM refresh (step {until}) the two runs share their config and seed"
    if largest == 0:
        return f"{before}: they are one run, the same {name} at each of the {len(shared)} steps."
    return f"{before}, yet their {name} differs by up to {largest:.2g} over those {len(shared)} steps: not one run bit for bit."


def refresh_sentence(metrics: pd.DataFrame, base: str, refreshed: str, agreement_key: str) -> str | None:
    """What an RM refresh did, from the last tenths of two runs over the same steps (``refreshed``
    minus ``base``): whether the refreshed RM ends more accurate on what PPO samples (``agreement_key``)
    and whether the run ends with more gold, each beyond the step-to-step noise or not; None when a run
    lacks either series."""
    runs = [refreshed, base]
    gold, agreement = _last_gap(metrics, runs, "objective/gold"), _last_gap(metrics, runs, agreement_key)
    if gold is None or agreement is None:
        return None
    (_, gold_gap, gold_clear, _), (_, agreement_gap, agreement_clear, _) = gold, agreement
    if not agreement_clear:
        return ("The two RMs end within the noise of each other on what PPO samples: this run does not show "
                "the refresh keeping the RM accurate.")  # fmt: skip
    if agreement_gap < 0:
        return (f"`{refreshed}`'s RM ends *less* accurate on what PPO samples than `{base}`'s, never refreshed: "
                "this run shows the opposite of the remedy.")  # fmt: skip
    accurate = f"Refreshing the RM from PPO's own samples kept it more accurate where PPO samples (`{refreshed}` vs `{base}`)"
    if not gold_clear:
        return f"{accurate}, but the final gold is within the noise of each other: this run does not show a gold gain from it."
    if gold_gap < 0:
        return f"{accurate}, yet `{refreshed}` ends with *less* gold: this run does not show the remedy paying off in gold."
    return f"{accurate} and it ends with more gold: on this run the remedy works."


def selection_sentence(steps: Sequence[int], high: Sequence[float], low: Sequence[float]) -> str:
    """Two PPO runs on prompts chosen by high vs low RM-score variance, held-out gold at ``steps``: which
    gained more from the first to the last step, against the step-to-step noise of the two series
    (:func:`engine.analysis.uncertainty.step_noise`; the shared start counts once when both start from
    the same value)."""
    gains = high[-1] - high[0], low[-1] - low[0]
    noise = step_noise(high), step_noise(low)
    span = f"from step {steps[0]} to {steps[-1]}"
    if None in noise:
        return (f"Held-out gold {span}: {gains[0]:+.3f} on the high-variance prompts, {gains[1]:+.3f} on the "
                "low-variance ones (too few points to tell them from noise).")  # fmt: skip
    shared = high[0] == low[0]  # one measurement of the start: only the two ends are noisy
    se = math.sqrt((noise[0] ** 2 + noise[1] ** 2) * (1 if shared else 2))
    diff = gains[0] - gains[1]
    values = (f"held-out gold {span} changed by {gains[0]:+.3f} on the high-variance prompts and by "
              f"{gains[1]:+.3f} on the low-variance ones (difference {diff:+.3f} ± {NOISE_Z * se:.3f}, "
              f"{NOISE_Z:g} standard errors of the step-to-step noise; one seed per arm)")  # fmt: skip
    if abs(diff) <= NOISE_Z * se:
        return f"**This measurement does not tell them apart**: {values}."
    more = "high" if diff > 0 else "low"
    return f"**The {more}-variance prompts gained more**: {values}."
