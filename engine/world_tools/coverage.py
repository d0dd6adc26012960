"""The sampling-space ceiling measured on the built-in world: N samples per prompt from each policy,
scored by the gold judge, summarised as pass@k, Cover@tau and answer entropy
(:mod:`engine.analysis.coverage`), with every sample kept as Parquet so any figure can be recomputed.

The prompt set is one of the world's (``ppo``, ``sft``, ``eval``, ``ppo_only``), a prompts file of
the world's prompts, or one of the real world's (``real-train``, ``real-held-out``: SmolLM2's tasks,
scored by their checkers, :mod:`engine.real_world.world`). A policy is a world SFT epoch (``world:sft-epoch-3``), a run's checkpoint (``RUN@step-K`` or
``RUN@last``, the run looked up among the user's runs, then the demo runs) or any source the model
layer loads. The samples file is ``<out>/coverage.parquet``, or else ``evals/coverage.parquet`` of
the first named run that is not a shipped demo run (those are read-only); it is written once, at the
end, under a temp name then renamed, and every input is checked before the first sample is drawn.

``python -m engine analyse coverage`` is the front door (contract).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from engine.analysis.coverage import COVER_TAUS, coverage_stats, crossing_k
from engine.config import ConfigError, SamplingConfig
from engine.ppo.build import PromptItem, read_prompts_file
from engine.ppo.checkpoints import CheckpointRef, find_checkpoint, parse_checkpoint_ref
from engine.real_world import world as real
from engine.reward import Judge
from engine.runs import RUN_FILE, read_json
from engine.store.writer import atomic_write_table, write_eval
from engine.world import World, load_world
from engine.world.correctness import CORRECT_GOLD, canonical_answer, family_of, is_correct

log = logging.getLogger(__name__)

EVAL_NAME = "coverage"  # evals/coverage.parquet in a run, coverage.parquet under --out
MAX_NEW_TOKENS = 24  # what the world's SFT data needs and its PPO runs sample (sampling.max_new_tokens)
# --prompts NAME -> the world's split (World.prompts); anything else is a prompts file
PROMPT_SETS = {"ppo": "ppo", "sft": "sft_train", "eval": "eval", "ppo_only": "ppo_only"}


@dataclass(frozen=True)
class Policy:
    """A policy to sample: the name the user gave and what the model layer loads for it."""

    label: str
    source: str
    checkpoint: CheckpointRef | None = None
    chat_template: bool = True  # a run's own setting (model.chat_template); the world has no template


def resolve_policy(text: str, runs_root: Path | str | None = None) -> Policy:
    """``RUN@step-K`` / ``RUN@last`` -> that checkpoint's adapter; anything else is a model source as
    given (checked when it is loaded)."""
    ref = parse_checkpoint_ref(text)
    if ref is None:
        return Policy(label=text, source=text)
    checkpoint = find_checkpoint(*ref, runs_root=runs_root)
    record = read_json(checkpoint.run_dir / RUN_FILE) or {}
    chat = ((record.get("config") or {}).get("model") or {}).get("chat_template", True)
    return Policy(label=text, source=str(checkpoint.path), checkpoint=checkpoint, chat_template=bool(chat))


@dataclass(frozen=True)
class GoldSet:
    """A prompt set with the gold judge that scores its samples and what counts as a correct answer."""

    items: list[PromptItem]
    judge: Judge
    correct: Callable[[str, float], bool]
    """(family, gold score) -> whether the sample is a correct answer."""
    answer: Callable[[str, str, str], str]
    """(family, prompt, response) -> the answer it gives (what answer entropy counts)."""
    thresholds: dict[str, float]
    """Per family, the gold score from which a sample is correct."""


def gold_set(world: World | None, name: str) -> GoldSet:
    """The prompt set ``name`` with its judge: the real world's for ``real-train`` / ``real-held-out``,
    else the built-in world's (``world``, loaded when None)."""
    if name in real.PROMPT_SETS:
        return real_gold_set(real.load_real_world(), name)
    world = world if world is not None else load_world()
    items = prompt_set(world, name)
    return GoldSet(
        items=items,
        judge=world.gold_batch,
        correct=is_correct,
        answer=lambda _family, _prompt, response: canonical_answer(response),
        thresholds={f: CORRECT_GOLD[f] for f in sorted({p.family for p in items})},
    )


def real_gold_set(world: real.RealWorld, name: str) -> GoldSet:
    """A real-world task set (``real-train``, ``real-held-out``) with its checkers as the judge."""
    items = [
        PromptItem(prompt_id=t.task_id, family=t.family, text=t.prompt)
        for t in world.split(real.PROMPT_SETS[name])
    ]
    if not items:
        raise ConfigError(f"prompt set {name!r} is empty")
    return GoldSet(
        items=items,
        judge=world.gold_batch,
        correct=lambda _family, gold: real.is_correct(gold),
        answer=real.canonical_answer,
        thresholds={f: real.CORRECT_SCORE for f in sorted({p.family for p in items})},
    )


def prompt_set(world: World, name: str) -> list[PromptItem]:
    """The prompts of a world set (``ppo``, ``sft``, ``eval``, ``ppo_only``) or a prompts file, each
    with the family the gold judge reads it as; ConfigError when it is empty or a prompt is none of
    the world's (the judge could not score it)."""
    if name in PROMPT_SETS:
        prompts = world.prompts(PROMPT_SETS[name])
    else:
        prompts = read_prompts_file(Path(name).expanduser())
    if not prompts:
        raise ConfigError(f"prompt set {name!r} is empty")
    items = []
    for p in prompts:
        family = family_of(p.text)
        if family is None:
            raise ConfigError(f"prompt {p.text!r} ({p.prompt_id}) is not a prompt of the world's families")
        items.append(PromptItem(prompt_id=p.prompt_id, family=family, text=p.text))
    return items


def spread(items: list[PromptItem], most: int | None) -> list[PromptItem]:
    """At most ``most`` of ``items``, evenly spaced over the list (a set is ordered by family, so every
    family keeps its share); all of them when ``most`` is None or not smaller."""
    if most is None or most >= len(items):
        return items
    return [items[i * len(items) // most] for i in range(most)]


@dataclass(frozen=True)
class Destination:
    """Where the samples go: a run (its ``evals/coverage.parquet``) or a folder (``coverage.parquet``)."""

    run_dir: Path | None = None
    folder: Path | None = None


def samples_destination(policies: list[Policy], out: Path | str | None) -> Destination:
    """``out`` when given, else the first named run that is not a shipped demo run (those are
    read-only); ConfigError when there is neither, or ``out`` is a file."""
    if out is not None:
        folder = Path(out).expanduser()
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"--out {out} is a file, not a folder")
        return Destination(folder=folder)
    run = next((p.checkpoint for p in policies if p.checkpoint and not p.checkpoint.demo), None)
    if run is None:
        raise ConfigError(
            "give --out DIR for the samples: no policy is a checkpoint of one of your runs "
            "(the shipped demo runs are read-only)"
        )
    return Destination(run_dir=run.run_dir)


def sample_policies(
    gold: GoldSet,
    policies: list[Policy],
    prompts: list[PromptItem],
    *,
    samples: int,
    config: SamplingConfig,
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """One row per sample of every policy: policy, prompt_id, family, prompt, response, answer, gold,
    correct, token_entropy (mean over the response's tokens, T = 1), n_tokens. Every model is loaded
    before the first sample, so a source that does not load stops the command before any work."""
    from engine.models import load_causal_lm, merged_lora
    from engine.world_tools.samples import sample_checkpoint

    models = {p.source: load_causal_lm(p.source) for p in policies}
    if progress is not None:
        progress(0)  # the models are in: sampling starts
    frames = []
    for policy in policies:
        start = time.perf_counter()
        with merged_lora(models[policy.source].model):  # a checkpoint samples as fast as its base
            s = sample_checkpoint(
                policy.source,
                prompts,
                gold.judge,
                config,
                samples_per_prompt=samples,
                seed=seed,
                model_cache=models,
                chat_template=policy.chat_template,
                progress=progress,
            )
        log.info("%s: %d samples in %.1f s", policy.label, len(s.responses), time.perf_counter() - start)
        frames.append(
            pd.DataFrame(
                {
                    "policy": policy.label,
                    "prompt_id": s.prompt_ids,
                    "family": s.families,
                    "prompt": s.prompts,
                    "response": s.responses,
                    "answer": [
                        gold.answer(f, p, r)
                        for f, p, r in zip(s.families, s.prompts, s.responses, strict=True)
                    ],
                    "gold": s.gold.astype(float),
                    "correct": [gold.correct(f, g) for f, g in zip(s.families, s.gold, strict=True)],
                    "token_entropy": s.mean_entropy.astype(float),
                    "n_tokens": s.lengths.astype(int),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _as_json(stats: dict) -> dict:
    """One policy's statistics with the keys of ``pass_at_k`` and ``cover_at_tau`` as strings (JSON's)."""
    return {
        **stats,
        "pass_at_k": {str(k): v for k, v in stats["pass_at_k"].items()},
        "cover_at_tau": {str(t): v for t, v in stats["cover_at_tau"].items()},
    }


def coverage_report(
    samples: pd.DataFrame, policies: list[Policy], thresholds: dict[str, float] | None = None, **settings
) -> dict:
    """The JSON of ``analyse coverage``: ``settings`` (prompts, samples_per_prompt, temperature, seed,
    max_new_tokens) and, per policy, its statistics with the settings and thresholds they were made
    under, and the same statistics per family (``by_family``: the ceiling can hold in one family and
    not in all); ``crossings``: the first k at which each later policy's pass@k curve crosses the
    first one's (null: never), overall and per family. ``thresholds``: per family, the gold score from
    which a sample is correct (the built-in world's by default)."""
    stats = coverage_stats(samples, COVER_TAUS)
    families = sorted(set(samples["family"]))
    by_family = {f: coverage_stats(samples[samples["family"] == f], COVER_TAUS) for f in families}
    thresholds = {f: CORRECT_GOLD[f] for f in families} if thresholds is None else thresholds
    per_policy = {}
    for p in policies:
        per_policy[p.label] = {
            **_as_json(stats[p.label]),
            "source": p.source,
            "run_dir": str(p.checkpoint.run_dir) if p.checkpoint else None,
            "step": p.checkpoint.step if p.checkpoint else None,
            "temperature": settings["temperature"],
            "seed": settings["seed"],
            "thresholds": thresholds,
            "by_family": {f: _as_json(by_family[f][p.label]) for f in families},
        }
    a = policies[0].label
    crossings = [
        {
            "a": a,
            "b": p.label,
            "k": crossing_k(stats[a]["pass_at_k"], stats[p.label]["pass_at_k"]),
            "by_family": {
                f: crossing_k(by_family[f][a]["pass_at_k"], by_family[f][p.label]["pass_at_k"])
                for f in families
            },
        }
        for p in policies[1:]
    ]
    return {**settings, "thresholds": thresholds, "policies": per_policy, "crossings": crossings}


def write_samples(samples: pd.DataFrame, destination: Destination) -> Path:
    """Write the samples atomically (temp name, then rename) where ``destination`` says."""
    table = pa.Table.from_pandas(samples, preserve_index=False)
    if destination.run_dir is not None:
        return write_eval(destination.run_dir, EVAL_NAME, table)
    return atomic_write_table(table, destination.folder / f"{EVAL_NAME}.parquet")


def measure_coverage(
    world: World | None,
    policy_names: list[str],
    prompts: str,
    *,
    samples: int,
    temperature: float = 1.0,
    seed: int = 0,
    out: Path | str | None = None,
    runs_root: Path | str | None = None,
    max_new_tokens: int = MAX_NEW_TOKENS,
    max_prompts: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Sample, score, keep the samples and report (:func:`coverage_report` plus ``samples_path`` and
    ``wall_s``). ``max_prompts``: at most this many prompts of the set, spread evenly over it (a quick
    look, as the app's button takes). ``progress(done, total)`` counts samples. Inputs are checked
    before any sampling. ``world``: the built-in world (loaded when None and the set is one of its)."""
    if not policy_names:
        raise ConfigError("name at least one --policy")
    if len(set(policy_names)) != len(policy_names):
        raise ConfigError(f"a policy is named twice: {policy_names}")
    if samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    if max_prompts is not None and max_prompts < 1:
        raise ConfigError(f"--max-prompts must be >= 1, got {max_prompts}")
    config = SamplingConfig(temperature=temperature, max_new_tokens=max_new_tokens)
    policies = [resolve_policy(name, runs_root) for name in policy_names]
    gold = gold_set(world, prompts)
    items = spread(gold.items, max_prompts)
    destination = samples_destination(policies, out)
    total, done = len(policies) * len(items) * samples, 0

    def advance(rows: int) -> None:
        nonlocal done
        done += rows
        if progress is not None:
            progress(done, total)

    start = time.perf_counter()
    frame = sample_policies(
        gold, policies, items, samples=samples, config=config, seed=seed, progress=advance
    )
    wall = time.perf_counter() - start
    report = coverage_report(
        frame,
        policies,
        gold.thresholds,
        prompts=prompts,
        n_prompts=len(items),
        samples_per_prompt=samples,
        temperature=temperature,
        seed=seed,
        max_new_tokens=max_new_tokens,
    )
    return {"samples_path": str(write_samples(frame, destination)), "wall_s": wall, **report}
