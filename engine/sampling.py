"""Generation with temperature / top-k / top-p / min-p and the sampling-space signals, in one place.

For each generated position t with model logits z_t (temperature 1) and the *sampling*
distribution q_t (temperature, then top-k, then top-p, then min-p):

- ``entropy``          H(softmax(z_t)) in nats; ``sampling_entropy`` H(q_t)
- ``max_prob``         max softmax(z_t)
- ``sampled_prob``     softmax(z_t)[y_t]; ``sampled_prob_q`` q_t[y_t]
- ``n_candidates``     |support(q_t)|, how many tokens could have been drawn
- ``logprob``          log softmax(z_t / T)[y_t]: the log-prob PPO uses for ratios and KL, from the
                       same temperature-scaled logits that sampling used (T = 1 when greedy)

Padding never enters a statistic: every signal is 0 where ``response_mask`` is False.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import ConfigError, SamplingConfig
from engine.models import backbone_and_head
from engine.ops import (
    entropy_from_log_probs,
    masked_mean,
    position_ids_of,
    scale_logits,
    selective_log_softmax,
)

NEG_INF = float("-inf")


def sampling_logits(logits: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """Logits of the sampling distribution q: temperature, then top-k, top-p, min-p; -inf outside the support.

    Greedy (T = 0) keeps only the argmax. top-k keeps ties with the k-th logit. top-p keeps the
    smallest prefix of tokens sorted by probability whose mass reaches top_p (at least one token).
    min-p (Nguyen et al. 2024, arXiv 2407.01082) keeps token t iff p(t) >= min_p * max p, ties at the
    threshold kept; the argmax always survives. The order is transformers' (``GenerationMixin.
    _get_logits_processor``: TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, then
    MinPLogitsWarper, "applied after temperature scaling"). Since top-k / top-p only renormalise the
    survivors, p(t) / max p is the same before and after them: min-p tests p after temperature.
    """
    if config.greedy:
        keep = torch.zeros_like(logits, dtype=torch.bool)
        keep.scatter_(-1, logits.argmax(-1, keepdim=True), True)
        return logits.masked_fill(~keep, NEG_INF)
    z = scale_logits(logits.float(), config.temperature)
    if 0 < config.top_k < z.shape[-1]:
        kth = torch.topk(z, config.top_k, dim=-1).values[..., -1:]
        z = z.masked_fill(z < kth, NEG_INF)
    if config.top_p < 1:
        sorted_z, order = torch.sort(z, dim=-1, descending=True)
        probs = torch.softmax(sorted_z, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs
        drop_sorted = mass_before >= config.top_p  # the first token always has mass_before 0
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        z = z.masked_fill(drop, NEG_INF)
    if config.min_p > 0:
        probs = torch.softmax(z, dim=-1)  # as MinPLogitsWarper: probs < min_p * max p are dropped
        z = z.masked_fill(probs < config.min_p * probs.amax(-1, keepdim=True), NEG_INF)
    return z


@dataclass
class TokenSignals:
    """Per-token signals, each (B, T), 0 where the response mask is False."""

    entropy: torch.Tensor
    sampling_entropy: torch.Tensor
    max_prob: torch.Tensor
    sampled_prob: torch.Tensor
    sampled_prob_q: torch.Tensor
    n_candidates: torch.Tensor
    logprob: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def summary(self, mask: torch.Tensor) -> dict[str, float]:
        """Mean of each signal over real tokens."""
        return {name: float(masked_mean(value.float(), mask)) for name, value in self.as_dict().items()}


def token_signals(
    logits: torch.Tensor, tokens: torch.Tensor, response_mask: torch.Tensor, config: SamplingConfig
) -> TokenSignals:
    """All signals from raw model logits (B, T, V), the drawn tokens (B, T) and the mask (B, T)."""
    z = logits.float()
    logp = torch.log_softmax(z, dim=-1)  # (B, T, V)
    p = logp.exp()
    entropy = entropy_from_log_probs(logp)
    max_prob = p.amax(-1)
    sampled_prob = p.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)

    zq = sampling_logits(z, config)
    logq = torch.log_softmax(zq, dim=-1)
    q = logq.exp()
    sampling_entropy = entropy_from_log_probs(logq)
    sampled_prob_q = q.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    n_candidates = torch.isfinite(zq).sum(-1)

    logprob = sampled_logprob(z, tokens, config.temperature)
    keep = response_mask.bool()
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    return TokenSignals(
        entropy=torch.where(keep, entropy, zero),
        sampling_entropy=torch.where(keep, sampling_entropy, zero),
        max_prob=torch.where(keep, max_prob, zero),
        sampled_prob=torch.where(keep, sampled_prob, zero),
        sampled_prob_q=torch.where(keep, sampled_prob_q, zero),
        n_candidates=torch.where(keep, n_candidates, torch.zeros_like(n_candidates)),
        logprob=torch.where(keep, logprob, zero),
    )


def sampled_logprob(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(z / T)[y]: the PPO log-prob, consistent with how the token was sampled."""
    return selective_log_softmax(scale_logits(logits.float(), temperature), tokens)


def draw(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row from (B, V) logits under the sampling distribution."""
    if config.greedy:
        return logits.argmax(-1)
    probs = torch.softmax(sampling_logits(logits, config), dim=-1)
    # Inverse-CDF sampling: one uniform per row. torch.multinomial draws one exponential per
    # *vocabulary entry* (B x V random numbers per step), measured at ~10% of a rollout on CPU.
    # A token outside the support has a flat CDF step, so `right=True` can never land on it.
    cdf = probs.cumsum(-1)  # (B, V)
    u = torch.rand((probs.shape[0], 1), generator=generator, device=probs.device, dtype=cdf.dtype)
    u = u * cdf[:, -1:]  # (B, 1), below the total mass
    return torch.searchsorted(cdf, u, right=True).clamp(max=probs.shape[-1] - 1).squeeze(-1)


@dataclass
class Generation:
    """A batch of prompts and their sampled responses.

    Prompts are left-padded so every response starts at the same column P.
    """

    prompt_ids: torch.Tensor  # (B, P)
    prompt_mask: torch.Tensor  # (B, P) True = real prompt token
    response_ids: torch.Tensor  # (B, T) pad after EOS
    response_mask: torch.Tensor  # (B, T) True = generated token (EOS included)
    logits: torch.Tensor  # (B, T, V) raw model logits at each response position
    has_eos: torch.Tensor  # (B,) bool
    config: SamplingConfig
    hidden: torch.Tensor | None = None  # (B, T, H) last hidden states, when asked for

    @property
    def sequences(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)  # (B, P + T)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)

    @property
    def lengths(self) -> torch.Tensor:
        return self.response_mask.sum(-1)

    def signals(self, config: SamplingConfig | None = None) -> TokenSignals:
        """Signals of the drawn tokens; a new ``config`` re-scores the same samples without resampling."""
        return token_signals(self.logits, self.response_ids, self.response_mask, config or self.config)


def pad_right(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, L) ids and mask (True = real token) of token-id rows."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = True
    return ids, mask


def chat_prompts(tokenizer, prompts: list[str], enabled: bool = True) -> list[str]:
    """Prompts as the policy reads them: each a user turn in the tokenizer's chat template with the
    generation prompt, when ``enabled`` and the tokenizer has a template; unchanged otherwise. The one
    place PPO sampling, its probes and the lab template prompts (the store keeps the user's text)."""
    if not enabled or not getattr(tokenizer, "chat_template", None):
        return list(prompts)
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]


def encode_prompts(tokenizer, prompts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (B, P) ids and mask."""
    if not prompts:
        raise ConfigError("no prompts given")
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    for prompt, row in zip(prompts, ids, strict=True):
        if not row:
            raise ConfigError(f"prompt {prompt!r} encodes to no tokens")
    width = max(len(r) for r in ids)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.bool)
    for i, row in enumerate(ids):
        input_ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = True
    return input_ids.to(device), mask.to(device)


# Config fields that bound a model's positions (GPT-2's learned position table, RoPE models' trained range).
CONTEXT_FIELDS = ("n_positions", "max_position_embeddings", "n_ctx")


def context_limit(model_config) -> tuple[int, str] | None:
    """(positions, config field) the model can attend over, or None when its config names no limit."""
    for name in CONTEXT_FIELDS:
        value = getattr(model_config, name, None)
        if isinstance(value, int) and value > 0:
            return value, name
    return None


def check_fits_context(model_config, prompt_tokens: int, max_new_tokens: int) -> None:
    """ConfigError, naming the limit, when ``prompt_tokens`` + ``max_new_tokens`` positions exceed the
    model's context (past it GPT-2's position table raises IndexError mid-generation).

    ``max_new_tokens`` counts in full even when EOS may stop a response early: whether it does is
    only known after sampling. Scoring a given text passes its own token count as ``max_new_tokens``.
    """
    limit = context_limit(model_config)
    if limit is None or prompt_tokens + max_new_tokens <= limit[0]:
        return
    context, name = limit
    if max_new_tokens == 0:
        raise ConfigError(
            f"a text of {prompt_tokens} tokens exceeds the model's context of {context} positions ({name})"
        )
    if prompt_tokens >= context:
        raise ConfigError(
            f"a prompt of {prompt_tokens} tokens does not fit the model's context of {context} positions "
            f"({name}): shorten it to at most {context - 1} tokens, leaving room for the response"
        )
    raise ConfigError(
        f"a prompt of {prompt_tokens} tokens + max_new_tokens {max_new_tokens} = "
        f"{prompt_tokens + max_new_tokens} positions exceed the model's context of {context} ({name}): "
        f"lower max_new_tokens to at most {context - prompt_tokens} or shorten the prompt"
    )


@torch.no_grad()
def generate(
    model: nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    config: SamplingConfig,
    *,
    eos_token_id: int | None,
    pad_token_id: int,
    generator: torch.Generator | None = None,
    keep_hidden: bool = False,
    on_step: Callable[[int, int], None] | None = None,
) -> Generation:
    """Sample responses with a KV cache, keeping each position's raw logits for the signals.

    ``on_step(done, total)`` is called after each generated position (progress bars for big models).

    A hand-written loop rather than ``model.generate``: it returns the unprocessed logits of every
    step (needed for all signals and for temperature-consistent log-probs) with no extra forward
    pass, and avoids generate()'s per-step logits-processor overhead, which dominates for tiny models.
    """
    check_fits_context(model.config, int(prompt_mask.sum(-1).max()), config.max_new_tokens)
    device = prompt_ids.device
    batch = prompt_ids.shape[0]
    attention = prompt_mask.long()
    position_ids = position_ids_of(attention)
    lean = _Gpt2Decode.over(model, prompt_mask, config.max_new_tokens)
    if lean is not None:
        hidden = lean.prefill(prompt_ids, position_ids)  # (B, H)
        logits = lean.head(hidden).float()  # (B, V)
    else:
        out = model(
            input_ids=prompt_ids,
            attention_mask=attention,
            position_ids=position_ids,
            use_cache=True,
            output_hidden_states=keep_hidden,
            logits_to_keep=1,
            **_static_cache(model, prompt_ids.shape[1] + config.max_new_tokens),
        )
        logits = out.logits[:, -1, :].float()  # (B, V)
        hidden = out.hidden_states[-1][:, -1, :] if keep_hidden else None  # (B, H)
    next_position = position_ids[:, -1:] + 1
    step_logits, step_hidden, tokens = [], [], []
    alive = torch.ones(batch, dtype=torch.bool, device=device)
    has_eos = torch.zeros(batch, dtype=torch.bool, device=device)
    masks = []
    for _ in range(config.max_new_tokens):
        token = draw(logits, config, generator)
        token = torch.where(alive, token, torch.full_like(token, pad_token_id))
        step_logits.append(logits)
        if keep_hidden:
            step_hidden.append(hidden)
        tokens.append(token)
        masks.append(alive.clone())
        if on_step is not None:
            on_step(len(tokens), config.max_new_tokens)
        if config.stop_at_eos and eos_token_id is not None:
            is_eos = alive & (token == eos_token_id)
            has_eos |= is_eos
            alive &= ~is_eos
        elif eos_token_id is not None:
            has_eos |= alive & (token == eos_token_id)
        if len(tokens) == config.max_new_tokens or not bool(alive.any()):  # sync point, once per step
            break
        if lean is not None:
            hidden = lean.step(token, next_position)  # (B, H)
            logits = lean.head(hidden).float()
        else:
            attention = torch.cat(
                [attention, torch.ones((batch, 1), dtype=attention.dtype, device=device)], dim=1
            )
            out = model(
                input_ids=token.unsqueeze(-1),
                attention_mask=attention,
                position_ids=next_position,
                past_key_values=out.past_key_values,
                use_cache=True,
                output_hidden_states=keep_hidden,
            )
            logits = out.logits[:, -1, :].float()
            hidden = out.hidden_states[-1][:, -1, :] if keep_hidden else None
        next_position = next_position + 1
    return Generation(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        response_ids=torch.stack(tokens, 1),
        response_mask=torch.stack(masks, 1),
        logits=torch.stack(step_logits, 1),
        has_eos=has_eos,
        config=config,
        hidden=torch.stack(step_hidden, 1) if keep_hidden else None,
    )


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


class _Gpt2Decode:
    """The prompt pass and one-token decode steps of a GPT-2 body straight through its blocks' layers,
    keys and values written in place into a cache preallocated for prompt + response.

    For a 1M-parameter model transformers' per-call work (mask building, cache objects, config
    look-ups, output dataclasses) costs more than the matmuls: 16 x 32 tokens spent ~40% of its time
    there, and its prompt pass of 16 x 4 tokens took 4.8 ms. Each plain layer runs as its own
    functional call (:func:`_lean`); any other layer (LoRA, the bf16 path's patched forward, hooks)
    is called as the module it is, so its wrapper applies, and the LM head is always the module (the
    filler-token hook). The logits and last hidden states equal the full forward's
    (tests/test_sampling.py).
    """

    def __init__(self, body: nn.Module, head: nn.Module, key_mask: torch.Tensor):
        self.head = head
        self.key_mask = key_mask  # (B, S) True = a real key: the prompt's mask, then every response slot
        self.next_index = 0  # cache column of the next token
        self.n_head = body.config.n_head
        self.head_dim = body.config.n_embd // self.n_head
        self.scale = self.head_dim**-0.5  # scale_attn_weights (checked in over())
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
    def over(cls, model: nn.Module, prompt_mask: torch.Tensor, new_tokens: int) -> _Gpt2Decode | None:
        """The lean decoder for prompts with ``prompt_mask`` (B, P), or None (other architectures and
        attention variants: the model's own forward)."""
        body, head = backbone_and_head(model)
        cfg = body.config
        if cfg.model_type != "gpt2" or body.training or cfg.add_cross_attention:
            return None
        if not cfg.scale_attn_weights or cfg.scale_attn_by_inverse_layer_idx or cfg.reorder_and_upcast_attn:
            return None  # attention variants the step does not implement
        response = torch.ones((prompt_mask.shape[0], new_tokens), dtype=torch.bool, device=prompt_mask.device)
        return cls(body, head, torch.cat([prompt_mask.bool(), response], dim=1))

    def _bias(self, keep: torch.Tensor) -> torch.Tensor:
        """(B, L, S) True = may attend -> the additive bias (B * nH, L, S): 0 or the dtype's minimum."""
        dtype = self.caches[0][0].dtype
        bias = torch.zeros(keep.shape, dtype=dtype, device=keep.device)
        return bias.masked_fill(~keep, torch.finfo(dtype).min).repeat_interleave(self.n_head, 0)

    def prefill(self, prompt_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Left-padded prompts (B, P) at positions (B, P) -> the last position's hidden state (B, E)."""
        width = prompt_ids.shape[1]
        causal = torch.ones((width, width), dtype=torch.bool, device=prompt_ids.device).tril()
        keep = causal[None] & self.key_mask[:, None, :width]  # (B, P, P); a padding query sees no key,
        # softmax makes its weights uniform, and as a key it is masked for every real query
        h = self._forward(self.wte(prompt_ids) + self.wpe(positions), self._bias(keep))  # (B, P, E)
        return self.ln_f(h[:, -1])

    def step(self, token: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """Tokens (B,) at positions (B, 1) -> the last hidden state (B, E), after the final layer norm."""
        t = self.next_index
        h = self._forward(self.wte(token[:, None]) + self.wpe(position), self.key_bias[..., : t + 1])
        return self.ln_f(h[:, 0])

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
            scores = torch.baddbmm(bias, q, k_t, alpha=self.scale)  # (B * nH, L, end)
            a = torch.bmm(scores.softmax(-1), v_all).view(batch, nh, length, dim)
            h = h + attn_proj(a.transpose(1, 2).reshape(batch, length, nh * dim))  # heads side by side
            h = h + mlp_proj(act(c_fc(ln_2(h))))  # GPT2MLP, dropout off
        self.next_index = end
        return h


def _lean(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """A plain layer's own forward without the module call around it: transformers' ``Conv1D`` (one
    addmm), ``nn.LayerNorm``, ``nn.Embedding``. A layer is plain when it is exactly that type (a LoRA
    wrapper is another), with no forward set on the instance (the bf16 path sets one) and no hooks;
    anything else is returned as the module, to be called as it is.

    At 16 rows a module call's own overhead is a sizeable part of the op: the decode loop's 16 Conv1D
    calls per step alone were 10-16 % faster without it (paired, in one process; Zen 4, one thread).
    """
    from transformers.pytorch_utils import Conv1D

    if "forward" in vars(module) or module._forward_hooks or module._forward_pre_hooks:
        return module
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


def _fused_gelu(act: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """GPT-2's ``gelu_new`` (seven element-wise ops in Python) as the one-kernel tanh GELU of the same
    formula (as ``engine.models.fuse_activations`` does for PPO); any other activation as it is."""
    from transformers.activations import NewGELUActivation

    if type(act) is NewGELUActivation:
        return lambda x: F.gelu(x, approximate="tanh")
    return act


def generate_encoded(
    loaded,
    ids: torch.Tensor,
    mask: torch.Tensor,
    config: SamplingConfig,
    generator: torch.Generator | None,
    **kwargs,
) -> Generation:
    """Sample from encoded prompts ``ids`` / ``mask`` (B, P) with the loaded model's EOS and pad tokens."""
    tok = loaded.tokenizer
    return generate(
        loaded.model,
        ids,
        mask,
        config,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        generator=generator,
        **kwargs,
    )


def generate_from_texts(
    loaded, prompts: list[str], config: SamplingConfig, generator: torch.Generator | None, **kwargs
) -> Generation:
    """Encode prompt texts (left-padded) and sample with the loaded model's EOS and pad tokens."""
    ids, mask = encode_prompts(loaded.tokenizer, prompts, loaded.device)
    return generate_encoded(loaded, ids, mask, config, generator, **kwargs)


def generate_text(
    loaded, prompts: list[str], config: SamplingConfig, *, seed: int = 0, samples_per_prompt: int = 1
) -> Generation:
    """Convenience: each prompt repeated ``samples_per_prompt`` times, sampled from ``seed``."""
    repeated = [p for p in prompts for _ in range(samples_per_prompt)]
    generator = torch.Generator(device=loaded.device).manual_seed(seed)
    return generate_from_texts(loaded, repeated, config, generator)


def decode_tokens(tokenizer, ids: torch.Tensor, mask: torch.Tensor) -> list[list[str]]:
    """Per-row token strings of the real (masked-in) positions."""
    rows = []
    for row, keep in zip(ids.tolist(), mask.tolist(), strict=True):
        rows.append(tokenizer.convert_ids_to_tokens([t for t, k in zip(row, keep, strict=True) if k]))
    return rows


def decode_responses(
    tokenizer, response_ids: torch.Tensor, response_mask: torch.Tensor, *, skip_special: bool = False
) -> list[str]:
    """Response texts of the real tokens, padding dropped: (B, T) -> B strings.

    By default EOS is kept: the gold judge reads it (a response that stopped itself ends with it).
    ``skip_special`` drops every special token (text for a reward model with another vocabulary).
    """
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id != tokenizer.eos_token_id else None
    rows = []
    for ids, keep in zip(response_ids.tolist(), response_mask.tolist(), strict=True):
        real = [t for t, k in zip(ids, keep, strict=True) if k and t != pad]
        rows.append(
            tokenizer.decode(real, skip_special_tokens=skip_special, clean_up_tokenization_spaces=False)
        )
    return rows
