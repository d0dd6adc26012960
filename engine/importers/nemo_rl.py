"""``nemo-rl``: the per-step training data NeMo-RL's GRPO writes to its log directory.

NeMo-RL (nemo_rl/algorithms/grpo.py, "Log training data", and nemo_rl/utils/logger.py
``log_batched_dict_as_jsonl``, commit 7ea279a) writes ``train_data_step{N}.jsonl``. Each line is a
batch of ONE sample (``make_microbatch_iterator(1)``), so every value is wrapped in a one-element
list, plus ``idx``: ``content`` (the sample's message contents, e.g. ``[["<prompt>", "<answer>"]]``),
``rewards``, ``input_lengths``, ``token_ids`` (the whole padded sequence), ``token_loss_mask``
(1 on generated tokens), ``sample_loss_mask``, ``advantages``, ``generation_logprobs`` and
``prev_logprobs`` (per token, aligned with ``token_ids``).

The response is the last message and its tokens the last run of loss-masked tokens; the prompt is
the earlier messages joined. ``token_ids``, ``generation_logprobs`` (-> ``logprob``) and
``advantages`` (-> ``advantage``) are cut to that span; ``prev_logprobs`` (same span) and the
other fields go to ``extras``. No group id is logged: samples are grouped by prompt text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.config import ConfigError
from engine.importers.mapping import jsonl_rows, number
from engine.importers.readers import find_files
from engine.importers.staging import Staging

_STEP = re.compile(r"train_data_step(\d+)\.jsonl$")
PER_TOKEN = {"generation_logprobs": "logprob", "advantages": "advantage"}


def files(path: Path, fmt: str = "nemo-rl") -> list[Path]:
    found = find_files(path, ["train_data_step*.jsonl"], "NeMo-RL training data (train_data_step{N}.jsonl)")
    return sorted(found, key=lambda p: int(m.group(1)) if (m := _STEP.search(p.name)) else -1)


def _unwrap(value: Any, key: str, where: str) -> Any:
    if not (isinstance(value, list) and len(value) == 1):
        raise ConfigError(f"{where}: {key!r} is not a one-sample batch ([value]) as NeMo-RL writes it")
    return value[0]


def _response_span(mask: list, length: int) -> tuple[int, int]:
    """[start, end) of the last run of loss-masked tokens within the first ``length`` tokens."""
    end = length
    while end > 0 and not mask[end - 1]:
        end -= 1
    start = end
    while start > 0 and mask[start - 1]:
        start -= 1
    return start, end


def sample_row(obj: dict, step: int, where: str) -> dict[str, Any]:
    sample = {k: _unwrap(v, k, where) for k, v in obj.items() if k != "idx"}
    for key in ("content", "rewards"):
        if key not in sample:
            raise ConfigError(f"{where}: no {key!r} field; fields found: {sorted(obj)}")
    content = sample.pop("content")
    if not isinstance(content, list) or not content or not all(isinstance(c, str) for c in content):
        raise ConfigError(f"{where}: 'content' must be the list of the sample's message texts")
    row: dict[str, Any] = {
        "step": step,
        "prompt": "".join(content[:-1]),
        "response": content[-1],
        "reward": number(sample.pop("rewards"), where, "rewards"),
    }
    token_ids, mask = sample.pop("token_ids", None), sample.pop("token_loss_mask", None)
    if token_ids is not None and mask is not None:
        length = int(sample.get("input_lengths") or len(token_ids))
        start, end = _response_span(mask, min(length, len(token_ids), len(mask)))
        row["token_ids"] = token_ids[start:end]
        for key, store_field in PER_TOKEN.items():
            values = sample.pop(key, None)
            if values is not None:
                row[store_field] = values[start:end]
        if "prev_logprobs" in sample:
            sample["prev_logprobs"] = sample["prev_logprobs"][start:end]
    row["extras"] = {"idx": obj.get("idx"), **sample}
    return row


def stage(paths: list[Path], ctx: Staging) -> Iterator[pa.Table]:
    ctx.fixed_fields(
        "nemo-rl", {"prompt": ["content[:-1]"], "response": ["content[-1]"], "reward": ["rewards"]}
    )
    for path in paths:
        match = _STEP.search(path.name)
        step = int(match.group(1)) if match else 0
        if path.stat().st_size == 0:
            raise ConfigError(f"{path} is empty")

        def rows_of(line: int, obj: Any, path: Path = path, step: int = step) -> list[dict[str, Any]]:
            return [sample_row(obj, step, f"{path}:{line}")]

        yield from jsonl_rows(path, ctx, rows_of)
