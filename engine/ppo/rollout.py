"""Phase 1, rollout: sample responses and keep what the update needs from the sampling pass itself.

Also the policy forward shared by the update, the reference and the log-prob evaluation: the
temperature-scaled log-probs of given response tokens (and values, entropy) in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from engine.config import SamplingConfig
from engine.models import backbone_and_head, merged_lora, reference_mode
from engine.models.decoders import body_hidden_states
from engine.models.trunk import SharedTrunk
from engine.ops import entropy_from_logits, position_ids_of, scale_logits, selective_log_softmax
from engine.sampling import Generation, TokenSignals, generate, token_signals


@dataclass
class Rollout:
    """One iteration's samples with everything the update needs (old log-probs, values) and the signals."""

    prompt_ids: torch.Tensor  # (B, P) left-padded
    prompt_mask: torch.Tensor  # (B, P) True = real prompt token
    response_ids: torch.Tensor  # (B, T) pad after EOS
    response_mask: torch.Tensor  # (B, T) True = generated token
    has_eos: torch.Tensor  # (B,)
    logprobs: torch.Tensor  # (B, T) log softmax(z / temperature)[y], 0 outside the mask
    values: torch.Tensor | None  # (B, T) critic values, 0 outside the mask; None without a critic
    signals: TokenSignals  # per-token sampling-space signals, (B, T) each
    policy_entropy: torch.Tensor  # (B, T) entropy of softmax(z / temperature), the ratio's distribution
    temperature: float

    @property
    def sequences(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)  # (B, P + T)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)  # (B, P + T)

    @property
    def lengths(self) -> torch.Tensor:
        return self.response_mask.sum(-1)  # (B,)


@dataclass
class ScoredRollout:
    """A batch of prompts, sampled and scored: the rollout, the reference log-probs, the RM scores (and
    gold) and the per-token KL. What the training pass and the probe pass share, and what the store
    rows are made of."""

    prompts: list[Any]  # each sampled samples_per_prompt times, in order
    samples_per_prompt: int
    sampling: SamplingConfig
    rollout: Rollout
    ref_logprobs: torch.Tensor | None  # (B, T), 0 outside the mask; None: no reference pass this step
    scores: torch.Tensor  # (B,) the RM's raw scores (the judge's where it is the reward: 'gold')
    gold: torch.Tensor | None  # (B,) the gold judge's, when there is one
    responses: list[str]  # the responses as the judge read them
    kl: torch.Tensor | None  # (B, T) per-token KL to the reference, 0 outside the mask; None as ref_logprobs


@torch.no_grad()
def rollout(
    model: nn.Module,
    value_head: nn.Module | None,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    sampling: SamplingConfig,
    *,
    eos_token_id: int | None,
    pad_token_id: int,
    generator: torch.Generator | None,
    chunk: int = 16,
) -> Rollout:
    """Sample responses; old log-probs, values and signals come out of the sampling pass itself.

    The sampling loop keeps each step's raw logits and last hidden state, so no second forward is
    needed for the old log-probs (the temperature-scaled logits that drew the token) or the values.
    """
    with merged_lora(model):
        gen = generate(
            model,
            prompt_ids,
            prompt_mask,
            sampling,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            generator=generator,
            keep_hidden=value_head is not None,  # the hidden states feed the value head only
        )
    signals = chunked_signals(gen, chunk)
    mask = gen.response_mask
    # The entropy of the distribution the PPO ratio uses, for the policy/entropy metric: computed here,
    # once per iteration, from logits already at hand (the T = 1 signal's own at T = 1).
    if sampling.temperature in (0, 1):
        policy_entropy = signals.entropy
    else:
        policy_entropy = chunked_entropy(gen.logits, sampling.temperature, chunk).masked_fill(~mask, 0.0)
    values = None  # the group methods have no critic
    if value_head is not None:
        values = value_head(gen.hidden).float().masked_fill(~mask, 0.0)  # (B, T)
    return Rollout(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        response_ids=gen.response_ids,
        response_mask=mask,
        has_eos=gen.has_eos,
        logprobs=signals.logprob,
        values=values,
        signals=signals,
        policy_entropy=policy_entropy,
        temperature=sampling.temperature,
    )


def chunked_signals(gen: Generation, chunk: int) -> TokenSignals:
    """The per-token signals, ``chunk`` rows at a time: each signal needs several (B, T, V) temporaries,
    so computing them all at once sets the process's peak memory (measured +160 MB at B = 64, V = 2004)."""
    parts = [
        token_signals(
            gen.logits[i : i + chunk],
            gen.response_ids[i : i + chunk],
            gen.response_mask[i : i + chunk],
            gen.config,
        )
        for i in range(0, gen.logits.shape[0], chunk)
    ]
    return TokenSignals(
        **{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(TokenSignals)}
    )


def chunked_entropy(logits: torch.Tensor, temperature: float, chunk: int) -> torch.Tensor:
    """(B, T, V) raw logits -> (B, T) entropy of softmax(z / temperature), ``chunk`` rows at a time (the
    (B, T, V) temporaries of all rows at once would set the peak memory, as in :func:`chunked_signals`)."""
    parts = [
        entropy_from_logits(scale_logits(logits[i : i + chunk].float(), temperature))
        for i in range(0, logits.shape[0], chunk)
    ]
    return torch.cat(parts)


def policy_forward(
    model: nn.Module,
    sequences: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_len: int,
    temperature: float,
    value_head: nn.Module | None = None,
    *,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Temperature-scaled log-probs of the response tokens (and values, entropy) in one forward.

    The LM head runs only on the T positions that predict response tokens, not on the prompt.
    Returns ``(logprobs (B, T), values (B, T) | None, entropy (B, T) | None)``; entropy is of the
    temperature-scaled distribution and carries no gradient.
    """
    body, head = backbone_and_head(model)
    # The last token's state would predict the token after the response: never needed, so the body
    # runs on P + T - 1 positions (causal attention: the others are unchanged).
    inputs, attention = sequences[:, :-1], attention_mask[:, :-1]
    hidden = body_hidden_states(body, inputs, attention, position_ids_of(attention))  # (B, P + T - 1, H)
    h = hidden[:, prompt_len - 1 :]  # (B, T, H): the state that predicts each response token
    logits = scale_logits(head(h).float(), temperature)  # (B, T, V)
    # 0 past each response's end, as in the sampling signals: the pad token there may have logit -inf
    # (suppress_filler_tokens), and an -inf must not reach a sum or a mean.
    outside = ~attention_mask[:, prompt_len:].bool()  # (B, T)
    logprobs = selective_log_softmax(logits, sequences[:, prompt_len:]).masked_fill(outside, 0.0)
    values = value_head(h).float() if value_head is not None else None
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = entropy_from_logits(logits).masked_fill(outside, 0.0)
    return logprobs, values, entropy


@torch.no_grad()
def token_entropy(model: nn.Module, batch: Rollout, chunk: int = 16) -> torch.Tensor:
    """Per-token entropy (T = 1, the model's own distribution) of the current policy at the rollout's
    response positions: (B, T), 0 outside the mask. After an update, next to the rollout's own
    ``signals.entropy``, it measures how much that update moved the entropy of the same tokens."""
    sequences, attention, P = batch.sequences, batch.attention_mask, batch.prompt_ids.shape[1]
    parts = [
        policy_forward(model, sequences[i : i + chunk], attention[i : i + chunk], P, 1.0, with_entropy=True)[
            2
        ]
        for i in range(0, sequences.shape[0], chunk)
    ]
    return torch.cat(parts).masked_fill(~batch.response_mask, 0.0)  # (B, T)


@torch.no_grad()
def reference_logprobs(model: nn.Module, batch: Rollout, chunk: int = 16) -> torch.Tensor:
    """Log-probs of the sampled tokens under the reference policy (adapter disabled), same temperature.

    Runs ``chunk`` sequences at a time: bounded memory, and the matmuls keep the minibatch's shape.
    """
    return reference_pass(model, batch, chunk)[0]


@torch.no_grad()
def reference_pass(
    model: nn.Module, batch: Rollout, chunk: int = 16, *, trunk: SharedTrunk | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(:func:`reference_logprobs` (B, T), the output of an RM's ``trunk`` layers, the body's first
    ``trunk.layers``, over the whole sequences (B, P + T, H), or None without a trunk or with one no
    longer intact).

    The kept states are what an RM built on the same base computes in those layers
    (:class:`engine.models.trunk.SharedTrunk`). They need the sequences' last position too, which the
    log-probs do not: the body then runs on a pad column more (masked, its log-prob dropped).
    """
    sequences, attention, P = batch.sequences, batch.attention_mask, batch.prompt_ids.shape[1]
    kept: list[torch.Tensor] = []
    hook = None
    if trunk is not None and trunk.intact():
        body, _ = backbone_and_head(model)
        pad = torch.zeros_like(sequences[:, :1])  # (B, 1): policy_forward drops the last column
        sequences, attention = torch.cat([sequences, pad], 1), torch.cat([attention, pad.bool()], 1)
        hook = body.layers[trunk.layers - 1].register_forward_hook(
            lambda _module, _inputs, out: kept.append(out[0] if isinstance(out, tuple) else out)
        )
    try:
        with reference_mode(model):
            parts = [
                policy_forward(
                    model, sequences[i : i + chunk], attention[i : i + chunk], P, batch.temperature
                )[0]
                for i in range(0, sequences.shape[0], chunk)
            ]
    finally:
        if hook is not None:
            hook.remove()
    T = batch.response_mask.shape[1]
    logprobs = torch.cat(parts)[:, :T].masked_fill(~batch.response_mask, 0.0)  # (B, T)
    return logprobs, torch.cat(kept) if kept else None
