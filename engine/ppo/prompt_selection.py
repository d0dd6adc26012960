"""Prompts chosen by the size of their sampling space (``prompt_selection``).

PPO only sharpens what the starting policy already samples, so a prompt whose samples all look alike
(low token entropy, RM scores that barely differ) gives it little to work with; the practitioner's
remedy is to widen PPO's data toward prompts where that space is still large (issue 25). Before step 1
each candidate prompt is sampled ``prompt_selection_samples`` times from the starting policy (seeded),
measured by its mean token entropy and the variance of its RM scores, and the chosen share kept: the
highest (``high_entropy``, ``high_variance``) or the lowest (``low_*``, the control).

The measurement is kept in the run (:data:`engine.runs.layout.PROMPT_SELECTION_FILE`); a resumed
run reads its choice from there rather than measuring a policy that has since moved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from engine.ops import masked_mean
from engine.ppo.rollout import ScoredRollout
from engine.runs.layout import PROMPT_SELECTION_FILE

log = logging.getLogger(__name__)

MEASURES = {"entropy": "mean_entropy", "variance": "reward_variance"}  # selection suffix -> column
CHUNK = 32  # prompts per sampling pass


def measure_prompts(
    prompts: Sequence[Any], sample: Callable[[list[Any]], ScoredRollout]
) -> list[dict[str, Any]]:
    """One row per prompt: ``prompt_id``, ``family``, ``prompt``, ``mean_entropy`` (over every token
    of its samples), ``reward_variance`` (of its samples' RM scores, unbiased) and ``gold_mean`` (nan
    without a judge). ``sample`` draws and scores a list of prompts."""
    rows = []
    for start in range(0, len(prompts), CHUNK):
        batch = sample(list(prompts[start : start + CHUNK]))
        n, k = len(batch.prompts), batch.samples_per_prompt
        mask = batch.rollout.response_mask.reshape(n, -1)  # (n, k T)
        entropy = masked_mean(batch.rollout.signals.entropy.reshape(n, -1), mask, dim=-1)  # (n,)
        scores = batch.scores.float().reshape(n, k)
        variance = scores.var(dim=-1) if k > 1 else torch.zeros(n)  # (n,)
        gold = batch.gold.reshape(n, k).mean(-1) if batch.gold is not None else torch.full((n,), float("nan"))
        for i, p in enumerate(batch.prompts):
            rows.append(
                {
                    "prompt_id": p.prompt_id,
                    "family": p.family,
                    "prompt": p.text,
                    "mean_entropy": float(entropy[i]),
                    "reward_variance": float(variance[i]),
                    "gold_mean": float(gold[i]),
                }
            )
    return rows


def select(rows: list[dict[str, Any]], selection: str, share: float) -> list[dict[str, Any]]:
    """``rows`` with ``rank`` (1 = most chosen) and ``kept`` set: the ``share`` (at least one) with
    the highest or lowest measure of ``selection``; ties broken by prompt id. ``uniform`` keeps all."""
    if selection == "uniform":
        return [{**row, "rank": i + 1, "kept": True} for i, row in enumerate(rows)]
    side, measure = selection.split("_", 1)
    column = MEASURES[measure]
    sign = -1.0 if side == "high" else 1.0
    order = sorted(rows, key=lambda r: (sign * r[column], r["prompt_id"]))
    keep = max(1, round(share * len(rows)))
    return [{**row, "rank": i + 1, "kept": i < keep} for i, row in enumerate(order)]


def write_table(run_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """The measurement as ``run_dir/prompt_selection.parquet`` (temp file + rename)."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(run_dir) / PROMPT_SELECTION_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    os.replace(tmp, path)
    return path


def read_kept(run_dir: Path | None) -> set[str] | None:
    """The kept prompt ids of a run's recorded selection; None when it has none."""
    import pyarrow.parquet as pq

    path = Path(run_dir) / PROMPT_SELECTION_FILE if run_dir is not None else None
    if path is None or not path.is_file():
        return None
    table = pq.read_table(path, columns=["prompt_id", "kept"]).to_pylist()
    return {row["prompt_id"] for row in table if row["kept"]}


def choose_prompts(
    prompts: Sequence[Any],
    selection: str,
    share: float,
    sample: Callable[[list[Any]], ScoredRollout],
    run_dir: Path | None,
) -> list[Any]:
    """The training prompts: all for ``uniform``; else the run's recorded choice, or a new measurement
    (recorded when there is a run directory)."""
    if selection == "uniform":
        return list(prompts)
    kept = read_kept(run_dir)
    if kept is None:
        rows = select(measure_prompts(prompts, sample), selection, share)
        kept = {row["prompt_id"] for row in rows if row["kept"]}
        if run_dir is not None:
            write_table(run_dir, rows)
        log.info("prompt_selection=%s kept %d of %d prompts", selection, len(kept), len(rows))
    return [p for p in prompts if p.prompt_id in kept]
