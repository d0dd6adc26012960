"""Building a trainer from a config: resolve the model sources and prompts (the built-in world by
default, or explicit paths and a prompts file), load the models, attach a fresh LoRA adapter."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.config import ConfigError
from engine.ppo.checkpoints import list_checkpoints
from engine.ppo.config import PPOConfig
from engine.ppo.trainer import PPOTrainer
from engine.reward import Judge
from engine.store import RunWriter

log = logging.getLogger(__name__)


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
    """Model sources and prompts of a config: the built-in world by default, or explicit paths + a prompts file."""
    m, run = config.model, config.run
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
    return Sources(policy=policy, reward_model=reward_model, prompts=prompts, judge=judge)


def read_prompts_file(path: Path) -> list[PromptItem]:
    if not path.is_file():
        raise ConfigError(f"prompts file {path} does not exist")
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise ConfigError(f"prompts file {path} holds no prompts")
    return [PromptItem(prompt_id=f"p{i:05d}", family="file", text=t) for i, t in enumerate(lines)]


def build_trainer(
    config: PPOConfig,
    writer: RunWriter | None = None,
    *,
    sources: Sources | None = None,
    device: torch.device | str | None = None,
) -> PPOTrainer:
    """Load the policy (+ fresh LoRA), the reward model and the prompts of ``config``.

    Every input is checked here, before a run directory exists: the sources, the prompts (each must
    fit the policy's context with ``max_new_tokens``), the models. The global torch generator is
    seeded from the run's seed before the adapter is attached, so the LoRA initialisation (peft draws
    it from the global generator) and hence the whole run are reproducible.
    """
    from engine.models import attach_lora, load_causal_lm, set_threads_from_env
    from engine.reward import load_reward_model
    from engine.sampling import check_fits_context

    set_threads_from_env()
    sources = sources or resolve_sources(config)
    if not sources.prompts:
        raise ConfigError("no training prompts (check the prompt families or the prompts file)")
    policy = load_causal_lm(sources.policy, device=device)
    tokenizer = policy.tokenizer
    longest = max(len(tokenizer(p.text, add_special_tokens=False)["input_ids"]) for p in sources.prompts)
    check_fits_context(policy.model.config, longest, config.sampling.max_new_tokens)
    torch.manual_seed(config.run.seed)
    policy.model = attach_lora(policy.model, r=config.model.lora_r, alpha=config.model.lora_alpha).eval()
    reward = load_reward_model(sources.reward_model, device=policy.device)
    return PPOTrainer(config, policy, reward, sources.prompts, judge=sources.judge, writer=writer)


def resume_step(trainer: PPOTrainer) -> int:
    """Load the last checkpoint of the trainer's run and drop logged steps after it; next step to run."""
    assert trainer.writer is not None
    found = list_checkpoints(trainer.writer.run_dir)
    done = trainer.load_checkpoint(found[-1][1]) if found else 0
    trainer.writer.drop_steps_after(done)
    log.info("resuming after step %d", done)
    return done + 1
