"""Phase 5, losses: the clipped surrogate policy loss and the clipped value loss, over real tokens;
for the group methods (GRPO, RLOO), the k3 KL term and TRL's ways of aggregating per-token losses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from engine.ops import masked_mean


def clipped_surrogates(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    eps_low: float,
    eps_high: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log r, r, -A r, -A clip(r, 1 - eps_low, 1 + eps_high)), each (B, T), with r = pi / pi_old."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    return log_ratio, ratio, unclipped, clipped


def ratio_stats(log_ratio: torch.Tensor, ratio: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """approxkl (0.5 E[(log r)^2]) and the mean ratio over real tokens, detached."""
    return {
        "policy/approxkl": 0.5 * masked_mean(log_ratio.detach() ** 2, mask),
        "policy/ratio": masked_mean(ratio.detach(), mask),
    }


def policy_loss_terms(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange: float,
    cliprange_high: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token clipped surrogate ``max(-A r, -A clip(r, 1 - e_low, 1 + e_high))``, (B, T), and its stats.

    ``e_low = cliprange``; ``e_high = cliprange_high`` (DAPO's clip-higher, Yu et al. 2025, arXiv
    2503.14476: e.g. 0.2 / 0.28, so unlikely tokens can gain probability faster), or ``cliprange``.
    Stats (no grad): clipfrac (share of tokens where the clipped term is the max: TRL's
    ``clip_ratio/region``) and its split into clipfrac_high (r above the range, A > 0: TRL's
    ``clip_ratio/high``) and clipfrac_low (r below it, A < 0: ``clip_ratio/low``), approxkl, mean ratio.
    """
    eps_high = cliprange if cliprange_high is None else cliprange_high
    log_ratio, ratio, unclipped, clipped = clipped_surrogates(
        logprobs, old_logprobs, advantages, cliprange, eps_high
    )
    with torch.no_grad():
        is_clipped = clipped > unclipped
        stats = {
            "policy/clipfrac": masked_mean(is_clipped.float(), response_mask),
            "policy/clipfrac_high": masked_mean((is_clipped & (ratio > 1)).float(), response_mask),
            "policy/clipfrac_low": masked_mean((is_clipped & (ratio < 1)).float(), response_mask),
            **ratio_stats(log_ratio, ratio, response_mask),
        }
    return torch.maximum(unclipped, clipped), stats


def token_mean(terms_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]) -> Callable:
    """A per-token loss function ``f(logprobs, old_logprobs, advantages, response_mask, ...)`` -> the
    same function returning ``(mean over the real tokens of the minibatch, stats)``: PPO's aggregation."""

    def loss(
        logprobs: torch.Tensor,
        old_logprobs: torch.Tensor,
        advantages: torch.Tensor,
        response_mask: torch.Tensor,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms, stats = terms_fn(logprobs, old_logprobs, advantages, response_mask, *args, **kwargs)
        return masked_mean(terms, response_mask), stats

    loss.__name__ = loss.__qualname__ = f"token_mean({terms_fn.__name__})"
    loss.__doc__ = f"{terms_fn.__name__}, its mean over the real tokens of the minibatch."
    return loss


policy_loss = token_mean(policy_loss_terms)
"""The clipped surrogate (:func:`policy_loss_terms`), the mean over real tokens of the minibatch."""


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token KL(pi || pi_ref), k3 estimator (joschu.net/blog/kl-approx.html; tiny-grpo's ``approx_kl``,
    TRL's ``per_token_kl``): ``exp(ref - lp) - (ref - lp) - 1``, >= 0, with gradient: (B, T) -> (B, T).

    Naive equivalent per token: ``math.exp(ref - lp) - (ref - lp) - 1``.
    """
    log_ratio = ref_logprobs - logprobs
    return torch.expm1(log_ratio) - log_ratio


def aggregate_loss(
    per_token: torch.Tensor,
    response_mask: torch.Tensor,
    loss_type: str,
    *,
    n_sequences: int,
    n_tokens: int,
    max_len: int,
) -> torch.Tensor:
    """Per-token losses of a chunk of the batch -> its share of the batch's scalar loss, as TRL's
    ``loss_type`` (trl/trainer/grpo_trainer.py, ``_compute_loss``; TRL docs "loss_type"):

    - ``grpo``: mean over each sequence's tokens, then mean over sequences (GRPO paper; longer
      responses weigh less per token);
    - ``dapo``: mean over all tokens of the batch (DAPO, Yu et al. 2025, "token-level policy gradient
      loss"; TRL divides by the batch's token count);
    - ``dr_grpo``: sum over the batch / (sequences x ``max_len``), a constant normaliser (Dr. GRPO, Liu
      et al. 2025, arXiv 2503.20783: no length bias).

    ``n_sequences`` and ``n_tokens`` are the whole batch's (B, real tokens), so the chunks' losses add
    up to the batch's loss under gradient accumulation. Naive equivalent (float64 loops over
    sequences i, tokens t): grpo ``sum_i (sum_t l[i][t] / len_i) / B``; dapo ``sum_i sum_t l[i][t] /
    sum_i len_i``; dr_grpo ``sum_i sum_t l[i][t] / (B * max_len)``.
    """
    masked = per_token * response_mask
    if loss_type == "grpo":
        return (masked.sum(-1) / response_mask.sum(-1).clamp(min=1)).sum() / n_sequences
    if loss_type == "dapo":
        return masked.sum() / max(n_tokens, 1)
    if loss_type == "dr_grpo":
        return masked.sum() / (n_sequences * max_len)
    raise ValueError(f"unknown loss_type {loss_type!r}")


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange_value: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss: 0.5 * mean over real tokens of max((v - R)^2, (v_clipped - R)^2).

    ``v_clipped = clamp(v, v_old - c, v_old + c)`` (as TRL): ``v_old + clamp(v - v_old, -c, c)`` is not
    exactly ``v`` in float32 even inside the range, and counted rounding as clipping (0.2 % of tokens).
    """
    clipped_values = torch.clamp(values, old_values - cliprange_value, old_values + cliprange_value)
    unclipped_loss = (values - returns) ** 2
    clipped_loss = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_loss, clipped_loss), response_mask)
    with torch.no_grad():
        stats = {"val/clipfrac": masked_mean((clipped_loss > unclipped_loss).float(), response_mask)}
    return loss, stats
