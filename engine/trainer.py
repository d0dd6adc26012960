"""The PPO loop: each iteration sequences the phases of :mod:`engine.ppo`, logs rollouts and metrics
to the store, and checkpoints; resume continues from the last checkpoint.

Reproducibility: the prompt order of each pass over the prompt pool, the sampling generator and the
minibatch shuffles of step ``s`` are all seeded from ``(seed, s)``, so a resumed run redraws exactly
the steps it lost, whatever happened to any global RNG.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.config import ConfigError
from engine.models import LoadedModel, ValueHead, attach_lora, hidden_size, load_value_head, save_value_head
from engine.ppo import (
    Rollout,
    UpdateBatch,
    bf16_matmul_is_fast,
    explained_variance,
    frozen_matmuls_in_bf16,
    fuse_activations,
    gae,
    is_finite,
    kl_controller,
    kl_per_token,
    ppo_update,
    process_scores,
    reference_logprobs,
    rollout,
    score,
    shaped_rewards,
    whiten,
)
from engine.ppo_config import PPOConfig
from engine.sampling import decode_tokens, encode_prompts, masked_mean
from engine.store import RunWriter
from engine.store.schema import CHECKPOINTS_DIR

log = logging.getLogger(__name__)

Judge = Callable[[list[str], list[str]], Sequence[float]]
TRAINER_STATE = "trainer_state.json"
VALUE_HEAD_FILE = "value_head.safetensors"
OPTIMIZER_FILE = "optimizer.pt"


@dataclass(frozen=True)
class PromptItem:
    """A training prompt (the world's ``Prompt`` has the same three attributes)."""

    prompt_id: str
    family: str
    text: str


@dataclass
class StepResult:
    step: int
    metrics: dict[str, float]
    rows: dict[str, list] | None  # rollout columns for the store; None for a skipped step
    skipped: bool = False


def step_seed(seed: int, step: int, stream: int) -> int:
    """A distinct, reproducible seed per (run seed, step, stream)."""
    return (seed * 1_000_003 + step * 7919 + stream * 104_729) % (2**63 - 1)


class PPOTrainer:
    """Holds the policy (base + LoRA), value head, reward model, optimizer and KL controller."""

    def __init__(
        self,
        config: PPOConfig,
        policy: LoadedModel,
        reward: LoadedModel,
        prompts: Sequence[Any],
        *,
        judge: Judge | None = None,
        writer: RunWriter | None = None,
        value_head: nn.Module | None = None,
    ) -> None:
        if not prompts:
            raise ConfigError("no training prompts (check the prompt families or the prompts file)")
        self.config = config
        self.policy = policy
        self.model = policy.model
        self.tokenizer = policy.tokenizer
        self.reward = reward
        self.prompts = list(prompts)
        self.judge = judge
        self.writer = writer
        self.device = policy.device
        self.model.eval()  # dropout off: rollout and update must see the same function
        fuse_activations(self.model)
        self.base_precision = config.ppo.base_precision if bf16_matmul_is_fast(self.device) else "fp32"
        if self.base_precision != "fp32":
            frozen_matmuls_in_bf16(self.model, self.base_precision)
        if value_head is None:
            torch.manual_seed(config.run.seed)
            value_head = ValueHead(hidden_size(self.model))
        self.value_head = value_head.to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad] + list(self.value_head.parameters())
        if not any(p.requires_grad for p in self.model.parameters()):
            raise ConfigError("the policy has no trainable parameters: attach a LoRA adapter first")
        # fused: one kernel per step instead of ~10 small ops per parameter tensor
        self.optimizer = torch.optim.AdamW(params, lr=config.ppo.learning_rate, fused=True)
        self.kl_ctl = kl_controller(config.ppo)
        self._same_vocab = _same_vocab(self.tokenizer, reward.tokenizer)
        self._perms: dict[int, list[int]] = {}

    # ------------------------------------------------------------------ prompts

    def prompt_batch(self, step: int) -> list[Any]:
        """The ``prompts_per_step`` prompts of 1-based ``step``: consecutive slices of per-pass shuffles."""
        k, n = self.config.run.prompts_per_step, len(self.prompts)
        batch = []
        for j in range((step - 1) * k, step * k):
            epoch, pos = divmod(j, n)
            if epoch not in self._perms:
                g = torch.Generator().manual_seed(step_seed(self.config.run.seed, epoch, stream=0))
                self._perms[epoch] = torch.randperm(n, generator=g).tolist()
            batch.append(self.prompts[self._perms[epoch][pos]])
        return batch

    # ------------------------------------------------------------------ one iteration

    def iteration(self, step: int) -> StepResult:
        """Rollout -> reference log-probs -> score -> KL-shaped rewards -> GAE -> PPO update."""
        cfg, run = self.config, self.config.run
        timings: dict[str, float] = {}
        t_start = time.perf_counter()

        prompts = self.prompt_batch(step)
        texts = [p.text for p in prompts for _ in range(run.samples_per_prompt)]
        prompt_index = torch.arange(len(prompts)).repeat_interleave(run.samples_per_prompt)  # (B,)
        prompt_ids, prompt_mask = encode_prompts(self.tokenizer, texts, self.device)  # (B, P)
        sample_gen = torch.Generator(device=self.device).manual_seed(step_seed(run.seed, step, stream=1))

        ro = rollout(
            self.model,
            self.value_head,
            prompt_ids,
            prompt_mask,
            cfg.sampling,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
            generator=sample_gen,
        )
        timings["time/rollout"] = time.perf_counter() - t_start

        t0 = time.perf_counter()
        ref_logprobs = reference_logprobs(self.model, ro)
        raw_scores = self._score(ro, texts)  # (B,)
        timings["time/score"] = time.perf_counter() - t0
        responses = decode_responses(self.tokenizer, ro.response_ids, ro.response_mask)
        gold = None
        if self.judge is not None:
            t0 = time.perf_counter()
            gold = torch.tensor([float(x) for x in self.judge(texts, responses)], dtype=torch.float32)
            timings["time/judge"] = time.perf_counter() - t0

        mask = ro.response_mask
        kl = kl_per_token(ro.logprobs, ref_logprobs, cfg.ppo.kl_estimator).masked_fill(~mask, 0.0)  # (B, T)
        scores = process_scores(raw_scores, ro.has_eos, prompt_index.to(self.device), cfg.ppo)
        kl_coef = self.kl_ctl.value
        rewards = shaped_rewards(scores, kl, mask, kl_coef)  # (B, T)
        advantages, returns = gae(rewards, ro.values, mask, cfg.ppo.gamma, cfg.ppo.lam)
        if cfg.ppo.whiten_advantages:
            advantages = whiten(advantages, mask)

        if not is_finite(raw_scores, ro.logprobs, ref_logprobs, ro.values, advantages, returns):
            log.warning("step %d: non-finite rollout (scores, log-probs or values); update skipped", step)
            return StepResult(step, {"guard/bad_step": 1.0, "objective/kl_coef": kl_coef}, None, skipped=True)

        t0 = time.perf_counter()
        shuffle_gen = torch.Generator().manual_seed(step_seed(run.seed, step, stream=2))
        update_metrics = ppo_update(
            self.model,
            self.value_head,
            self.optimizer,
            UpdateBatch(
                sequences=ro.sequences,
                attention_mask=ro.attention_mask,
                response_mask=mask,
                old_logprobs=ro.logprobs,
                old_values=ro.values,
                advantages=advantages,
                returns=returns,
                prompt_len=ro.prompt_ids.shape[1],
                temperature=ro.temperature,
            ),
            cfg.ppo,
            shuffle_gen,
        )
        timings["time/update"] = time.perf_counter() - t0

        kl_per_seq = kl.sum(-1)  # (B,)
        self.kl_ctl.update(float(kl_per_seq.mean()), len(texts))
        metrics = {
            **self._objective_metrics(
                ro, raw_scores, scores, kl, kl_per_seq, kl_coef, gold, advantages, returns
            ),
            **update_metrics,
        }
        t0 = time.perf_counter()
        rows = (
            self._rollout_rows(step, prompts, ro, ref_logprobs, raw_scores, gold, kl_per_seq, responses)
            if run.log_rollouts
            else None
        )
        timings["time/rows"] = time.perf_counter() - t0
        timings["time/step"] = time.perf_counter() - t_start
        metrics.update(timings)
        return StepResult(step, metrics, rows)

    def _score(self, ro: Rollout, prompt_texts: list[str]) -> torch.Tensor:
        """RM scores; token ids pass straight through when the RM shares the policy's vocabulary."""
        if self._same_vocab:
            return score(self.reward.model, ro.sequences, ro.attention_mask)
        responses = decode_responses(self.tokenizer, ro.response_ids, ro.response_mask)
        rm_tok = self.reward.tokenizer
        enc = rm_tok(
            [p + " " + r for p, r in zip(prompt_texts, responses, strict=True)],
            padding=True,
            return_tensors="pt",
        )
        return score(
            self.reward.model, enc["input_ids"].to(self.device), enc["attention_mask"].bool().to(self.device)
        )

    def _objective_metrics(
        self,
        ro: Rollout,
        raw_scores: torch.Tensor,
        scores: torch.Tensor,
        kl: torch.Tensor,
        kl_per_seq: torch.Tensor,
        kl_coef: float,
        gold: torch.Tensor | None,
        advantages: torch.Tensor,
        returns: torch.Tensor,
    ) -> dict[str, float]:
        mask = ro.response_mask
        lengths = ro.lengths.float()
        metrics = {
            "objective/reward": float(raw_scores.mean()),
            "objective/reward_std": float(raw_scores.std(unbiased=False)),
            "objective/score": float(scores.mean()),
            "objective/kl": float(kl_per_seq.mean()),
            "objective/kl_per_token": float(masked_mean(kl, mask)),
            "objective/kl_coef": kl_coef,
            "objective/rlhf_reward": float((scores - kl_coef * kl_per_seq).mean()),
            "objective/entropy": float(masked_mean(ro.signals.entropy, mask)),
            "objective/sampling_entropy": float(masked_mean(ro.signals.sampling_entropy, mask)),
            "objective/max_prob": float(masked_mean(ro.signals.max_prob, mask)),
            "objective/n_candidates": float(masked_mean(ro.signals.n_candidates.float(), mask)),
            "response/length": float(lengths.mean()),
            "response/eos_rate": float(ro.has_eos.float().mean()),
            "val/explained_var": explained_variance(ro.values, returns, mask),
            "val/return_mean": float(masked_mean(returns, mask)),
            "policy/advantage_abs": float(masked_mean(advantages.abs(), mask)),
        }
        if gold is not None:
            metrics["objective/gold"] = float(gold.mean())
            metrics["objective/gold_std"] = float(gold.std(unbiased=False))
        return metrics

    def _rollout_rows(
        self,
        step: int,
        prompts: list[Any],
        ro: Rollout,
        ref_logprobs: torch.Tensor,
        raw_scores: torch.Tensor,
        gold: torch.Tensor | None,
        kl_per_seq: torch.Tensor,
        responses: list[str],
    ) -> dict[str, list]:
        """Store columns, one row per sample; per-token lists are cut to the response length."""
        k = self.config.run.samples_per_prompt
        s = self.config.sampling
        lengths = ro.lengths.cpu().numpy()
        token_arrays = {
            "entropy": ro.signals.entropy,
            "sampling_entropy": ro.signals.sampling_entropy,
            "max_prob": ro.signals.max_prob,
            "sampled_prob": ro.signals.sampled_prob,
            "n_candidates": ro.signals.n_candidates,
            "logprob": ro.logprobs,
            "ref_logprob": ref_logprobs,
            "value": ro.values,
            "token_ids": ro.response_ids,
        }
        per_token = {name: t.detach().cpu().numpy() for name, t in token_arrays.items()}
        n_rows = len(lengths)
        rows: dict[str, list] = {
            name: [arr[i, : lengths[i]] for i in range(n_rows)] for name, arr in per_token.items()
        }
        rows["tokens"] = decode_tokens(self.tokenizer, ro.response_ids.cpu(), ro.response_mask.cpu())
        rows["prompt_id"] = [p.prompt_id for p in prompts for _ in range(k)]
        rows["prompt_family"] = [p.family for p in prompts for _ in range(k)]
        rows["sample_idx"] = [j for _ in prompts for j in range(k)]
        rows["prompt"] = [p.text for p in prompts for _ in range(k)]
        rows["response"] = responses
        rows["reward"] = raw_scores.cpu().tolist()
        rows["gold"] = gold.tolist() if gold is not None else [None] * n_rows
        rows["kl"] = kl_per_seq.cpu().tolist()
        rows["length"] = lengths.tolist()
        rows["has_eos"] = ro.has_eos.cpu().tolist()
        rows["temperature"] = [s.temperature] * n_rows
        rows["top_p"] = [s.top_p] * n_rows
        rows["top_k"] = [s.top_k] * n_rows
        rows["checkpoint"] = [f"step-{step - 1}"] * n_rows  # the policy that sampled: after step-1 updates
        return rows

    # ------------------------------------------------------------------ loop

    def train(
        self,
        start_step: int = 1,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_step: Callable[[StepResult], None] | None = None,
        progress: bool = False,
    ) -> int:
        """Run steps ``start_step..steps``; log, checkpoint every ``save_every``. Returns the last finished step."""
        steps = self.config.run.steps
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=steps, initial=start_step - 1, desc="ppo", unit="step")
        last = start_step - 1
        for step in range(start_step, steps + 1):
            result = self.iteration(step)
            self.log_step(result)
            last = step
            if step % self.config.run.save_every == 0 or step == steps or should_stop():
                self.save_checkpoint(step)
            if on_step is not None:
                on_step(result)
            if bar is not None:
                bar.update(1)
                m = result.metrics
                bar.set_postfix(
                    reward=f"{m.get('objective/reward', float('nan')):.3f}",
                    kl=f"{m.get('objective/kl', float('nan')):.3f}",
                )
            if should_stop():
                log.info("stop requested: stopped after step %d", step)
                break
        if bar is not None:
            bar.close()
        return last

    def log_step(self, result: StepResult) -> None:
        if self.writer is None:
            return
        if result.rows is not None:
            self.writer.write_rollouts(result.step, result.rows)
        # metrics last: a step counts as logged once its metrics file exists
        self.writer.write_metrics(result.step, {k: v for k, v in result.metrics.items() if v is not None})

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, step: int) -> Path | None:
        """checkpoints/step-N/: LoRA adapter (peft save_pretrained), value head, optimizer, trainer state.

        Written under a temp name and renamed, so a checkpoint directory is always complete.
        """
        if self.writer is None:
            return None
        root = self.writer.run_dir / CHECKPOINTS_DIR
        final = root / f"step-{step}"
        tmp = root / f".step-{step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.model.save_pretrained(str(tmp))
        save_value_head(self.value_head, tmp / VALUE_HEAD_FILE)
        torch.save(self.optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        state = {
            "step": step,
            "kl_coef": self.kl_ctl.value,
            "seed": self.config.run.seed,
            "rng": {
                "scheme": "per-step torch.Generator seeded from (seed, step, stream); global state below",
                "torch_cpu": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
            },
        }
        (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        log.info("checkpoint %s", final)
        return final

    def load_checkpoint(self, path: Path) -> int:
        """Restore adapter, value head, optimizer and KL coefficient; returns the checkpoint's step."""
        from peft import load_peft_weights, set_peft_model_state_dict

        set_peft_model_state_dict(self.model, load_peft_weights(str(path), device=str(self.device)))
        self.value_head.load_state_dict(
            load_value_head(path / VALUE_HEAD_FILE, self.value_head.summary.in_features).state_dict()
        )
        self.optimizer.load_state_dict(
            torch.load(path / OPTIMIZER_FILE, map_location=self.device, weights_only=True)
        )
        state = json.loads((path / TRAINER_STATE).read_text())
        self.kl_ctl.value = float(state["kl_coef"])
        rng = np.frombuffer(base64.b64decode(state["rng"]["torch_cpu"]), dtype=np.uint8).copy()
        torch.set_rng_state(torch.from_numpy(rng))
        self.model.eval()
        return int(state["step"])


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, (step, path) ascending."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    found = []
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith("step-") and (p / TRAINER_STATE).is_file():
                try:
                    found.append((int(p.name[5:]), p))
                except ValueError:
                    continue
    return sorted(found)


def decode_responses(tokenizer: Any, response_ids: torch.Tensor, response_mask: torch.Tensor) -> list[str]:
    """Response texts of the real tokens, EOS kept (the gold judge reads it: a response that stopped
    itself ends with it), padding dropped."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id != tokenizer.eos_token_id else None
    rows = []
    for ids, keep in zip(response_ids.tolist(), response_mask.tolist(), strict=True):
        real = [t for t, k in zip(ids, keep, strict=True) if k and t != pad]
        rows.append(tokenizer.decode(real, skip_special_tokens=False, clean_up_tokenization_spaces=False))
    return rows


def _same_vocab(a, b) -> bool:
    if a is b:
        return True
    try:
        return len(a) == len(b) and a.get_vocab() == b.get_vocab()
    except (AttributeError, TypeError):
        return False


# ---------------------------------------------------------------------- building a run


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
        try:
            from engine.world import load_world

            world = load_world()
        except (ImportError, FileNotFoundError, ConfigError) as exc:
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
    """Load the policy (+ fresh LoRA), the reward model and the prompts of ``config``."""
    from engine.models import load_causal_lm, set_threads_from_env
    from engine.reward import load_reward_model

    set_threads_from_env()
    sources = sources or resolve_sources(config)
    policy = load_causal_lm(sources.policy, device=device)
    policy.model = attach_lora(policy.model, r=config.model.lora_r, alpha=config.model.lora_alpha).eval()
    reward = load_reward_model(sources.reward_model, device=policy.device)
    return PPOTrainer(config, policy, reward, sources.prompts, judge=sources.judge, writer=writer)


def resume_step(trainer: PPOTrainer) -> int:
    """Load the last checkpoint of the trainer's run and drop logged steps after it; next step to run."""
    assert trainer.writer is not None
    found = checkpoints(trainer.writer.run_dir)
    done = trainer.load_checkpoint(found[-1][1]) if found else 0
    trainer.writer.drop_steps_after(done)
    log.info("resuming after step %d", done)
    return done + 1
