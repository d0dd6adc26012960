"""What the pages write about a run, as pure functions of its data: the runs table, the status and
curve captions, and every sentence that states a finding (shared by the Runs page, Home, the Entropy
dynamics page and the Learn path).

A finding's wording is chosen from the data it describes, including "this run does not show it": the
trend of the curves (first vs last tenth against the step-to-step noise, ``engine.analysis.uncertainty``),
the room the entropy-reward law leaves, the covariance share, the forking-token distribution, the
peak of gold against sqrt(KL), the data-range comparison of prompt families and a probe prompt's path.
Each is tested with data pointing both ways (tests/test_run_text.py).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from engine.analysis.uncertainty import NOISE_Z, Ends, first_last_tenth, interval_text
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


def _series(frame: pd.DataFrame, key: str) -> list[float]:
    """The values of one metric ``key`` of a long (step, key, value) frame, in step order."""
    if frame.empty:
        return []
    return frame[frame["key"] == key].sort_values("step")["value"].tolist()


def first_and_last(frame: pd.DataFrame, key: str) -> tuple[float, float] | None:
    """Mean of ``key`` over the first and the last tenth of its logged points (``first_last_tenth``)."""
    ends = first_last_tenth(_series(frame, key))
    return None if ends is None else (ends.first, ends.last)


def _moved(ends: Ends | None, up: bool) -> bool:
    """Whether a series moved the way ``up`` says by more than its noise."""
    return ends is not None and not ends.noisy and (ends.change > 0) == up


def shows_entropy_reduction(frame: pd.DataFrame, *, probes: bool) -> bool:
    """Whether this run's own curves show the claim: gold rose while (probe-set) entropy fell, each
    by more than its step-to-step noise."""
    gold = first_and_last_tenth(frame, "objective/gold")
    entropy = first_and_last_tenth(frame, "probe/entropy" if probes else "objective/entropy")
    return _moved(gold, True) and _moved(entropy, False)


def first_and_last_tenth(frame: pd.DataFrame, key: str) -> Ends | None:
    return first_last_tenth(_series(frame, key))


def change_text(name: str, ends: Ends, spec: str = "#.3g", unit: str = "") -> str:
    """ "gold rose from 0.367 to 0.502", or "... went from ... to ..., within the step-to-step noise"."""
    values = f"{format(ends.first, spec)} to {format(ends.last, spec)}{unit}"  # #.3g: 1.00, not 1
    if ends.noisy:
        return f"{name} went from {values}, within the step-to-step noise"
    return f"{name} {'rose' if ends.change > 0 else 'fell'} from {values}"


def trend_sentence(frame: pd.DataFrame, *, probes: bool) -> str:
    """What this run shows of the claim "gold rises while entropy falls", from its own curves."""
    entropy_key = "probe/entropy" if probes else "objective/entropy"
    parts = []
    for key, name in (
        ("objective/gold", "gold"),
        (entropy_key, "probe-set entropy" if probes else "batch entropy"),
    ):
        ends = first_and_last_tenth(frame, key)
        if ends is not None:
            parts.append(change_text(name, ends))
    if not parts:
        return ""
    return "**On this run** (first vs last tenth of its logged points): " + "; ".join(parts) + "."


def room_left(report: dict) -> str | None:
    """'At this entropy, this run can still gain about X' from an ``entropy_report`` (its fit of
    ``R = -a exp(H) + b`` on the first steps, the ceiling ``b - a`` at zero entropy, the gain against
    the last tenth's mean reward, with its interval); the refusal when the law cannot be fitted."""
    law = report.get("law") or {}
    if law.get("reason") or law.get("ceiling") is None:
        return f"No room-left estimate: {law['reason']}." if law.get("reason") else None
    per_step = report.get("per_step") or []
    h_now = per_step[-1]["mean_entropy"] if per_step else float("nan")
    gain, interval = law["gain"], law.get("gain_interval")
    fitted = (
        f"ceiling {law['ceiling']:.3g}, {interval_text(law.get('ceiling_interval'))}, fitted on the first "
        f"{law['fit_steps']} steps; the last tenth of the run averages {law['final_tenth']:.3g}"
    )
    if interval is not None and interval[0] > 0:
        text = (
            f"At this entropy ({h_now:.3g} nats), this run can still gain about **{gain:.3g}** in RM "
            f"reward ({interval_text(interval)}) by the entropy-reward law ({fitted})."
        )
    elif interval is not None and interval[1] < 0:
        text = (
            f"The run is past the law's ceiling by {-gain:.3g} ({interval_text(interval)}; {fitted}): the law "
            "fitted on the early steps does not describe this run's later steps, or the reward is gamed."
        )
    else:
        text = (
            f"By the entropy-reward law this run can still gain about {gain:.3g} in RM reward, but the "
            f"{interval_text(interval)} includes zero ({fitted}): this run does not show whether room is left."
        )
    gold = report.get("law_gold") or {}
    if gold.get("ceiling") is not None:
        text += f" On gold: room left {gold['gain']:.3g} ({interval_text(gold.get('gain_interval'))})."
    return text


def correlation_sentence(report: dict) -> str:
    """The covariance correlation with its interval against Cui et al.'s prediction (negative)."""
    r, interval = report.get("cov_entropy_corr"), report.get("cov_entropy_corr_interval")
    if r is None:
        return f"No correlation of cov with the entropy change: {report.get('cov_entropy_corr_reason')}."
    text = f"Correlation of cov with the entropy change: {r:+.2f} ({interval_text(interval, '+.2f')}). "
    if interval is not None and interval[1] < 0:
        return text + "Negative, as Cui et al. predict: this run shows it."
    if interval is not None and interval[0] > 0:
        return text + "Positive: this run shows the opposite of Cui et al.'s prediction (a negative one)."
    return text + "The interval includes zero: this run does not show Cui et al.'s negative correlation."


def cov_share_sentence(top: dict) -> str | None:
    """What the listed tokens carry of the step's covariance: a share of the positive terms (never
    above 100 %), and their sum against the net covariance, named as a ratio when it exceeds it."""
    share, ratio = top.get("share"), top.get("ratio_to_net")
    if share is None or ratio is None:
        return None
    n = len(top.get("tokens") or [])
    text = f"These {n} tokens carry {share:.0%} of the step's positive covariance terms (those predicting an entropy drop)"
    if ratio > 1:
        return (
            text + f"; their terms add up to {ratio:.2f}× the step's net covariance, because other tokens' "
            "terms are negative and offset part of it."
        )
    return text + f" and {ratio:.0%} of its net covariance."


def forking_sentence(forking: dict) -> str:
    """What the per-token entropy distribution says: near-deterministic only when most tokens are
    below the threshold, and how the mean, median and 90th percentile moved (first vs last tenth);
    the verdict reads the mean, so a falling top with a rising middle is not called a reduction."""
    share, threshold, p50 = forking.get("share_near_zero"), forking["near_zero_threshold"], forking.get("p50")
    if share is None:
        return "No tokens to read a distribution from."
    if share >= 0.5:
        text = (
            f"Most tokens ({share:.0%}) are near-deterministic (below {threshold:g} nats), as in Wang et al.; "
            "the few high-entropy **forking tokens** decide where a response goes."
        )
    else:
        text = (
            f"Only {share:.1%} of these tokens are below {threshold:g} nats (Wang et al. found over "
            f"half): the median token has {p50:.2g} nats, so here most tokens are not "
            "near-deterministic, and the forking tokens are the top of a broad distribution."
        )
    series = forking.get("per_step") or []
    ends = {
        name: first_last_tenth([s.get(key) for s in series])
        for key, name in (
            ("mean", "the mean token entropy"),
            ("p50", "the median"),
            ("p90", "the 90th percentile"),
        )
    }
    if any(e is None for e in ends.values()):
        return text
    moves = "; ".join(change_text(name, e, unit=" nats") for name, e in ends.items())
    mean = ends["the mean token entropy"]
    if _moved(mean, False):
        verdict = "the tokens' entropy fell: entropy reduction."
    elif _moved(mean, True):
        verdict = "the tokens' entropy grew: the opposite of entropy reduction."
    else:
        verdict = "the tokens' mean entropy does not clearly move: no entropy reduction shown here."
    return f"{text} Over the run (first vs last tenth): {moves}; {verdict}"


def gold_kl_sentence(fit: dict | None) -> str:
    """Gold against sqrt(KL): the fitted peak with its interval and where the run is against it."""
    if fit is None:
        return (
            "No gold (judge) scores in this run: the fit needs them (world runs have them; imports may not)."
        )
    if fit.get("alpha") is None:
        return f"No fitted peak: {fit['reason']}."
    if fit.get("d_peak") is None:
        return f"No fitted peak: {fit['reason']}; the run is now at KL {fit['kl_now']:.3g}."
    interval = fit.get("d_peak_interval")
    return (
        f"Gao et al. 2022: gold rises, peaks and falls with sqrt(KL) while the RM keeps rising. The fitted "
        f"peak is at sqrt(KL) {fit['d_peak']:.3g} ({interval_text(interval)}; KL {fit['kl_peak']:.3g}, gold "
        f"{fit['gold_peak']:.3g}); the run is now at sqrt(KL) {fit['d_now']:.3g} (KL {fit['kl_now']:.3g}): "
        f"{fit['position']}."
    )


def _difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float | None]:
    """Mean of ``a`` minus mean of ``b`` and its (Welch) standard error; None below 2 values a side."""
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, None
    return diff, math.sqrt(float(a.var(ddof=1)) / len(a) + float(b.var(ddof=1)) / len(b))


def data_range_sentence(change: pd.DataFrame, ppo_only: set[str], run: str) -> str:
    """Whether a run shows the claim "PPO pays off outside SFT's range": the mean gold change of the
    PPO-only families against the families in SFT data (``probe_family_change``), against the spread
    between families, and the families whose entropy rose."""
    outside = change["prompt_family"].isin(ppo_only).to_numpy()
    gold = change["gold_change"].to_numpy(dtype=np.float64)
    if outside.sum() < 1 or (~outside).sum() < 1:
        return f"`{run}` does not have families both outside and inside SFT's range: it cannot show it."
    diff, se = _difference(gold[outside], gold[~outside])
    means = (
        f"gold changed by {gold[outside].mean():+.2f} on average on the PPO-only families and by "
        f"{gold[~outside].mean():+.2f} on the families in SFT data"
    )
    if se is None:
        text = f"`{run}` has too few families on one side to tell ({means})."
    elif diff > NOISE_Z * se:
        text = f"**On `{run}`, PPO paid off more outside SFT's range**: {means} (difference {diff:+.2f}, beyond {NOISE_Z:g} standard errors over families: ±{NOISE_Z * se:.2f})."
    elif diff < -NOISE_Z * se:
        text = f"**`{run}` shows the opposite**: {means} (difference {diff:+.2f}, beyond {NOISE_Z:g} standard errors over families: ±{NOISE_Z * se:.2f})."
    else:
        text = (
            f"**`{run}` does not show it**: {means}; the difference ({diff:+.2f}) is within {NOISE_Z:g} "
            f"standard errors over families (±{NOISE_Z * se:.2f})."
        )
    rose = change.loc[change["entropy_change"] > 0, "prompt_family"].tolist()
    if rose:
        text += f" Entropy rose on {', '.join(f'`{f}`' for f in rose)}: there PPO did not reduce it."
    return text


def family_sentence(row: pd.Series, family: str, where: str, run: str) -> str:
    """One family's first vs last probe step on a run, and whether it shows entropy reduction."""
    gold, entropy = row["gold_change"], row["entropy_change"]
    verdict = (
        "gold rose while entropy fell: entropy reduction."
        if gold > 0 and entropy < 0
        else f"gold {'rose' if gold > 0 else 'did not rise'} while entropy {'rose' if entropy > 0 else 'fell'}: "
        "not the entropy reduction the note describes."
    )
    return (
        f"**{family}** ({where}): over `{run}` (probe steps {int(row['first_step'])}–{int(row['last_step'])}) "
        f"its gold went {row['gold_first']:.2f} → {row['gold_last']:.2f} ({gold:+.2f}) and its entropy "
        f"{row['entropy_first']:.2f} → {row['entropy_last']:.2f} ({entropy:+.2f} nats): {verdict}"
    )


def sft_gap_sentence(sft_train: float, ppo_only: float, note_gap: float) -> str:
    """The SFT model's entropy gap between PPO-only and SFT-train prompts against the note's gap."""
    gap = ppo_only - sft_train
    if gap > note_gap:
        return f"Here the gap ({gap:.2f} nats) is wider than the note's ({note_gap:.2f}): the PPO-only prompts leave PPO room."
    return (
        f"Here too the gap ({gap:.2f} nats) is no wider than the note's ({note_gap:.2f}): this world does "
        "not show more room on the PPO-only prompts."
    )


def _leg(a: pd.DataFrame, b: pd.DataFrame, column: str, name: str) -> str:
    """ "gold rose 0.10 → 0.40" between two steps' samples, or "... (within the noise)" when the change is
    within NOISE_Z standard errors of the two means (sample standard deviations)."""
    x, y = a[column].to_numpy(dtype=np.float64), b[column].to_numpy(dtype=np.float64)
    diff, se = _difference(y, x)
    values = f"{x.mean():.2f} → {y.mean():.2f}"
    if se is None or abs(diff) <= NOISE_Z * se:
        return f"{name} {values} (within the noise of {len(x)} and {len(y)} samples)"
    return f"{name} {'rose' if diff > 0 else 'fell'} {values}"


def probe_path_sentence(samples: pd.DataFrame, steps: list[int]) -> str:
    """A probe prompt's gold and entropy from each shown step to the next (start, k, end), each leg's
    change judged against the noise of its samples, so a fall after step k is said, not hidden."""
    shown = [s for s in steps if (samples["step"] == s).any()]
    legs = []
    for a, b in zip(shown, shown[1:], strict=False):
        x, y = samples[samples["step"] == a], samples[samples["step"] == b]
        legs.append(
            f"from step {a} to {b}, {_leg(x, y, 'gold', 'gold')} and {_leg(x, y, 'mean_entropy', 'entropy')}"
        )
    if not legs:
        return ""
    return "On this prompt: " + "; ".join(legs) + "."


def agreement_sentence(agreement: list[float]) -> str:
    """Whether the RM's agreement with gold on what PPO samples fell over the steps (first vs last
    tenth against the step-to-step noise), and why that matters when it did."""
    ends = first_last_tenth(agreement)
    if ends is None:
        return "Too few steps to see a trend."
    text = f"Here (first vs last tenth of the steps) it {change_text('', ends).strip()}"
    if _moved(ends, False):
        return text + (
            ", as the sampling space moved away from the SFT model's: that is why the practitioner keeps "
            "sampling from PPO policies to retrain the RM."
        )
    return text + ": this range does not show the RM losing accuracy."


def epochs_sentence(table: pd.DataFrame, spread: pd.Series, distinct: pd.Series) -> str:
    """What the SFT epochs show: where the within-prompt spread of RM rewards is widest, how good the
    first epoch's samples are, and whether the last epoch repeats one answer per prompt (``distinct``:
    mean distinct answers per prompt, by epoch) or still has several."""
    first, last = int(table["epoch"].iloc[0]), int(table["epoch"].iloc[-1])
    head = table.set_index("epoch").loc[first]
    text = (
        f"On SFT-train prompts the spread (interquartile range) is widest at epoch {int(spread.idxmax())} "
        f"({spread.max():.2f}) and {spread.iloc[-1]:.2f} by epoch {last}. At epoch {first} the samples "
        f"score {head['gold']:.2f} gold on average (the best of 8 per prompt {head['best_gold']:.2f}); a "
        f"prompt's samples hold {distinct.loc[first]:.1f} distinct answers on average at epoch {first} and "
        f"{distinct.loc[last]:.1f} at epoch {last}"
    )
    if distinct.loc[last] <= 1.5:
        return text + ": the last epoch repeats one answer per prompt, so little is left to choose from."
    return text + ": the space shrinks, but even the last epoch has not collapsed to one answer per prompt."


def refresh_text(version: float, before: float, after: float) -> str:
    """A refresh marker's hover: the new RM version and whether the RM-judge agreement on fresh samples
    rose, fell or stayed with it (NaN: not measured, e.g. a run without a gold judge)."""
    head = f"RM refresh → version {int(version)}"
    if math.isnan(before) or math.isnan(after):
        return head + ": agreement with the judge not measured"
    verb = "rose" if after > before else "fell" if after < before else "stayed"
    return head + f": agreement with the judge {verb}, {before:.2f} → {after:.2f}"


def selection_text(table: pd.DataFrame, selection: str | None) -> str:
    """What a run's prompt selection kept (``prompt_selection.parquet`` rows), in the terms it measured:
    the kept prompts' mean entropy and RM-score variance against the dropped ones'."""
    kept = table[table["kept"].astype(bool)]
    dropped = table[~table["kept"].astype(bool)]
    head = (
        f"Prompt selection `{selection or 'unknown'}` kept **{len(kept)} of {len(table)}** candidate prompts"
    )
    if dropped.empty:
        return head + ": all of them, so PPO trains on the whole prompt set."
    parts = []
    for column, name in (("mean_entropy", "mean token entropy"), ("reward_variance", "RM-score variance")):
        k, d = kept[column].mean(), dropped[column].mean()
        side = "higher" if k > d else "lower" if k < d else "the same"
        parts.append(f"{name} {k:.3g} against {d:.3g} for the dropped ({side})")
    return head + ", measured on the starting policy: " + "; ".join(parts) + "."
