"""Tiny tensor ops shared by sampling, PPO, the reward model and the evaluations: one copy of each.

Each docstring shows the naive equivalent; ``tests/test_ops.py`` checks every op against it over
several shapes and dtypes. Shapes: B rows, L positions, V vocabulary.
"""

from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` is True (all positions when dim is None).

    Naive equivalent: ``values[mask].mean()``; with ``dim``: per-row means, 0 for empty rows. Values
    outside the mask never count, not even an inf or a NaN there (a selected zero, not a product by 0).
    """
    kept = torch.where(mask.bool(), values, torch.zeros((), dtype=values.dtype, device=values.device))
    count = mask.to(values.dtype)
    if dim is None:
        return kept.sum() / count.sum().clamp(min=1)
    return kept.sum(dim) / count.sum(dim).clamp(min=1)


def masked_var(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Population variance of ``values`` where ``mask`` is True.

    Naive equivalent: ``values[mask].var(unbiased=False)``.
    """
    mean = masked_mean(values, mask)
    return masked_mean((values - mean) ** 2, mask)


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the positions where ``mask`` is True (Bessel-corrected); 0 elsewhere.

    Naive equivalent: ``x = values[mask]; (x - x.mean()) / x.std()`` scattered back into zeros.
    """
    mean = masked_mean(values, mask)
    centred = values - mean
    n = mask.sum().clamp(min=2).to(values.dtype)
    var = masked_mean(centred**2, mask) * n / (n - 1)
    out = centred * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out.masked_fill(~mask.bool(), 0.0)


def scale_logits(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """z / T; T = 0 (greedy) leaves the logits unscaled.

    Naive equivalent: ``logits / temperature if temperature else logits``.
    """
    return logits if temperature in (0, 1) else logits / temperature


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of softmax(logits) over the last axis; -inf logits contribute 0: (..., V) -> (...).

    Naive equivalent: ``-(p * p.log()).nansum(-1)`` with ``p = logits.softmax(-1)``.
    """
    return entropy_from_log_probs(torch.log_softmax(logits, dim=-1))


def entropy_from_log_probs(logp: torch.Tensor) -> torch.Tensor:
    """Entropy in nats from log-probabilities (a log-softmax already computed): (..., V) -> (...).

    Naive equivalent: ``-(logp.exp() * logp).nansum(-1)`` (-inf entries, p = 0, contribute 0).
    """
    p = logp.exp()
    return -(p * logp.masked_fill(p == 0, 0.0)).sum(-1)


def selective_log_softmax(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[index] without keeping the full log-softmax: (..., V), (...) -> (...).

    Naive equivalent: ``torch.log_softmax(logits, -1).gather(-1, index[..., None])[..., 0]``.
    """
    picked = logits.gather(-1, index.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def position_ids_of(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding: (B, L) -> (B, L).

    Naive equivalent: per row, ``max(0, number of real tokens up to and including l) - 1``.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
