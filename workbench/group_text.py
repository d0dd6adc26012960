"""What the pages write about two runs side by side, group methods and the ceiling, as pure functions
of the data (the companion of ``workbench.run_text``, which holds a single run's findings): how two
runs end on a metric, whether the run with more gold is the narrower one, what the group filters drop,
where pass@k curves cross. Each is tested with data pointing both ways (tests/test_group_pages.py).
"""

from __future__ import annotations

import math

import pandas as pd

from engine.analysis.uncertainty import NOISE_Z, first_last_tenth


def _runs_series(metrics: pd.DataFrame, run: str, key: str) -> list[float]:
    """One run's values of ``key`` from a long (run_id, step, key, value) frame, in step order."""
    if metrics.empty:
        return []
    rows = metrics[(metrics["run_id"] == run) & (metrics["key"] == key)]
    return rows.sort_values("step")["value"].tolist()


def _last_gap(
    metrics: pd.DataFrame, runs: list[str], key: str
) -> tuple[dict[str, float], float, bool] | None:
    """The last-tenth mean of ``key`` per run, run a's minus run b's, and whether that gap is more than
    the step-to-step noise of the two (``NOISE_Z`` standard errors of the difference of the two
    last-tenth means); None when a run has fewer than two points of ``key``."""
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
    return {run: e.last for run, e in ends.items()}, gap, se is not None and abs(gap) > NOISE_Z * se


def compare_sentence(metrics: pd.DataFrame, runs: list[str], key: str, name: str) -> str | None:
    """How two runs end on one metric: the means of their last tenths, which is higher, and whether
    the gap is more than the step-to-step noise; None when a run has fewer than two points of ``key``."""
    found = _last_gap(metrics, runs, key)
    if found is None:
        return None
    last, gap, clear = found
    a, b = runs
    values = f"{name} ends at {last[a]:#.3g} on `{a}` and {last[b]:#.3g} on `{b}` (last tenth of each run)"
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
    (_, gold_gap, gold_clear), (_, entropy_gap, entropy_clear) = gold, entropy
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
    curves: dict[str, dict[int, float]], start: str, policy: str, crossing: int | None
) -> str:
    """Where a trained policy stands against its start on pass@k: who is higher at k = 1 and at the
    largest k measured, and whether the curves cross (the sampling-space ceiling) or not."""
    ks = sorted(set(curves[start]) & set(curves[policy]))
    low, high = ks[0], ks[-1]
    ends = (
        f"pass@{low}: {curves[policy][low]:.2f} for `{policy}` vs {curves[start][low]:.2f} for `{start}`; "
        f"pass@{high}: {curves[policy][high]:.2f} vs {curves[start][high]:.2f}"
    )
    if crossing is not None:
        first = policy if curves[policy][low] > curves[start][low] else start
        other = start if first == policy else policy
        return (
            f"{ends}. The curves cross at k = {crossing}: `{first}` wins at small k, `{other}` from "
            f"k = {crossing} on" + (" — the start's sampling space covers more than the trained policy "
            "reaches, the ceiling PPO works under." if other == start else ".")
        )  # fmt: skip
    above = policy if curves[policy][high] >= curves[start][high] else start
    return f"{ends}. The curves do not cross up to k = {high}: `{above}` is at or above at every k measured."
