"""Speed-ups of the model layer, kept out of the algorithm: each computes the same function faster.

- :func:`merged_lora`: sampling with the LoRA deltas folded into the base weights, restored bit for bit;
- :func:`fuse_activations`: GPT-2's Python ``gelu_new`` swapped for the same formula in its sigmoid form
  (:class:`TanhGelu`, with its own backward);
- :func:`frozen_matmuls_in_bf16`: the frozen base's matmuls in bf16 where bf16 is fast
  (:func:`bf16_matmul_is_fast`), LoRA, value head, softmax and losses staying fp32.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


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


# tanh-GELU, 0.5 x (1 + tanh(k (x + a x^3))) with k = sqrt(2 / pi), is x sigmoid(2 k (x + a x^3)):
# 0.5 (1 + tanh(z)) = sigmoid(2 z) exactly, so this is the same formula, not another approximation.
GELU_CUBIC = 0.044715
GELU_SIGMOID_SCALE = 2.0 * math.sqrt(2.0 / math.pi)


def tanh_gelu(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's ``gelu_new`` (tanh-GELU) on the CPU as x sigmoid(2k (x + a x^3)), without autograd's
    graph of it (sampling and scoring run under no_grad), in one new tensor (the RM scores 64 x 39
    positions x 512 at once: each temporary is 5 MB of the step's peak memory). No tanh: on Zen 3 (one
    thread) 1.7-2x faster than ``F.gelu(approximate="tanh")``, whose tanh is the slow part; equal to it
    within 1e-6 in float32. Elsewhere (a GPU) ``F.gelu``'s one fused kernel is the faster.

    Naive equivalent: ``F.gelu(x, approximate="tanh")``.
    """
    if x.device.type != "cpu":
        return F.gelu(x, approximate="tanh")
    return _gate(x).mul_(x)


def _gate(x: torch.Tensor) -> torch.Tensor:
    """sigmoid(2k (x + a x^3)) (tanh-GELU(x) / x) in one new tensor: x (2k + 2k a x^2), three passes."""
    gate = torch.addcmul(_scale_like(x), x, x, value=GELU_SIGMOID_SCALE * GELU_CUBIC)  # 2k + 2k a x^2
    return gate.mul_(x).sigmoid_()


def _scale_like(x: torch.Tensor) -> torch.Tensor:
    """2k as a 0-d tensor of x's dtype and device (addcmul's broadcast input)."""
    return x.new_full((), GELU_SIGMOID_SCALE)


class _TanhGeluFunction(torch.autograd.Function):
    """:func:`tanh_gelu` whose forward also takes its derivative, while x, x^2 and the gate are at hand:
    d/dx [x s(u)] = s + x s (1 - s) u', u' = 2 sqrt(2/pi) (1 + 3 a x^2); the backward is one product.
    Autograd's own backward of the four ops, or tanh-GELU's kernel, took 1.5-1.8x longer on the
    update's (16, 38, 576) activations (Zen 3, one thread), and each saved more tensors."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        # Three new tensors (the gate, then the derivative over it; the output; d), the rest in place,
        # eight passes in all: each tensor is 1.4 MB per update chunk and layer on the world's policy.
        gate = _gate(x)  # s
        y = x * gate
        d = torch.addcmul(_scale_like(x), x, x, value=3.0 * GELU_SIGMOID_SCALE * GELU_CUBIC)  # u'
        d.mul_(y)  # x s u'
        # s + x s (1 - s) u' = s - s d + d, with d = x s u', written over the gate
        ctx.save_for_backward(gate.addcmul_(gate, d, value=-1.0).add_(d))
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (derivative,) = ctx.saved_tensors
        return grad * derivative


class TanhGelu(nn.Module):
    """GPT-2's ``gelu_new`` as :func:`tanh_gelu`, with :class:`_TanhGeluFunction`'s backward when a
    gradient is needed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad and x.device.type == "cpu":
            return _TanhGeluFunction.apply(x)
        return tanh_gelu(x)


def fuse_activations(model: nn.Module) -> int:
    """Swap GPT-2's Python ``gelu_new`` (seven element-wise ops, each with its own backward) and
    transformers' one-kernel ``GELUTanh`` for :class:`TanhGelu`, the same formula. Returns how many
    were swapped."""
    from transformers.activations import GELUTanh, NewGELUActivation

    swapped = 0
    for module in list(model.modules()):
        for name, child in module.named_children():
            if type(child) in (NewGELUActivation, GELUTanh):
                setattr(module, name, TanhGelu())
                swapped += 1
    return swapped


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


def cpu_kind(cpuinfo: str | None = None) -> str:
    """The CPU's kind as far as this engine's speed and numerics go, from the /proc/cpuinfo flags
    (``cpuinfo`` = that file's text; read when None): ``"amx"`` or ``"avx512_bf16"`` (native bf16 dot
    products: the PPO base runs in bf16, see :func:`bf16_matmul_is_fast`), ``"avx512 (no bf16)"``,
    ``"avx2 only"``, ``"no avx2"``; ``"unknown"`` where there is no /proc/cpuinfo (not Linux)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return "unknown"
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    if "avx512f" in flags:
        return "avx512 (no bf16)"
    if "avx2" in flags:
        return "avx2 only"
    return "no avx2"


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
