"""Phase 6, update: PPO epochs over shuffled minibatches, one combined loss, gradient clipping; for the
group methods (GRPO, RLOO), ``num_iterations`` steps on the whole batch with gradient accumulation."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from engine.config import ConfigError
from engine.ops import masked_mean
from engine.ppo.config import PPOHyperConfig
from engine.ppo.entropy_control import clip_cov_terms, kl_cov_terms
from engine.ppo.losses import aggregate_loss, k3_kl, policy_loss_terms, value_loss
from engine.ppo.rollout import policy_forward


@dataclass
class UpdateBatch:
    """What the PPO epochs consume, (B, ...) each."""

    sequences: torch.Tensor  # (B, P + T)
    attention_mask: torch.Tensor  # (B, P + T)
    response_mask: torch.Tensor  # (B, T)
    old_logprobs: torch.Tensor  # (B, T)
    old_values: torch.Tensor | None  # (B, T); None for the group methods (no critic)
    advantages: torch.Tensor  # (B, T)
    returns: torch.Tensor | None  # (B, T); None for the group methods
    prompt_len: int
    temperature: float

    def __len__(self) -> int:
        return self.sequences.shape[0]


def minibatches(batch_size: int, num_minibatches: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """A fresh shuffle of the batch, cut into ``num_minibatches`` index tensors."""
    order = torch.randperm(batch_size, generator=generator)
    yield from order.chunk(num_minibatches)


def policy_terms(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cfg: PPOHyperConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The per-token policy loss of ``cfg``: the clipped surrogate (clip-higher when ``cliprange_high``
    is set), or one of the covariance-based entropy controls. (B, T) tensors -> ((B, T) loss, stats)."""
    high = cfg.cliprange if cfg.cliprange_high is None else cfg.cliprange_high
    if cfg.entropy_control == "clip_cov":
        return clip_cov_terms(
            logprobs, old_logprobs, advantages, mask, eps_low=cfg.cliprange, eps_high=high,
            clip_share=cfg.clip_cov_share, cov_low=cfg.clip_cov_low, cov_high=cfg.clip_cov_high,
            generator=generator,
        )  # fmt: skip
    if cfg.entropy_control == "kl_cov":
        return kl_cov_terms(
            logprobs, old_logprobs, advantages, mask, top_share=cfg.kl_cov_share, kl_coef=cfg.kl_cov_coef
        )
    return policy_loss_terms(logprobs, old_logprobs, advantages, mask, cfg.cliprange, cfg.cliprange_high)


def ppo_update(
    model: nn.Module,
    value_head: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: UpdateBatch,
    cfg: PPOHyperConfig,
    generator: torch.Generator,
    mean_gradients: Callable[[Sequence[torch.Tensor]], None] | None = None,
) -> dict[str, float]:
    """``ppo_epochs`` passes over shuffled minibatches; metrics are averaged over all minibatches.

    A non-finite loss, gradient norm or (after the last step) weight raises :class:`TrainingDiverged`:
    the weights are lost from there on, and skipping the minibatch would only hide it. ``mean_gradients``
    (data-parallel runs, :meth:`engine.ppo.distributed.Dist.mean_gradients_`) averages the gradients
    over the ranks before clipping: every rank then clips, checks and steps on the same gradient, in
    lockstep (a rank with a non-finite loss still joins the all-reduce, and its NaNs make every rank
    raise at the gradient check).
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    stats: dict[str, list[torch.Tensor]] = {}
    for epoch in range(cfg.ppo_epochs):
        for i, idx in enumerate(minibatches(len(batch), cfg.num_minibatches, generator)):
            mask = batch.response_mask[idx]
            logprobs, values, _ = policy_forward(
                model, batch.sequences[idx], batch.attention_mask[idx], batch.prompt_len, batch.temperature,
                value_head,
            )  # fmt: skip
            pg_terms, pg_stats = policy_terms(
                logprobs, batch.old_logprobs[idx], batch.advantages[idx], mask, cfg, generator
            )
            pg_loss = masked_mean(pg_terms, mask)
            vf_loss, vf_stats = value_loss(
                values, batch.old_values[idx], batch.returns[idx], mask, cfg.cliprange_value
            )
            loss = pg_loss + cfg.vf_coef * vf_loss
            if epoch == 0 and i == 0:
                first_ratio = pg_stats["policy/ratio"]  # the policy that sampled: 1 up to rounding
            optimizer.zero_grad(set_to_none=True)
            if mean_gradients is None and not torch.isfinite(loss):  # one sync per minibatch
                raise TrainingDiverged(non_finite(loss=loss, params=params))
            loss.backward()
            grad_norm = clip_and_step(optimizer, params, cfg.max_grad_norm, mean_gradients, loss)
            row = {
                **pg_stats,
                **vf_stats,
                "loss/policy": pg_loss.detach(),
                "loss/value": vf_loss.detach(),
                "loss/total": loss.detach(),
                "val/mean": masked_mean(values.detach(), mask),
                "policy/grad_norm": grad_norm.detach(),
            }
            for key, value in row.items():
                stats.setdefault(key, []).append(value)
    return update_metrics(stats, first_ratio, params)


def clip_and_step(
    optimizer: torch.optim.Optimizer,
    params: list[torch.Tensor],
    max_grad_norm: float | None,
    mean_gradients: Callable[[Sequence[torch.Tensor]], None] | None,
    loss: torch.Tensor,
) -> torch.Tensor:
    """After the backward pass(es): average the gradients over ranks, clip them, check them, step.
    Returns the gradient norm (before clipping); a non-finite one raises :class:`TrainingDiverged`."""
    if mean_gradients is not None:
        mean_gradients(params)
    if max_grad_norm is not None:
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    else:
        grad_norm = torch.linalg.vector_norm(
            torch.stack([p.grad.norm() for p in params if p.grad is not None])
        )
    if not torch.isfinite(grad_norm):  # one sync per optimizer step
        raise TrainingDiverged(non_finite(loss=loss, grad_norm=grad_norm, params=params))
    optimizer.step()
    return grad_norm


def update_metrics(
    stats: dict[str, list[torch.Tensor]], first_ratio: torch.Tensor, params: list[torch.Tensor]
) -> dict[str, float]:
    """Each stat's mean over the minibatches, the first ratio and whether the last step left the
    weights finite (a non-finite weight raises), in one transfer."""
    weights_finite = torch.stack([torch.isfinite(p).all() for p in params]).all()
    means = [torch.stack(values).mean() for values in stats.values()]
    *host_means, first, finite = torch.stack([*means, first_ratio, weights_finite.float()]).tolist()
    if not finite:
        raise TrainingDiverged(non_finite(params=params))
    metrics = dict(zip(stats, host_means, strict=True))
    metrics["policy/ratio_first_minibatch"] = first
    # No minibatch is skipped any more (a non-finite one raises); the key stays for the readers of runs.
    metrics["guard/skipped_minibatches"] = 0.0
    return metrics


def group_update(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: UpdateBatch,
    ref_logprobs: torch.Tensor | None,
    cfg: PPOHyperConfig,
    max_len: int,
    generator: torch.Generator,
    mean_gradients: Callable[[Sequence[torch.Tensor]], None] | None = None,
) -> dict[str, float]:
    """GRPO / RLOO: ``num_iterations`` optimizer steps, each on the whole batch.

    Each step accumulates the gradients of ``num_minibatches`` chunks, each chunk's loss its share of
    the batch's (:func:`engine.ppo.losses.aggregate_loss` with the batch's sequence and token counts),
    so one step is the batch's loss whatever the chunking. The per-token loss is the policy objective
    of ``cfg`` (clip-higher, the entropy controls) plus ``kl_loss_coef`` x the k3 KL to the reference
    (``ref_logprobs`` (B, T); None at kl_loss_coef 0, where no reference pass is needed). ``batch.old_logprobs`` are the sampling pass's: ratio 1 at the first step,
    clipped after. ``max_len`` is the sampling's ``max_new_tokens`` (the dr_grpo normaliser).
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    n_sequences, n_tokens = len(batch), int(batch.response_mask.sum())
    stats: dict[str, list[torch.Tensor]] = {}
    for iteration in range(cfg.num_iterations):
        optimizer.zero_grad(set_to_none=True)
        total = policy_part = torch.zeros((), device=batch.advantages.device)
        for i, idx in enumerate(minibatches(n_sequences, cfg.num_minibatches, generator)):
            mask = batch.response_mask[idx]
            logprobs, _, _ = policy_forward(
                model, batch.sequences[idx], batch.attention_mask[idx], batch.prompt_len, batch.temperature
            )
            terms, chunk_stats = policy_terms(
                logprobs, batch.old_logprobs[idx], batch.advantages[idx], mask, cfg, generator
            )
            counts = {"n_sequences": n_sequences, "n_tokens": n_tokens, "max_len": max_len}
            policy_part = policy_part + aggregate_loss(terms.detach(), mask, cfg.loss_type, **counts)
            if cfg.kl_loss_coef > 0:
                kl = k3_kl(logprobs, ref_logprobs[idx])  # (b, T)
                terms = terms + cfg.kl_loss_coef * kl
                chunk_stats["loss/kl"] = masked_mean(kl.detach(), mask)
            loss = aggregate_loss(terms, mask, cfg.loss_type, **counts)
            if iteration == 0 and i == 0:
                first_ratio = chunk_stats["policy/ratio"]
            if mean_gradients is None and not torch.isfinite(loss):  # one sync per chunk
                raise TrainingDiverged(non_finite(loss=loss, params=params))
            loss.backward()
            total = total + loss.detach()
            for key, value in chunk_stats.items():
                stats.setdefault(key, []).append(value)
        grad_norm = clip_and_step(optimizer, params, cfg.max_grad_norm, mean_gradients, total)
        stats.setdefault("loss/policy", []).append(policy_part)
        stats.setdefault("loss/total", []).append(total)
        stats.setdefault("policy/grad_norm", []).append(grad_norm.detach())
    return update_metrics(stats, first_ratio, params)


class TrainingDiverged(ConfigError):
    """A run that cannot go on: a non-finite loss, gradient norm or weight (``what`` says which).

    A :class:`~engine.config.ConfigError` (a message a user can act on, one ``error:`` line on the
    command line): the usual cause is a setting, most often a learning rate too high. ``step`` is the
    iteration's, filled in by the trainer.
    """

    def __init__(self, what: str, step: int | None = None) -> None:
        self.what, self.step = what, step
        super().__init__(f"diverged at step {step}: {what}" if step is not None else f"diverged: {what}")


def non_finite(
    *,
    loss: torch.Tensor | None = None,
    grad_norm: torch.Tensor | None = None,
    params: Sequence[torch.Tensor] = (),
) -> str:
    """What is not finite, in words ("loss is NaN"), for the divergence message; read only once a check
    has failed. Weights first: a non-finite weight makes the loss non-finite too, and is the cause."""
    bad = [p for p in params if not torch.isfinite(p).all()]
    if bad:
        kind = "NaN" if any(p.isnan().any() for p in bad) else "inf"
        return f"weights are {kind} ({len(bad)} of {len(params)} tensors)"
    for name, value in (("loss", loss), ("gradient norm", grad_norm)):
        if value is not None and not torch.isfinite(value):
            return f"{name} is {'NaN' if value.isnan() else f'{float(value):g}'}"
    return "a value is not finite"


def is_finite(*tensors: torch.Tensor | None) -> bool:
    """True when every value of every tensor is finite (one sync); None (no such tensor) is skipped."""
    flags = [torch.isfinite(t).all() for t in tensors if t is not None]  # 0-d each
    return bool(torch.stack([f.to(flags[0].device) for f in flags]).all())
