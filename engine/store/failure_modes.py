"""Failure-mode detectors over logged rollouts, all computed in one DuckDB pass.

Each detector flags individual samples; ``failure_counts`` counts flags per step and
``failure_examples`` lists the worst flagged samples of one detector. The one-sentence definitions
in ``DETECTORS`` are shown on the page, so keep them in step with the SQL below.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

import pandas as pd

from engine.config import ConfigError
from engine.store.files import RunDirs, Scan
from engine.store.queries import FINITE_ROLLOUTS, _step_range
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

    @classmethod
    def of(cls, **thresholds: Any) -> DetectorParams:
        """``DetectorParams(**thresholds)``; an unknown name is a ConfigError naming the known ones."""
        known = [f.name for f in dataclasses.fields(cls)]
        if unknown := sorted(set(thresholds) - set(known)):
            raise ConfigError(f"unknown detector threshold(s) {unknown}: use {known}")
        return cls(**thresholds)

    def __post_init__(self) -> None:
        # Any real number (a numpy float from a notebook) becomes a plain float; the SQL binds them.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ConfigError(f"{f.name} must be a finite number, got {value!r}")
            object.__setattr__(self, f.name, float(value))
        if not self.kl_threshold > 0:
            raise ConfigError(f"kl_threshold must be > 0, got {self.kl_threshold!r}")
        if not self.length_ratio > 1:
            raise ConfigError(f"length_ratio must be > 1, got {self.length_ratio!r}")
        if not 0 < self.repetition_share <= 1:
            raise ConfigError(f"repetition_share must be in (0, 1], got {self.repetition_share!r}")
        if not self.tail_sd > 0:
            raise ConfigError(f"tail_sd must be > 0, got {self.tail_sd!r}")


# Fallbacks for files not written through RunWriter (no stored ``repeat_share`` / ``prompt_collapsed``).
# The trigram share in SQL is about 40x slower than reading the stored column.
_REPEAT_SHARE_SQL = """coalesce(repeat_share, (
    WITH g AS (SELECT list_transform(range(1, len(toks) - 1), lambda i: hash(toks[i], toks[i + 1], toks[i + 2])) AS g)
    SELECT CASE WHEN len(g) > 0 THEN 1 - len(list_distinct(g)) / len(g) ELSE 0 END FROM g
))"""
# All samples of a prompt identical <=> min = max (far cheaper than count(DISTINCT response)); still a
# group-by over every response text, which the stored flag spares (3x the rest of the count query).
_COLLAPSED_CTE = """,
    pr AS (
        SELECT hash(run_id, step, prompt_id) AS k, count(*) >= 2 AND min(response) = max(response) AS collapsed
        FROM rollouts GROUP BY k
    )"""


@dataclass(frozen=True)
class _Stored:
    """Which derived columns every rollout file of the query carries (else SQL recomputes them)."""

    repeat_share: bool
    prompt_collapsed: bool

    @classmethod
    def of(cls, found: Scan) -> _Stored:
        def every(column: str) -> bool:
            return all(column in layout for layout in found.rollout_layouts)

        return cls(every("repeat_share"), every("prompt_collapsed"))


def _flags_sql(stored: _Stored, select: str, tail: str = "") -> str:
    """``SELECT {select} FROM`` the samples joined with what the detectors compare them with; in
    ``select`` and ``tail`` each ``{detector}`` is its condition (with ``$threshold`` parameters: run it
    with :func:`_run`) and ``{repeat}`` the repeat share; the
    step's reward mean and sd are ``mu`` and ``sd``. ``tail`` follows (GROUP BY, ORDER BY, ...).
    Non-finite scores read as NULL (``FINITE_ROLLOUTS``): no detector flags them, none skews a step.

    The file scans are not shared in a CTE on purpose: materialising a million rows costs more than
    re-reading the few columns each part needs from Parquet.
    """
    repeat = "repeat_share" if stored.repeat_share else _REPEAT_SHARE_SQL
    toks = "" if stored.repeat_share else ", coalesce(CAST(token_ids AS VARCHAR[]), tokens) AS toks"
    collapsed = "prompt_collapsed" if stored.prompt_collapsed else "pr.collapsed"
    # The thresholds are parameters ($name, bound by _run), never text in the SQL.
    conditions = {
        "rm_loophole": "reward >= reward_q3 AND gold <= gold_q1",
        "kl_blowup": "kl > $kl_threshold",
        "length_explosion": "length > $length_ratio * len0",
        "length_collapse": "length < len0 / $length_ratio",
        "repetition": f"{repeat} >= $repetition_share",
        "entropy_collapse": collapsed,
        "missing_eos": "NOT has_eos",
        "reward_tail": "sd > 0 AND abs(reward - mu) > $tail_sd * sd",
    }
    assert set(conditions) == set(DETECTORS)
    fill = {"repeat": repeat, **{d: f"({c})" for d, c in conditions.items()}}
    select, tail = select.format(**fill), tail.format(**fill)
    return f"""
    WITH st AS (
        SELECT run_id, step, avg(reward) AS mu, stddev_samp(reward) AS sd,
            quantile_cont(reward, 0.75) AS reward_q3, quantile_cont(gold, 0.25) AS gold_q1
        FROM {FINITE_ROLLOUTS} GROUP BY ALL
    ),
    first_len AS (
        SELECT run_id, median(length) AS len0 FROM rollouts
        -- first steps from st's 100-odd rows rather than another scan; the filter prunes to their files
        WHERE (run_id, step) IN (SELECT run_id, min(step) FROM st GROUP BY run_id) GROUP BY run_id
    ){"" if stored.prompt_collapsed else _COLLAPSED_CTE},
    base AS (SELECT *{toks} FROM {FINITE_ROLLOUTS})
    SELECT {select}
    FROM base JOIN st USING (run_id, step) LEFT JOIN first_len USING (run_id)
    {"" if stored.prompt_collapsed else "JOIN pr ON pr.k = hash(run_id, step, prompt_id)"}
    {tail}
    """


def _run(cur: Any, sql: str, params: DetectorParams, **extra: Any) -> pd.DataFrame:
    """``sql`` with the thresholds it names (``$kl_threshold``, ...) and ``extra`` bound as parameters."""
    values = {**dataclasses.asdict(params), **extra}
    return cur.execute(sql, {name: v for name, v in values.items() if f"${name}" in sql}).df()


def failure_counts(
    run_dirs: RunDirs, params: DetectorParams | None = None, steps: tuple[int, int] | None = None
) -> pd.DataFrame:
    """Long format: run_id, step, detector, n_flagged, n_samples, rate — every detector at every step."""
    p = params or DetectorParams()
    # One pass with a conditional count per detector (a NULL condition counts as not flagged).
    counts = ", ".join(f"count(*) FILTER (WHERE {{{d}}}) AS {d}" for d in DETECTORS)
    with store_cursor(run_dirs, _step_range(steps)) as (cur, found):
        flags = _flags_sql(
            _Stored.of(found), f"run_id, step, count(*) AS n_samples, {counts}", "GROUP BY ALL"
        )
        sql = f"UNPIVOT ({flags}) ON {', '.join(DETECTORS)} INTO NAME detector VALUE n_flagged"
        frame = _run(cur, f"SELECT * FROM ({sql}) ORDER BY run_id, step", p)
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
    if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1:
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    limit = int(limit)  # a numpy integer too
    # severity, to list the worst examples first
    score = {
        "rm_loophole": "reward - gold",
        "kl_blowup": "kl",
        "length_explosion": "length",
        "length_collapse": "-length",
        "repetition": "{repeat}",
        "entropy_collapse": "-mean_entropy",
        "missing_eos": "length",
        "reward_tail": "abs(reward - mu) / nullif(sd, 0)",
    }[detector]
    select = f"""run_id, step, prompt_id, prompt_family, sample_idx, {score} AS score,
        reward, gold, kl, length, has_eos, mean_entropy, {{repeat}} AS repeat_share, prompt, response"""
    tail = f"WHERE {{{detector}}} ORDER BY score DESC NULLS LAST, run_id, step, prompt_id, sample_idx LIMIT $limit"
    with store_cursor(run_dirs, _step_range(steps)) as (cur, found):
        return _run(cur, _flags_sql(_Stored.of(found), select, tail), params or DetectorParams(), limit=limit)
