"""Rollout/metric store: Parquet write path (``writer``), DuckDB read path and the queries pages use.

``from engine.store import ...`` is the public API; the submodules are implementation detail.
"""

from engine.store.entropy_queries import (
    ENTROPY_AFTER_UPDATE,
    ENTROPY_BEFORE_UPDATE,
    entropy_step_stats,
    step_metrics,
    step_tokens,
)
from engine.store.failure_modes import DETECTORS, DetectorParams, failure_counts, failure_examples
from engine.store.files import fingerprint
from engine.store.queries import (
    DENSITY_VALUES,
    SCORE_VALUES,
    families,
    logged_steps,
    metric_keys,
    metrics,
    nonfinite_counts,
    prompt_drilldown,
    read_eval,
    reward_norm_density,
    runs_frame,
    step_summary,
    store_warnings,
    top_variance_prompts,
)
from engine.store.rm_accuracy import logprob_accuracy, reward_spread, rm_gold_agreement, rm_refreshes
from engine.store.schema import (
    LABEL_ACCURACY,
    LOGPROB_ACCURACY,
    LOGPROB_ACCURACY_SCHEMA,
    METRIC_SCHEMA,
    ROLLOUT_SCHEMA,
    TOKEN_LIST_COLUMNS,
    step_file_name,
)
from engine.store.writer import RunWriter, to_rollout_table, write_eval

__all__ = [
    "DENSITY_VALUES",
    "SCORE_VALUES",
    "DETECTORS",
    "ENTROPY_AFTER_UPDATE",
    "ENTROPY_BEFORE_UPDATE",
    "LABEL_ACCURACY",
    "LOGPROB_ACCURACY",
    "LOGPROB_ACCURACY_SCHEMA",
    "METRIC_SCHEMA",
    "ROLLOUT_SCHEMA",
    "TOKEN_LIST_COLUMNS",
    "DetectorParams",
    "RunWriter",
    "entropy_step_stats",
    "failure_counts",
    "failure_examples",
    "families",
    "fingerprint",
    "runs_frame",
    "logged_steps",
    "logprob_accuracy",
    "metric_keys",
    "metrics",
    "nonfinite_counts",
    "prompt_drilldown",
    "read_eval",
    "reward_norm_density",
    "reward_spread",
    "rm_gold_agreement",
    "rm_refreshes",
    "step_file_name",
    "step_metrics",
    "step_summary",
    "step_tokens",
    "store_warnings",
    "to_rollout_table",
    "top_variance_prompts",
    "write_eval",
]

# The rollout browser's queries (rankings of prompts, one prompt's per-step table).
from engine.store.browser_queries import RANKING_LABELS, RANKINGS, prompt_step_table, rank_prompts  # noqa: E402

__all__ += ["RANKINGS", "RANKING_LABELS", "prompt_step_table", "rank_prompts"]

# KL to the reference per step from the logged per-token log-probs (k1 and the non-negative k3).
from engine.store.kl_queries import KL_STEP_COLUMNS, kl_per_step  # noqa: E402

__all__ += ["KL_STEP_COLUMNS", "kl_per_step"]

# The fixed probe prompts (one prompt's samples at given steps, per-family curves) and the RM exploits.
from engine.store.probe_queries import (  # noqa: E402
    PROBE_TOKEN_COLUMNS,
    exploit_rollouts,
    probe_family_change,
    probe_family_steps,
    probe_prompts,
    probe_samples,
    probe_steps,
)

__all__ += [
    "PROBE_TOKEN_COLUMNS",
    "exploit_rollouts",
    "probe_family_change",
    "probe_family_steps",
    "probe_prompts",
    "probe_samples",
    "probe_steps",
]
