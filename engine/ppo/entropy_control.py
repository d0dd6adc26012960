"""Entropy control in the policy loss: Clip-Cov and KL-Cov (Cui et al. 2025); clip-higher (DAPO) is
``cliprange_high`` of :func:`engine.ppo.losses.policy_loss`.

Cui et al. 2025 ("The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models",
arXiv 2505.22617) show that a policy-gradient step changes the policy's entropy by about
``-lr * Cov(log pi(y), A)``: a likely token with a high advantage sharpens the distribution. Their two
controls act on the few tokens with the largest covariance terms
``c_i = (log pi_i - mean log pi) * (A_i - mean A)`` (means over the minibatch's real tokens):

- Clip-Cov detaches the gradient of a small random share of the tokens whose term lies in a band;
- KL-Cov adds ``coef * |log pi - log pi_old|`` to the loss of the top share of tokens by term.

Both follow the authors' code, ``verl/trainer/ppo/core_algos.py`` (``compute_policy_loss_clip_cov``
and ``compute_policy_loss_kl_cov``) in github.com/PRIME-RL/Entropy-Mechanism-of-RL (commit 8850579).

Every function takes ``(B, T)`` tensors: the current log-probs (with grad), the rollout's log-probs,
the advantages and ``response_mask`` (True = real token). The ``*_terms`` functions return the
per-token loss (B, T) and stats, for any aggregation (the group methods' ``loss_type``); the
``*_policy_loss`` ones return ``(loss, stats)`` like ``policy_loss``, the loss a mean over real
tokens. The stats are detached scalars with the same ``policy/clipfrac``, ``policy/approxkl`` and
``policy/ratio`` keys plus their own.
"""

from __future__ import annotations

import torch

from engine.ops import masked_mean
from engine.ppo.losses import clipped_surrogates, ratio_stats, token_mean


def covariance_terms(
    logprobs: torch.Tensor, advantages: torch.Tensor, response_mask: torch.Tensor
) -> torch.Tensor:
    """Per-token covariance terms ``(lp_i - mean lp) * (A_i - mean A)``, means over real tokens; 0 elsewhere.

    Their mean over real tokens is the population covariance of log-prob and advantage. No gradient.
    Naive equivalent: ``lp, a = logprobs[mask], advantages[mask]; (lp - lp.mean()) * (a - a.mean())``
    scattered back into zeros.
    """
    lp, adv = logprobs.detach(), advantages.detach()
    terms = (lp - masked_mean(lp, response_mask)) * (adv - masked_mean(adv, response_mask))
    return terms.masked_fill(~response_mask.bool(), 0.0)  # (B, T)


def clip_cov_terms(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    clip_share: float = 2e-4,
    cov_low: float = 1.0,
    cov_high: float = 5.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clip-Cov: the clipped surrogate with the gradient of a few high-covariance tokens removed.

    1. ``c_i`` = covariance terms of the *current* log-probs and the advantages (:func:`covariance_terms`).
    2. Candidates: real tokens the ratio clip did not already clip with ``cov_low < c_i < cov_high``.
    3. ``n = max(1, int(clip_share * number of real tokens))`` of them, drawn uniformly at random
       (``torch.randperm`` over the candidates in row-major order, with ``generator``), get loss weight
       0: their gradient is detached (and they add 0 to the loss, as in the authors' code).
    4. Per-token loss ``max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high)) * weight``, (B, T).

    The authors' defaults: clip_share 2e-4, band (1, 5); their Clip-Cov recipes set eps_low = eps_high
    = 1, leaving the covariance clip as the only trust region. Stats add ``policy/clip_cov_frac``, the
    share of real tokens detached.
    """
    log_ratio, ratio, unclipped, clipped = clipped_surrogates(
        logprobs, old_logprobs, advantages, eps_low, eps_high
    )
    mask = response_mask.bool()
    with torch.no_grad():
        clipped_by_ratio = (clipped > unclipped) & mask
        terms = covariance_terms(logprobs, advantages, mask)
        band = mask & ~clipped_by_ratio & (terms > cov_low) & (terms < cov_high)
        candidates = torch.nonzero(band)  # (N, 2), row-major
        n_clip = max(int(clip_share * int(mask.sum())), 1)
        order = torch.randperm(len(candidates), generator=generator, device="cpu").to(candidates.device)
        chosen = candidates[order[:n_clip]]
        weight = torch.ones_like(advantages)
        weight[chosen[:, 0], chosen[:, 1]] = 0.0
    terms = torch.maximum(unclipped, clipped) * weight
    with torch.no_grad():
        stats = {
            "policy/clipfrac": masked_mean(clipped_by_ratio.float(), mask),
            "policy/clip_cov_frac": masked_mean((weight == 0).float(), mask),
            **ratio_stats(log_ratio, ratio, mask),
        }
    return terms, stats


def kl_cov_terms(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    top_share: float = 2e-3,
    kl_coef: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """KL-Cov: the unclipped surrogate ``-A r``, plus ``kl_coef * |log r|`` on the top tokens by covariance.

    1. ``c_i`` = covariance terms of the current log-probs and the advantages (:func:`covariance_terms`).
    2. The ``k = max(1, int(top_share * number of real tokens))`` real tokens with the largest ``c_i``
       (``top_share`` 0: none) get the loss ``-A_i r_i + kl_coef * |log r_i|``, the others ``-A_i r_i``.
    3. Per-token loss, (B, T). As in the authors' code there is no ratio clip: the KL term on the
       tokens that drive entropy down is the trust region.

    The authors' ``k_percent`` is in percent (0.2 means 0.2 % of tokens): ``top_share = k_percent / 100``,
    default 2e-3; their ``ppo_kl_coef`` is 1. Stats add ``policy/kl_cov_frac`` (share of real tokens
    penalised) and ``policy/abs_log_ratio`` (mean ``|log r|``, their ``ppo_kl_abs``).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    mask = response_mask.bool()
    surrogate = -advantages * ratio
    with torch.no_grad():
        selected = torch.zeros_like(mask)
        n_real = int(mask.sum())
        if top_share > 0 and n_real > 0:
            k = max(1, int(n_real * top_share))
            terms = covariance_terms(logprobs, advantages, mask).masked_fill(~mask, float("-inf"))
            top = torch.topk(terms.reshape(-1), min(k, n_real)).indices
            selected.view(-1)[top] = True
    terms = torch.where(selected, surrogate + kl_coef * log_ratio.abs(), surrogate)
    with torch.no_grad():
        stats = {
            "policy/clipfrac": torch.zeros((), device=logprobs.device),
            "policy/kl_cov_frac": masked_mean(selected.float(), mask),
            "policy/abs_log_ratio": masked_mean(log_ratio.detach().abs(), mask),
            **ratio_stats(log_ratio, ratio, mask),
        }
    return terms, stats


clip_cov_policy_loss = token_mean(clip_cov_terms)
"""Clip-Cov (:func:`clip_cov_terms`), the mean over real tokens of the minibatch."""
kl_cov_policy_loss = token_mean(kl_cov_terms)
"""KL-Cov (:func:`kl_cov_terms`), the mean over real tokens of the minibatch."""
