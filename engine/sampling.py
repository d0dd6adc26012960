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
from torch import nn

from engine.config import ConfigError, SamplingConfig
from engine.models.decoders import LlamaDecoder, PrefillCache, decoder_for
from engine.ops import (
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
        z = z.masked_fill(~top_p_keep(z, config.top_p), NEG_INF)
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


def top_p_keep(z: torch.Tensor, top_p: float) -> torch.Tensor:
    """(..., V) logits -> (..., V) True for the tokens top-p keeps: the smallest prefix of the tokens
    sorted by probability whose mass reaches ``top_p`` (the first token always, its mass before is 0).

    Naive equivalent: sort each row descending, ``mass_before = cumsum(p) - p``, keep ``mass_before <
    top_p``. Only the prefix is needed, so the rows are sorted partially: the top ``k`` by ``topk``
    (k = 64, then x8), enough once the top k's mass reaches top_p in a row (every token past them then
    has mass_before >= top_p); the same cumulative sums, without sorting 49152 logits per row. Only
    the rows still short of top_p are widened: one flat row (a high-entropy position at top-p 0.99
    needs ~30000 tokens) no longer makes every row of a 128-row chunk sort its whole vocabulary.
    """
    probs = torch.softmax(z, dim=-1)
    vocab = probs.shape[-1]
    flat = probs.reshape(-1, vocab)  # (N, V)
    keep = torch.zeros_like(flat, dtype=torch.bool)
    rows = torch.arange(flat.shape[0], device=flat.device)  # (n,) the rows not decided yet
    k = min(TOP_P_FIRST_K, vocab)
    while rows.numel():
        undecided = flat if rows.numel() == flat.shape[0] else flat[rows]  # (n, V)
        top_probs, order = torch.topk(undecided, k, dim=-1)  # (n, k), descending
        mass = torch.cumsum(top_probs, dim=-1)
        done = (mass[:, -1] >= top_p) | (k == vocab)  # (n,); a sync point, once per widening
        finished = rows[done]  # their keep rows are still all False: scatter the kept tokens into them
        keep[finished] = keep[finished].scatter(-1, order[done], (mass - top_probs)[done] < top_p)
        rows, k = rows[~done], min(k * 8, vocab)
    return keep.view(probs.shape)


TOP_P_FIRST_K = 64  # top_p_keep's first partial sort: a chat model's top-p mass sits in its top few dozen
SIGNAL_CHUNK_BYTES = 1 << 20  # token_signals' rows per pass: each row's passes then find it in the cache


@dataclass
class _Stats:
    """One distribution's statistics per row (N,) (see :func:`_distribution_stats`)."""

    entropy: torch.Tensor
    max_prob: torch.Tensor
    picked_prob: torch.Tensor
    picked_logprob: torch.Tensor
    support: torch.Tensor


def _distribution_stats(z: torch.Tensor, tokens: torch.Tensor) -> _Stats:
    """Statistics of softmax(z) for logits (N, V), -inf outside the support, and tokens (N,), in one
    pass over each row: entropy, max p, p and log p of the token, and the support's size.

    With zc = z - max z and s = sum exp(zc): log p = zc - log s, so H = log s - sum(exp(zc) zc) / s and
    max p = exp(0) / s, without writing p or log p out (naive: ``entropy_from_log_probs``,
    ``log_softmax``; tests/test_sampling.py checks every signal against plain Python).
    """
    support = (z != NEG_INF).sum(-1)
    zc = z - z.amax(-1, keepdim=True)  # (N, V), <= 0
    e = zc.exp()  # (N, V), 0 outside the support
    total = e.sum(-1)  # (N,)
    log_total = total.log()
    picked_logprob = zc.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - log_total  # (N,), -inf off the support
    weighted = (e * zc.masked_fill_(e == 0, 0.0)).sum(-1)  # (N,): sum exp(zc) zc; 0 * -inf would be nan
    return _Stats(
        entropy=log_total - weighted / total,
        max_prob=1.0 / total,
        picked_prob=picked_logprob.exp(),
        picked_logprob=picked_logprob,
        support=support,
    )


def token_signals(
    logits: torch.Tensor, tokens: torch.Tensor, response_mask: torch.Tensor, config: SamplingConfig
) -> TokenSignals:
    """All signals from raw model logits (B, T, V), the drawn tokens (B, T) and the mask (B, T).

    Row chunks of :data:`SIGNAL_CHUNK_BYTES`; the model's distribution p, the sampling distribution q
    and the temperature-scaled one behind ``logprob`` are each computed once, and not at all when one
    equals another (at T = 1 with no top-k / top-p / min-p all three are p).
    """
    batch, steps, vocab = logits.shape
    flat_logits = logits.reshape(-1, vocab)  # (B * T, V)
    flat_tokens = tokens.reshape(-1)  # (B * T,)
    truncates = config.greedy or 0 < config.top_k < vocab or config.top_p < 1 or config.min_p > 0
    scaled = config.temperature not in (0, 1)
    rows = max(1, SIGNAL_CHUNK_BYTES // (4 * vocab))
    chunks = {name: [] for name in ("entropy", "sampling_entropy", "max_prob", "sampled_prob", "sampled_prob_q",
                                   "n_candidates", "logprob")}  # fmt: skip
    for start in range(0, flat_logits.shape[0], rows):
        z = flat_logits[start : start + rows].float()  # (N, V)
        y = flat_tokens[start : start + rows]
        p = _distribution_stats(z, y)
        if truncates:
            q = _distribution_stats(sampling_logits(z, config), y)
            logprob = (
                _distribution_stats(z / config.temperature, y).picked_logprob if scaled else p.picked_logprob
            )
        else:  # q is softmax(z / T): the distribution of logprob
            q = _distribution_stats(z / config.temperature, y) if scaled else p
            logprob = q.picked_logprob
        for name, value in (("entropy", p.entropy), ("sampling_entropy", q.entropy), ("max_prob", p.max_prob),
                            ("sampled_prob", p.picked_prob), ("sampled_prob_q", q.picked_prob),
                            ("n_candidates", q.support), ("logprob", logprob)):  # fmt: skip
            chunks[name].append(value)
    keep = response_mask.bool()
    zero = torch.zeros((), dtype=torch.float32, device=logits.device)

    def signal(name: str) -> torch.Tensor:
        values = torch.cat(chunks[name]).view(batch, steps)  # (B, T)
        return torch.where(keep, values, torch.zeros_like(values) if name == "n_candidates" else zero)

    return TokenSignals(**{name: signal(name) for name in chunks})


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
    # (B, P + T, H) the output of the body's first ``keep_layers`` layers at every position, when asked
    # for and the decoder keeps it (the lean Llama one): an RM on the same base starts from it
    trunk_hidden: torch.Tensor | None = None

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
    keep_layers: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
    prefill_cache: PrefillCache | None = None,
) -> Generation:
    """Sample responses with a KV cache, keeping each position's raw logits for the signals.

    ``on_step(done, total)`` is called after each generated position (progress bars for big models).
    ``keep_layers``: keep the output of the body's first that many layers at every position of prompt
    + response (:attr:`Generation.trunk_hidden`), where the decoder can (the lean Llama one; else None).
    ``prefill_cache``: the prompt pass is taken from it when it holds the same prompts on the same
    weights, and saved there (the lean Llama decoder; others ignore it).

    A hand-written loop rather than ``model.generate``: it returns the unprocessed logits of every
    step (needed for all signals and for temperature-consistent log-probs) with no extra forward
    pass, and avoids generate()'s per-step logits-processor overhead, which dominates for tiny models.
    The prompt pass and the steps run through the decoder ``decoder_for`` picks once for the model
    (:mod:`engine.models.decoders`: GPT-2's lean one, else the model's own forward).
    """
    check_fits_context(model.config, int(prompt_mask.sum(-1).max()), config.max_new_tokens)
    device = prompt_ids.device
    batch = prompt_ids.shape[0]
    position_ids = position_ids_of(prompt_mask)
    decoder = decoder_for(model, prompt_mask, config.max_new_tokens, keep_hidden=keep_hidden)
    keeps = keep_layers is not None and isinstance(decoder, LlamaDecoder)
    if keeps:
        decoder.keep_layer_output(keep_layers)
    if prefill_cache is not None and isinstance(decoder, LlamaDecoder):
        decoder.use_prefill_cache(prefill_cache, model)
    logits, hidden = decoder.prefill(prompt_ids, position_ids)  # (B, V), (B, H) or None
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
        logits, hidden = decoder.step(token, next_position)
        next_position = next_position + 1
    if keeps:
        decoder.finish(token, next_position)
    return Generation(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        response_ids=torch.stack(tokens, 1),
        response_mask=torch.stack(masks, 1),
        logits=torch.stack(step_logits, 1),
        has_eos=has_eos,
        config=config,
        hidden=torch.stack(step_hidden, 1) if keep_hidden else None,
        trunk_hidden=decoder.kept[:, : prompt_ids.shape[1] + len(tokens)] if keeps else None,
    )


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
