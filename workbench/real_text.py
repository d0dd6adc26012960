"""Sentences of the Learn step "the same on a real model": each a function of the run's own curves
(first vs last tenth of the logged steps, :func:`engine.analysis.uncertainty.first_last_tenth`, with
the standard error of the change) or of ``real check``'s entries (held-out R1-R3, what the learned RM
costs, with their intervals), worded by what the data says, "this run does not show it" included."""

from __future__ import annotations

from collections.abc import Sequence

from engine.analysis.uncertainty import NOISE_Z, Ends, first_last_tenth, interval_text


def _change(ends: Ends, spec: str) -> str:
    se = "no noise estimate" if ends.se is None else f"± {format(NOISE_Z * ends.se, spec)}"
    return (
        f"from {format(ends.first, spec)} to {format(ends.last, spec)} "
        f"({format(ends.change, '+' + spec)}, {se}; first vs last tenth of {ends.n} steps)"
    )


def claim_sentence(
    values: Sequence[float | None], name: str, claim: str, *, up: bool, spec: str = ".3f"
) -> str:
    """``name`` went from a to b (change ± 2 SE); whether that shows ``claim`` (a change in the
    direction ``up``, beyond the noise) or "this run does not show it"."""
    ends = first_last_tenth(values)
    if ends is None:
        return f"{name}: too few logged steps; this run does not show {claim}."
    text = f"{name} went {_change(ends, spec)}"
    if ends.noisy:
        return f"{text}: within the step-to-step noise, so this run does not show {claim}."
    if (ends.change > 0) == up:
        return f"{text}: this run shows {claim}."
    return f"{text}: the other way, so this run does not show {claim}."


def held_out_sentence(entry: dict, claim: str) -> str:
    """A ``real check`` entry (R1-R3: start -> end with its 90 % interval) and whether it shows
    ``claim`` (its ``ok``) or "this run does not show it"."""
    verdict = f"this run shows {claim}" if entry.get("ok") else f"this run does not show {claim}"
    return f"{entry['detail'][0].upper()}{entry['detail'][1:]}: {verdict}."


def rm_cost_sentence(entry: dict) -> str:
    """``real check``'s ``rm_cost`` (the held-out checker accuracy gain of the run rewarded by the
    checker itself minus the RM run's, with its 90 % interval) in words: a cost where the interval
    lies above 0; else "this run does not show it", saying why."""
    if entry.get("value") is None:
        return f"What the learned RM costs: {entry['detail']}."
    rm, checker, cost, interval = entry["rm_run"], entry["checker_run"], entry["value"], entry.get("interval")
    text = (
        f"On the same {entry['n_prompts']} held-out tasks, checker accuracy gained {checker['gain']:+.3f} with "
        f"the checker as the reward (`{checker['run_id']}`) and {rm['gain']:+.3f} with the learned RM "
        f"(`{rm['run_id']}`), checker minus RM {cost:+.3f} ({interval_text(interval)})"
    )
    if interval is None:
        verdict = "too few tasks for an interval, so this run does not show what the learned RM costs"
    elif interval[0] > 0:
        verdict = f"this run shows what the learned RM costs: {cost:.2f} of held-out accuracy"
    elif interval[1] < 0:
        verdict = "the RM run gained more, so this run does not show a cost of the learned RM"
    else:
        verdict = "the interval holds 0, so this run does not show what the learned RM costs"
    differ = entry.get("settings_differ") or []
    more = f" (the two runs differ in more than the reward: {', '.join(differ)})" if differ else ""
    return f"{text}: {verdict}{more}."
