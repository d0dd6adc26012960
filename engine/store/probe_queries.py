"""Queries over the fixed probe prompts (``probes/step-N.parquet``: the same prompts sampled at T = 1
every few steps, rollout schema) and the one rollout query of the Learn path (samples that exploit the
RM). The probe set is what shows entropy reduction step by step: the same prompt, the same number of
samples, at every probe step.

Every function takes run directories, takes a cursor of its own (see ``reader``) and returns a pandas
DataFrame; an empty store gives an empty frame with the same columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from engine.config import ConfigError
from engine.store.files import RunDirs
from engine.store.queries import _step_range
from engine.store.reader import store_cursor

PROBE_TOKEN_COLUMNS = ("tokens", "entropy", "sampled_prob", "max_prob", "n_candidates")


def probe_prompts(run_dirs: RunDirs) -> pd.DataFrame:
    """One row per (run_id, probe prompt): prompt_family, prompt, n_steps, first_step, last_step and
    samples_per_step (the most samples it has at one step)."""
    sql = """
    SELECT run_id, prompt_id, any_value(prompt_family) AS prompt_family, any_value(prompt) AS prompt,
        count(DISTINCT step) AS n_steps, min(step) AS first_step, max(step) AS last_step,
        max(n) AS samples_per_step
    FROM (SELECT *, count(*) OVER (PARTITION BY run_id, prompt_id, step) AS n FROM probes)
    GROUP BY ALL ORDER BY run_id, prompt_family, prompt_id
    """
    with store_cursor(run_dirs) as (cur, _):
        return cur.execute(sql).df()


def probe_steps(run_dirs: RunDirs) -> list[int]:
    """Steps with at least one probe row in any of ``run_dirs``, ascending."""
    with store_cursor(run_dirs) as (cur, _):
        return [r[0] for r in cur.execute("SELECT DISTINCT step FROM probes ORDER BY step").fetchall()]


def probe_samples(
    run_dirs: RunDirs, prompt_id: str, steps: Sequence[int], run_id: str | None = None
) -> pd.DataFrame:
    """Every probe sample of ``prompt_id`` (in ``run_id`` if given) at the given ``steps``, with its
    per-token lists. Columns: run_id, step, sample_idx, prompt_id, prompt_family, prompt, response,
    reward, gold, length, has_eos, mean_entropy, and :data:`PROBE_TOKEN_COLUMNS`; ordered by step and
    sample."""
    wanted = sorted({int(s) for s in steps})
    if not wanted:
        raise ConfigError("steps must name at least one probe step")
    run_filter = "AND run_id = ?" if run_id else ""
    sql = f"""
    SELECT run_id, step, sample_idx, prompt_id, prompt_family, prompt, response, reward, gold, length,
        has_eos, mean_entropy, {", ".join(PROBE_TOKEN_COLUMNS)}
    FROM probes WHERE prompt_id = ? AND list_contains(?, step) {run_filter}
    ORDER BY run_id, step, sample_idx
    """
    params = [prompt_id, wanted] + ([run_id] if run_id else [])
    with store_cursor(run_dirs) as (cur, _):
        return cur.execute(sql, params).df()


def probe_family_steps(run_dirs: RunDirs) -> pd.DataFrame:
    """Per (run_id, step, prompt_family) of the probe rows: n_samples, gold_mean, reward_mean and
    entropy_mean (the mean over samples of each sample's mean per-token entropy)."""
    sql = """
    SELECT run_id, step, prompt_family, count(*) AS n_samples, avg(gold) AS gold_mean,
        avg(reward) AS reward_mean, avg(mean_entropy) AS entropy_mean
    FROM probes WHERE prompt_family IS NOT NULL
    GROUP BY ALL ORDER BY run_id, prompt_family, step
    """
    with store_cursor(run_dirs) as (cur, _):
        return cur.execute(sql).df()


def probe_family_change(run_dirs: RunDirs) -> pd.DataFrame:
    """Per (run_id, prompt_family): the first and last probe step and the probe samples' mean gold and
    mean entropy at each, with ``gold_change`` and ``entropy_change`` (last minus first); largest gold
    change first."""
    sql = """
    WITH per_step AS (
        SELECT run_id, step, prompt_family, avg(gold) AS gold, avg(mean_entropy) AS entropy
        FROM probes WHERE prompt_family IS NOT NULL GROUP BY ALL
    )
    SELECT run_id, prompt_family, min(step) AS first_step, max(step) AS last_step,
        arg_min(gold, step) AS gold_first, arg_max(gold, step) AS gold_last,
        arg_max(gold, step) - arg_min(gold, step) AS gold_change,
        arg_min(entropy, step) AS entropy_first, arg_max(entropy, step) AS entropy_last,
        arg_max(entropy, step) - arg_min(entropy, step) AS entropy_change
    FROM per_step GROUP BY ALL ORDER BY run_id, gold_change DESC NULLS LAST, prompt_family
    """
    with store_cursor(run_dirs) as (cur, _):
        return cur.execute(sql).df()


def exploit_rollouts(
    run_dirs: RunDirs, steps: tuple[int, int] | None = None, limit: int = 10
) -> pd.DataFrame:
    """Rollouts that the RM over-rates: high RM reward and low gold for their step. Each sample gets
    ``exploit = z(reward) - z(gold)``, both z-scores over all samples of its (run_id, step); the
    largest come first, only samples with ``z(reward) > 0`` and ``z(gold) < 0`` (better than average
    for the RM, worse for the judge). Columns: run_id, step, prompt_id, prompt_family, sample_idx,
    prompt, response, reward, gold, reward_z, gold_z, exploit."""
    if not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    sql = """
    WITH z AS (
        SELECT run_id, step, prompt_id, prompt_family, sample_idx, prompt, response, reward, gold,
            (reward - avg(reward) OVER w) / nullif(stddev_pop(reward) OVER w, 0) AS reward_z,
            (gold - avg(gold) OVER w) / nullif(stddev_pop(gold) OVER w, 0) AS gold_z
        FROM rollouts WHERE reward IS NOT NULL AND gold IS NOT NULL
        WINDOW w AS (PARTITION BY run_id, step)
    )
    SELECT *, reward_z - gold_z AS exploit FROM z
    WHERE reward_z > 0 AND gold_z < 0
    ORDER BY exploit DESC, run_id, step, prompt_id, sample_idx
    LIMIT ?
    """
    with store_cursor(run_dirs, _step_range(steps)) as (cur, _):
        return cur.execute(sql, [limit]).df()
