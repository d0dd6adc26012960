"""The lean Llama decoder's layers as plain callables: a linear layer (or several that read the same
input, side by side) as one matmul on its weight prepacked for oneDNN, RMSNorm op for op, a LoRA layer
merged into its base weight (or with its adapters off) as that base layer, the LM head with its hooks;
anything wrapped (an active LoRA, the bf16 path, hooks) as the module itself."""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.decoders.gpt2 import _lean as _lean_gpt2
from engine.models.lora_matmul import as_computed, wrapped


def lean_layer(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """A plain ``nn.Linear`` or ``LlamaRMSNorm`` as its own ops (bit for bit), a plain embedding as
    the GPT-2 decoder runs it; anything else (LoRA, the bf16 path, hooks) as the module."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    module = as_computed(module)
    if wrapped(module):
        return module
    kind = type(module)
    if kind is nn.Linear:
        return lean_side_by_side(module)
    if kind is LlamaRMSNorm:
        weight, eps = module.weight, module.variance_epsilon

        def rms_norm(x: torch.Tensor) -> torch.Tensor:  # LlamaRMSNorm.forward, op for op
            h = x.to(torch.float32)
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
            return weight * h.to(x.dtype)

        return rms_norm
    return _lean_gpt2(module)


def lean_side_by_side(
    *linears: nn.Module, groups: tuple[int, ...] | None = None
) -> Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, ...]]:
    """Linear layers that read the same input (q, k, v; gate, up) as one matmul on their weights side
    by side, prepacked for oneDNN (:func:`packed_linear`), its output columns split back by ``groups``
    (layers per output, default one each; (2, 1): q and k side by side, then v): one call instead of
    three. Where that does not apply (LoRA, the bf16 path, hooks; no oneDNN, a GPU) they run one by
    one, each as :func:`lean_layer` runs it, a group's outputs concatenated. One layer: its output itself."""
    linears = tuple(map(as_computed, linears))
    groups = groups or (1,) * len(linears)
    weights, biases = [m.weight for m in linears], [m.bias for m in linears]
    plain = all(type(m) is nn.Linear and not wrapped(m) for m in linears)
    matmul = packed_linear(linears[0], weights, biases) if plain else None
    if matmul is not None and len(linears) == 1:
        return matmul
    if matmul is not None:
        widths = [sum(w.shape[0] for w in part) for part in _parts(weights, groups)]
        return lambda x: matmul(x).split(widths, dim=-1)
    lean = [
        (lambda x, w=m.weight, b=m.bias: F.linear(x, w, b))
        if type(m) is nn.Linear and not wrapped(m)
        else lean_layer(m)
        for m in linears
    ]
    if len(lean) == 1:
        return lean[0]

    def one_by_one(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(
            torch.cat([f(x) for f in part], dim=-1) if len(part) > 1 else part[0](x)
            for part in _parts(lean, groups)
        )

    return one_by_one


def _parts(items: list, groups: tuple[int, ...]) -> list[list]:
    """``items`` cut into consecutive parts of ``groups`` sizes."""
    bounds = list(itertools.accumulate(groups, initial=0))
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


def lean_head(head: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The LM head (a fifth of SmolLM2's decode: 576 x 49152) on its prepacked weight, its forward
    hooks (the filler-token mask, :func:`engine.models.loading.suppress_filler_tokens`) run on its
    output as a module call runs them; any other head, or hooks of other kinds, as the module."""
    from torch.nn.modules import module as torch_module

    if (
        type(head) is not nn.Linear
        or "forward" in vars(head)
        or head._forward_pre_hooks
        or head._forward_hooks_with_kwargs
        or head._forward_hooks_always_called
        or torch_module._global_forward_hooks
        or torch_module._global_forward_pre_hooks
    ):
        return head
    matmul = packed_linear(head, [head.weight], [head.bias])
    if matmul is None:
        return head
    hooks = list(head._forward_hooks.values())

    def run(x: torch.Tensor) -> torch.Tensor:
        out = matmul(x)  # (B, V)
        for hook in hooks:
            result = hook(head, (x,), out)
            out = out if result is None else result
        return out

    return run


# Linear layers' weights (side by side) in oneDNN's blocked layout, by their first module: (each
# weight's identity and version counter when packed, the packed copy, the bias). Kept while the module
# lives, so a model pays the packing once, not per generate call.
_PACKED: weakref.WeakKeyDictionary[nn.Module, tuple[list, torch.Tensor, torch.Tensor | None]] = (
    weakref.WeakKeyDictionary()
)
PACK_ROWS = 16  # oneDNN's layout hint: the decode steps' row count (the lab's and PPO's batches)


def packed_linear(
    first: nn.Module, weights: list[torch.Tensor], biases: list[torch.Tensor | None]
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """x -> x @ cat(weights).T + cat(biases), on the weights prepacked for oneDNN's matmul, or None
    where that does not apply (not CPU float32, no oneDNN, biases on some layers only).

    Why: at the decode's row counts (1-64 token rows) MKL's sgemm on an AVX2-only AMD core runs at
    ~27 GFLOP/s (16 x 576 x 49152), oneDNN's kernels on a prepacked weight at ~30-45. The same sums
    in another order: outputs agree within float32 rounding (~1e-6 relative), not bit for bit. The
    packed copy is remade when a weight changes in place (its version counter: a merged LoRA).
    """
    if (
        any(w.device.type != "cpu" or w.dtype != torch.float32 for w in weights)
        or not torch.backends.mkldnn.is_available()
        or len({b is None for b in biases}) > 1
    ):
        return None
    stamp = [(id(w), w._version) for w in weights]
    cached = _PACKED.get(first)
    if cached is None or cached[0] != stamp:
        with torch.no_grad():
            weight = torch.cat([w.detach() for w in weights]) if len(weights) > 1 else weights[0].detach()
            bias = None if biases[0] is None else torch.cat([b.detach() for b in biases])
            cached = (stamp, torch.ops.mkldnn._reorder_linear_weight(weight, PACK_ROWS), bias)
        _PACKED[first] = cached
    _, packed, bias = cached
    return lambda x: torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
