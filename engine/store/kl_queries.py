"""KL to the reference per step, recomputed from the logged per-token log-probs.

The trainer logs ``objective/kl`` with its configured estimator; with k1 (``log p - log p_ref``,
unbiased but with negative terms) the per-response sum goes below zero on a run's noisy early steps,
which reads as a bug. k3 (Schulman 2020, "Approximating KL Divergence"): with ``r = p_ref / p``,
``k3 = (r - 1) - log r`` is >= 0 for every token and still unbiased for KL(p || p_ref) under samples of
p. Both are summed over a response's tokens and averaged over the step's responses, from the stored
``logprob`` (sampling-time, temperature-consistent) and ``ref_logprob`` lists.
"""

from __future__ import annotations

import pandas as pd

from engine.store.files import RunDirs
from engine.store.reader import store_cursor

KL_STEP_COLUMNS = ("run_id", "step", "k1", "k3", "n_rows", "n_tokens")


def kl_per_step(run_dirs: RunDirs, steps: tuple[int, int] | None = None) -> pd.DataFrame:
    """Per (run_id, step): mean over responses of the per-response sum of k1 and of k3 over tokens.

    Tokens without both log-probs are skipped; steps whose rows carry no ``ref_logprob`` are absent.
    Columns: ``KL_STEP_COLUMNS``, sorted by run and step.
    """
    sql = """
    WITH rows AS (
        SELECT run_id, step, row_number() OVER () AS rid, logprob, ref_logprob
        FROM rollouts WHERE logprob IS NOT NULL AND ref_logprob IS NOT NULL
    ),
    tok AS (  -- one row per response token; unnest zips the two lists
        SELECT run_id, step, rid, CAST(unnest(logprob) AS DOUBLE) AS lp, CAST(unnest(ref_logprob) AS DOUBLE) AS ref
        FROM rows
    ),
    per_row AS (
        SELECT run_id, step, sum(lp - ref) AS k1, sum(exp(ref - lp) - 1 - (ref - lp)) AS k3,
            count(*) AS n_tokens
        FROM tok WHERE lp IS NOT NULL AND ref IS NOT NULL
        GROUP BY run_id, step, rid
    )
    SELECT run_id, step, avg(k1) AS k1, avg(k3) AS k3, count(*) AS n_rows, sum(n_tokens) AS n_tokens
    FROM per_row GROUP BY run_id, step ORDER BY run_id, step
    """
    with store_cursor(run_dirs, steps) as (cur, found):
        if not found.rollout_files:
            return pd.DataFrame(columns=list(KL_STEP_COLUMNS))
        frame = cur.execute(sql).df()
    frame["n_tokens"] = frame["n_tokens"].astype("int64")
    return frame[list(KL_STEP_COLUMNS)]
