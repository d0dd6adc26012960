"""Queries of the rollout browser: prompts ranked by one of several learning-signal measures, and one
prompt's per-step table (what its chart and step slider show)."""

from __future__ import annotations

import pandas as pd

from engine.config import ConfigError
from engine.store.files import RunDirs
from engine.store.queries import FINITE_ROLLOUTS, _step_range, sample_filter
from engine.store.reader import store_cursor

# ranking -> (SQL over the per-(prompt, step) table, what it means in words)
RANKINGS: dict[str, tuple[str, str]] = {
    "gold_var": (
        "avg(gold_var)",
        "gold variance: spread of the judge's scores within the prompt's samples, averaged over steps",
    ),
    "reward_var": (
        "avg(reward_var)",
        "RM variance: spread of the RM's rewards within the prompt's samples, averaged over steps "
        "(rare off-task answers of an easy prompt can put it on top)",
    ),
    "reward_norm_var": (
        "avg(reward_var / nullif(step_norm_var, 0))",
        "normalised-reward variance: the prompt's within-prompt reward variance in units of its step's "
        "per-prompt normalised reward variance (1 = a typical prompt of that step), averaged over steps",
    ),
    "entropy_drop": (
        "CASE WHEN count(*) > 1 THEN arg_min(entropy, step) - arg_max(entropy, step) END",
        "entropy drop: mean per-token entropy of the prompt's samples at its first step in range minus "
        "at its last (needs two steps)",
    ),
}
RANKING_LABELS = {
    "gold_var": "gold variance",
    "reward_var": "RM variance",
    "reward_norm_var": "normalised-reward variance",
    "entropy_drop": "entropy drop",
}


def rank_prompts(
    run_dirs: RunDirs,
    ranking: str = "gold_var",
    steps: tuple[int, int] | None = None,
    *,
    family: str | None = None,
    reward_range: tuple[float, float] | None = None,
    length_range: tuple[int, int] | None = None,
    has_eos: bool | None = None,
    search: str | None = None,
    limit: int = 50,
) -> pd.DataFrame:
    """Prompts ordered by ``ranking`` (a key of :data:`RANKINGS`, largest first, NULLs last) over the
    samples that pass the filters (finite values only, see ``FINITE_ROLLOUTS``). ``search`` is a case-insensitive literal substring of the prompt or
    response. Columns: run_id, prompt_id, prompt_family, prompt, score (the ranking's value),
    reward_var, gold_var, reward_norm_var, entropy_drop, reward_mean, gold_mean, entropy_mean,
    n_samples, n_steps, first_step, last_step."""
    if ranking not in RANKINGS:
        raise ConfigError(f"ranking must be one of {list(RANKINGS)}, got {ranking!r}")
    if not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    where, params = sample_filter(family, reward_range, length_range, has_eos, search)
    measures = {name: sql for name, (sql, _) in RANKINGS.items()}
    # The step's normalised reward variance is the pooled within-prompt variance: sum over prompts of
    # (n - 1) * var, over (N - 1) (the per-prompt shift removes the between-prompt part).
    sql = f"""
    WITH per_step AS (
        SELECT run_id, prompt_id, step, count(*) AS n, var_samp(reward) AS reward_var,
            var_samp(gold) AS gold_var, sum(reward) AS total, avg(gold) AS gold, avg(mean_entropy) AS entropy
        FROM {FINITE_ROLLOUTS} WHERE {where} GROUP BY ALL
    ),
    steps AS (
        SELECT run_id, step, sum((n - 1) * coalesce(reward_var, 0)) / nullif(sum(n) - 1, 0) AS step_norm_var
        FROM per_step GROUP BY ALL
    ),
    ranked AS (
        SELECT run_id, prompt_id,
            {", ".join(f"{sql} AS {name}" for name, sql in measures.items())},
            sum(n) AS n_samples, count(*) AS n_steps, min(step) AS first_step, max(step) AS last_step,
            sum(total) / sum(n) AS reward_mean, avg(gold) AS gold_mean, avg(entropy) AS entropy_mean
        FROM per_step JOIN steps USING (run_id, step) GROUP BY ALL
        ORDER BY {ranking} DESC NULLS LAST, run_id, prompt_id
        LIMIT ?
    ),
    texts AS (
        SELECT run_id, prompt_id, any_value(prompt_family) AS prompt_family, any_value(prompt) AS prompt
        FROM rollouts WHERE prompt_id IN (SELECT prompt_id FROM ranked) GROUP BY ALL
    )
    SELECT run_id, prompt_id, prompt_family, prompt, {ranking} AS score,
        {", ".join(measures)}, reward_mean, gold_mean, entropy_mean, n_samples, n_steps, first_step, last_step
    FROM ranked JOIN texts USING (run_id, prompt_id)
    ORDER BY score DESC NULLS LAST, run_id, prompt_id
    """
    with store_cursor(run_dirs, _step_range(steps)) as (cur, _):
        return cur.execute(sql, [*params, limit]).df()


def prompt_step_table(run_dirs: RunDirs, prompt_id: str, run_id: str | None = None) -> pd.DataFrame:
    """One prompt's samples per step: step, n_samples, reward_mean, reward_sd, gold_mean, entropy_mean
    (means over finite values)."""
    run_filter = "AND run_id = ?" if run_id else ""
    sql = f"""
    SELECT step, count(*) AS n_samples, avg(reward) AS reward_mean, stddev_samp(reward) AS reward_sd,
        avg(gold) AS gold_mean, avg(mean_entropy) AS entropy_mean
    FROM {FINITE_ROLLOUTS} WHERE prompt_id = ? {run_filter} GROUP BY step ORDER BY step
    """
    with store_cursor(run_dirs) as (cur, _):
        return cur.execute(sql, [prompt_id] + ([run_id] if run_id else [])).df()
