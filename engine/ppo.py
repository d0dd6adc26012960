"""PPO for a LoRA policy, one function per phase: rollout, score, KL-shaped rewards, GAE, losses, update.

Shapes: B sequences, P prompt tokens (left-padded), T response tokens (right-padded after EOS),
V vocabulary, H hidden size. ``response_mask`` is True on real response tokens (EOS included).

Implementation details follow "The N Implementation Details of RLHF with PPO" (Huang et al. 2024)
and TRL's PPO trainer, with two deliberate choices:

- log-probs for the ratio and for the KL are computed from the *same* temperature-scaled logits the
  tokens were sampled from (``log softmax(z / T)``), for the policy and for the reference alike;
- the critic is a scalar head on the policy's own last hidden state (shared backbone): the rollout's
  values come out of the sampling pass and the update needs one forward/backward per minibatch, not
  two (a separate critic network or adapter doubles the backbone work of the update).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch
from torch import nn

from engine.config import SamplingConfig
from engine.models import backbone_and_head, reference_mode
from engine.ppo_config import PPOHyperConfig
from engine.sampling import (
    Generation,
    TokenSignals,
    entropy_from_logits,
    generate,
    masked_mean,
    scale_logits,
    selective_log_softmax,
    token_signals,
)

# ----------------------------------------------------------------------------------------------
# Rollout


@dataclass
class Rollout:
    """One iteration's samples with everything the update needs (old log-probs, values) and the signals."""

    prompt_ids: torch.Tensor  # (B, P) left-padded
    prompt_mask: torch.Tensor  # (B, P) True = real prompt token
    response_ids: torch.Tensor  # (B, T) pad after EOS
    response_mask: torch.Tensor  # (B, T) True = generated token
    has_eos: torch.Tensor  # (B,)
    logprobs: torch.Tensor  # (B, T) log softmax(z / temperature)[y], 0 outside the mask
    values: torch.Tensor  # (B, T) critic values, 0 outside the mask
    signals: TokenSignals  # per-token sampling-space signals, (B, T) each
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


@torch.no_grad()
def rollout(
    model: nn.Module,
    value_head: nn.Module,
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
            keep_hidden=True,
        )
    signals = chunked_signals(gen, chunk)
    mask = gen.response_mask
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
        temperature=sampling.temperature,
    )


@contextlib.contextmanager
def merged_lora(model: nn.Module) -> Iterator[nn.Module]:
    """Fold the LoRA deltas into the base weights for the duration (sampling runs one matmul per layer
    instead of three), then restore the saved base weights bit for bit.

    Restoring copies rather than subtracting the delta (peft's ``unmerge_adapter``), which would leave
    float rounding in the base weights and so in the reference policy, growing with every iteration.
    """
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer) and not m.merged]
    if any(getattr(m.get_base_layer(), "bf16_forward", False) for m in layers):
        # A bf16 base computes bf16(W) x + LoRA(x); merged weights bf16(W + BA) would be another
        # function, and the rollout's log-probs must be the update's (ratio == 1).
        layers = []
    if not layers or not hasattr(model, "merge_adapter"):
        yield model
        return
    saved = [(m, m.get_base_layer().weight.detach().clone()) for m in layers]
    with torch.no_grad():
        model.merge_adapter()
    try:
        yield model
    finally:
        with torch.no_grad():
            for m, weight in saved:
                m.get_base_layer().weight.copy_(weight)
                m.merged_adapters.clear()


def fuse_activations(model: nn.Module) -> int:
    """Swap GPT-2's Python ``gelu_new`` (seven element-wise ops, each with its own backward) for the
    same tanh-approximate GELU as one fused kernel. Same formula; returns how many were swapped."""
    from transformers.activations import GELUTanh, NewGELUActivation

    swapped = 0
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, NewGELUActivation):
                setattr(module, name, GELUTanh())
                swapped += 1
    return swapped


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


class _FrozenMatmulBF16Backward(torch.autograd.Function):
    """y = x W + b in fp32; the input gradient dy W^T in bf16. W and b are frozen (no weight gradient)."""

    @staticmethod
    def forward(ctx, x2d, weight_in_out, bias, weight_out_in_bf16):  # (N, I), (I, O), (O,) | None, (O, I)
        ctx.save_for_backward(weight_out_in_bf16)
        return x2d @ weight_in_out if bias is None else torch.addmm(bias, x2d, weight_in_out)

    @staticmethod
    def backward(ctx, grad_out):  # (N, O) -> (N, I)
        (weight_out_in_bf16,) = ctx.saved_tensors
        grad_in = grad_out.to(torch.bfloat16) @ weight_out_in_bf16
        return grad_in.to(grad_out.dtype), None, None, None


class _FrozenMatmulBF16(torch.autograd.Function):
    """y = bf16(x) bf16(W) + b (fp32 accumulation and bias, fp32 out); the input gradient in bf16 too."""

    @staticmethod
    def forward(ctx, x2d, weight_in_out_bf16, bias, weight_out_in_bf16):
        ctx.save_for_backward(weight_out_in_bf16)
        y = (x2d.to(torch.bfloat16) @ weight_in_out_bf16).to(x2d.dtype)
        return y if bias is None else y.add_(bias)

    backward = _FrozenMatmulBF16Backward.backward


def bf16_matmul_is_fast(device: torch.device) -> bool:
    """CUDA, or a CPU with native bf16 dot products (avx512_bf16 or AMX)."""
    if device.type == "cuda":
        return True
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def frozen_matmuls_in_bf16(model: nn.Module, precision: str = "bf16") -> int:
    """Run the matmuls of *frozen* linear layers (the base model under LoRA) in bf16.

    ``"bf16_grad"``: only the input gradient dy W^T is bf16; the forward, hence log-probs, ratios,
    values and losses, stays fp32 (the backward's frozen matmuls at 2.2x the fp32 throughput).
    ``"bf16"``: the forward too (inputs and weights rounded to bf16, fp32 accumulation and output,
    measured 4x the fp32 GFLOP/s on this project's 2-core CPUs), in *every* phase: sampling (which
    then keeps the LoRA unmerged, see :func:`merged_lora`), the reference and the update all compute
    the same function, so ratio == 1 before the first step and KL == 0 with the adapter disabled.
    The trainable LoRA matrices, value head, softmax and losses stay fp32 (as in LoRA over a bf16 base).
    Returns how many layers were patched.
    """
    from transformers.pytorch_utils import Conv1D

    if precision not in ("bf16_grad", "bf16"):
        raise ValueError(f"unknown bf16 mode {precision!r}")
    patched = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if not isinstance(module, Conv1D | nn.Linear) or weight is None or weight.requires_grad:
            continue
        bias = getattr(module, "bias", None)
        if bias is not None and bias.requires_grad:
            continue
        conv1d = isinstance(module, Conv1D)
        if precision == "bf16":
            module.forward = _bf16_forward(module, conv1d)
            module.bf16_forward = True  # read by merged_lora
        else:
            module.forward = _bf16_backward_forward(module, module.forward, conv1d)
        patched += 1
    return patched


def _bf16_weights(module: nn.Module, conv1d: bool, cache: dict) -> torch.Tensor:
    """W as (out, in) in bf16, recast only when the weight changed in place (LoRA merge/restore)."""
    weight = module.weight
    if cache.get("version") != weight._version:
        cache.clear()
        w_out_in = (weight.detach().t() if conv1d else weight.detach()).to(torch.bfloat16).contiguous()
        cache.update(version=weight._version, out_in=w_out_in)
    return cache["out_in"]


def _bf16_forward(module: nn.Module, conv1d: bool):
    cache: dict[str, object] = {}

    def forward(x: torch.Tensor) -> torch.Tensor:
        w_out_in = _bf16_weights(module, conv1d, cache)
        if "in_out" not in cache:  # the forward's own layout, made once per weight version
            cache["in_out"] = w_out_in.t().contiguous()
        y = _FrozenMatmulBF16.apply(x.reshape(-1, x.shape[-1]), cache["in_out"], module.bias, w_out_in)
        return y.view(*x.shape[:-1], y.shape[-1])

    return forward


def _bf16_backward_forward(module: nn.Module, original, conv1d: bool):
    cache: dict[str, object] = {}

    def forward(x: torch.Tensor) -> torch.Tensor:
        if not (torch.is_grad_enabled() and x.requires_grad):
            return original(x)
        w_out_in = _bf16_weights(module, conv1d, cache)
        w_in_out = module.weight if conv1d else module.weight.t()
        y = _FrozenMatmulBF16Backward.apply(x.reshape(-1, x.shape[-1]), w_in_out, module.bias, w_out_in)
        return y.view(*x.shape[:-1], y.shape[-1])

    return forward


def position_ids_of(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding: (B, L) -> (B, L)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


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
    hidden = body(
        input_ids=inputs, attention_mask=attention.long(), position_ids=position_ids_of(attention)
    ).last_hidden_state  # (B, P + T - 1, H)
    h = hidden[:, prompt_len - 1 :]  # (B, T, H): the state that predicts each response token
    logits = scale_logits(head(h).float(), temperature)  # (B, T, V)
    logprobs = selective_log_softmax(logits, sequences[:, prompt_len:])
    values = value_head(h).float() if value_head is not None else None
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = entropy_from_logits(logits)
    return logprobs, values, entropy


@torch.no_grad()
def reference_logprobs(model: nn.Module, batch: Rollout, chunk: int = 16) -> torch.Tensor:
    """Log-probs of the sampled tokens under the reference policy (adapter disabled), same temperature.

    Runs ``chunk`` sequences at a time: bounded memory, and the matmuls keep the minibatch's shape.
    """
    sequences, attention, P = batch.sequences, batch.attention_mask, batch.prompt_ids.shape[1]
    with reference_mode(model):
        parts = [
            policy_forward(model, sequences[i : i + chunk], attention[i : i + chunk], P, batch.temperature)[0]
            for i in range(0, sequences.shape[0], chunk)
        ]
    return torch.cat(parts).masked_fill(~batch.response_mask, 0.0)  # (B, T)


# ----------------------------------------------------------------------------------------------
# Score


@torch.no_grad()
def score(
    reward_model: nn.Module,
    sequences: torch.Tensor,
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """RM score of each full sequence (prompt + response), read at its last real token: (B,)."""
    return reward_model(sequences, attention_mask).float()


def process_scores(
    scores: torch.Tensor, has_eos: torch.Tensor, prompt_index: torch.Tensor, cfg: PPOHyperConfig
) -> torch.Tensor:
    """Missing-EOS penalty, then optional normalisation (batch or per prompt), then clipping: (B,) -> (B,).

    ``prompt_index`` (B,) groups the samples of one prompt (used by ``reward_norm="prompt"``).
    """
    out = scores.float().clone()
    if cfg.missing_eos_penalty is not None:
        out = out - cfg.missing_eos_penalty * (~has_eos.bool()).float()
    if cfg.reward_norm == "batch":
        out = (out - out.mean()) / (out.std(unbiased=False) + 1e-8)
    elif cfg.reward_norm == "prompt":
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


# ----------------------------------------------------------------------------------------------
# KL-shaped rewards


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


# ----------------------------------------------------------------------------------------------
# GAE and whitening


def gae(
    rewards: torch.Tensor, values: torch.Tensor, response_mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over right-padded responses: (B, T) x 3 -> advantages, returns.

    The value after a response's last token is 0 (the episode ends there). Naive equivalent: the
    float64 loop in ``tests/test_ppo_ops.py``.
    """
    mask = response_mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    T = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        advantages[:, t] = last
    returns = (advantages + values) * mask
    return advantages, returns


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the positions where ``mask`` is True (Bessel-corrected); 0 elsewhere."""
    mean = masked_mean(values, mask)
    centred = values - mean
    n = mask.sum().clamp(min=2).to(values.dtype)
    var = masked_mean(centred**2, mask) * n / (n - 1)
    out = centred * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out.masked_fill(~mask.bool(), 0.0)


def masked_var(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = masked_mean(values, mask)
    return masked_mean((values - mean) ** 2, mask)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(returns - values) / Var(returns) over real tokens (nan when the returns are constant)."""
    var_returns = float(masked_var(returns, mask))
    if var_returns == 0:
        return float("nan")
    return 1.0 - float(masked_var(returns - values, mask)) / var_returns


# ----------------------------------------------------------------------------------------------
# Losses


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate: mean over real tokens of max(-A r, -A clip(r, 1-e, 1+e)).

    Stats (no grad): clipfrac (share of tokens where the clipped term is the max), approxkl
    (0.5 E[(log r)^2]) and the mean ratio.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), response_mask)
    with torch.no_grad():
        stats = {
            "policy/clipfrac": masked_mean((clipped > unclipped).float(), response_mask),
            "policy/approxkl": 0.5 * masked_mean(log_ratio.detach() ** 2, response_mask),
            "policy/ratio": masked_mean(ratio.detach(), response_mask),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange_value: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss: 0.5 * mean over real tokens of max((v - R)^2, (v_clipped - R)^2)."""
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped_loss = (values - returns) ** 2
    clipped_loss = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_loss, clipped_loss), response_mask)
    with torch.no_grad():
        stats = {"val/clipfrac": masked_mean((clipped_loss > unclipped_loss).float(), response_mask)}
    return loss, stats


# ----------------------------------------------------------------------------------------------
# Update


@dataclass
class UpdateBatch:
    """What the PPO epochs consume, (B, ...) each."""

    sequences: torch.Tensor  # (B, P + T)
    attention_mask: torch.Tensor  # (B, P + T)
    response_mask: torch.Tensor  # (B, T)
    old_logprobs: torch.Tensor  # (B, T)
    old_values: torch.Tensor  # (B, T)
    advantages: torch.Tensor  # (B, T)
    returns: torch.Tensor  # (B, T)
    prompt_len: int
    temperature: float

    def __len__(self) -> int:
        return self.sequences.shape[0]


def minibatches(batch_size: int, num_minibatches: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """A fresh shuffle of the batch, cut into ``num_minibatches`` index tensors."""
    order = torch.randperm(batch_size, generator=generator)
    yield from order.chunk(num_minibatches)


def ppo_update(
    model: nn.Module,
    value_head: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: UpdateBatch,
    cfg: PPOHyperConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """``ppo_epochs`` passes over shuffled minibatches; metrics are averaged over all minibatches.

    A minibatch whose loss or gradient is not finite is skipped (no optimizer step) and counted in
    ``guard/skipped_minibatches``.
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    stats: dict[str, list[torch.Tensor]] = {}
    skipped = 0
    first_ratio = float("nan")
    for epoch in range(cfg.ppo_epochs):
        for i, idx in enumerate(minibatches(len(batch), cfg.num_minibatches, generator)):
            mask = batch.response_mask[idx]
            logprobs, values, entropy = policy_forward(
                model,
                batch.sequences[idx],
                batch.attention_mask[idx],
                batch.prompt_len,
                batch.temperature,
                value_head,
                with_entropy=True,
            )
            pg_loss, pg_stats = policy_loss(
                logprobs, batch.old_logprobs[idx], batch.advantages[idx], mask, cfg.cliprange
            )
            vf_loss, vf_stats = value_loss(
                values, batch.old_values[idx], batch.returns[idx], mask, cfg.cliprange_value
            )
            loss = pg_loss + cfg.vf_coef * vf_loss
            if epoch == 0 and i == 0:
                first_ratio = float(pg_stats["policy/ratio"])
            optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                skipped += 1
                continue
            loss.backward()
            if cfg.max_grad_norm is not None:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            else:
                grad_norm = torch.linalg.vector_norm(
                    torch.stack([p.grad.norm() for p in params if p.grad is not None])
                )
            if not torch.isfinite(grad_norm):
                optimizer.zero_grad(set_to_none=True)
                skipped += 1
                continue
            optimizer.step()
            row = {
                **pg_stats,
                **vf_stats,
                "loss/policy": pg_loss.detach(),
                "loss/value": vf_loss.detach(),
                "loss/total": loss.detach(),
                "policy/entropy": masked_mean(entropy, mask),
                "val/mean": masked_mean(values.detach(), mask),
                "policy/grad_norm": grad_norm.detach(),
            }
            for key, value in row.items():
                stats.setdefault(key, []).append(value)
    metrics = {key: float(torch.stack(values).mean()) for key, values in stats.items()}
    metrics["policy/ratio_first_minibatch"] = first_ratio
    metrics["guard/skipped_minibatches"] = float(skipped)
    return metrics


def is_finite(*tensors: torch.Tensor) -> bool:
    """True when every value of every tensor is finite (one sync)."""
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def nan_to_none(x: float) -> float | None:
    return None if x is None or math.isnan(x) else x
