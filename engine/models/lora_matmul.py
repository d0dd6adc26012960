"""A LoRA linear layer as one matmul: ``x (W + s A^T B^T) + b``, with the adapter's gradients computed
by hand from the saved input and the output's gradient.

peft's LoRA forward is ``base(x) + B(A(dropout(x))) * s``: three matmuls, a product and a sum, each with
its own autograd node, per layer and call. On the world's 1M-parameter policy those small ops and
their backward nodes cost more than the matmuls they wrap. Folding the adapter into the weight first
(``r x I x O`` multiply-adds, a fraction of the ``N x I x O`` of the matmul itself at the update's
N = 16 x 38 rows) leaves one matmul forward and one for the input gradient; the adapter's gradients
are four rank-r matmuls, the same as autograd's. Used by the lean GPT-2 forward
(:func:`engine.models.decoders.gpt2.gpt2_hidden_states`) for every unmerged, enabled peft LoRA layer.

Also here, for every lean path (GPT-2 and Llama): :func:`wrapped` (a module that must be called as it
is) and :func:`as_computed` (the plain layer a merged or disabled LoRA layer's forward is).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


def wrapped(module: nn.Module) -> bool:
    """A forward set on the instance (the bf16 path) or hooks: the module must be called as it is."""
    return "forward" in vars(module) or bool(module._forward_hooks or module._forward_pre_hooks)


def as_computed(module: nn.Module) -> nn.Module:
    """The module whose forward ``module``'s forward is: a LoRA layer whose deltas are merged into its
    base layer's weight (PPO's rollout, :func:`engine.models.precision.merged_lora`), or whose adapters
    are disabled and not merged, computes its base layer alone (peft's ``LoraLayer.forward``), so it
    runs as that plain layer does (one prepacked matmul beside its neighbours); anything else is itself."""
    from peft.tuners.lora import LoraLayer

    if not isinstance(module, LoraLayer) or wrapped(module) or module.merged == module.disable_adapters:
        return module
    return module.get_base_layer()


class LoraParts(NamedTuple):
    """A peft LoRA layer's tensors: the frozen base as (in, out) and its bias, the adapter, its scale."""

    weight_in_out: torch.Tensor  # (I, O): a view for an nn.Linear base (O, I), the weight itself for Conv1D
    bias: torch.Tensor | None  # (O,)
    lora_a: torch.Tensor  # (r, I)
    lora_b: torch.Tensor  # (O, r)
    scale: float


def lora_parts(module: nn.Module) -> LoraParts | None:
    """The parts of a peft LoRA wrapper that computes plain LoRA (unmerged, adapters enabled, one active
    adapter, no DoRA or other variant, no LoRA bias, dropout inactive) over a plain frozen ``nn.Linear``
    or transformers ``Conv1D`` (no forward set on the instance, no hooks), else None."""
    from transformers.pytorch_utils import Conv1D

    base = getattr(module, "base_layer", None)
    if base is None or getattr(module, "merged", True) or getattr(module, "disable_adapters", True):
        return None
    active = list(getattr(module, "active_adapters", []))
    if len(active) != 1 or active[0] not in module.lora_A or active[0] in getattr(module, "lora_variant", {}):
        return None
    name = active[0]
    lora_a, lora_b, dropout = module.lora_A[name], module.lora_B[name], module.lora_dropout[name]
    if lora_a.bias is not None or lora_b.bias is not None or getattr(module, "use_dora", {}).get(name, False):
        return None
    if not (isinstance(dropout, nn.Identity) or (isinstance(dropout, nn.Dropout) and not dropout.training)):
        return None
    if wrapped(base) or base.weight.requires_grad:
        return None
    if type(base) is Conv1D:
        weight = base.weight  # (I, O)
    elif type(base) is nn.Linear:
        weight = base.weight.t()  # (O, I) -> (I, O), a view
    else:
        return None
    if base.bias is not None and base.bias.requires_grad:
        return None
    return LoraParts(weight, base.bias, lora_a.weight, lora_b.weight, float(module.scaling[name]))


class _LoraMatmul(torch.autograd.Function):
    """y = x M + b with M = W + s A^T B^T; gradients for x, A and B (W and b are frozen)."""

    @staticmethod
    def forward(
        ctx, x2d, weight_in_out, bias, lora_a, lora_b, scale
    ):  # (N, I), (I, O), (O,)|None, (r, I), (O, r)
        merged = torch.addmm(weight_in_out, lora_a.t(), lora_b.t(), alpha=scale)  # (I, O)
        ctx.scale = scale
        ctx.save_for_backward(x2d, merged, lora_a, lora_b)
        return x2d @ merged if bias is None else torch.addmm(bias, x2d, merged)  # (N, O)

    @staticmethod
    def backward(ctx, grad_out):  # (N, O)
        x2d, merged, lora_a, lora_b = ctx.saved_tensors
        grad_x = grad_out @ merged.t() if ctx.needs_input_grad[0] else None  # (N, I)
        grad_a = grad_b = None
        if ctx.needs_input_grad[3]:  # dA = s (dy B)^T x
            grad_a = (grad_out @ lora_b).t() @ x2d  # (r, I)
            grad_a.mul_(ctx.scale)
        if ctx.needs_input_grad[4]:  # dB = s dy^T (x A^T)
            grad_b = grad_out.t() @ (x2d @ lora_a.t())  # (O, r)
            grad_b.mul_(ctx.scale)
        return grad_x, None, None, grad_a, grad_b, None


def lora_matmul(x: torch.Tensor, parts: LoraParts) -> torch.Tensor:
    """A LoRA layer's output on ``x`` (..., I) -> (..., O): ``x W + b + s (x A^T) B^T``, as one matmul.

    Naive equivalent: ``x @ W + b + scale * (x @ lora_a.T) @ lora_b.T`` (peft's forward).
    """
    x2d = x.reshape(-1, x.shape[-1])  # (N, I)
    out = _LoraMatmul.apply(x2d, parts.weight_in_out, parts.bias, parts.lora_a, parts.lora_b, parts.scale)
    return out.view(*x.shape[:-1], out.shape[-1])
