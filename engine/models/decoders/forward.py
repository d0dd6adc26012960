"""Decoding through the model's own forward: any architecture transformers runs, with its KV cache."""

from __future__ import annotations

import torch
from torch import nn


class ForwardDecoder:
    """The prompt pass and one-token steps as calls of the model itself, the KV cache it returns
    handed back on each step: the path for every architecture (or attention variant) that has no
    lean decoder. Prompts are left-padded: the attention mask grows by one real column per step."""

    def __init__(self, model: nn.Module, prompt_mask: torch.Tensor, new_tokens: int, *, keep_hidden: bool):
        self.model = model
        self.attention = prompt_mask.long()  # (B, P), then (B, P + steps)
        self.max_len = prompt_mask.shape[1] + new_tokens
        self.keep_hidden = keep_hidden
        self.past_key_values = None

    def prefill(
        self, prompt_ids: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.model(
            input_ids=prompt_ids,
            attention_mask=self.attention,
            position_ids=positions,
            use_cache=True,
            output_hidden_states=self.keep_hidden,
            logits_to_keep=1,
            **_static_cache(self.model, self.max_len),
        )
        return self._last(out)

    def step(self, token: torch.Tensor, position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch = token.shape[0]
        one = torch.ones((batch, 1), dtype=self.attention.dtype, device=self.attention.device)
        self.attention = torch.cat([self.attention, one], dim=1)
        out = self.model(
            input_ids=token.unsqueeze(-1),
            attention_mask=self.attention,
            position_ids=position,
            past_key_values=self.past_key_values,
            use_cache=True,
            output_hidden_states=self.keep_hidden,
        )
        return self._last(out)

    def _last(self, out) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The last position's logits (B, V) in float32 and hidden state (B, H); the cache kept."""
        self.past_key_values = out.past_key_values
        hidden = out.hidden_states[-1][:, -1, :] if self.keep_hidden else None
        return out.logits[:, -1, :].float(), hidden


def _static_cache(model: nn.Module, max_len: int) -> dict:
    """``past_key_values=StaticCache(...)`` when the model supports one, else nothing (dynamic cache).

    A preallocated cache writes each step's keys/values in place; the default dynamic cache
    concatenates the whole cache every step (quadratic copying: ~30% of a small model's rollout on CPU).
    """
    try:
        from transformers import StaticCache

        return {"past_key_values": StaticCache(config=model.config, max_cache_len=max_len)}
    except (ImportError, TypeError, ValueError, AttributeError):
        return {}
