"""The PPO loop: the prompt schedule, one iteration (the phases of :mod:`engine.ppo` in order), and
the loop that logs each step to the store and checkpoints.

Data parallelism (:mod:`engine.ppo.distributed`): with a :class:`~engine.ppo.distributed.Dist` of
world size N each rank runs the same iteration on its shard of the step's prompts; gradients,
metrics, the finite-check and the KL controller's input are reduced across ranks, and rank 0 (the
only one with a writer) stores every rank's rows and the checkpoints.

Reproducibility: the prompt order of each pass over the prompt pool, the sampling generator and the
minibatch shuffles of step ``s`` are all seeded from ``(seed, s)``, so a resumed run redraws exactly
the steps it lost, whatever happened to any global RNG.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.config import ConfigError, SamplingConfig
from engine.models import (
    LoadedModel,
    ValueHead,
    bf16_matmul_is_fast,
    frozen_matmuls_in_bf16,
    fuse_activations,
    hidden_size,
)
from engine.models.trunk import shared_trunk
from engine.ops import masked_mean, whiten
from engine.ppo.advantages import gae
from engine.ppo.checkpoints import load_checkpoint, save_checkpoint
from engine.ppo.config import PPOConfig
from engine.ppo.distributed import SINGLE, Dist
from engine.ppo.group_advantages import frac_reward_zero_std, group_advantages
from engine.ppo.metrics import objective_metrics, probe_metrics, rollout_rows
from engine.ppo.prompt_selection import choose_prompts
from engine.ppo.rewards import kl_controller, kl_per_token, process_scores, shaped_rewards
from engine.ppo.rm_refresh import RMRefresh
from engine.ppo.rollout import Rollout, ScoredRollout, reference_pass, rollout, token_entropy
from engine.ppo.steps import PhaseTimer, PromptOrder, StepResult, probe_set, step_seed
from engine.ppo.update import TrainingDiverged, UpdateBatch, group_update, is_finite, ppo_update
from engine.reward import Judge, same_vocabulary, score_responses
from engine.sampling import chat_prompts, encode_prompts
from engine.store import ENTROPY_AFTER_UPDATE, ENTROPY_BEFORE_UPDATE, RunWriter

log = logging.getLogger(__name__)


def effective_precision(requested: str, device: torch.device) -> str:
    """The base precision a run really uses: bf16 modes only where bf16 matmuls are fast."""
    return requested if bf16_matmul_is_fast(device) else "fp32"


class PPOTrainer:
    """Holds the policy (base + LoRA), value head (PPO only), reward model, optimizer and KL controller."""

    def __init__(
        self,
        config: PPOConfig,
        policy: LoadedModel,
        reward: LoadedModel | None,
        prompts: Sequence[Any],
        *,
        judge: Judge | None = None,
        writer: RunWriter | None = None,
        value_head: nn.Module | None = None,
        dist: Dist = SINGLE,
    ) -> None:
        if not prompts:
            raise ConfigError("no training prompts (check the prompt families or the prompts file)")
        if reward is None and judge is None:
            raise ConfigError("no reward: a reward model, or a judge with reward_model='gold'")
        self.config = config
        self.policy = policy
        self.model = policy.model
        self.tokenizer = policy.tokenizer
        self.reward = reward
        self.prompts = list(prompts)
        self.judge = judge
        self.writer = writer
        self.dist = dist
        self.device = policy.device
        self.model.eval()  # dropout off: rollout and update must see the same function
        fuse_activations(self.model)
        # The RM scores every step too: on the world's RM the seven-op GELU was 40 % of its forward
        # and its (B, L, 4E) temporaries the score phase's memory peak.
        if reward is not None:  # None: the judge is the reward (reward_model='gold')
            fuse_activations(reward.model)
        self.base_precision = effective_precision(config.ppo.base_precision, self.device)
        if self.base_precision != "fp32":
            frozen_matmuls_in_bf16(self.model, self.base_precision)
        same_base = (reward is not None and self.base_precision == "fp32"
                     and same_vocabulary(self.tokenizer, reward.tokenizer))  # fmt: skip
        # the RM's base layers, tied to the policy's (one copy in memory) unless an RM refresh trains them
        tie = config.model.rm_refresh_every == 0
        self.trunk = shared_trunk(reward.model, self.model, tie=tie) if same_base else None
        if value_head is None and config.uses_value_head:
            torch.manual_seed(config.run.seed)
            value_head = ValueHead(hidden_size(self.model))
        self.value_head = value_head.to(self.device) if config.uses_value_head else None
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.value_head is not None:
            params += list(self.value_head.parameters())
        if not any(p.requires_grad for p in self.model.parameters()):
            raise ConfigError("the policy has no trainable parameters: attach a LoRA adapter first")
        # fused: one kernel per step instead of ~10 small ops per parameter tensor
        self.optimizer = torch.optim.AdamW(params, lr=config.ppo.learning_rate, fused=True)
        self.kl_ctl = kl_controller(config.ppo)
        self._order = PromptOrder(len(self.prompts), config.run.prompts_per_step, config.run.seed)
        self.probe_prompts = probe_set(self.prompts, config.run.probes_per_family)
        self.rm_refresh = None
        if config.model.rm_refresh_every > 0:
            self.rm_refresh = RMRefresh(config, reward, self.tokenizer, judge)

    @property
    def run_dir(self) -> Path | None:
        """The run directory (a job attaches its writer after building the trainer)."""
        return self.writer.run_dir if self.writer is not None else None

    def trainable_parameters(self) -> list[torch.Tensor]:
        """The optimizer's parameters: the LoRA adapter and the value head (PPO)."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded (B, P) ids and mask of prompt texts, in the chat template when the run uses one."""
        templated = chat_prompts(self.tokenizer, texts, self.config.model.chat_template)
        return encode_prompts(self.tokenizer, templated, self.device)

    def sample(self, texts: list[str], sampling: SamplingConfig, generator: torch.Generator) -> Rollout:
        """Phase 1 on prompt texts: encode them and roll the current policy out."""
        prompt_ids, prompt_mask = self.encode(texts)  # (B, P)
        tok = self.tokenizer
        return rollout(
            self.model, self.value_head, prompt_ids, prompt_mask, sampling,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, generator=generator,
        )  # fmt: skip

    def sample_and_score(
        self,
        prompts: list[Any],
        samples_per_prompt: int,
        sampling: SamplingConfig,
        generator: torch.Generator,
        timer: PhaseTimer,
        *,
        with_reference: bool = True,
    ) -> ScoredRollout:
        """Phases 1-2 and the KL of phase 3, shared by the training pass and the probes: roll the policy
        out on each prompt ``samples_per_prompt`` times, take the reference log-probs, score with the RM
        (and the gold judge), and the per-token KL to the reference. Without ``with_reference`` (a group
        method at kl_loss_coef 0, between its KL metric's steps) no reference pass: no log-probs, no KL."""
        texts = [p.text for p in prompts for _ in range(samples_per_prompt)]
        with timer("rollout"):
            ro = self.sample(texts, sampling, generator)
        with timer("score"):
            ref_logprobs, hidden = (reference_pass(self.model, ro, trunk=self.trunk)  # (B, T), (B, P + T, H)
                                    if with_reference else (None, None))  # fmt: skip
            scored = score_responses(
                self.tokenizer, ro.sequences, ro.attention_mask, ro.response_ids, ro.response_mask, texts,
                reward=self.reward, judge=self.judge, trunk=(self.trunk, hidden) if hidden is not None else None,
            )  # fmt: skip
        kl = None
        if ref_logprobs is not None:
            kl = kl_per_token(ro.logprobs, ref_logprobs, self.config.ppo.kl_estimator)  # (B, T)
            kl = kl.masked_fill(~ro.response_mask, 0.0)
        return ScoredRollout(
            prompts=list(prompts),
            samples_per_prompt=samples_per_prompt,
            sampling=sampling,
            rollout=ro,
            ref_logprobs=ref_logprobs,
            scores=scored.reward if self.reward is not None else scored.gold.to(self.device),
            gold=scored.gold,
            responses=scored.judge_texts,
            kl=kl,
        )

    # ------------------------------------------------------------------ prompts

    def prompt_batch(self, step: int) -> list[Any]:
        """The ``prompts_per_step`` prompts of 1-based ``step`` (:class:`PromptOrder`)."""
        return [self.prompts[i] for i in self._order.step_indices(step)]

    # ------------------------------------------------------------------ one iteration

    def iteration(self, step: int) -> StepResult:
        """Rollout -> reference log-probs -> score -> KL-shaped rewards -> GAE -> PPO update; for GRPO /
        RLOO, score -> group advantages -> update with the KL as a loss term.

        Raises :class:`TrainingDiverged` at a non-finite loss, gradient norm or weight, or a policy
        whose rollout log-probs or values are not finite: nothing of this step is logged."""
        cfg, run, rank = self.config, self.config.run, self.dist.rank
        timer = PhaseTimer()

        # Probes: the fixed prompts under this step's policy, before its update (rank 0: the policy is
        # one, shared by the ranks).
        probe = None
        if self.is_probe_step(step) and self.dist.is_main:
            with timer("probe"):
                probe = self.probe(step)

        # 1-2. Sample this rank's prompts (all of them in one process), reference log-probs, RM scores.
        prompts = self.dist.shard(self.prompt_batch(step))
        sample_gen = torch.Generator(device=self.device).manual_seed(step_seed(run.seed, step, 1, rank))
        batch = self.sample_and_score(
            prompts, run.samples_per_prompt, cfg.sampling, sample_gen, timer,
            with_reference=cfg.takes_reference(step),
        )  # fmt: skip
        ro, mask, kl = batch.rollout, batch.rollout.response_mask, batch.kl

        # 3. Processed scores and KL-shaped per-token rewards; 4. GAE advantages and returns.
        k = run.samples_per_prompt
        prompt_index = torch.arange(len(prompts)).repeat_interleave(k)  # (B,)
        scores = process_scores(batch.scores, ro.has_eos, prompt_index.to(self.device), cfg.ppo)  # (B,)
        if cfg.uses_value_head:
            kl_coef = self.kl_ctl.value
            rewards = shaped_rewards(scores, kl, mask, kl_coef)  # (B, T)
            advantages, returns = gae(rewards, ro.values, mask, cfg.ppo.gamma, cfg.ppo.lam)
            if cfg.ppo.whiten_advantages:
                advantages = whiten(advantages, mask)
        else:  # 3-4. GRPO / RLOO: the group baseline; the KL is a loss term, not in the reward
            kl_coef, returns = cfg.ppo.kl_loss_coef, None
            advantages = group_advantages(scores, mask, k, cfg.ppo.algorithm, cfg.ppo.scale_rewards)  # (B, T)

        # A non-finite policy has diverged; a non-finite score (the RM's) only spoils this batch.
        finite = is_finite(batch.scores, ro.logprobs, batch.ref_logprobs, ro.values, advantages, returns)
        if not self.dist.all_true(finite):  # every rank stops or skips together
            if not self.dist.all_true(is_finite(ro.logprobs, ro.values)):
                raise TrainingDiverged("the policy's rollout log-probs or values are not finite", step)
            log.warning("step %d: non-finite rollout (scores, log-probs or values); update skipped", step)
            return StepResult(step, {"guard/bad_step": 1.0, "objective/kl_coef": kl_coef}, None, skipped=True)

        # 5-6. PPO epochs over shuffled minibatches: clipped losses, one combined loss, gradient clip.
        with timer("update"):
            update_metrics = self.update(ro, advantages, returns, batch.ref_logprobs, step)
        if run.measure_entropy_change:
            # The same tokens' entropy before and after this update: the change per update, measured.
            entropy_after = token_entropy(self.model, ro)  # (B, T)
            update_metrics[ENTROPY_BEFORE_UPDATE] = float(masked_mean(ro.signals.entropy, mask))
            update_metrics[ENTROPY_AFTER_UPDATE] = float(masked_mean(entropy_after, mask))

        # The KL controller sees the global batch, so its coefficient stays the same on every rank (a
        # step without the reference pass is one on every rank: takes_reference depends on the step only).
        if kl is not None:
            self.kl_ctl.update(
                self.dist.mean(float(kl.sum(-1).mean())), len(ro.response_ids) * self.dist.world_size
            )

        # Metrics and store rows (every rank's rows gathered on rank 0).
        metrics = {
            **objective_metrics(ro, batch.scores, scores, kl, kl_coef, batch.gold, advantages, returns),
            # Groups (a prompt's samples) whose rewards are all equal: advantage 0 under GRPO / RLOO.
            "objective/frac_reward_zero_std": frac_reward_zero_std(scores, k),
            **update_metrics,
        }
        rows = probe_rows = None
        with timer("rows"):
            if run.log_rollouts:
                rows = rollout_rows(
                    batch, step=step, tokenizer=self.tokenizer, advantages=advantages, rank=rank
                )
                rows = self.dist.gather_rows(rows)  # None on ranks > 0
        if probe is not None:
            probe_rows, probe_stats = probe
            metrics.update(probe_stats)
        metrics.update(timer.metrics())
        metrics = self.dist.reduce_metrics(metrics)
        return StepResult(
            step, metrics, rows, probe_rows=probe_rows if run.log_rollouts else None, scored=batch
        )

    def update(
        self,
        ro: Rollout,
        advantages: torch.Tensor,
        returns: torch.Tensor | None,
        ref_logprobs: torch.Tensor | None,
        step: int,
    ) -> dict[str, float]:
        """Phases 5-6 on the rollout: the PPO epochs (or the group methods' iterations), with this
        step's minibatch shuffles."""
        shuffle_gen = torch.Generator().manual_seed(step_seed(self.config.run.seed, step, 2, self.dist.rank))
        batch = UpdateBatch(
            sequences=ro.sequences,
            attention_mask=ro.attention_mask,
            response_mask=ro.response_mask,
            old_logprobs=ro.logprobs,
            old_values=ro.values,
            advantages=advantages,
            returns=returns,
            prompt_len=ro.prompt_ids.shape[1],
            temperature=ro.temperature,
        )
        mean_gradients = self.dist.mean_gradients_ if self.dist.active else None
        cfg = self.config.ppo
        try:
            if self.value_head is None:
                max_len = self.config.sampling.max_new_tokens
                return group_update(
                    self.model, self.optimizer, batch, ref_logprobs, cfg, max_len, shuffle_gen, mean_gradients
                )
            return ppo_update(
                self.model, self.value_head, self.optimizer, batch, cfg, shuffle_gen, mean_gradients
            )
        except TrainingDiverged as exc:
            raise TrainingDiverged(exc.what, step) from None

    # ------------------------------------------------------------------ probes

    def is_probe_step(self, step: int) -> bool:
        every = self.config.run.probe_every
        return every > 0 and ((step - 1) % every == 0 or step == self.config.run.steps)

    @torch.no_grad()
    def probe(self, step: int) -> tuple[dict[str, list], dict[str, float]]:
        """Sample the fixed probe prompts at T = 1 with a seed that is the same at every probe step, so
        the curves follow the policy rather than the draw; returns (store rows, probe metrics)."""
        cfg, run = self.config, self.config.run
        sampling = SamplingConfig(
            max_new_tokens=cfg.sampling.max_new_tokens, stop_at_eos=cfg.sampling.stop_at_eos
        )
        generator = torch.Generator(device=self.device).manual_seed(step_seed(run.seed, 0, stream=3))
        # Its own timer: the probe's phases are inside time/probe, not the training pass's.
        batch = self.sample_and_score(
            self.probe_prompts, run.probe_samples, sampling, generator, PhaseTimer(),
            with_reference=cfg.takes_reference(step),
        )  # fmt: skip
        # Probes are not trained on: no advantage.
        rows = rollout_rows(
            batch, step=step, tokenizer=self.tokenizer, advantages=None, rank=self.dist.rank, is_probe=True
        )
        return rows, probe_metrics(self.probe_prompts, run.probe_samples, batch.rollout, batch.responses)

    # ------------------------------------------------------------------ loop

    def train(
        self,
        start_step: int = 1,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_step: Callable[[StepResult], None] | None = None,
        progress: bool = False,
    ) -> int:
        """Run steps ``start_step..steps``; log, checkpoint every ``save_every``. Returns the last finished step.

        ``should_stop`` is asked once per step, after it; in a data-parallel run the ranks agree (any
        rank asked to stop stops them all after the same step, with a checkpoint). A step that diverges
        raises :class:`TrainingDiverged` before anything of it is written or checkpointed.
        """
        steps = self.config.run.steps
        # Seeded alike on every rank (and loaded from one checkpoint on resume); rank 0's values make sure.
        self.dist.broadcast_parameters_(self.trainable_parameters())
        bar = None
        if progress and self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(total=steps, initial=start_step - 1, desc="ppo", unit="step")
        last = start_step - 1
        try:  # a diverged step raises: the bar still ends its line before the error
            self.choose_prompts()
            for step in range(start_step, steps + 1):
                result = self.iteration(step)
                self.refresh_reward_model(result)  # between steps: the next one scores with the new RM
                self.log_step(result)
                last = step
                stop = self.dist.any_true(should_stop())
                if step % self.config.run.save_every == 0 or step == steps or stop:
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
                if stop:
                    log.info("stop requested: stopped after step %d", step)
                    break
        finally:
            if bar is not None:
                bar.close()
        return last

    # ------------------------------------------------------------------ the remedies (issue 25)

    def choose_prompts(self) -> None:
        """The training prompts of ``prompt_selection`` (:mod:`engine.ppo.prompt_selection`), measured
        on the starting policy before step 1 (a resumed run reads its recorded choice)."""
        run = self.config.run
        generator = torch.Generator(device=self.device).manual_seed(step_seed(run.seed, 0, stream=4))
        n = run.prompt_selection_samples
        sample = lambda ps: self.sample_and_score(ps, n, self.config.sampling, generator, PhaseTimer())  # noqa: E731
        self.prompts = choose_prompts(
            self.prompts, run.prompt_selection, run.prompt_selection_share, sample, self.run_dir
        )
        self._order = PromptOrder(len(self.prompts), run.prompts_per_step, run.seed)

    def refresh_reward_model(self, result: StepResult) -> None:
        """At the RM refresh steps (:mod:`engine.ppo.rm_refresh`) refresh the RM on the step's rollouts,
        its agreement measured on fresh samples of the same prompts; ``rm/version`` at every step."""
        if self.rm_refresh is None or result.scored is None:
            return
        step, run = result.step, self.config.run
        if self.rm_refresh.due(step):
            generator = torch.Generator(device=self.device).manual_seed(step_seed(run.seed, step, stream=5))
            fresh = self.sample_and_score(
                result.scored.prompts, run.samples_per_prompt, self.config.sampling, generator, PhaseTimer()
            )
            seed = step_seed(run.seed, step, stream=6)
            result.metrics.update(self.rm_refresh.refresh(step, result.scored, fresh, seed, self.run_dir))
        result.metrics["rm/version"] = float(self.rm_refresh.version)

    def log_step(self, result: StepResult) -> None:
        if self.writer is None:
            return
        if result.rows is not None:
            self.writer.write_rollouts(result.step, result.rows)
        if result.probe_rows is not None:
            self.writer.write_probes(result.step, result.probe_rows)
        # metrics last: a step counts as logged once its metrics file exists
        self.writer.write_metrics(result.step, {k: v for k, v in result.metrics.items() if v is not None})

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, step: int) -> Path | None:
        """Checkpoint into the run directory (nothing without a writer)."""
        if self.writer is None:
            return None
        return save_checkpoint(
            self.writer.run_dir, step, self.model, self.value_head, self.optimizer,
            kl_coef=self.kl_ctl.value, seed=self.config.run.seed,
            extra=self.rm_refresh.save if self.rm_refresh is not None else None,
        )  # fmt: skip

    def load_checkpoint(self, path: Path) -> int:
        """Restore adapter, value head, optimizer, KL coefficient (and a refreshed RM); returns the step."""
        state = load_checkpoint(path, self.model, self.value_head, self.optimizer)
        self.kl_ctl.value = state.kl_coef
        if self.rm_refresh is not None:
            self.rm_refresh.load(path, state.extra)
        return state.step
