"""The import formats: each one's name, the module that reads it and its one-line help.

One home, read by the importers (:mod:`engine.importers`), the ``python -m engine import`` command
and the Import page. Only the standard library here, so ``--help`` and the page's format list load
nothing heavy; the format modules (pyarrow, duckdb) are imported only when a format is used.
"""

from __future__ import annotations

from typing import NamedTuple


class Format(NamedTuple):
    module: str
    """The module exposing ``files(path, fmt)`` and ``stage(files, ctx)`` for this format."""
    help: str
    """Where the framework writes its rollouts, in one line (``--help`` and the Import page)."""


FORMATS = {
    "trl": Format(
        "engine.importers.trl",
        "TRL GRPOTrainer(log_completions=True): <output_dir>/completions/completions_NNNNN.parquet",
    ),
    "wandb-table": Format(
        "engine.importers.wandb_table",
        "a W&B table JSON ({columns, data}): TRL PPO 'completions', OpenRLHF generated_samples",
    ),
    "verl": Format("engine.importers.verl", "verl trainer.rollout_data_dir: {global_step}.jsonl"),
    "nemo-rl": Format("engine.importers.nemo_rl", "NeMo-RL GRPO log dir: train_data_step{N}.jsonl"),
    "prime-rl": Format(
        "engine.importers.prime_rl",
        "prime-rl run dir: rollouts/step_N/train/*/traces.jsonl (+ token_exports/)",
    ),
    "jsonl": Format(
        "engine.importers.table", "any JSONL table of rollouts (one sample per line), with --map"
    ),
    "parquet": Format("engine.importers.table", "any Parquet table of rollouts, with --map"),
    "csv": Format("engine.importers.table", "any CSV table of rollouts, with --map"),
}

FORMAT_HELP = {name: fmt.help for name, fmt in FORMATS.items()}
"""Format name -> its one-line help (the Import page's format list, ``--help``)."""
