"""Words of the entropy analyses shared by the Entropy dynamics page, the Runs page and the Learn path."""

from __future__ import annotations


def room_left(report: dict) -> str | None:
    """'At this entropy, this run can still gain about X' from an ``entropy_report`` (its fit of
    ``R = -a exp(H) + b`` on the first steps, the ceiling ``b - a`` at zero entropy); None when the
    law could not be fitted."""
    law = report.get("law") or {}
    if law.get("reason") or law.get("ceiling") is None:
        return None
    per_step = report.get("per_step") or []
    h_now = per_step[-1]["mean_entropy"] if per_step else float("nan")
    gain = law["ceiling"] - law["final_measured"]
    fitted = f"fitted on the first {law['fit_steps']} steps, last step measured {law['final_measured']:.3g}"
    if gain > 0:
        text = (
            f"At this entropy ({h_now:.3g} nats), this run can still gain about **{gain:.3g}** in RM "
            f"reward: the entropy-reward law's ceiling is {law['ceiling']:.3g} ({fitted})."
        )
    else:
        text = (
            f"The run is already at or past the law's ceiling of {law['ceiling']:.3g} ({fitted}): the law "
            "fitted on the early steps does not describe this run's later steps, or the reward is gamed."
        )
    gold = report.get("law_gold") or {}
    if gold.get("ceiling") is not None:
        text += f" On gold: ceiling {gold['ceiling']:.3g}, room left {gold['ceiling'] - gold['final_measured']:.3g}."
    return text
