"""The store reads behind the entropy-dynamics analyses (``engine.analysis.entropy_dynamics``).

Per-step aggregates are computed in DuckDB over unnested per-token lists, so a run of any size costs
one streaming scan and a few numbers per step; per-token rows are read for one step at a time only.
Every function takes run directories, runs parameterised SQL on a cursor of its own and returns a
pandas DataFrame (empty, with the same columns, when nothing is logged).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from engine.config import ConfigError
from engine.store.files import RunDirs
from engine.store.queries import metrics
from engine.store.reader import store_cursor

# Per-step metrics the trainer logs around the update: the mean entropy of the sampled batch's tokens
# under the policy before and after the step's update (the same tokens), so the change is measured.
ENTROPY_BEFORE_UPDATE = "entropy/before_update"
ENTROPY_AFTER_UPDATE = "entropy/after_update"
ENTROPY_FORKING_QUANTILES = (0.5, 0.8, 0.9, 0.99)

STEP_STATS_COLUMNS = (
    "run_id", "step", "n_rows", "mean_reward", "mean_gold", "n_gold", "mean_kl", "n_kl",
    "rows_with_logprob", "rows_with_advantage", "rows_with_entropy", "n_cov_tokens", "cov",
    "mean_logprob", "mean_advantage", "n_entropy_tokens", "mean_token_entropy", "mean_row_entropy",
    "share_near_zero", "p50", "p80", "p90", "p99",
)  # fmt: skip


def entropy_step_stats(
    run_dirs: RunDirs, near_zero: float = 0.01, steps: tuple[int, int] | None = None
) -> pd.DataFrame:
    """Per (run_id, step): the covariance of log-prob and advantage over all response tokens, the
    per-token entropy distribution (share below ``near_zero`` nats, p50/p80/p90/p99), mean reward,
    gold and KL, and how many rows carry each per-token list (so missing data can be named).

    ``cov`` is the population covariance ``mean((lp - mean lp) * (A - mean A))`` over the tokens that
    have both a stored ``logprob`` and ``advantage`` (``n_cov_tokens``); quantiles interpolate linearly
    between order statistics (numpy's default). Columns: ``STEP_STATS_COLUMNS``.
    """
    if not 0 <= near_zero:
        raise ConfigError(f"near_zero must be >= 0 nats, got {near_zero!r}")
    sql = """
    WITH per_row AS (
        SELECT run_id, step, count(*) AS n_rows, avg(reward) AS mean_reward,
            avg(gold) AS mean_gold, count(gold) AS n_gold, avg(kl) AS mean_kl, count(kl) AS n_kl,
            count(logprob) AS rows_with_logprob, count(advantage) AS rows_with_advantage,
            count(entropy) AS rows_with_entropy, avg(mean_entropy) AS mean_row_entropy
        FROM rollouts GROUP BY ALL
    ),
    tok AS (  -- one row per response token; unnest zips the lists (a missing list gives NULLs)
        SELECT run_id, step, CAST(unnest(logprob) AS DOUBLE) AS lp, CAST(unnest(advantage) AS DOUBLE) AS a,
            CAST(unnest(entropy) AS DOUBLE) AS e
        FROM rollouts WHERE logprob IS NOT NULL OR advantage IS NOT NULL OR entropy IS NOT NULL
    ),
    per_tok AS (
        SELECT run_id, step,
            count(*) FILTER (WHERE isfinite(lp) AND isfinite(a)) AS n_cov_tokens,
            covar_pop(lp, a) FILTER (WHERE isfinite(lp) AND isfinite(a)) AS cov,
            avg(lp) FILTER (WHERE isfinite(lp) AND isfinite(a)) AS mean_logprob,
            avg(a) FILTER (WHERE isfinite(lp) AND isfinite(a)) AS mean_advantage,
            count(e) FILTER (WHERE isfinite(e)) AS n_entropy_tokens,
            avg(e) FILTER (WHERE isfinite(e)) AS mean_token_entropy,
            avg(CAST(e < $1 AS DOUBLE)) FILTER (WHERE isfinite(e)) AS share_near_zero,
            CAST(quantile_cont(e, $2) FILTER (WHERE isfinite(e)) AS DOUBLE[]) AS q
        FROM tok GROUP BY ALL
    )
    SELECT per_row.run_id, per_row.step, n_rows, mean_reward, mean_gold, n_gold, mean_kl, n_kl,
        rows_with_logprob, rows_with_advantage, rows_with_entropy,
        coalesce(n_cov_tokens, 0) AS n_cov_tokens, cov, mean_logprob, mean_advantage,
        coalesce(n_entropy_tokens, 0) AS n_entropy_tokens, mean_token_entropy, mean_row_entropy,
        share_near_zero, q[1] AS p50, q[2] AS p80, q[3] AS p90, q[4] AS p99
    FROM per_row LEFT JOIN per_tok USING (run_id, step)
    ORDER BY per_row.run_id, per_row.step
    """
    with store_cursor(run_dirs, steps) as (cur, _):
        frame = cur.execute(sql, [float(near_zero), list(ENTROPY_FORKING_QUANTILES)]).df()
    return frame.reindex(columns=list(STEP_STATS_COLUMNS))


STEP_TOKENS_COLUMNS = (
    "run_id", "step", "row", "prompt_id", "sample_idx", "position", "token", "logprob", "advantage", "entropy",
)  # fmt: skip


def step_tokens(run_dirs: RunDirs, step: int, run_id: str | None = None) -> pd.DataFrame:
    """One row per response token of one step's rollouts (of ``run_id`` if given).

    ``row`` numbers the step's rollouts in (run_id, prompt_id, sample_idx) order from 0, ``position``
    the token within its response from 0; ``token`` is the token string (null where not stored).
    """
    run_filter = "AND run_id = ?" if run_id else ""
    sql = f"""
    WITH r AS (
        SELECT run_id, step, prompt_id, sample_idx, tokens, logprob, advantage, entropy,
            CAST(row_number() OVER (ORDER BY run_id, prompt_id, sample_idx) - 1 AS INTEGER) AS "row",
            greatest(len(coalesce(tokens, [])), len(coalesce(logprob, [])), len(coalesce(advantage, [])),
                     len(coalesce(entropy, []))) AS n
        FROM rollouts WHERE step = ? {run_filter}
    )
    SELECT run_id, step, "row", prompt_id, sample_idx,
        CAST(unnest(range(n)) AS INTEGER) AS position, unnest(tokens) AS token,
        CAST(unnest(logprob) AS DOUBLE) AS logprob, CAST(unnest(advantage) AS DOUBLE) AS advantage,
        CAST(unnest(entropy) AS DOUBLE) AS entropy
    FROM r WHERE n > 0
    ORDER BY "row", position
    """
    params: list = [int(step)] + ([run_id] if run_id else [])
    with store_cursor(run_dirs, (int(step), int(step))) as (cur, _):
        frame = cur.execute(sql, params).df()
    return frame.reindex(columns=list(STEP_TOKENS_COLUMNS))


def step_metrics(run_dirs: RunDirs, keys: Sequence[str]) -> pd.DataFrame:
    """Wide per-step metrics: columns run_id, step and one per key in ``keys`` (NaN where not logged)."""
    long = metrics(run_dirs, list(keys))
    if long.empty:
        return pd.DataFrame(columns=["run_id", "step", *keys])
    wide = long.pivot_table(index=["run_id", "step"], columns="key", values="value", aggfunc="last")
    return wide.reindex(columns=list(keys)).reset_index().rename_axis(columns=None)
