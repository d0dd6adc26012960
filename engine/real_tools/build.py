"""``python -m engine real build``: the real world's task sets and its reward model, from one seed.

The reward model is trained the practitioner's way, as the built-in world's is
(:mod:`engine.world_tools.build`): sample the model's own answers to the training prompts (chat
template, T = 1), label pairs of answers to the same prompt by the gold judge (here the checkers of
:mod:`engine.real_world`) with Bradley-Terry label noise, train a Bradley-Terry RM on them, and measure
it against the judge on answers to held-out prompts. The RM is the base's body with LoRA on its top
layers and a scalar head (:class:`engine.reward.AdapterRewardModel`); only the adapter and the head
are written, a few MB, and the base is named by its source (``smollm2``).

What is written (``data/real/`` by default), all at once (a temporary directory renamed into place):

- ``tasks_train.jsonl``, ``tasks_held_out.jsonl``: the task sets (task_id, family, prompt, answer);
- ``samples_train.jsonl``, ``samples_held_out.jsonl``: the sampled answers with their checker scores
  (and, held out, the RM's score);
- ``pairs_train.jsonl``: the labelled pairs the RM trained on (``flipped``: the label noise's work);
- ``rm/``: the reward model (``reward_adapter.json``, ``adapter.safetensors``), loaded by
  :func:`engine.reward.load_reward_model`;
- ``real.json``: the manifest (config, counts, accuracies, timings, machine, files' sha256).

The same seed on the same machine and thread count gives the same task sets, samples and labels.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from engine.config import ConfigError
from engine.real_world import FAMILIES, PPO_FAMILIES, Task, make_task_sets, score

log = logging.getLogger(__name__)
REAL_VERSION = 1
MANIFEST = "real.json"


@dataclass(frozen=True)
class RealBuildConfig:
    """How the real world is built: task sets, the RM's data and the RM, all from ``seed``."""

    seed: int = 0
    """Seeds the task sets, the sampling, the label noise and the RM's training."""
    base: str = "smollm2"
    """The model whose answers are sampled and whose body the RM adapts (a model source)."""
    train_tasks: int = 40
    """Training tasks per family in the task sets (PPO's prompts); mul-easy has 64 distinct prompts in all."""
    held_out_tasks: int = 16
    """Held-out tasks per family in the task sets."""
    rm_families: tuple[str, ...] = PPO_FAMILIES
    """The families whose answers the RM is trained and measured on: those PPO samples from. A family
    SmolLM2 never or always answers right gives no pair of different scores, only sampling cost."""
    rm_train_prompts: int = 24
    """Training tasks per RM family whose answers are sampled for the RM's pairs."""
    rm_eval_prompts: int = 12
    """Held-out tasks per RM family whose answers measure the RM against the checker."""
    samples_per_prompt: int = 12
    """Answers sampled per prompt (T = 1): n answers give up to n^2/4 pairs of different scores."""
    max_new_tokens: int = 16
    """Answer length limit in tokens: the ``smollm2-cpu`` preset's, so the RM learns on answers like PPO's."""
    sample_batch: int = 64
    """Sequences per generation batch."""
    label_noise: float = 0.1
    """Chance that a right-vs-wrong pair (checker scores 1 and 0) is labelled the wrong way round;
    Bradley-Terry noise as in the built-in world: a pair whose scores differ by less (partial credit)
    flips more often, sigma(-gap / s) with the s that gives this chance at gap 1."""
    rm_top_layers: int = 4
    """LoRA on the base's top this many layers (the RM's trainable body)."""
    rm_lora_r: int = 16
    """LoRA rank of the RM's adapter."""
    rm_epochs: int = 4
    """RM training epochs."""
    rm_lr: float = 1e-3
    """RM learning rate (one-cycle)."""
    rm_batch: int = 16
    """Samples per RM training step (whole prompts: their pairs are all used)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and f.name != "seed" and value < 1:
                raise ConfigError(f"{f.name} must be >= 1, got {value}")
        if not 0 <= self.label_noise < 0.5:
            raise ConfigError(f"label_noise must be in [0, 0.5), got {self.label_noise}")
        unknown = sorted(set(self.rm_families) - set(FAMILIES))
        if unknown or not self.rm_families:
            raise ConfigError(
                f"rm_families must name task families; unknown: {unknown}; known: {', '.join(FAMILIES)}"
            )
        if self.rm_train_prompts > self.train_tasks or self.rm_eval_prompts > self.held_out_tasks:
            raise ConfigError("rm_train_prompts / rm_eval_prompts cannot exceed train_tasks / held_out_tasks")

    @property
    def noise_scale(self) -> float:
        """The Bradley-Terry noise scale s with sigma(-1 / s) = ``label_noise`` (0: no noise)."""
        return 1 / math.log((1 - self.label_noise) / self.label_noise) if self.label_noise > 0 else 0.0


QUICK = {
    "rm_families": tuple(FAMILIES),
    "train_tasks": 2,
    "held_out_tasks": 2,
    "rm_train_prompts": 2,
    "rm_eval_prompts": 2,
    "samples_per_prompt": 4,
    "max_new_tokens": 8,
    "rm_top_layers": 1,
    "rm_lora_r": 2,
    "rm_epochs": 1,
}
"""A smoke build (``--quick``): two tasks per family, a few short answers, one epoch."""


@dataclass
class Samples:
    """Sampled answers: one entry per answer, in the order sampled."""

    tasks: list[Task]
    responses: list[str]  # as the checker reads them (EOS kept)
    rows: list[list[int]]  # prompt (chat template) + response token ids, as sampled
    scores: list[float]  # checker scores

    def records(self) -> list[dict]:
        return [
            {"task_id": t.task_id, "family": t.family, "response": r, "score": s}
            for t, r, s in zip(self.tasks, self.responses, self.scores, strict=True)
        ]


def sample_answers(
    loaded, tasks: list[Task], config: RealBuildConfig, generator: torch.Generator, desc: str
) -> Samples:
    """``config.samples_per_prompt`` answers to each task at T = 1, its prompt in the chat template."""
    from tqdm.auto import tqdm

    from engine.config import SamplingConfig
    from engine.sampling import chat_prompts, generate_from_texts
    from engine.token_text import decode_responses

    sampling = SamplingConfig(temperature=1.0, max_new_tokens=config.max_new_tokens)
    repeated = [task for task in tasks for _ in range(config.samples_per_prompt)]
    texts = chat_prompts(loaded.tokenizer, [task.prompt for task in repeated])
    samples = Samples([], [], [], [])
    for start in tqdm(range(0, len(repeated), config.sample_batch), desc=desc, leave=False):
        batch = repeated[start : start + config.sample_batch]
        gen = generate_from_texts(loaded, texts[start : start + len(batch)], sampling, generator)
        responses = decode_responses(loaded.tokenizer, gen.response_ids, gen.response_mask)
        for k, task in enumerate(batch):
            samples.tasks.append(task)
            samples.responses.append(responses[k])
            samples.rows.append(gen.sequences[k][gen.attention_mask[k]].tolist())
            samples.scores.append(score(task, responses[k]))
    return samples


def label_pairs(samples: Samples, config: RealBuildConfig) -> list[list[tuple[int, int, bool]]]:
    """Per prompt, its labelled pairs (chosen, rejected, flipped): every pair of its answers with
    different checker scores, labelled by the checker with Bradley-Terry noise (``label_noise``)."""
    from engine.agreement import within_prompt_pairs
    from engine.world.data import label_flip_probability

    rng = random.Random(f"{config.seed}:labels")
    left, right = within_prompt_pairs([t.task_id for t in samples.tasks])
    groups: dict[str, list[tuple[int, int, bool]]] = {}
    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        gap = samples.scores[a] - samples.scores[b]
        if gap == 0:
            continue
        flipped = rng.random() < label_flip_probability(gap, config.noise_scale)
        better, worse = (a, b) if (gap > 0) != flipped else (b, a)
        groups.setdefault(samples.tasks[a].task_id, []).append((better, worse, flipped))
    return list(groups.values())


def build_real(out_dir: Path, config: RealBuildConfig = RealBuildConfig()) -> dict:
    """Write the task sets, the RM's samples and pairs, the RM and the manifest to ``out_dir``."""
    from engine.agreement import pairwise_agreement
    from engine.models import backbone_and_head, load_causal_lm
    from engine.models.gguf_cache import describe_source
    from engine.real_tools.rm_training import train_adapter_reward_model
    from engine.reward import (
        AdapterRewardModel,
        AdapterRMSettings,
        score_token_rows,
    )

    started = time.time()
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.building-{os.getpid()}")
    _remove_leftovers(out_dir)
    tmp.mkdir(parents=True)  # first, so an unwritable --out fails before minutes of work
    try:
        sets = make_task_sets(
            config.seed, train_per_family=config.train_tasks, held_out_per_family=config.held_out_tasks
        )
        _write_jsonl(tmp / "tasks_train.jsonl", [t.as_dict() for t in sets.train])
        _write_jsonl(tmp / "tasks_held_out.jsonl", [t.as_dict() for t in sets.held_out])

        timings = {}
        clock = time.time()
        loaded = load_causal_lm(config.base)
        timings["load_s"] = time.time() - clock

        clock = time.time()
        generator = torch.Generator(device=loaded.device).manual_seed(config.seed)
        train, held = (
            sample_answers(loaded, _first_per_family(tasks, n, config.rm_families), config, generator, desc)
            for tasks, n, desc in (
                (sets.train, config.rm_train_prompts, "sampling RM data"),
                (sets.held_out, config.rm_eval_prompts, "sampling held-out answers"),
            )
        )  # in this order: one generator, so the same seed gives the same answers
        timings["sampling_s"] = time.time() - clock
        groups = label_pairs(train, config)
        pairs = [pair for group in groups for pair in group]
        log.info(
            "RM data: %d samples, %d labelled pairs over %d prompts", len(train.rows), len(pairs), len(groups)
        )
        if not pairs:
            raise ConfigError(
                "no pair of answers to a training prompt differs in checker score: sample more prompts or answers"
            )

        clock = time.time()
        torch.manual_seed(config.seed)  # the head's init
        settings = AdapterRMSettings(
            base=config.base,
            top_layers=config.rm_top_layers,
            lora_r=config.rm_lora_r,
            lora_alpha=2 * config.rm_lora_r,
        )
        body, _ = backbone_and_head(loaded.model)  # sampling is done: the same weights become the RM's body
        rm = AdapterRewardModel(body, settings).to(loaded.device)
        losses = train_adapter_reward_model(
            rm,
            train.rows,
            [[(c, r) for c, r, _ in group] for group in groups],
            pad_id=loaded.tokenizer.pad_token_id,
            epochs=config.rm_epochs,
            batch_size=config.rm_batch,
            lr=config.rm_lr,
            seed=config.seed,
        )
        timings["rm_train_s"] = time.time() - clock

        clock = time.time()
        held_rm = score_token_rows(rm, held.rows, loaded.tokenizer.pad_token_id).tolist()
        timings["rm_eval_s"] = time.time() - clock
        accuracy = _accuracy(pairwise_agreement, held, held_rm)

        rm.save(tmp / "rm")
        _write_jsonl(tmp / "samples_train.jsonl", train.records())
        _write_jsonl(
            tmp / "samples_held_out.jsonl",
            [record | {"rm_score": round(s, 6)} for record, s in zip(held.records(), held_rm, strict=True)],
        )
        _write_jsonl(
            tmp / "pairs_train.jsonl",
            [
                {
                    "task_id": train.tasks[c].task_id,
                    "chosen": train.responses[c],
                    "rejected": train.responses[r],
                    "score_chosen": train.scores[c],
                    "score_rejected": train.scores[r],
                    "flipped": flipped,
                }
                for c, r, flipped in pairs
            ],
        )
        epoch_steps = max(1, len(losses) // config.rm_epochs)
        manifest = {
            "version": REAL_VERSION,
            "seed": config.seed,
            "config": asdict(config) | {"rm_families": list(config.rm_families)},  # as JSON reads it back
            "base": {"source": config.base, "description": describe_source(config.base)},
            "families": {name: family.description for name, family in FAMILIES.items()},
            "counts": {
                "tasks_train": len(sets.train),
                "tasks_held_out": len(sets.held_out),
                "samples_train": len(train.rows),
                "samples_held_out": len(held.rows),
                "pairs_train": len(pairs),
                "pairs_flipped": sum(flipped for _, _, flipped in pairs),
                "prompts_with_pairs": len(groups),
            },
            "checker_mean": {
                "train": _family_means(train),
                "held_out": _family_means(held),
            },
            "rm": {
                "path": "rm",
                "settings": asdict(settings),
                "trained_parameters": sum(p.numel() for p in rm.trained_state().values()),
                "final_epoch_loss": round(sum(losses[-epoch_steps:]) / epoch_steps, 4),
                "held_out_pair_accuracy": accuracy,
            },
            "timings": {k: round(v, 1) for k, v in timings.items()}
            | {"build_s": round(time.time() - started, 1)},
            "machine": _machine(),
        }
        manifest["files"] = {
            str(path.relative_to(tmp)): _sha256(path) for path in sorted(tmp.rglob("*")) if path.is_file()
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "real world built in %.0f s -> %s (RM held-out pair accuracy %s)",
        time.time() - started,
        out_dir,
        manifest["rm"]["held_out_pair_accuracy"]["all"]["value"],
    )
    return manifest


def _first_per_family(tasks: list[Task], n: int, families: tuple[str, ...]) -> list[Task]:
    """The first ``n`` tasks of each of ``families`` (the task sets are drawn per family, so these
    are the same for any larger set)."""
    seen: dict[str, int] = {}
    chosen = []
    for task in tasks:
        if task.family not in families:
            continue
        seen[task.family] = seen.get(task.family, 0) + 1
        if seen[task.family] <= n:
            chosen.append(task)
    return chosen


def _accuracy(pairwise_agreement, samples: Samples, rm_scores: list[float]) -> dict:
    """RM-checker pair accuracy on within-prompt pairs of different checker scores, over all
    families and per family: {name: {value, pairs}}."""
    ids = [t.task_id for t in samples.tasks]
    out = {}
    for name in ["all", *FAMILIES]:
        keep = [i for i, t in enumerate(samples.tasks) if name in ("all", t.family)]
        value, n = pairwise_agreement(
            [rm_scores[i] for i in keep], [samples.scores[i] for i in keep], [ids[i] for i in keep]
        )
        if n or name == "all":
            out[name] = {"value": None if math.isnan(value) else round(value, 4), "pairs": n}
    return out


def _family_means(samples: Samples) -> dict[str, float]:
    by_family: dict[str, list[float]] = {}
    for task, s in zip(samples.tasks, samples.scores, strict=True):
        by_family.setdefault(task.family, []).append(s)
    return {name: round(sum(v) / len(v), 4) for name, v in by_family.items()}


def _machine() -> dict:
    from engine.models import default_device
    from engine.models.precision import cpu_kind

    return {
        "device": default_device().type,
        "cpu_kind": cpu_kind(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _remove_leftovers(out_dir: Path) -> None:
    """Remove the temporary directories of builds into ``out_dir`` that were killed (their process is
    gone): a build removes its own when it fails, but a SIGKILL leaves it behind."""
    from engine.models.gguf_cache import process_alive

    prefix = f".{out_dir.name}.building-"
    for path in out_dir.parent.glob(f"{prefix}*"):
        pid = path.name[len(prefix) :]
        if not (pid.isdigit() and process_alive(int(pid)) and int(pid) != os.getpid()):
            log.info("removing %s, left by an interrupted build", path)
            shutil.rmtree(path, ignore_errors=True)


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` to ``out_dir``; an older build there is moved aside first and removed
    after, so ``out_dir`` is never a mix of two builds."""
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(real_dir: Path) -> dict:
    """The manifest of a built real world; ConfigError when there is none."""
    path = Path(real_dir) / MANIFEST
    if not path.is_file():
        raise ConfigError(f"no real world at {real_dir}: run `python -m engine real build`")
    return json.loads(path.read_text())
