"""The group-filter audit: what the common group filters of GRPO-style trainers would drop from a run,
and the "phantom advantage" groups, from the run's stored rollouts (DuckDB).

A *group* is the samples of one prompt at one step (``run_id, step, prompt_id``; probes excluded):
GRPO and RLOO's baseline, and, for a PPO run, the samples its per-prompt normalisation centres. The
engine draws a prompt at most once a step (unless its pool is smaller than a step); a run that drew
one twice (an import, a run of a pool smaller than a step) has the two groups counted as one. The reward is the stored RM score (before any missing-EOS penalty or clip).

- **zero std**: every reward of the group is equal (max = min): GRPO and RLOO give it advantage 0;
- **std filter** (DAPO's dynamic sampling, Yu et al. 2025): drops the zero-std groups;
- **mean filter** (OpenRLHF's ``--dynamic_filtering_reward_range LOW HIGH``, default 0 1): keeps a
  group whose mean reward is strictly inside (LOW, HIGH) and drops the others; meant for rewards in
  [0, 1], where it drops the groups that all pass or all fail;
- **binary gate**: with the gold judge, a sample *passes* when its gold score is >= the threshold
  (default 0.5: the world's judge scores in [0, 1], and 0.5 is "more right than wrong"); the gate
  drops the groups whose samples all pass or all fail (pass-rate filtering, as verifiable-reward
  trainers do);
- **phantom advantage**: every sample fails by gold, yet the rewards vary, so the advantages are not
  0: the update pushes the group's samples apart with nothing correct among them to learn from.

Without gold (an import) the binary gate and the phantom list are ``None``.
"""

from __future__ import annotations

import math

import pandas as pd

from engine.config import ConfigError
from engine.store.files import RunDirs
from engine.store.reader import store_cursor

DEFAULT_MEAN_RANGE = (0.0, 1.0)
DEFAULT_GOLD_THRESHOLD = 0.5

# One row per group with its flags; parameters: mean low, mean high, gold threshold.
_GROUPS_SQL = """
WITH g AS (
    SELECT run_id, step, prompt_id, any_value(prompt) AS prompt, count(*) AS n,
        list(CAST(reward AS DOUBLE) ORDER BY sample_idx) AS rewards,
        list(CAST(gold AS DOUBLE) ORDER BY sample_idx) AS gold,
        min(reward) AS lo, max(reward) AS hi, avg(CAST(reward AS DOUBLE)) AS mean_reward,
        count(gold) AS n_gold, count(*) FILTER (WHERE gold >= $3) AS n_pass
    FROM rollouts
    WHERE NOT coalesce(is_probe, FALSE) AND reward IS NOT NULL AND isfinite(reward)
    GROUP BY run_id, step, prompt_id
)
SELECT *, hi = lo AS zero_std,
    NOT (mean_reward > $1 AND mean_reward < $2) AS mean_drop,
    n_gold = n AS has_gold,
    n_gold = n AND (n_pass = 0 OR n_pass = n) AS gate_drop,
    n_gold = n AND n_pass = 0 AND hi > lo AS phantom
FROM g ORDER BY run_id, step, prompt_id
"""


def group_table(
    run_dirs: RunDirs,
    mean_range: tuple[float, float] = DEFAULT_MEAN_RANGE,
    gold_threshold: float = DEFAULT_GOLD_THRESHOLD,
) -> pd.DataFrame:
    """One row per group: ``run_id, step, prompt_id, prompt, n, rewards, gold, lo, hi, mean_reward,
    n_gold, n_pass`` and the flags ``zero_std, mean_drop, has_gold, gate_drop, phantom``."""
    low, high = mean_range
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"the mean filter's range needs low < high, got {low!r}, {high!r}")
    if not math.isfinite(gold_threshold):
        raise ConfigError(f"the gold threshold must be a number, got {gold_threshold!r}")
    with store_cursor(run_dirs) as (cur, found):
        if not found.rollout_files:
            return pd.DataFrame()
        return cur.execute(_GROUPS_SQL, [float(low), float(high), float(gold_threshold)]).df()


def _share(flags: pd.Series) -> float:
    return float(flags.mean()) if len(flags) else 0.0


def group_audit(
    run_dirs: RunDirs,
    mean_range: tuple[float, float] = DEFAULT_MEAN_RANGE,
    gold_threshold: float = DEFAULT_GOLD_THRESHOLD,
    max_phantoms: int | None = None,
) -> dict:
    """The ``analyse groups`` report, JSON-ready: ``settings``, ``has_gold``, ``per_step`` (step,
    n_groups, frac_zero_std, drop shares of the std filter / mean filter / binary gate, phantom count),
    ``overall`` (the same over the run) and ``phantom_groups`` (step, prompt_id, prompt, rewards, gold;
    the first ``max_phantoms``, all when None). Gold-based entries are None when a group lacks gold."""
    table = group_table(run_dirs, mean_range, gold_threshold)
    settings = {"mean_range": list(mean_range), "gold_threshold": gold_threshold}
    if table.empty:
        return {"settings": settings, "has_gold": False, "n_groups": 0, "per_step": [], "overall": None,
                "phantom_groups": None}  # fmt: skip
    has_gold = bool(table["has_gold"].all())

    def summary(frame: pd.DataFrame) -> dict:
        return {
            "n_groups": len(frame),
            "frac_zero_std": _share(frame["zero_std"]),
            "std_filter_drop": _share(frame["zero_std"]),
            "mean_filter_drop": _share(frame["mean_drop"]),
            "binary_gate_drop": _share(frame["gate_drop"]) if has_gold else None,
            "n_phantom": int(frame["phantom"].sum()) if has_gold else None,
        }

    per_step = [{"step": int(step), **summary(frame)} for step, frame in table.groupby("step", sort=True)]
    phantoms = None
    if has_gold:
        rows = table[table["phantom"]]
        if max_phantoms is not None:
            rows = rows.head(max_phantoms)
        phantoms = [
            {
                "run_id": r.run_id,
                "step": int(r.step),
                "prompt_id": r.prompt_id,
                "prompt": r.prompt,
                "rewards": [float(x) for x in r.rewards],
                "gold": [float(x) for x in r.gold],
            }
            for r in rows.itertuples()
        ]
    return {
        "settings": settings,
        "has_gold": has_gold,
        "n_groups": len(table),
        "per_step": per_step,
        "overall": summary(table),
        "phantom_groups": phantoms,
    }
