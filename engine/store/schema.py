"""Arrow schemas and file names of the run store (contract: pages, importers and the trainer share them).

A run directory ``runs/<run_id>/`` holds ``run.json``, ``status.json`` (written by the job),
``rollouts/step-NNNNNN.parquet`` (what PPO trained on) and ``metrics/step-NNNNNN.parquet`` (one file
per logged step), ``probes/step-NNNNNN.parquet`` (the fixed probe prompts, rollout schema, every few
steps), ``checkpoints/`` and ``evals/<name>.parquet``; those names live in :mod:`engine.runs.layout`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

RUN_KINDS = ("ppo", "sft", "import")

_STEP_FILE = re.compile(r"^step-(\d{6,})\.parquet$")

# Per-token signals, one value per response token (same length as ``tokens``).
TOKEN_LIST_COLUMNS: dict[str, pa.DataType] = {
    "entropy": pa.float32(),
    "sampling_entropy": pa.float32(),
    "max_prob": pa.float32(),
    "sampled_prob": pa.float32(),
    "n_candidates": pa.int32(),
    "logprob": pa.float32(),
    "ref_logprob": pa.float32(),
    "value": pa.float32(),
    "advantage": pa.float32(),  # the advantage the update used for each token (after whitening)
}

ROLLOUT_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("step", pa.int32()),
        ("prompt_id", pa.string()),
        ("prompt_family", pa.string()),
        ("sample_idx", pa.int16()),
        ("prompt", pa.string()),
        ("response", pa.string()),
        ("tokens", pa.list_(pa.string())),
        ("token_ids", pa.list_(pa.int32())),
        *[(name, pa.list_(dtype)) for name, dtype in TOKEN_LIST_COLUMNS.items()],
        ("reward", pa.float32()),
        ("gold", pa.float32()),
        ("kl", pa.float32()),
        ("length", pa.int32()),
        ("has_eos", pa.bool_()),
        # length, mean_entropy, repeat_share and prompt_collapsed are derived by the writer when absent
        # (engine.store.derived): per-row values that queries over millions of rows would otherwise
        # compute by unnesting the per-token lists.
        ("mean_entropy", pa.float32()),
        ("repeat_share", pa.float32()),
        ("temperature", pa.float32()),
        ("top_p", pa.float32()),
        ("top_k", pa.int32()),
        ("min_p", pa.float32()),
        ("checkpoint", pa.string()),
        ("prompt_collapsed", pa.bool_()),
        # Which data-parallel rank sampled the row (0 in a one-process run).
        ("rank", pa.int16()),
        # True for the fixed probe prompts evaluated every few steps (not trained on).
        ("is_probe", pa.bool_()),
        # Other per-row values as a JSON object: an imported run's reward components and extra
        # logged fields, kept so nothing of the source is lost.
        ("extras", pa.string()),
    ]
)

# Columns without which a rollout row means nothing; every other column may be null.
REQUIRED_ROLLOUT_COLUMNS = ("prompt_id", "response", "reward")

METRIC_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("step", pa.int32()), ("key", pa.string()), ("value", pa.float64())]
)

LOGPROB_ACCURACY = "logprob_accuracy"
LABEL_ACCURACY = "label_accuracy"  # the same columns, on the run's labels made in the app
LOGPROB_ACCURACY_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("step", pa.int32()),
        ("checkpoint", pa.string()),
        ("accuracy", pa.float64()),
        ("n_pairs", pa.int64()),
    ]
)


def step_file_name(step: int) -> str:
    return f"step-{step:06d}.parquet"


def step_of(path: Path) -> int | None:
    """The step encoded in a ``step-NNNNNN.parquet`` name; None for any other file (temp files too)."""
    match = _STEP_FILE.match(path.name)
    return int(match.group(1)) if match else None


def step_files(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of the step files in ``directory``, sorted by step; [] if it does not exist."""
    if not directory.is_dir():
        return []
    found = [(step, p) for p in directory.iterdir() if (step := step_of(p)) is not None]
    return sorted(found)
