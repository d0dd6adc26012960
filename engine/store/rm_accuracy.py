"""Three ways to watch RM accuracy during PPO (the seed's list), per logged step.

1. ``reward_spread``: variance and tail of the reward distribution (PPO-max: coarse, catches big
   failures such as RM loopholes or KL blow-up, not a slow drift);
2. ``rm_gold_agreement``: pairwise agreement of the RM with the gold judge on the step's own samples;
3. ``logprob_accuracy``: the policy's log-prob accuracy on the labelled preference test set,
   computed by a background job into ``evals/logprob_accuracy.parquet`` (read here, never computed).

``rm_refreshes`` says where a run refreshed its RM (``rm_refresh_every``), so the curves can mark it.
"""

from __future__ import annotations

import pandas as pd

from engine.runs import reward_is_judge
from engine.store.files import RunDirs, as_run_dirs
from engine.store.queries import FINITE_ROLLOUTS, _step_range, metrics, read_eval
from engine.store.reader import store_cursor
from engine.store.schema import LOGPROB_ACCURACY


def reward_spread(
    run_dirs: RunDirs, steps: tuple[int, int] | None = None, tail_sd: float = 3.0
) -> pd.DataFrame:
    """Per (run_id, step): reward variance, std, skewness, excess kurtosis, p1/p99 and the share of
    samples beyond mean +- ``tail_sd`` sd (finite rewards only)."""
    sql = f"""
    WITH r AS {FINITE_ROLLOUTS},
    st AS (SELECT run_id, step, avg(reward) AS mu, stddev_samp(reward) AS sd FROM r GROUP BY ALL)
    SELECT run_id, step, count(*) AS n_samples,
        var_samp(reward) AS reward_var, any_value(sd) AS reward_std,
        skewness(reward) AS reward_skew, kurtosis(reward) AS reward_kurtosis,
        quantile_cont(reward, 0.01) AS reward_p01, quantile_cont(reward, 0.99) AS reward_p99,
        avg(CASE WHEN sd > 0 AND abs(reward - mu) > ? * sd THEN 1.0 ELSE 0.0 END) AS tail_share
    FROM r JOIN st USING (run_id, step)
    WHERE reward IS NOT NULL
    GROUP BY ALL ORDER BY run_id, step
    """
    with store_cursor(run_dirs, _step_range(steps)) as (cur, _):
        return cur.execute(sql, [float(tail_sd)]).df()


def rm_gold_agreement(run_dirs: RunDirs, steps: tuple[int, int] | None = None) -> pd.DataFrame:
    """Per (run_id, step): over all pairs of samples of the same prompt whose gold scores differ,
    the share the RM orders like gold (an RM tie counts half). Steps without gold are absent; non-finite
    scores count as missing. A run rewarded by the judge itself (:func:`engine.runs.reward_is_judge`)
    has no RM: it is absent too, not an agreement of 1."""
    run_dirs = [d for d in as_run_dirs(run_dirs) if not reward_is_judge(d)]
    if not run_dirs:
        return pd.DataFrame(columns=["run_id", "step", "n_pairs", "agreement"])
    sql = f"""
    WITH s AS (
        SELECT run_id, step, prompt_id, reward, gold,
            row_number() OVER (PARTITION BY run_id, step, prompt_id) AS rid
        FROM {FINITE_ROLLOUTS} WHERE gold IS NOT NULL AND reward IS NOT NULL
    )
    SELECT a.run_id, a.step, count(*) AS n_pairs,
        avg(CASE WHEN a.reward = b.reward THEN 0.5
                 WHEN (a.reward > b.reward) = (a.gold > b.gold) THEN 1.0 ELSE 0.0 END) AS agreement
    FROM s a JOIN s b
      ON a.run_id = b.run_id AND a.step = b.step AND a.prompt_id = b.prompt_id AND a.rid < b.rid
    WHERE a.gold <> b.gold
    GROUP BY ALL ORDER BY a.run_id, a.step
    """
    with store_cursor(run_dirs, _step_range(steps)) as (cur, _):
        return cur.execute(sql).df()


def logprob_accuracy(run_dirs: RunDirs, name: str = LOGPROB_ACCURACY) -> pd.DataFrame:
    """``evals/logprob_accuracy.parquet`` of the runs (run_id, step, checkpoint, accuracy, n_pairs);
    ``name=LABEL_ACCURACY``: the same on the runs' own labels; an empty frame means not computed yet."""
    frame = read_eval(run_dirs, name)
    if frame.empty or not {"step", "accuracy"} <= set(frame.columns):
        return pd.DataFrame(columns=["run_id", "step", "checkpoint", "accuracy", "n_pairs"])
    return frame.sort_values(["run_id", "step"], ignore_index=True)


REFRESH_KEYS = {"rm/version": "version", "rm/agreement_before": "agreement_before",
                "rm/agreement_after": "agreement_after"}  # fmt: skip
REFRESH_COLUMNS = ["run_id", "step", "version", "agreement_before", "agreement_after"]


def refreshes_from_metrics(long: pd.DataFrame) -> pd.DataFrame:
    """The steps where ``rm/version`` rose (over the run's previous logged step, or from 0 at its first)
    in long-format metrics, with the RM-judge agreement before and after that refresh (NaN if not
    logged)."""
    long = long[long["key"].isin(REFRESH_KEYS)]
    if long.empty:
        return pd.DataFrame(columns=REFRESH_COLUMNS)
    wide = long.pivot_table(index=["run_id", "step"], columns="key", values="value", aggfunc="last")
    wide = wide.rename(columns=REFRESH_KEYS).reindex(columns=REFRESH_COLUMNS[2:]).reset_index()
    wide = wide.dropna(subset=["version"]).sort_values(["run_id", "step"], ignore_index=True)
    before = wide.groupby("run_id")["version"].shift(fill_value=0.0)
    return wide[wide["version"] > before].reset_index(drop=True)[REFRESH_COLUMNS]


def rm_refreshes(run_dirs: RunDirs) -> pd.DataFrame:
    """Per RM refresh of the runs: run_id, step, the new RM version, and the agreement before/after."""
    return refreshes_from_metrics(metrics(run_dirs, list(REFRESH_KEYS)))
