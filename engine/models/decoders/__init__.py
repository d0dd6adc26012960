"""Decoders: how generation runs a causal LM, a prompt pass then one-token steps over a KV cache.

:func:`decoder_for` picks one per ``generate`` call: the lean decoder of the model's architecture
when there is one (:mod:`.gpt2`, straight through the blocks' layers), else the model's own forward
(:mod:`.forward`, any architecture). Every decoder gives the logits (and last hidden states) of one
full forward over prompt + response; a new architecture's lean decoder joins ``LEAN_DECODERS``.
:func:`body_hidden_states` is the full forward over whole sequences (the update, the reference, the
RM), GPT-2's lean one where it applies.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from engine.models.decoders.forward import ForwardDecoder
from engine.models.decoders.gpt2 import Gpt2Decoder, gpt2_hidden_states, is_lean_gpt2
from engine.models.decoders.llama import LlamaDecoder, PrefillCache

__all__ = [
    "LEAN_DECODERS",
    "Decoder",
    "ForwardDecoder",
    "Gpt2Decoder",
    "LlamaDecoder",
    "PrefillCache",
    "body_hidden_states",
    "decoder_for",
]


class Decoder(Protocol):
    """A prompt pass, then one step per generated token; each returns the next token's raw logits
    (B, V) in float32 and the last hidden state (B, H), or None when the decoder was not asked for it."""

    def prefill(
        self, prompt_ids: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Left-padded prompts (B, P) at positions (B, P) -> the last prompt position's output."""
        ...

    def step(self, token: torch.Tensor, position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tokens (B,) at positions (B, 1) -> their output."""
        ...


# Lean decoders, tried in order; each ``over`` returns None for a model it does not implement.
LEAN_DECODERS = (Gpt2Decoder, LlamaDecoder)


def decoder_for(
    model: nn.Module, prompt_mask: torch.Tensor, new_tokens: int, *, keep_hidden: bool
) -> Decoder:
    """The decoder for ``model`` over prompts with ``prompt_mask`` (B, P) and up to ``new_tokens``
    generated positions: a lean one when the architecture has it, else the model's own forward."""
    for lean in LEAN_DECODERS:
        decoder = lean.over(model, prompt_mask, new_tokens)
        if decoder is not None:
            return decoder
    return ForwardDecoder(model, prompt_mask, new_tokens, keep_hidden=keep_hidden)


def body_hidden_states(
    body: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
) -> torch.Tensor:
    """A causal LM body's last hidden states (B, L, H) over ids, mask and positions (B, L), with
    gradients where its weights take them: the lean GPT-2 forward where it applies
    (:func:`~engine.models.decoders.gpt2.gpt2_hidden_states`), else the body's own, with no KV cache
    (an eval-mode body otherwise fills one it is never asked for, on the graph when training)."""
    if is_lean_gpt2(body):
        return gpt2_hidden_states(body, input_ids, attention_mask, position_ids)
    return body(
        input_ids=input_ids, attention_mask=attention_mask.long(), position_ids=position_ids, use_cache=False
    ).last_hidden_state
