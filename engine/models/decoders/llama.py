"""The lean Llama decoder (SmolLM2): RMSNorm, rotary positions, grouped-query attention and SwiGLU
straight through the layers, keys and values in a cache preallocated for prompt + response."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.decoders.llama_layers import lean_head, lean_layer, lean_side_by_side
from engine.models.loading import backbone_and_head
from engine.models.lora_matmul import wrapped


class LlamaDecoder:
    """The prompt pass and one-token decode steps of a Llama body, computing what
    ``LlamaForCausalLM``'s forward computes with the ops of its modules, in the same order, minus
    transformers' per-call work (mask building, cache objects, output dataclasses, the rotary
    module's cos/sin per call, ``repeat_kv``'s copy of the keys and values per layer and step).

    Plain layers (``nn.Linear``, ``LlamaRMSNorm``, ``nn.Embedding``) run as their functional ops, the
    plain linear layers that read one input (q, k, v; gate, up) as one matmul, on CPU on weights
    prepacked for oneDNN (:func:`~engine.models.decoders.llama_layers.packed_linear`), and so does a
    LoRA layer merged into its base weight or with its adapters disabled (:func:`~engine.models.lora_matmul.
    as_computed`); a wrapped one (an active LoRA, the bf16 path's patched forward, hooks) is called as
    the module it is; the LM head's forward hooks always apply. The arithmetic differs from
    transformers' in two places: the matmuls' kernel on CPU, and attention (two batched
    matmuls with the mask as an additive bias, the query heads of one key/value head stacked as rows,
    no copies of the keys, against the SDPA kernel), so logits agree within float32 rounding (~1e-6),
    not bit for bit (tests/test_llama_decoder.py).
    """

    def __init__(self, body: nn.Module, head: nn.Module, key_mask: torch.Tensor):
        cfg = body.config
        self.head = lean_head(head)
        self.key_mask = key_mask  # (B, S) True = a real key: the prompt's mask, then every response slot
        self.next_index = 0  # cache column of the next token
        self.kept_layers: int | None = None  # keep_layer_output(): whose output to keep
        self.kept: torch.Tensor | None = None  # (B, S, E): that layer's output at every position
        self.prefills: PrefillCache | None = None  # use_prefill_cache(): earlier prompt passes
        self.stamp: tuple = ()  # the model's weights (identity, version) the prompt pass computes with
        self.n_head, self.n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.group = self.n_head // self.n_kv  # query heads per key/value head
        self.head_dim = body.layers[0].self_attn.head_dim
        self.embed_dim = cfg.hidden_size
        self.scale = body.layers[0].self_attn.scaling
        dtype = body.embed_tokens.weight.dtype
        batch, slots = key_mask.shape
        self.caches = [  # per layer: (keys, values), each (B, nKV, S, D), keys rotated
            tuple(torch.empty((batch, self.n_kv, slots, self.head_dim), dtype=dtype, device=key_mask.device)
                  for _ in range(2))
            for _ in body.layers[: cfg.num_hidden_layers]
        ]  # fmt: skip
        # LlamaRotaryEmbedding's cos / sin for every position a row can reach (positions count real
        # tokens only, so < S): the same element-wise ops per position, looked up instead of recomputed.
        inv_freq = body.rotary_emb.inv_freq.to(device=key_mask.device, dtype=torch.float)  # (D / 2,)
        freqs = torch.arange(slots, device=key_mask.device)[:, None].float() * inv_freq  # (S, D / 2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (S, D)
        self.cos, self.sin = emb.cos().to(dtype), emb.sin().to(dtype)  # attention_scaling 1 (over())
        self.key_bias = self._bias(key_mask[:, None, :])  # (B * nKV, G, S), for the one-token steps
        self.embed, self.norm = lean_layer(body.embed_tokens), lean_layer(body.norm)
        # per layer: input_layernorm, (q and k side by side, v), o, post_attention_layernorm, (gate, up), down
        self.layers = [
            (
                lean_layer(layer.input_layernorm),
                lean_side_by_side(
                    layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, groups=(2, 1)
                ),
                lean_layer(layer.self_attn.o_proj),
                lean_layer(layer.post_attention_layernorm),
                lean_side_by_side(layer.mlp.gate_proj, layer.mlp.up_proj),
                lean_layer(layer.mlp.down_proj),
            )
            for layer in body.layers[: cfg.num_hidden_layers]
        ]

    @classmethod
    def over(cls, model: nn.Module, prompt_mask: torch.Tensor, new_tokens: int) -> LlamaDecoder | None:
        """The lean decoder for prompts with ``prompt_mask`` (B, P), or None for anything it does not
        implement exactly (the model's own forward then decodes)."""
        body, head = backbone_and_head(model)
        if not _implemented(body):
            return None
        response = torch.ones((prompt_mask.shape[0], new_tokens), dtype=torch.bool, device=prompt_mask.device)
        return cls(body, head, torch.cat([prompt_mask.bool(), response], dim=1))

    def _bias(self, keep: torch.Tensor) -> torch.Tensor:
        """(B, L, S) True = may attend -> the additive bias (B * nKV, G * L, S): 0 or the dtype's
        minimum, one row per (query head of the group, query position)."""
        dtype = self.caches[0][0].dtype
        batch, length, slots = keep.shape
        bias = torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(
            ~keep, torch.finfo(dtype).min
        )
        bias = bias[:, None, None].expand(batch, self.n_kv, self.group, length, slots)
        return bias.reshape(batch * self.n_kv, self.group * length, slots)

    def prefill(self, prompt_ids: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prompts (B, P) at positions (B, P) -> the last position's logits (B, V) in float32
        and hidden state (B, E), after the final norm.

        Rows that repeat a prompt (the lab's and PPO's n samples of each prompt) share one pass: each
        distinct (mask, ids, positions) row runs once and its keys and values are copied into the cache
        rows of its repeats. A row's outputs depend on that row alone, so this is the same computation
        on fewer rows; with 16 samples of one 38-token chat prompt it is half of SmolLM2's sampling work.
        With :meth:`use_prefill_cache`, the same distinct rows on the same weights are not run again:
        their saved keys, values and outputs are copied in (the lab's slider notches keep the prompt).
        """
        width = prompt_ids.shape[1]
        rows = torch.cat([self.key_mask[:, :width].long(), prompt_ids, positions], dim=1)  # (B, 3P)
        distinct, copy_of = torch.unique(rows, dim=0, return_inverse=True)  # (U, 3P), (B,) row -> its prompt
        key = (self.kept_layers, tuple(distinct.shape), distinct.cpu().numpy().tobytes())
        done = self.prefills.get(key, self.stamp) if self.prefills is not None else None
        if done is None:
            done = self._prefill_distinct(distinct, copy_of, keep=self.prefills is not None)
            if self.prefills is not None:
                self.prefills.put(key, done)
        else:
            for (keys, values), k, v in zip(self.caches, done.keys, done.values, strict=True):
                keys[:, :, :width], values[:, :, :width] = k[copy_of], v[copy_of]
            if self.kept_layers is not None:
                self.kept[:, :width] = done.kept[copy_of]
            self.next_index = width
        return done.logits[copy_of], done.hidden[copy_of]

    def _prefill_distinct(self, distinct: torch.Tensor, copy_of: torch.Tensor, *, keep: bool) -> Prefilled:
        """The prompt pass over the distinct rows (U, 3P) (mask, ids, positions side by side), written
        into the cache rows of their repeats ``copy_of`` (B,); with ``keep`` the keys, values and kept
        layer output of each distinct row are saved too (copies of its first repeat's cache row).

        Prompts that open alike (a chat template's system turn: 27 of the 40 tokens of each of PPO's
        SmolLM2 prompts) run that shared opening once (:meth:`_shared_prefix`): the same sums over the
        same keys, on fewer rows."""
        width = distinct.shape[1] // 3
        key_mask, prompt_ids, positions = (
            distinct[:, :width].bool(),
            distinct[:, width:-width],
            distinct[:, -width:],
        )
        first = torch.empty(distinct.shape[0], dtype=torch.long, device=copy_of.device)
        first.scatter_(
            0, copy_of, torch.arange(copy_of.shape[0], device=copy_of.device)
        )  # (U,) a row of each
        causal = torch.ones((width, width), dtype=torch.bool, device=prompt_ids.device).tril()
        shared = self._shared_prefix(key_mask, prompt_ids)
        pads = width - key_mask.sum(-1)[copy_of]  # (B,)
        start = shared + int(pads.min())  # the first column where some row is past the shared opening
        if shared and shared + copy_of.shape[0] * (width - start) < distinct.shape[0] * width:
            # Fewer token rows: the opening once (its keys and values copied to each row's columns),
            # then every cache row from ``start`` on, attending to the cache (a step of P - start tokens).
            columns = pads[:, None] + torch.arange(shared, device=pads.device)  # (B, shared)
            opening = prompt_ids[:1, width - int(key_mask[0].sum()) :][:, :shared]  # (1, shared)
            at = torch.arange(shared, device=pads.device)[None]  # (1, shared): positions 0 .. shared - 1
            into = (torch.zeros_like(copy_of), columns)
            # A padding column before ``start`` is a masked key (weight 0) that nothing writes here: zeroed,
            # since an unwritten one may hold NaN, and 0 x NaN is NaN.
            for keys, values in self.caches:
                keys[:, :, :start].zero_(), values[:, :, :start].zero_()
            self._forward(self.embed(opening), at, self._bias(causal[None, :shared, :shared]), into)
            self.next_index = start
            keep_keys = causal[None, start:] & key_mask[copy_of][:, None, :]  # (B, P - start, P)
            h = self._forward(
                self.embed(prompt_ids[copy_of, start:]), positions[copy_of, start:], self._bias(keep_keys)
            )  # (B, P - start, E)
            logits, hidden = self._out(self.norm(h[first, -1]))  # (U, V), (U, E)
        else:
            keep_keys = causal[None] & key_mask[:, None, :]  # (U, P, P); a padding query sees no key,
            # softmax makes its weights uniform, and as a key it is masked for every real query
            columns = torch.arange(width, device=copy_of.device).expand(copy_of.shape[0], width)  # (B, P)
            h = self._forward(self.embed(prompt_ids), positions, self._bias(keep_keys), (copy_of, columns))
            logits, hidden = self._out(self.norm(h[:, -1]))  # (U, V), (U, E)
            self.next_index = width
        done = Prefilled(self.stamp, [], [], logits, hidden, None)
        if keep:
            done.keys = [keys[first, :, :width].clone() for keys, _ in self.caches]  # each (U, nKV, P, D)
            done.values = [values[first, :, :width].clone() for _, values in self.caches]
            if self.kept_layers is not None:
                done.kept = self.kept[first, :width].clone()  # (U, P, E)
        return done

    @staticmethod
    def _shared_prefix(key_mask: torch.Tensor, prompt_ids: torch.Tensor) -> int:
        """How many real tokens every left-padded row (U, P) opens with alike, leaving each row one at
        least (the last prompt position's output is each row's own); 0 for a single row."""
        lengths = key_mask.sum(-1)  # (U,)
        shortest = int(lengths.min())
        if prompt_ids.shape[0] < 2 or shortest < 2:
            return 0
        width = prompt_ids.shape[1]
        columns = (width - lengths)[:, None] + torch.arange(shortest - 1, device=lengths.device)  # (U, n)
        opening = prompt_ids.gather(1, columns)  # (U, n): each row's first real tokens
        alike = (opening == opening[:1]).all(0)  # (n,)
        return int(alike.long().cumprod(0).sum())

    def use_prefill_cache(self, cache: PrefillCache, model: nn.Module) -> None:
        """Take prompt passes from ``cache`` when it holds one of the same prompts on ``model``'s
        current weights, and save this one there (:meth:`prefill`)."""
        self.prefills = cache
        self.stamp = tuple((id(p), p._version) for p in model.parameters())

    def step(self, token: torch.Tensor, position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B,) at positions (B, 1) -> their logits (B, V) in float32 and hidden state (B, E)."""
        t = self.next_index
        h = self._forward(self.embed(token[:, None]), position, self.key_bias[..., : t + 1])
        return self._out(self.norm(h[:, 0]))

    def keep_layer_output(self, layers: int) -> None:
        """From now on keep the output of the first ``layers`` layers at each position (:attr:`kept`):
        what a reward model on the same base computes there (:class:`engine.models.trunk.SharedTrunk`)."""
        batch, slots = self.key_mask.shape
        self.kept_layers = layers
        self.kept = torch.zeros(
            (batch, slots, self.embed_dim), dtype=self.cos.dtype, device=self.key_mask.device
        )

    def finish(self, token: torch.Tensor, position: torch.Tensor) -> None:
        """The last drawn tokens (B,) at positions (B, 1) through the kept layers only: the one position
        no step computes (nothing follows it), and a reward model reads it."""
        if self.kept_layers is not None:
            t = self.next_index
            self._forward(
                self.embed(token[:, None]), position, self.key_bias[..., : t + 1], through=self.kept_layers
            )

    def _out(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, V) in float32, hidden (B, E)): the head's forward hooks apply (:func:`lean_head`)."""
        return self.head(hidden).float(), hidden

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """apply_rotary_pos_emb on (B, n, L, D) with cos / sin (B, 1, L, D): x cos + rotate_half(x) sin."""
        half = x.shape[-1] // 2
        return (x * cos) + (torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin)

    def _forward(
        self,
        h: torch.Tensor,
        positions: torch.Tensor,
        bias: torch.Tensor,
        into: tuple[torch.Tensor, torch.Tensor] | None = None,
        *,
        through: int | None = None,
    ) -> torch.Tensor:
        """Hidden states (N, L, E) at ``positions`` (N, L), the next L cache columns, through every
        layer (N, L, E), before the final norm; their keys and values written; ``bias``
        (N * nKV, G * L, t + L) masks the keys 0 .. t + L - 1.

        A step (``into`` None): N = B, the rows of the cache, L columns from :attr:`next_index` on. A
        prompt pass (``into`` = (copy_of (B,), columns (B, L))): h holds each distinct row once, cache
        row b takes the keys and values of row ``copy_of[b]`` at its ``columns[b]``, and attention runs
        over the fresh keys and values alone (``bias`` (N * nKV, G * L, L)): they are all it needs.

        With :meth:`keep_layer_output` the input of layer ``kept_layers`` (the output of the layers
        below it) is kept too; ``through`` set: the pass stops there (:meth:`finish`)."""
        batch, length, _ = h.shape
        t, n_kv, group, dim = self.next_index, self.n_kv, self.group, self.head_dim
        end = t + length
        cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]  # (B, 1, L, D)
        if into is not None:
            copy_of, columns = into
            rows = torch.arange(copy_of.shape[0], device=copy_of.device)[:, None]  # (B, 1)

        def keep_output(h: torch.Tensor) -> None:
            if into is None:
                self.kept[:, t:end] = h
            else:
                self.kept[rows, columns] = h[copy_of]  # (B, L, E)

        for i, ((keys, values), (norm_1, qkv, o_proj, norm_2, gate_up, down)) in enumerate(
            zip(self.caches, self.layers, strict=True)
        ):
            if i == self.kept_layers:
                keep_output(h)
                if through is not None:
                    break
            qk, v = qkv(norm_1(h))  # (N, L, (nH + nKV) D): q and k side by side, rotated in one pass
            qk = self._rotate(qk.view(batch, length, -1, dim).transpose(1, 2), cos, sin)
            q, k = qk[:, : self.n_head], qk[:, self.n_head :]  # (N, nH, L, D), (N, nKV, L, D)
            v = v.view(batch, length, n_kv, dim).transpose(1, 2)  # (N, nKV, L, D), as k
            if into is None:
                keys[:, :, t:end], values[:, :, t:end] = k, v
                k, v = keys[:, :, :end], values[:, :, :end]  # (B, nKV, end, D), views of the cache
            else:  # cache[b, :, columns[b, j]] = fresh[copy_of[b], :, j], indexed as (B, L, nKV, D)
                keys[rows, :, columns] = k[copy_of].transpose(1, 2)
                values[rows, :, columns] = v[copy_of].transpose(1, 2)
            # Query heads h = k * G + g share key/value head k (repeat_kv): stacked as rows of one
            # (B * nKV) batch, the G * L queries meet the cache as it is, with no copy per head.
            seen = k.shape[2]  # keys attended: end (a step), L (a prompt pass)
            q = q.reshape(batch * n_kv, group * length, dim)
            k_t = k.reshape(batch * n_kv, seen, dim).transpose(1, 2)  # (N * nKV, D, seen)
            v_all = v.reshape(batch * n_kv, seen, dim)  # (N * nKV, seen, D)
            scores = torch.baddbmm(bias, q, k_t, alpha=self.scale)  # (N * nKV, G * L, seen)
            a = torch.bmm(scores.softmax(-1), v_all).view(batch, -1, length, dim)  # (N, nH, L, D)
            h = h + o_proj(a.transpose(1, 2).reshape(batch, length, -1))  # heads side by side
            gate, up = gate_up(norm_2(h))
            h = h + down(F.silu(gate) * up)  # LlamaMLP with SiLU
        else:
            if self.kept_layers == len(self.layers):
                keep_output(h)
        if into is None:
            self.next_index = end
        return h


@dataclass
class Prefilled:
    """One prompt pass over U distinct prompt rows of width P: what a later pass over the same rows
    on the same weights (``stamp``) copies instead of computing (:meth:`LlamaDecoder.prefill`)."""

    stamp: tuple  # (identity, version) of each of the model's parameters when computed
    keys: list[torch.Tensor]  # per layer (U, nKV, P, D), rotated; empty when not kept
    values: list[torch.Tensor]  # per layer (U, nKV, P, D)
    logits: torch.Tensor  # (U, V) float32: the last prompt position's
    hidden: torch.Tensor  # (U, E)
    kept: torch.Tensor | None  # (U, P, E): the kept layer output (keep_layer_output), or None


class PrefillCache:
    """The last ``size`` prompt passes of one model, by their distinct prompt rows (and the layer whose
    output was kept). A slider notch of the sampling lab re-samples the same prompt on the same
    weights: its prompt pass (SmolLM2, one 40-token chat prompt: ~0.27 s on one core) is copied
    instead. An entry computed on other weights (a weight changed in place: its version counter) is
    never returned. Not thread-safe: its owner (:class:`engine.lab.SamplingLab`) holds a lock."""

    def __init__(self, size: int = 8):
        self.size = size
        self._entries: OrderedDict[tuple, Prefilled] = OrderedDict()

    def get(self, key: tuple, stamp: tuple) -> Prefilled | None:
        done = self._entries.get(key)
        if done is None or done.stamp != stamp:
            return None
        self._entries.move_to_end(key)
        return done

    def put(self, key: tuple, done: Prefilled) -> None:
        self._entries[key] = done
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


def _implemented(body: nn.Module) -> bool:
    """Whether ``body`` is exactly the Llama this decoder computes: eval mode, default RoPE, no
    biases, SiLU, and every module it steps over (layers, attention, MLP, rotary) unwrapped; a
    variant (scaled RoPE, attention bias, sliding windows, a hooked or replaced layer) is not."""
    from transformers.models.llama.modeling_llama import (
        LlamaAttention,
        LlamaDecoderLayer,
        LlamaMLP,
        LlamaModel,
        LlamaRMSNorm,
        LlamaRotaryEmbedding,
    )

    cfg = body.config
    if type(body) is not LlamaModel or cfg.model_type != "llama" or body.training:
        return False
    rope = getattr(cfg, "rope_parameters", None) or {}
    if rope.get("rope_type") != "default" or getattr(body.rotary_emb, "attention_scaling", None) != 1.0:
        return False
    if (
        cfg.attention_bias
        or cfg.mlp_bias
        or cfg.hidden_act != "silu"
        or getattr(cfg, "pretraining_tp", 1) != 1
    ):
        return False
    if getattr(cfg, "sliding_window", None) or cfg._attn_implementation not in ("eager", "sdpa"):
        return False
    stepped_over = [body, body.rotary_emb]
    kinds = [(body.rotary_emb, LlamaRotaryEmbedding), (body.norm, LlamaRMSNorm)]
    for layer in body.layers[: cfg.num_hidden_layers]:
        stepped_over += [layer, layer.self_attn, layer.mlp]
        kinds += [(layer, LlamaDecoderLayer), (layer.self_attn, LlamaAttention), (layer.mlp, LlamaMLP)]
        kinds += [(layer.input_layernorm, LlamaRMSNorm), (layer.post_attention_layernorm, LlamaRMSNorm)]
    if any(type(module) is not kind for module, kind in kinds) or any(map(wrapped, stepped_over)):
        return False
    attn = body.layers[0].self_attn
    return attn.num_key_value_groups * cfg.num_key_value_heads == cfg.num_attention_heads
