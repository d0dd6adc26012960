"""``prime-rl``: episodes prime-rl's file monitor writes, with the trainer's token exports when present.

prime-rl (src/prime_rl/monitors/file.py ``log_episodes``, commit 559b447) appends one
``verifiers.v1`` Episode record (verifiers/v1/episode.py ``to_record``, commit a60a606) per line to
``<run_dir>/rollouts/step_{N}/{train,eval}/{all,effective}/traces.jsonl``:
``{"id", "env": {"id", "name"}, "task", "group": {"id"}, "run": {..., "work": {"step"}}, "ok",
"errors", "traces": [...]}``. A trace holds ``rewards`` (``{name: {"score", "weight"}}``),
``metrics``, and ``nodes``: a message graph whose nodes carry ``parent``, ``message``
(``role``, ``content``), ``sampled``, ``token_ids``, ``mask`` (True on sampled tokens),
``logprobs`` and ``advantages`` (over the sampled tokens). One row per branch (root-to-leaf
path; one training sample each). ``train/effective`` is read (the admitted trainable traces),
``train/all`` only for a step without it; ``eval`` is skipped.

The prompt is the text of the branch's messages before its first sampled one, the response the
text from there on; per-token lists cover the sampled tokens. The reward is the trace's
(sum of score x weight); its components and metrics go to ``extras``; the group id is the prompt id.

``<run_dir>/token_exports/step_{N}/rank_{r}.jsonl`` (src/prime_rl/trainer/rl/token_export.py,
``trainer.enable_token_export``) holds per-token ``token_ids``, ``loss_mask``, ``advantages``,
``inference_logprobs``, ``trainer_logprobs``, ``entropy`` ... per packed sequence but no text and
no episode id: a record is matched to a branch by its loss-masked token ids, and then fills
``entropy`` and ``rank`` (``trainer_logprobs`` go to ``extras``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.config import ConfigError
from engine.importers.mapping import jsonl_rows, number
from engine.importers.readers import find_files, jsonl_records
from engine.importers.staging import Staging

_STEP = re.compile(r"^step_(\d+)$")


def _step_of(path: Path) -> int | None:
    for part in reversed(path.parts):
        if match := _STEP.match(part):
            return int(match.group(1))
    return None


def files(path: Path, fmt: str = "prime-rl") -> list[Path]:
    found = find_files(
        path, ["traces.jsonl"], "prime-rl episodes (rollouts/step_N/train/effective/traces.jsonl)"
    )
    by_step: dict[int, dict[str, Path]] = defaultdict(dict)
    for p in found:
        step = _step_of(p)
        if step is None or p.parent.parent.name != "train":
            continue
        by_step[step][p.parent.name] = p
    chosen = [subsets.get("effective") or subsets.get("all") for _, subsets in sorted(by_step.items())]
    if not chosen:
        raise ConfigError(f"{path} holds no train episodes (rollouts/step_N/train/.../traces.jsonl)")
    return [p for p in chosen if p is not None]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones (verifiers' content_text)
        return "\n".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def branches(nodes: list[dict]) -> list[list[dict]]:
    """Root-to-leaf node paths of a trace's message graph."""
    parents = {n.get("parent") for n in nodes}
    paths = []
    for i, _ in enumerate(nodes):
        if i in parents:
            continue
        path, nid = [], i
        while nid is not None:
            path.append(nodes[nid])
            nid = nodes[nid].get("parent")
        paths.append(path[::-1])
    return paths


def branch_row(episode: dict, trace: dict, path: list[dict], step: int, where: str) -> dict[str, Any]:
    first = next((i for i, n in enumerate(path) if n.get("sampled")), len(path))
    prompt = "\n".join(_text(n.get("message", {}).get("content")) for n in path[:first])
    response = "\n".join(_text(n.get("message", {}).get("content")) for n in path[first:])
    token_ids, logprobs, advantages = [], [], []
    has_advantages = any(n.get("advantages") is not None for n in path)
    for node in path:
        ids, mask = node.get("token_ids") or [], node.get("mask") or []
        sampled = [t for t, m in zip(ids, mask, strict=False) if m]
        token_ids += sampled
        logprobs += list(node.get("logprobs") or [0.0] * len(sampled))[: len(sampled)]
        advantages += list(node.get("advantages") or [0.0] * len(sampled))[: len(sampled)]
    rewards = trace.get("rewards") or {}
    values = [
        number(r.get("score"), where, f"rewards.{k}.score") * number(r.get("weight", 1.0), where, "weight")
        for k, r in rewards.items()
        if isinstance(r, dict) and r.get("score") is not None
    ]
    group = episode.get("group") or {}
    return {
        "step": step,
        "prompt_id": group.get("id"),
        "prompt": prompt,
        "response": response,
        "reward": sum(values) if values else float("nan"),
        "token_ids": token_ids or None,
        "logprob": logprobs if token_ids else None,
        "advantage": advantages if token_ids and has_advantages else None,
        "extras": {
            "rewards": {k: (r or {}).get("score") for k, r in rewards.items()},
            "metrics": trace.get("metrics") or {},
            "episode_id": episode.get("id"),
            "trace_id": trace.get("id"),
            "env": (episode.get("env") or {}).get("id"),
            "ok": trace.get("ok"),
            "stop_condition": trace.get("stop_condition"),
        },
    }


def token_exports(run_dir: Path, step: int, ctx: Staging) -> dict[tuple, dict]:
    """Loss-masked token ids -> that sequence's export (entropy etc. at those positions, rank)."""
    index: dict[tuple, dict] = {}
    for path in sorted((run_dir / "token_exports" / f"step_{step}").glob("rank_*.jsonl")):
        for line, rec in jsonl_records(path, ctx):
            mask = rec.get("loss_mask") or []
            ids = rec.get("token_ids") or []
            if len(ids) != len(mask):
                raise ConfigError(f"{path}:{line}: token_ids and loss_mask differ in length")
            keep = [i for i, m in enumerate(mask) if m]
            index[tuple(ids[i] for i in keep)] = {
                "entropy": _pick(rec.get("entropy"), keep),
                "trainer_logprobs": _pick(rec.get("trainer_logprobs"), keep),
                "rank": rec.get("rank"),
            }
    return index


def _pick(values: list | None, positions: list[int]) -> list | None:
    return None if values is None else [values[i] for i in positions]


def _run_dir(path: Path) -> Path:
    """The prime-rl output dir above ``rollouts/`` (where ``token_exports/`` lives)."""
    for parent in [path, *path.parents]:
        if parent.name == "rollouts":
            return parent.parent
    return path


def stage(paths: list[Path], ctx: Staging) -> Iterator[pa.Table]:
    ctx.fixed_fields(
        "prime-rl", {"prompt": ["nodes before the first sampled"], "reward": ["traces[].rewards"]}
    )
    for path in paths:
        if path.parent.name == "all":
            ctx.warnings.append(f"{path}: no train/effective episodes for this step, read train/all")
        step = _step_of(path) or 0
        exports = token_exports(_run_dir(path), step, ctx)

        def rows_of(
            line: int, episode: Any, path: Path = path, step: int = step, exports: dict = exports
        ) -> list[dict[str, Any]]:
            rows = []
            for trace in episode.get("traces") or []:
                for branch in branches(trace.get("nodes") or []):
                    row = branch_row(episode, trace, branch, step, f"{path}:{line}")
                    export = exports.get(tuple(row["token_ids"] or ()))
                    if export is not None:
                        row["entropy"], row["rank"] = export["entropy"], export["rank"]
                        row["extras"]["trainer_logprobs"] = export["trainer_logprobs"]
                    rows.append(row)
            return rows

        if path.stat().st_size == 0:
            continue
        yield from jsonl_rows(path, ctx, rows_of)
