"""What the pages write about a run, as pure functions of its data: the runs table, the status and
curve captions, the trend of its curves ("gold rose while entropy fell") and the room its
entropy-reward law leaves (shared by the Runs page, Home, the Entropy dynamics page and the Learn path).
"""

from __future__ import annotations

import pandas as pd

from engine.runs import RunInfo

LIVE_STATES = ("running", "starting")


def runs_frame(runs: list[RunInfo], steps: dict[str, int]) -> pd.DataFrame:
    """The runs table: id, whose, state, progress (``steps``: the step shown per run), created, message."""
    return pd.DataFrame(
        [
            {
                "run": r.run_id,
                "whose": "demo (read-only)" if r.demo else "yours",
                "state": r.state,
                "step": f"{steps.get(r.run_id, r.step)}/{r.steps}"
                if r.steps
                else str(steps.get(r.run_id, r.step)),
                "created": r.created_at,
                "message": r.message,
            }
            for r in runs
        ],
        columns=["run", "whose", "state", "step", "created", "message"],
    )


def shown_step(status_step: int, logged: list[int]) -> int:
    """The step to show: the job's own, or the last logged one while a resumed job still loads
    (its status starts at 0 until it reaches its first step)."""
    return max([status_step, *logged])


def status_caption(status: dict | None, state: str, step: int) -> str:
    if not status:
        return f"state: **{state}**"
    steps = status.get("steps")
    text = f"state: **{state}** · step {step}" + (f" of {steps}" if steps else "")
    if state in LIVE_STATES and status.get("pid"):
        text += f" · pid {status['pid']}"
    if status.get("message"):
        text += f" · {status['message']}"
    return text


def curves_caption(*, kl_k3: bool, estimator: str, probes: bool) -> str:
    """Which KL estimator and which entropy the curves show, and why."""
    kl = (
        "**KL**: k3 = (r − 1) − log r with r = p_ref / p, summed over each response's tokens from the logged "
        f"log-probs: never negative (the trainer's own penalty uses {estimator}"
        + (
            ", whose per-token terms can be negative, so its sum can dip below 0)."
            if estimator == "k1"
            else ")."
        )
        if kl_k3
        else f"**KL**: the trainer's {estimator} estimate summed per response (no per-token log-probs logged)."
    )
    entropy = (
        "**Entropy**: on the fixed probe set (the same prompts at every probe step), so the curve follows the "
        "policy, not which prompts a step happened to draw."
        if probes
        else "**Entropy**: of each step's sampled batch. Each step samples other prompts, so it is noisy; a run "
        "with probes (`probe_every` > 0) shows the probe set's curve instead."
    )
    return f"{kl} {entropy} Faint points: single steps; lines: the moving average."


def first_and_last(frame: pd.DataFrame, key: str) -> tuple[float, float] | None:
    """Mean of ``key`` over the first and over the last tenth of the run's logged steps (at least one)."""
    rows = (
        frame[frame["key"] == key].sort_values("step")["value"] if not frame.empty else pd.Series(dtype=float)
    )
    if len(rows) < 2:
        return None
    k = max(1, len(rows) // 10)
    return float(rows.iloc[:k].mean()), float(rows.iloc[-k:].mean())


def shows_entropy_reduction(frame: pd.DataFrame, *, probes: bool) -> bool:
    """Whether this run's own curves show the claim: gold rose while (probe-set) entropy fell."""
    gold = first_and_last(frame, "objective/gold")
    entropy = first_and_last(frame, "probe/entropy" if probes else "objective/entropy")
    return gold is not None and entropy is not None and gold[1] > gold[0] and entropy[1] < entropy[0]


def trend_sentence(frame: pd.DataFrame, *, probes: bool) -> str:
    """What this run shows of the claim "gold rises while entropy falls", from its own curves."""
    entropy_key = "probe/entropy" if probes else "objective/entropy"
    parts = []
    for key, name in (
        ("objective/gold", "gold"),
        (entropy_key, "probe-set entropy" if probes else "batch entropy"),
    ):
        ends = first_and_last(frame, key)
        if ends is not None:
            arrow = "rose" if ends[1] > ends[0] else "fell"
            parts.append(f"{name} {arrow} from {ends[0]:#.3g} to {ends[1]:#.3g}")  # 1.00, not 1
    if not parts:
        return ""
    return "**On this run** (first vs last tenth of its steps): " + "; ".join(parts) + "."


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
