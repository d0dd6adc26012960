"""Phases 2-3, rewards: the RM scores processed for training (missing-EOS penalty, normalisation,
clipping), per-token KL to the reference, KL-shaped per-token rewards, and the KL controllers."""

from __future__ import annotations

import torch

from engine.ppo.config import PPOHyperConfig


def process_scores(
    scores: torch.Tensor, has_eos: torch.Tensor, prompt_index: torch.Tensor, cfg: PPOHyperConfig
) -> torch.Tensor:
    """Missing-EOS penalty, then optional normalisation (batch or per prompt), then clipping: (B,) -> (B,).

    ``prompt_index`` (B,) groups the samples of one prompt (used by ``reward_norm="prompt"``). The
    group methods (GRPO, RLOO) skip the normalisation: their advantage is a per-group normalisation.
    """
    out = scores.float().clone()
    if cfg.missing_eos_penalty is not None:
        out = out - cfg.missing_eos_penalty * (~has_eos.bool()).float()
    norm = cfg.reward_norm if cfg.algorithm == "ppo" else "none"
    if norm == "batch":
        out = (out - out.mean()) / (out.std(unbiased=False) + 1e-8)
    elif norm == "prompt":
        groups = torch.unique(prompt_index, return_inverse=True)[1]
        n_groups = int(groups.max()) + 1
        sums = torch.zeros(n_groups, dtype=out.dtype, device=out.device).index_add_(0, groups, out)
        counts = torch.zeros(n_groups, dtype=out.dtype, device=out.device).index_add_(
            0, groups, torch.ones_like(out)
        )
        centred = out - (sums / counts)[groups]
        out = centred / (out.std(unbiased=False) + 1e-8)
    if cfg.reward_clip is not None:
        out = out.clamp(-cfg.reward_clip, cfg.reward_clip)
    return out


def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token KL(pi || pi_ref) estimate from the sampled tokens' log-probs: (B, T) -> (B, T).

    k1 = log p - log p_ref (unbiased, can be negative); k3 = (r - 1) - log r with r = p_ref / p
    (unbiased, always >= 0, lower variance; Schulman 2020, "Approximating KL divergence").
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}")


def last_token_index(response_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last real response token: (B, T) -> (B,). Responses are right-padded."""
    return (response_mask.long().sum(-1) - 1).clamp(min=0)


def shaped_rewards(
    scores: torch.Tensor, kl: torch.Tensor, response_mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """Per-token rewards: -kl_coef * KL at every real token, plus the RM score at the last one: (B, T)."""
    rewards = (-kl_coef * kl).masked_fill(~response_mask, 0.0)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last_token_index(response_mask)] += scores.to(rewards.dtype)
    return rewards


class FixedKLController:
    """A constant KL coefficient."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def update(self, current_kl: float, n_samples: int) -> None:  # noqa: ARG002 (same interface)
        return None


class AdaptiveKLController:
    """Ziegler et al. 2019: move the coefficient so the observed KL tracks ``target``."""

    def __init__(self, value: float, target: float, horizon: int) -> None:
        self.value, self.target, self.horizon = float(value), float(target), int(horizon)

    def update(self, current_kl: float, n_samples: int) -> None:
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_samples / self.horizon


def kl_controller(cfg: PPOHyperConfig) -> FixedKLController | AdaptiveKLController:
    if cfg.kl_target is not None:
        return AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
    return FixedKLController(cfg.kl_coef)
