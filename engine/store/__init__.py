"""Rollout/metric store: Parquet write path (``writer``), DuckDB read path and the queries pages use.

``from engine.store import ...`` is the public API; the submodules are implementation detail.
"""

from engine.store.schema import (
    LOGPROB_ACCURACY,
    LOGPROB_ACCURACY_SCHEMA,
    METRIC_SCHEMA,
    ROLLOUT_SCHEMA,
    TOKEN_LIST_COLUMNS,
    step_file_name,
)
from engine.store.writer import RunWriter, to_rollout_table, write_eval

__all__ = [
    "LOGPROB_ACCURACY",
    "LOGPROB_ACCURACY_SCHEMA",
    "METRIC_SCHEMA",
    "ROLLOUT_SCHEMA",
    "TOKEN_LIST_COLUMNS",
    "RunWriter",
    "step_file_name",
    "to_rollout_table",
    "write_eval",
]
