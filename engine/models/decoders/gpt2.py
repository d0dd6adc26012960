"""The lean GPT-2 decoder: GPT-2's prompt pass and one-token steps straight through its blocks' layers."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.loading import backbone_and_head
from engine.models.lora_matmul import as_computed, lora_matmul, lora_parts, wrapped
from engine.models.precision import TanhGelu, tanh_gelu


class Gpt2Decoder:
    """The prompt pass and one-token decode steps of a GPT-2 body straight through its blocks' layers,
    keys and values written in place into a cache preallocated for prompt + response.

    For a 1M-parameter model transformers' per-call work (mask building, cache objects, config
    look-ups, output dataclasses) costs more than the matmuls: 16 x 32 tokens spent ~40% of its time
    there, and its prompt pass of 16 x 4 tokens took 4.8 ms. Each plain layer runs as its own
    functional call (:func:`_lean`); any other layer (LoRA, the bf16 path's patched forward, hooks)
    is called as the module it is, so its wrapper applies, and the LM head is always the module (the
    filler-token hook). The logits and last hidden states equal the full forward's
    (tests/test_sampling.py). Rows with the same prompt (PPO's samples of one prompt) share one prompt
    pass (:meth:`prefill`).
    """

    def __init__(self, body: nn.Module, head: nn.Module, key_mask: torch.Tensor):
        self.body = body
        self.head = head
        self.key_mask = key_mask  # (B, S) True = a real key: the prompt's mask, then every response slot
        self.next_index = 0  # cache column of the next token
        self.n_head = body.config.n_head
        self.head_dim = body.config.n_embd // self.n_head
        self.scale = self.head_dim**-0.5  # scale_attn_weights (checked in is_lean_gpt2())
        dtype = body.wte.weight.dtype
        batch, slots = key_mask.shape
        self.caches = [  # per block: (keys, values), each (B, nH, S, D)
            tuple(torch.empty((batch, self.n_head, slots, self.head_dim), dtype=dtype, device=key_mask.device)
                  for _ in range(2))
            for _ in body.h
        ]  # fmt: skip
        self.key_bias = self._bias(key_mask[:, None, :])  # (B * nH, 1, S), for the one-token steps
        self.wte, self.wpe, self.ln_f = _lean(body.wte), _lean(body.wpe), _lean(body.ln_f)
        # per block: ln_1, c_attn, attn.c_proj, ln_2, mlp.c_fc, activation, mlp.c_proj
        self.blocks = [
            (
                *(_lean(m) for m in (b.ln_1, b.attn.c_attn, b.attn.c_proj, b.ln_2, b.mlp.c_fc)),
                _fused_gelu(b.mlp.act),
                _lean(b.mlp.c_proj),
            )
            for b in body.h
        ]

    @classmethod
    def over(cls, model: nn.Module, prompt_mask: torch.Tensor, new_tokens: int) -> Gpt2Decoder | None:
        """The lean decoder for prompts with ``prompt_mask`` (B, P), or None (other architectures and
        attention variants: the model's own forward)."""
        body, head = backbone_and_head(model)
        if not is_lean_gpt2(body):
            return None
        response = torch.ones((prompt_mask.shape[0], new_tokens), dtype=torch.bool, device=prompt_mask.device)
        return cls(body, head, torch.cat([prompt_mask.bool(), response], dim=1))

    def _bias(self, keep: torch.Tensor) -> torch.Tensor:
        """:func:`_additive_bias` in the cache's dtype, one copy per head."""
        return _additive_bias(keep, self.caches[0][0].dtype, self.n_head)

    def prefill(self, prompt_ids: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prompts (B, P) at positions (B, P) -> the last position's logits (B, V) in float32
        and hidden state (B, E), after the final layer norm.

        Rows with the same prompt (ids and mask) have the same states: the pass runs once per distinct
        prompt and its keys and values are copied into each copy's rows. PPO samples each prompt k
        times, so its prompt pass is k times smaller (16 x 4 rows: 21 -> 7 ms on Zen 3, one thread).
        """
        width = prompt_ids.shape[1]
        prompt_mask = self.key_mask[:, :width]  # (B, P)
        rows = torch.cat([prompt_ids, prompt_mask.long()], dim=1)  # (B, 2P): a prompt is its ids and mask
        distinct, inverse = torch.unique(rows, dim=0, return_inverse=True)  # (G, 2P), (B,)
        if distinct.shape[0] == rows.shape[0]:
            return self._prefill(prompt_ids, positions)
        # one row of each distinct prompt (any: they are equal)
        first = torch.empty(distinct.shape[0], dtype=torch.long, device=rows.device)
        first.scatter_(0, inverse, torch.arange(rows.shape[0], device=rows.device))  # (G,)
        once = Gpt2Decoder(self.body, self.head, prompt_mask[first])
        logits, hidden = once._prefill(prompt_ids[first], positions[first])  # (G, V), (G, E)
        for (keys, values), (k_once, v_once) in zip(self.caches, once.caches, strict=True):
            keys[:, :, :width] = k_once[inverse]
            values[:, :, :width] = v_once[inverse]
        self.next_index = width
        return logits[inverse], hidden[inverse]

    def _prefill(
        self, prompt_ids: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`prefill` row by row: every row's prompt pass."""
        width = prompt_ids.shape[1]
        bias = _causal_bias(self.key_mask[:, :width], self.caches[0][0].dtype, self.n_head)  # (B * nH, P, P)
        h = self._forward(self.wte(prompt_ids) + self.wpe(positions), bias)  # (B, P, E)
        return self._out(self.ln_f(h[:, -1]))

    def step(self, token: torch.Tensor, position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B,) at positions (B, 1) -> their logits (B, V) in float32 and hidden state (B, E)."""
        t = self.next_index
        h = self._forward(self.wte(token[:, None]) + self.wpe(position), self.key_bias[..., : t + 1])
        return self._out(self.ln_f(h[:, 0]))

    def _out(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, V) in float32, hidden (B, E)): the head is always the module (its hooks apply)."""
        return self.head(hidden).float(), hidden

    def _forward(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, L, E) of the next L cache columns through every block (B, L, E), before
        the final layer norm; their keys and values written; ``bias`` (B * nH, L, t + L) masks the keys 0 .. t + L - 1."""
        batch, length, _ = h.shape
        t, nh, dim = self.next_index, self.n_head, self.head_dim
        end = t + length
        for (keys, values), (ln_1, c_attn, attn_proj, ln_2, c_fc, act, mlp_proj) in zip(
            self.caches, self.blocks, strict=True
        ):
            q, k, v = c_attn(ln_1(h)).chunk(3, dim=2)  # each (B, L, E)
            keys[:, :, t:end] = k.view(batch, length, nh, dim).transpose(1, 2)
            values[:, :, t:end] = v.view(batch, length, nh, dim).transpose(1, 2)
            # Two batched matmuls over the B * nH heads with the mask as an additive bias: faster than
            # scaled_dot_product_attention's kernel for a single query.
            q = q.view(batch, length, nh, dim).transpose(1, 2).reshape(batch * nh, length, dim)
            k_t = keys[:, :, :end].reshape(batch * nh, end, dim).transpose(1, 2)  # (B * nH, D, end), a view
            v_all = values[:, :, :end].reshape(batch * nh, end, dim)  # (B * nH, end, D), a view
            h = h + attn_proj(_attend(q, k_t, v_all, bias, self.scale, batch))
            h = h + mlp_proj(act(c_fc(ln_2(h))))  # GPT2MLP, dropout off
        self.next_index = end
        return h


def is_lean_gpt2(body: nn.Module) -> bool:
    """Whether the lean GPT-2 code computes ``body``'s forward: a GPT-2 body in eval mode (dropout
    off), without cross-attention or the attention variants it does not implement, and with no hooks on
    the body or its blocks (a hook expects the module to be called)."""
    cfg = body.config
    if cfg.model_type != "gpt2" or body.training or cfg.add_cross_attention:
        return False
    if not cfg.scale_attn_weights or cfg.scale_attn_by_inverse_layer_idx or cfg.reorder_and_upcast_attn:
        return False
    return not any(m._forward_hooks or m._forward_pre_hooks for m in (body, *body.h))


def gpt2_hidden_states(
    body: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
) -> torch.Tensor:
    """The last hidden states (B, L, E), after the final layer norm, of a lean GPT-2 ``body``
    (:func:`is_lean_gpt2`) over ids, mask and positions (B, L): its full forward without the KV cache,
    straight through the blocks' layers, with gradients where the weights take them.

    The update's forward on the world's policy spent more time in transformers' and peft's per-call
    work and in ``scaled_dot_product_attention``'s CPU kernel (forward and backward, at 38 positions)
    than in its matmuls. Here each LoRA layer is one matmul with its own backward
    (:func:`~engine.models.lora_matmul.lora_matmul`), the GELU is the fused one, and attention is two
    batched matmuls with an additive mask, as in :class:`Gpt2Decoder`. Equals the module's forward
    (tests/test_ppo_ops.py).
    """
    batch, length = input_ids.shape
    nh = body.config.n_head
    dim = body.config.n_embd // nh
    bias = _causal_bias(attention_mask.bool(), body.wte.weight.dtype, nh)  # (B * nH, L, L)
    h = _lean(body.wte)(input_ids) + _lean(body.wpe)(position_ids)  # (B, L, E)
    for b in body.h:
        ln_1, c_attn, attn_proj, ln_2, c_fc, mlp_proj = (
            _lean_lora(m) for m in (b.ln_1, b.attn.c_attn, b.attn.c_proj, b.ln_2, b.mlp.c_fc, b.mlp.c_proj)
        )
        q, k, v = (
            t.view(batch, length, nh, dim).transpose(1, 2).reshape(batch * nh, length, dim)
            for t in c_attn(ln_1(h)).chunk(3, dim=2)
        )  # each (B * nH, L, D)
        h = h + attn_proj(_attend(q, k.transpose(1, 2), v, bias, dim**-0.5, batch))
        h = h + mlp_proj(_gelu_with_grad(b.mlp.act)(c_fc(ln_2(h))))  # GPT2MLP, dropout off
    return _lean(body.ln_f)(h)


def _causal_bias(key_mask: torch.Tensor, dtype: torch.dtype, n_head: int) -> torch.Tensor:
    """Causal attention over positions whose keys are real (``key_mask`` (B, L), True = real) as the
    additive bias (B * nH, L, L). A padding query sees no key, so its softmax weights are uniform;
    as a key it is masked for every real query."""
    length = key_mask.shape[1]
    causal = torch.ones((length, length), dtype=torch.bool, device=key_mask.device).tril()
    return _additive_bias(causal[None] & key_mask[:, None, :], dtype, n_head)


def _additive_bias(keep: torch.Tensor, dtype: torch.dtype, n_head: int) -> torch.Tensor:
    """(B, L, S) True = may attend -> the additive bias (B * nH, L, S): 0 or the dtype's minimum."""
    bias = torch.zeros(keep.shape, dtype=dtype, device=keep.device)
    return bias.masked_fill_(~keep, torch.finfo(dtype).min).repeat_interleave(n_head, 0)


def _attend(
    q: torch.Tensor, k_t: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float, batch: int
) -> torch.Tensor:
    """Attention over the B * nH heads: q (B * nH, L, D), keys transposed (B * nH, D, S), values
    (B * nH, S, D), the mask as an additive bias (B * nH, L, S) -> (B, L, nH * D), heads side by side."""
    heads, length, dim = q.shape
    scores = torch.baddbmm(bias, q, k_t, alpha=scale)  # (B * nH, L, S)
    a = torch.bmm(scores.softmax(-1), v).view(batch, heads // batch, length, dim)
    return a.transpose(1, 2).reshape(batch, length, heads // batch * dim)


def _lean_lora(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """:func:`_lean`, and a peft LoRA wrapper as one matmul (:func:`~engine.models.lora_matmul.
    lora_parts`) or, merged or with its adapters disabled (the reference policy), as the base layer
    its forward then is (:func:`~engine.models.lora_matmul.as_computed`)."""
    parts = lora_parts(module)
    if parts is not None:
        return lambda x: lora_matmul(x, parts)
    return _lean(as_computed(module))


def _lean(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """A plain layer's own forward without the module call around it: transformers' ``Conv1D`` (one
    addmm), ``nn.LayerNorm``, ``nn.Embedding``. A layer is plain when it is exactly that type (a LoRA
    wrapper is another), with no forward set on the instance (the bf16 path sets one) and no hooks;
    a LoRA wrapper whose adapter is merged into its base layer (the rollout's :func:`~engine.models.
    precision.merged_lora`) is its base layer, as peft's own forward then is; anything else is
    returned as the module, to be called as it is.

    At 16 rows a module call's own overhead is a sizeable part of the op: the decode loop's 16 Conv1D
    calls per step alone were 10-16 % faster without it (paired, in one process; Zen 4, one thread).
    """
    from transformers.pytorch_utils import Conv1D

    if wrapped(module):
        return module
    base = _merged_base(module)
    if base is not None:
        return _lean(base)
    kind = type(module)
    if kind is Conv1D:
        weight, bias = module.weight, module.bias  # (in, out), (out,)
        width = weight.shape[1]
        return lambda x: torch.addmm(bias, x.view(-1, x.shape[-1]), weight).view(*x.shape[:-1], width)
    if kind is nn.LayerNorm:
        shape, weight, bias, eps = module.normalized_shape, module.weight, module.bias, module.eps
        return lambda x: F.layer_norm(x, shape, weight, bias, eps)
    if kind is nn.Embedding and module.max_norm is None:  # max_norm would renormalise rows in place
        weight = module.weight
        return lambda ids: F.embedding(ids, weight)
    return module


def _merged_base(module: nn.Module) -> nn.Module | None:
    """The base layer of a peft LoRA wrapper whose adapters are merged into it and enabled, else None.

    peft's ``LoraLayer.forward`` is then ``base_layer(x)`` and nothing else (with the adapters disabled
    it would unmerge first); called through the wrapper it cost 3 module calls per layer and step.
    The decoder lives inside one ``generate`` call, so the merge holds for the decoder's life.
    """
    base = getattr(module, "base_layer", None)
    if base is None or not getattr(module, "merged", False) or getattr(module, "disable_adapters", True):
        return None
    return base


def _gelu_with_grad(act: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """:func:`_fused_gelu` where gradients may flow: :class:`~engine.models.precision.TanhGelu`'s own
    forward (its one-product backward when a gradient is needed), GPT-2's seven-op ``gelu_new`` as
    ``F.gelu``'s tanh kernel (the same formula); any other activation as it is."""
    from transformers.activations import GELUTanh, NewGELUActivation

    if type(act) is TanhGelu:
        return act.forward
    if type(act) in (NewGELUActivation, GELUTanh):
        return lambda x: F.gelu(x, approximate="tanh")
    return act


def _fused_gelu(act: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """GPT-2's ``gelu_new`` (seven element-wise ops in Python), transformers' ``GELUTanh`` or the
    trainer's :class:`~engine.models.precision.TanhGelu` as :func:`~engine.models.precision.tanh_gelu`,
    the same formula in its fast form, called as a function; any other activation as it is."""
    from transformers.activations import GELUTanh, NewGELUActivation

    if type(act) in (NewGELUActivation, GELUTanh, TanhGelu):
        return tanh_gelu
    return act
