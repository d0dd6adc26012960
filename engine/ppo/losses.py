"""Phase 5, losses: the clipped surrogate policy loss and the clipped value loss, over real tokens."""

from __future__ import annotations

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


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange: float,
    cliprange_high: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate: mean over real tokens of max(-A r, -A clip(r, 1 - e_low, 1 + e_high)).

    ``e_low = cliprange``; ``e_high = cliprange_high`` (DAPO's clip-higher, Yu et al. 2025, arXiv
    2503.14476: e.g. 0.2 / 0.28, so unlikely tokens can gain probability faster), or ``cliprange``.
    Stats (no grad): clipfrac (share of tokens where the clipped term is the max) and its split into
    clipfrac_high (r above the range) and clipfrac_low (r below it), approxkl and the mean ratio.
    """
    eps_high = cliprange if cliprange_high is None else cliprange_high
    log_ratio, ratio, unclipped, clipped = clipped_surrogates(
        logprobs, old_logprobs, advantages, cliprange, eps_high
    )
    loss = masked_mean(torch.maximum(unclipped, clipped), response_mask)
    with torch.no_grad():
        is_clipped = clipped > unclipped
        stats = {
            "policy/clipfrac": masked_mean(is_clipped.float(), response_mask),
            "policy/clipfrac_high": masked_mean((is_clipped & (ratio > 1)).float(), response_mask),
            "policy/clipfrac_low": masked_mean((is_clipped & (ratio < 1)).float(), response_mask),
            **ratio_stats(log_ratio, ratio, response_mask),
        }
    return loss, stats


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
