"""The lean GPT-2 forward of the update and the RM (engine.models.decoders.gpt2.gpt2_hidden_states) and
its one-matmul LoRA layer (engine.models.lora_matmul): against naive float64 references and against
the module's own forward, values and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.models import backbone_and_head, fuse_activations, reference_mode
from engine.models.decoders import body_hidden_states
from engine.models.decoders.gpt2 import gpt2_hidden_states, is_lean_gpt2
from engine.models.lora_matmul import LoraParts, lora_matmul, lora_parts
from engine.ops import position_ids_of
from tests.ppo_fixtures import lora_policy, one_thread  # noqa: F401 (fixture)


@pytest.mark.parametrize("shape", [(5, 8), (2, 3, 8), (1, 8)])
@pytest.mark.parametrize("layout", ["conv1d", "linear"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_lora_matmul_matches_the_naive_lora_forward_and_its_gradients(shape, layout, with_bias):
    g = torch.Generator().manual_seed(0)
    n_in, n_out, r, scale = shape[-1], 6, 3, 2.5
    x = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
    w_io = torch.randn(n_in, n_out, generator=g, dtype=torch.float64)
    weight = w_io if layout == "conv1d" else w_io.t().contiguous().t()  # (I, O) or a view of (O, I)
    bias = torch.randn(n_out, generator=g, dtype=torch.float64) if with_bias else None
    a = torch.randn(r, n_in, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(n_out, r, generator=g, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(*shape[:-1], n_out, generator=g, dtype=torch.float64)

    out = lora_matmul(x, LoraParts(weight, bias, a, b, scale))
    grads = torch.autograd.grad(out, (x, a, b), grad_out)
    naive = x @ w_io + (0 if bias is None else bias) + scale * (x @ a.T) @ b.T  # peft's forward
    naive_grads = torch.autograd.grad(naive, (x, a, b), grad_out)
    torch.testing.assert_close(out, naive)
    for got, want in zip(grads, naive_grads, strict=True):
        torch.testing.assert_close(got, want)


def test_lora_matmul_takes_no_input_gradient_where_none_is_needed():
    x = torch.randn(4, 8)  # the first layer's input: no gradient flows into the embeddings
    a, b = torch.randn(2, 8, requires_grad=True), torch.randn(5, 2, requires_grad=True)
    out = lora_matmul(x, LoraParts(torch.randn(8, 5), None, a, b, 1.0))
    out.sum().backward()
    assert a.grad is not None and b.grad is not None and x.grad is None


def test_lora_parts_only_for_plain_unmerged_enabled_lora():
    from engine.models import frozen_matmuls_in_bf16, merged_lora

    model, _ = lora_policy()
    body, _ = backbone_and_head(model)
    layer = body.h[0].attn.c_attn
    parts = lora_parts(layer)
    assert parts is not None and parts.scale == 2.0  # alpha 8 / r 4
    assert parts.weight_in_out is layer.base_layer.weight  # Conv1D's (in, out), no copy
    assert lora_parts(body.h[0].mlp.c_fc) is None  # not a LoRA layer
    with merged_lora(model):
        assert lora_parts(layer) is None  # merged: the base layer is the whole function
    with reference_mode(model):
        assert lora_parts(layer) is None  # adapters disabled
    model.train()
    layer.lora_dropout["default"] = nn.Dropout(0.1).train()
    assert lora_parts(layer) is None  # active dropout: another function
    model.eval()
    frozen_matmuls_in_bf16(model, "bf16")
    assert lora_parts(body.h[1].attn.c_attn) is None  # the base's own bf16 forward must run


def _sequences(vocab: int):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(4, vocab, (3, 9), generator=g)
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, :3] = False  # left padding
    mask[2, 7:] = False  # a response that ended early
    ids[~mask] = 0
    return ids, mask


@pytest.mark.parametrize("fused_gelu", [False, True])
def test_lean_gpt2_forward_equals_the_modules_forward_and_gradients(fused_gelu):
    model, tok = lora_policy()
    model.double()
    if fused_gelu:
        fuse_activations(model)
    body, _ = backbone_and_head(model)
    assert is_lean_gpt2(body)
    ids, mask = _sequences(len(tok))
    positions = position_ids_of(mask)
    lora = [p for name, p in model.named_parameters() if "lora_" in name]
    weight = torch.randn(3, 9, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    lean = gpt2_hidden_states(body, ids, mask, positions)  # (B, L, E)
    lean_grads = torch.autograd.grad((lean * weight)[mask].sum(), lora)
    full = body(input_ids=ids, attention_mask=mask.long(), position_ids=positions).last_hidden_state
    full_grads = torch.autograd.grad((full * weight)[mask].sum(), lora)
    torch.testing.assert_close(lean[mask], full[mask])  # real positions: padding's states are unused
    for got, want in zip(lean_grads, full_grads, strict=True):
        torch.testing.assert_close(got, want)


def test_lean_gpt2_forward_is_the_reference_with_adapters_disabled():
    model, tok = lora_policy()
    body, _ = backbone_and_head(model)
    ids, mask = _sequences(len(tok))
    positions = position_ids_of(mask)
    with torch.no_grad(), reference_mode(model):
        lean = body_hidden_states(body, ids, mask, positions)
        full = body(input_ids=ids, attention_mask=mask.long(), position_ids=positions).last_hidden_state
    with torch.no_grad():
        adapted = body_hidden_states(body, ids, mask, positions)
    torch.testing.assert_close(lean[mask], full[mask], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(adapted[mask], lean[mask], atol=1e-3)  # the adapter really was off


def test_a_hooked_or_training_body_runs_its_own_forward():
    model, _ = lora_policy()
    body, _ = backbone_and_head(model)
    assert is_lean_gpt2(body)
    handle = body.h[1].register_forward_hook(lambda *_: None)
    assert not is_lean_gpt2(body)  # a hook expects its module to be called
    handle.remove()
    model.train()
    assert not is_lean_gpt2(body)  # dropout on


def test_the_pooled_rm_scores_the_same_through_the_lean_forward(monkeypatch):
    import engine.models.decoders as decoders
    from engine.reward import PooledRewardModel
    from tests.tiny_models import make_gpt2

    rm = PooledRewardModel(make_gpt2(40, seed=5).transformer, 32).eval()
    fuse_activations(rm)
    ids, mask = _sequences(40)
    calls = []
    monkeypatch.setattr(decoders, "gpt2_hidden_states", lambda *a: calls.append(1) or gpt2_hidden_states(*a))
    with torch.no_grad():
        lean = rm(ids, mask)
        assert calls == [1]  # the world's RM scores through the lean forward
        handle = rm.body.register_forward_hook(lambda *_: None)  # the body's own forward from here
        full = rm(ids, mask)
    handle.remove()
    torch.testing.assert_close(lean, full, atol=1e-5, rtol=1e-5)
