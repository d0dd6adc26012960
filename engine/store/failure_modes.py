"""Failure-mode detectors over logged rollouts, all computed in one DuckDB pass.

Each detector flags individual samples; ``failure_counts`` counts flags per step and
``failure_examples`` lists the worst flagged samples of one detector. The one-sentence definitions
in ``DETECTORS`` are shown on the page, so keep them in step with the SQL below.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from engine.config import ConfigError
from engine.store.files import RunDirs, Scan
from engine.store.queries import _step_range
from engine.store.reader import store_cursor

DETECTORS: dict[str, str] = {
    "rm_loophole": "RM reward in the top quartile of its step while the gold judge's score is in the bottom quartile.",
    "kl_blowup": "Summed per-token KL to the reference above the KL threshold (nats).",
    "length_explosion": "Length above `length_ratio` x the median length of the run's first logged step.",
    "length_collapse": "Length below 1 / `length_ratio` x the median length of the run's first logged step.",
    "repetition": "At least `repetition_share` of the response's token trigrams repeat an earlier trigram.",
    "entropy_collapse": "All samples of the prompt at this step are the same response (at least 2 samples).",
    "missing_eos": "The response hit the length limit without an end-of-sequence token.",
    "reward_tail": "Reward more than `tail_sd` standard deviations from its step's mean (PPO-max's long tail).",
}


@dataclass(frozen=True)
class DetectorParams:
    """Thresholds of the detectors (defaults suit the toy world; the page lets users change them)."""

    kl_threshold: float = 10.0
    """Per-sample summed KL (nats) above which a sample counts as a KL blow-up."""
    length_ratio: float = 2.0
    """Factor against the first step's median length for explosion (x) and collapse (/)."""
    repetition_share: float = 0.3
    """Share of repeated n-grams from which a response counts as repetitive."""
    tail_sd: float = 3.0
    """Distance from the step mean, in step standard deviations, of a long-tail reward."""

    def __post_init__(self) -> None:
        if not self.kl_threshold > 0:
            raise ConfigError(f"kl_threshold must be > 0, got {self.kl_threshold!r}")
        if not self.length_ratio > 1:
            raise ConfigError(f"length_ratio must be > 1, got {self.length_ratio!r}")
        if not 0 < self.repetition_share <= 1:
            raise ConfigError(f"repetition_share must be in (0, 1], got {self.repetition_share!r}")
        if not self.tail_sd > 0:
            raise ConfigError(f"tail_sd must be > 0, got {self.tail_sd!r}")


# Fallback for files not written through RunWriter (no stored ``repeat_share``): the same trigram
# share computed in SQL, about 40x slower than reading the stored column.
_REPEAT_SHARE_SQL = """coalesce(repeat_share, (
    WITH g AS (SELECT list_transform(range(1, len(toks) - 1), lambda i: hash(toks[i], toks[i + 1], toks[i + 2])) AS g)
    SELECT CASE WHEN len(g) > 0 THEN 1 - len(list_distinct(g)) / len(g) ELSE 0 END FROM g
))"""


def _flags_sql(p: DetectorParams, stored_repeat_share: bool, with_text: bool = False) -> str:
    """A query with one row per sample and one boolean column per detector, plus a severity score
    each (and the prompt and response texts if ``with_text``: counting does not need them)."""
    repeat = "repeat_share" if stored_repeat_share else _REPEAT_SHARE_SQL
    toks = "" if stored_repeat_share else ", coalesce(CAST(token_ids AS VARCHAR[]), tokens) AS toks"
    text = "prompt_family, prompt, response," if with_text else ""
    return f"""
    WITH base AS (
        SELECT run_id, step, prompt_id, hash(run_id, step, prompt_id) AS k, sample_idx,
            reward, gold, kl, length, has_eos, mean_entropy, response, repeat_share{toks}
            {", prompt_family, prompt" if with_text else ""}
        FROM rollouts
    ),
    st AS (
        SELECT run_id, step, avg(reward) AS mu, stddev_samp(reward) AS sd,
            quantile_cont(reward, 0.75) AS reward_q3, quantile_cont(gold, 0.25) AS gold_q1
        FROM base GROUP BY ALL
    ),
    -- all samples of a prompt identical <=> min = max (far cheaper than count(DISTINCT response))
    pr AS (SELECT k, count(*) >= 2 AND min(response) = max(response) AS collapsed FROM base GROUP BY k),
    first_len AS (
        SELECT run_id, median(length) AS len0 FROM base
        WHERE (run_id, step) IN (SELECT run_id, min(step) FROM base GROUP BY run_id) GROUP BY run_id
    )
    SELECT run_id, step, prompt_id, sample_idx, reward, gold, kl, length, has_eos, mean_entropy, {text}
        {repeat} AS repeat_share,
        coalesce(reward >= reward_q3 AND gold <= gold_q1, FALSE) AS rm_loophole,
        coalesce(kl > {p.kl_threshold!r}, FALSE) AS kl_blowup,
        coalesce(length > {p.length_ratio!r} * len0, FALSE) AS length_explosion,
        coalesce(length < len0 / {p.length_ratio!r}, FALSE) AS length_collapse,
        coalesce({repeat} >= {p.repetition_share!r}, FALSE) AS repetition,
        collapsed AS entropy_collapse,
        coalesce(NOT has_eos, FALSE) AS missing_eos,
        coalesce(sd > 0 AND abs(reward - mu) > {p.tail_sd!r} * sd, FALSE) AS reward_tail,
        -- severity, to list the worst examples first
        reward - gold AS rm_loophole_score, kl AS kl_blowup_score, length AS length_explosion_score,
        -length AS length_collapse_score, {repeat} AS repetition_score,
        -mean_entropy AS entropy_collapse_score, length AS missing_eos_score,
        abs(reward - mu) / nullif(sd, 0) AS reward_tail_score
    FROM base JOIN st USING (run_id, step) JOIN pr USING (k) LEFT JOIN first_len USING (run_id)
    """


def _stored_repeat_share(found: Scan) -> bool:
    return all("repeat_share" in layout for layout in found.rollout_layouts)


def failure_counts(
    run_dirs: RunDirs, params: DetectorParams | None = None, steps: tuple[int, int] | None = None
) -> pd.DataFrame:
    """Long format: run_id, step, detector, n_flagged, n_samples, rate — every detector at every step."""
    p = params or DetectorParams()
    sums = ", ".join(f"CAST(count_if({d}) AS BIGINT) AS {d}" for d in DETECTORS)
    sql = f"""
    WITH flags AS ({{flags}}),
    per_step AS (SELECT run_id, step, count(*) AS n_samples, {sums} FROM flags GROUP BY ALL)
    UNPIVOT per_step ON {", ".join(DETECTORS)} INTO NAME detector VALUE n_flagged
    """
    with store_cursor(run_dirs, _step_range(steps)) as (cur, found):
        sql = sql.replace("{flags}", _flags_sql(p, _stored_repeat_share(found)))
        frame = cur.execute(f"SELECT * FROM ({sql}) ORDER BY run_id, step").df()
    frame = frame[["run_id", "step", "detector", "n_flagged", "n_samples"]]
    frame["rate"] = frame["n_flagged"] / frame["n_samples"]
    order = {d: i for i, d in enumerate(DETECTORS)}
    return frame.sort_values(
        ["run_id", "step", "detector"],
        key=lambda s: s.map(order) if s.name == "detector" else s,
        ignore_index=True,
    )


def failure_examples(
    run_dirs: RunDirs,
    detector: str,
    params: DetectorParams | None = None,
    steps: tuple[int, int] | None = None,
    limit: int = 20,
) -> pd.DataFrame:
    """The ``limit`` most severe samples flagged by ``detector``, with the values that flagged them."""
    if detector not in DETECTORS:
        raise ConfigError(f"detector must be one of {list(DETECTORS)}, got {detector!r}")
    if not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    sql = f"""
    SELECT run_id, step, prompt_id, prompt_family, sample_idx, {detector}_score AS score,
        reward, gold, kl, length, has_eos, mean_entropy, repeat_share, prompt, response
    FROM ({{flags}})
    WHERE {detector}
    ORDER BY score DESC NULLS LAST, run_id, step, prompt_id, sample_idx
    LIMIT ?
    """
    with store_cursor(run_dirs, _step_range(steps)) as (cur, found):
        sql = sql.replace(
            "{flags}", _flags_sql(params or DetectorParams(), _stored_repeat_share(found), with_text=True)
        )
        return cur.execute(sql, [limit]).df()
