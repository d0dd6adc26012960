"""Building a trainer from a config: resolve the model sources and prompts (the built-in world by
default, or explicit paths and a prompts file), load the models, attach a fresh LoRA adapter.

A prompts file is plain text (one prompt per line), JSONL or Parquet (by suffix): a prompt column
(``prompt``, ``text`` or ``query``), an optional family column (``family``, ``prompt_family`` or
``tag``: what the pages group by; ``file`` when absent) and an optional id column (``id`` or
``prompt_id``; ``p00000``... by position when absent)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.config import ConfigError
from engine.ppo.config import PPOConfig
from engine.ppo.distributed import SINGLE, Dist
from engine.ppo.trainer import PPOTrainer
from engine.reward import Judge
from engine.runs import list_checkpoints
from engine.store import RunWriter

log = logging.getLogger(__name__)
REAL_POLICY = "smollm2"  # the policy source that means the real world (engine.real_world)


@dataclass(frozen=True)
class PromptItem:
    """A training prompt (the world's ``Prompt`` has the same three attributes)."""

    prompt_id: str
    family: str
    text: str


@dataclass
class Sources:
    """What a config resolves to: model sources, prompts, and the judge when the world provides one."""

    policy: str
    reward_model: str
    prompts: list[Any]
    judge: Judge | None


def resolve_sources(config: PPOConfig) -> Sources:
    """Model sources and prompts of a config: the built-in world by default, the real world for
    ``--policy smollm2`` (:func:`real_world_sources`), or explicit paths + a prompts file. With
    ``--reward-model gold`` the judge is the reward (ConfigError where the sources bring none)."""
    m, run = config.model, config.run
    if m.policy.strip() == REAL_POLICY and not (m.reward_model and run.prompts_file):
        return real_world_sources(config)
    judge: Judge | None = None
    prompts: list[Any] = []
    if m.uses_world or not m.reward_model or not run.prompts_file:
        from engine.world import load_world

        try:
            world = load_world()
        except (FileNotFoundError, ConfigError) as exc:
            raise ConfigError(
                "the built-in world is not available; give --policy, --reward-model and --prompts-file "
                f"({exc})"
            ) from exc
        policy = m.policy or world.policy_source(m.sft_epoch)
        reward_model = m.reward_model or world.rm_source
        if not run.prompts_file:
            known = {f.name for f in world.families}
            unknown = sorted(set(run.families) - known)
            if unknown:
                raise ConfigError(f"unknown prompt families {unknown}; the world has {sorted(known)}")
            prompts = list(world.prompts(split="ppo", families=list(run.families) or None))
        if m.uses_world:
            judge = world.gold_batch
    else:
        policy, reward_model = m.policy, m.reward_model
    if run.prompts_file:
        prompts = read_prompts_file(Path(run.prompts_file))
    if m.reward_is_judge and judge is None:
        raise ConfigError(
            f"reward_model='gold' needs a gold judge and policy {m.policy!r} brings none: the built-in "
            "world's policy (no --policy) and --policy smollm2 score with their worlds' judges"
        )
    return Sources(policy=policy, reward_model=reward_model, prompts=prompts, judge=judge)


def real_world_sources(config: PPOConfig) -> Sources:
    """The real world on SmolLM2: its training tasks (unless a prompts file is given), its reward model
    (unless one is given; ConfigError when it is not built) and its checker as the gold judge, which
    scores only the world's own prompts (so it is dropped with a prompts file)."""
    from engine.real_world.world import load_real_world

    m, run = config.model, config.run
    world = load_real_world()
    reward_model = m.reward_model or world.require_rm()
    if run.prompts_file:
        return Sources(m.policy, reward_model, read_prompts_file(Path(run.prompts_file)), judge=None)
    tasks = world.split("train")
    unknown = sorted(set(run.families) - {t.family for t in tasks})
    if unknown:
        raise ConfigError(
            f"unknown prompt families {unknown}; the real world has {sorted({t.family for t in tasks})}"
        )
    wanted = set(run.families)
    prompts = [prompt_item(t) for t in tasks if not wanted or t.family in wanted]
    return Sources(
        policy=m.policy.strip(), reward_model=reward_model, prompts=prompts, judge=world.gold_batch
    )


def prompt_item(task: Any) -> PromptItem:
    """A real-world task as a training prompt."""
    return PromptItem(prompt_id=task.task_id, family=task.family, text=task.prompt)


PROMPT_COLUMNS = ("prompt", "text", "query")
FAMILY_COLUMNS = ("family", "prompt_family", "tag")
ID_COLUMNS = ("id", "prompt_id")


def read_prompts_file(path: Path) -> list[PromptItem]:
    """The prompts of a text, JSONL or Parquet file (see the module docstring); ConfigError on bad input."""
    if not path.is_file():
        raise ConfigError(f"prompts file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        records = _jsonl_records(path)
    elif suffix in (".parquet", ".pq"):
        records = _parquet_records(path)
    else:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        records = [{"prompt": t} for t in lines]
    if not records:
        raise ConfigError(f"prompts file {path} holds no prompts")
    return prompts_from_records(records, path)


def _jsonl_records(path: Path) -> list[dict]:
    records = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} line {n} is not JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise ConfigError(f"{path} line {n} is not a JSON object")
        records.append(record)
    return records


def _parquet_records(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ConfigError(f"cannot read {path} as Parquet: {exc}") from None


def _first_column(record: dict, names: tuple[str, ...]) -> str | None:
    return next((name for name in names if name in record), None)


def prompts_from_records(records: list[dict], source: Path) -> list[PromptItem]:
    """Records with a prompt column (and optional family / id columns) -> PromptItems; ids unique."""
    column = _first_column(records[0], PROMPT_COLUMNS)
    if column is None:
        raise ConfigError(
            f"{source} has no prompt column: expected one of {list(PROMPT_COLUMNS)}, got {sorted(records[0])}"
        )
    family_col = _first_column(records[0], FAMILY_COLUMNS)
    id_col = _first_column(records[0], ID_COLUMNS)
    prompts = []
    for i, record in enumerate(records):
        text = record.get(column)
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{source} record {i + 1}: {column!r} must be a non-empty string, got {text!r}")
        family = record.get(family_col) if family_col else None
        prompt_id = record.get(id_col) if id_col else None
        prompts.append(
            PromptItem(
                prompt_id=f"p{i:05d}" if prompt_id is None else str(prompt_id),
                family="file" if family is None or family == "" else str(family),
                text=text.strip(),
            )
        )
    ids = [p.prompt_id for p in prompts]
    if len(set(ids)) != len(ids):
        duplicate = next(x for x in ids if ids.count(x) > 1)
        raise ConfigError(f"{source}: prompt id {duplicate!r} appears more than once")
    return prompts


def build_trainer(
    config: PPOConfig,
    writer: RunWriter | None = None,
    *,
    sources: Sources | None = None,
    device: torch.device | str | None = None,
    dist: Dist = SINGLE,
) -> PPOTrainer:
    """Load the policy (+ fresh LoRA), the reward model and the prompts of ``config``.

    Every input is checked here, before a run directory exists: the sources, the prompts (each must
    fit the policy's context with ``max_new_tokens``), the models. The global torch generator is
    seeded from the run's seed before the adapter is attached, so the LoRA initialisation (peft draws
    it from the global generator) and hence the whole run are reproducible.
    """
    from engine.models import attach_lora, load_causal_lm, set_threads_from_env
    from engine.reward import load_reward_model

    set_threads_from_env()
    sources = sources or resolve_sources(config)
    if not sources.prompts:
        raise ConfigError("no training prompts (check the prompt families or the prompts file)")
    policy = load_causal_lm(sources.policy, device=device)
    check_prompts_fit(config, sources, policy.model.config, policy.tokenizer)
    record_named_base(policy.model, sources.policy)
    torch.manual_seed(config.run.seed)
    policy.model = attach_lora(policy.model, r=config.model.lora_r, alpha=config.model.lora_alpha).eval()
    reward = None  # reward_model='gold': no RM; the trainer rewards with the judge's scores
    if not config.model.reward_is_judge:
        reward = load_reward_model(sources.reward_model, device=policy.device)
    return PPOTrainer(config, policy, reward, sources.prompts, judge=sources.judge, writer=writer, dist=dist)


def record_named_base(model: Any, source: str) -> None:
    """A named source (``smollm2``) is the base its adapters record, not its cache path: PEFT writes
    the model's ``name_or_path`` into every checkpoint's ``adapter_config.json``, and the name loads
    on any machine (the cache is rebuilt there) where this machine's cache path would not."""
    from engine.models.gguf_cache import named_source

    if named_source(source) is not None:
        model.name_or_path = source
        model.config._name_or_path = source


def check_prompts_fit(config: PPOConfig, sources: Sources, model_config: Any, tokenizer: Any) -> None:
    """ConfigError unless the longest prompt (as the policy reads it) + ``max_new_tokens`` fits the
    policy's context: the one rule, used by :func:`build_trainer` and by :func:`check_inputs`."""
    from engine.sampling import chat_prompts, check_fits_context

    texts = chat_prompts(tokenizer, [p.text for p in sources.prompts], config.model.chat_template)
    longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    check_fits_context(model_config, longest, config.sampling.max_new_tokens)


def check_inputs(config: PPOConfig) -> None:
    """The checks :func:`build_trainer` makes that need no weights (the sources, the prompts, the
    policy's context), in about a second: a form refuses what the job would refuse before it starts."""
    from engine.models import load_config_and_tokenizer, resolve_source

    sources = resolve_sources(config)
    if not sources.prompts:
        raise ConfigError("no training prompts (check the prompt families or the prompts file)")
    if not config.model.reward_is_judge:
        resolve_source(sources.reward_model)
    model_config, tokenizer = load_config_and_tokenizer(sources.policy)
    check_prompts_fit(config, sources, model_config, tokenizer)


def resume_step(trainer: PPOTrainer, run_dir: Path | None = None) -> int:
    """Load the last checkpoint of the run and drop logged steps after it; the next step to run.

    Every rank of a data-parallel run loads the checkpoint (``run_dir``: ranks other than 0 have no
    writer); only the writer drops files.
    """
    run_dir = Path(run_dir) if run_dir is not None else trainer.writer.run_dir  # type: ignore[union-attr]
    found = list_checkpoints(run_dir)
    done = trainer.load_checkpoint(found[-1][1]) if found else 0
    if trainer.writer is not None:
        trainer.writer.drop_steps_after(done)
    log.info("resuming after step %d", done)
    return done + 1
