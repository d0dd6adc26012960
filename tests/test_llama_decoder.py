"""The lean Llama decoder: the full forward's logits and hidden states, the forward decoder's tokens,
and a refusal for every variant it does not implement."""

from __future__ import annotations

import pytest
import torch

from engine.config import SamplingConfig
from engine.models import attach_lora, frozen_matmuls_in_bf16
from engine.models.decoders import (
    LEAN_DECODERS,
    ForwardDecoder,
    LlamaDecoder,
    decoder_for,
    llama,
    llama_layers,
)
from engine.sampling import generate
from tests.ppo_fixtures import one_thread  # noqa: F401 (autouse: one torch thread)
from tests.tiny_models import make_tokenizer

VOCAB = len(make_tokenizer())
# Left-padded prompts of 6, 1 and 3 tokens (pad id 0).
IDS = torch.tensor([[5, 6, 7, 8, 9, 10], [0, 0, 0, 0, 0, 11], [0, 0, 0, 12, 13, 14]])


def tiny_llama(*, tied: bool = True, seed: int = 0, **overrides):
    """A tiny Llama with grouped-query attention (6 query heads over 2 key/value heads), SmolLM2's
    shape in small: tied embeddings, SiLU, RoPE with a non-default theta."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    fields = dict(
        vocab_size=VOCAB,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=6,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=100000.0,
        tie_word_embeddings=tied,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return LlamaForCausalLM(LlamaConfig(**(fields | overrides))).eval()


def lora_on_bf16(tied: bool = True):
    """PPO's rollout model in small: a LoRA adapter moved off zero over the bf16 base."""
    model = attach_lora(tiny_llama(tied=tied), r=4, alpha=8).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    assert frozen_matmuls_in_bf16(model, "bf16") > 0
    return model


def _generate(model, config: SamplingConfig, seed: int = 3):
    return generate(model, IDS, IDS != 0, config, eos_token_id=None, pad_token_id=0,
                    generator=torch.Generator().manual_seed(seed), keep_hidden=True)  # fmt: skip


def _full_forward_matches(model, gen):
    """Assert that a generation's logits and last hidden states are one full forward's over its
    sequences (within float32 rounding); return that forward's output."""
    attention = gen.attention_mask.long()
    with torch.no_grad():
        full = model(input_ids=gen.sequences, attention_mask=attention,
                     position_ids=(attention.cumsum(-1) - 1).clamp(min=0), output_hidden_states=True)  # fmt: skip
    P, T = gen.prompt_ids.shape[1], gen.response_ids.shape[1]
    torch.testing.assert_close(gen.logits, full.logits[:, P - 1 : P + T - 1].float(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gen.hidden, full.hidden_states[-1][:, P - 1 : P + T - 1], atol=1e-5, rtol=1e-5)
    return full


MODELS = {
    "tied": lambda: tiny_llama(tied=True),
    "untied": lambda: tiny_llama(tied=False),
    "lora": lambda: attach_lora(tiny_llama(), r=4, alpha=8).eval(),
    "lora-bf16": lora_on_bf16,
}


@pytest.mark.parametrize("name", MODELS)
def test_lean_llama_logits_and_hidden_equal_a_full_forward(name, monkeypatch):
    """Over left-padded prompts and 40 steps (past the prompt's width many times), the lean decoder's
    logits and last hidden states are the full forward's within float32 rounding: only the attention
    arithmetic differs (two bmm against transformers' SDPA kernel), ~1e-6 here. Over the bf16 base such
    a difference can flip the rounding of a matmul input to bf16 (one unit: 2^-8 of it), which moves a
    logit by up to ~1e-3 (measured 2^-10), hence 2e-3 there."""
    steps = []
    real_step = LlamaDecoder.step
    monkeypatch.setattr(LlamaDecoder, "step", lambda self, *a: steps.append(1) or real_step(self, *a))
    model = MODELS[name]()
    gen = _generate(model, SamplingConfig(temperature=1.3, max_new_tokens=40, stop_at_eos=False))
    assert len(steps) == 39
    attention = gen.attention_mask.long()
    with torch.no_grad():
        full = model(input_ids=gen.sequences, attention_mask=attention,
                     position_ids=(attention.cumsum(-1) - 1).clamp(min=0), output_hidden_states=True)  # fmt: skip
    P, T = IDS.shape[1], gen.response_ids.shape[1]
    atol, rtol = (2e-3, 1e-3) if name == "lora-bf16" else (1e-5, 1e-5)
    torch.testing.assert_close(gen.logits, full.logits[:, P - 1 : P + T - 1].float(), atol=atol, rtol=rtol)
    torch.testing.assert_close(gen.hidden, full.hidden_states[-1][:, P - 1 : P + T - 1], atol=atol, rtol=rtol)


@pytest.mark.parametrize("name", ["tied", "untied", "lora-bf16"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_lean_llama_draws_the_forward_decoders_tokens(name, temperature, monkeypatch):
    """Greedy and sampled, with the same generator, the lean decoder draws the tokens the model's own
    forward draws, over 48 steps."""
    model = MODELS[name]()
    config = SamplingConfig(temperature=temperature, max_new_tokens=48, stop_at_eos=False)
    lean = _generate(model, config)
    monkeypatch.setattr("engine.models.decoders.LEAN_DECODERS", ())
    assert isinstance(decoder_for(model, IDS != 0, 4, keep_hidden=False), ForwardDecoder)
    forward = _generate(model, config)
    assert torch.equal(lean.response_ids, forward.response_ids)
    atol = 2e-3 if name == "lora-bf16" else 1e-5  # bf16 rounding flips: see the test above
    torch.testing.assert_close(lean.logits, forward.logits, atol=atol, rtol=1e-3)


def _hooked(model):
    model.model.layers[1].register_forward_hook(lambda *_: None)
    return model


@pytest.mark.parametrize(
    "variant",
    [
        lambda: tiny_llama(rope_scaling={"rope_type": "linear", "factor": 2.0}),
        lambda: tiny_llama(rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
        lambda: tiny_llama(attention_bias=True),
        lambda: tiny_llama(mlp_bias=True),
        lambda: tiny_llama(hidden_act="gelu"),
        lambda: tiny_llama().train(),
        lambda: _hooked(tiny_llama()),
    ],
    ids=["linear-rope", "llama3-rope", "attention-bias", "mlp-bias", "gelu", "training", "hooked-layer"],
)  # fmt: skip
def test_lean_llama_refuses_what_it_does_not_implement(variant):
    """A variant it does not compute exactly decodes through the model's own forward."""
    mask = IDS != 0
    assert isinstance(decoder_for(tiny_llama(), mask, 4, keep_hidden=False), LlamaDecoder)
    assert LlamaDecoder in LEAN_DECODERS
    model = variant()
    assert LlamaDecoder.over(model, mask, 4) is None
    assert isinstance(decoder_for(model, mask, 4, keep_hidden=False), ForwardDecoder)


def test_lean_llama_runs_plain_layers_functionally_and_wrapped_layers_as_modules():
    """A plain RMSNorm runs as its own ops, bit for bit; a plain Linear as one matmul on its prepacked
    weight (oneDNN: float32 rounding apart); the bf16 path's patched Linear and a LoRA layer stay the
    module."""
    layer = tiny_llama().model.layers[0]
    x = torch.randn(3, 2, 48, generator=torch.Generator().manual_seed(0))
    lean = llama_layers.lean_layer(layer.input_layernorm)
    assert lean is not layer.input_layernorm and torch.equal(lean(x), layer.input_layernorm(x))
    for module in (layer.self_attn.q_proj, layer.mlp.gate_proj):
        lean = llama_layers.lean_layer(module)
        assert lean is not module
        torch.testing.assert_close(lean(x), module(x), atol=1e-6, rtol=1e-5)

    bf16 = tiny_llama().requires_grad_(False)
    assert frozen_matmuls_in_bf16(bf16, "bf16") > 0
    q_proj = bf16.model.layers[0].self_attn.q_proj
    assert llama_layers.lean_layer(q_proj) is q_proj
    wrapped = attach_lora(tiny_llama(), r=4, alpha=8).get_base_model().model.layers[0].self_attn.q_proj
    assert llama_layers.lean_layer(wrapped) is wrapped


def test_lean_llama_runs_a_repeated_prompt_once_with_the_same_outputs(monkeypatch):
    """n samples of each prompt (rows repeating a prompt) share one prompt pass: the layers see each
    distinct prompt once, and every row's logits and hidden states are still the full forward's."""
    model = tiny_llama()
    ids = IDS[[0, 1, 0, 2, 1, 0]]  # (6, P): three distinct prompts, repeated
    rows_seen = []
    real_forward = LlamaDecoder._forward
    monkeypatch.setattr(
        LlamaDecoder,
        "_forward",
        lambda self, h, *a: rows_seen.append(h.shape[0]) or real_forward(self, h, *a),
    )
    config = SamplingConfig(temperature=1.0, max_new_tokens=5, stop_at_eos=False)
    gen = generate(model, ids, ids != 0, config, eos_token_id=None, pad_token_id=0,
                   generator=torch.Generator().manual_seed(3), keep_hidden=True)  # fmt: skip
    assert rows_seen == [3, 6, 6, 6, 6]  # the prompt pass over 3 rows, then steps over all 6
    _full_forward_matches(model, gen)


def test_side_by_side_linears_are_each_layers_output_and_follow_a_weight_changed_in_place():
    """q, k, v (and gate, up) run as one matmul split back into each layer's output; after an in-place
    change of a weight (a merged LoRA) the packed copy is remade, not reused."""
    attn = tiny_llama().model.layers[0].self_attn
    x = torch.randn(16, 1, 48, generator=torch.Generator().manual_seed(0))
    fused = llama_layers.lean_side_by_side(attn.q_proj, attn.k_proj, attn.v_proj)
    for out, module in zip(fused(x), (attn.q_proj, attn.k_proj, attn.v_proj), strict=True):
        torch.testing.assert_close(out, module(x), atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        attn.k_proj.weight.mul_(2.0)
    fused = llama_layers.lean_side_by_side(attn.q_proj, attn.k_proj, attn.v_proj)
    torch.testing.assert_close(fused(x)[1], attn.k_proj(x), atol=1e-6, rtol=1e-5)
    qk, v = llama_layers.lean_side_by_side(attn.q_proj, attn.k_proj, attn.v_proj, groups=(2, 1))(x)
    torch.testing.assert_close(qk, torch.cat([attn.q_proj(x), attn.k_proj(x)], -1), atol=1e-6, rtol=1e-5)
    lora = attach_lora(tiny_llama(), r=4, alpha=8).get_base_model().model.layers[0].self_attn
    qk, v = llama_layers.lean_side_by_side(lora.q_proj, lora.k_proj, lora.v_proj, groups=(2, 1))(
        x
    )  # one by one
    torch.testing.assert_close(qk, torch.cat([lora.q_proj(x), lora.k_proj(x)], -1))
    torch.testing.assert_close(v, lora.v_proj(x))


def test_the_lean_heads_forward_hooks_apply():
    """The head on its prepacked weight still runs the head's forward hooks (the filler-token mask)."""
    model = tiny_llama()
    model.lm_head.register_forward_hook(
        lambda _m, _i, out: out.index_fill(-1, torch.tensor([3, 4]), float("-inf"))
    )
    gen = _generate(model, SamplingConfig(temperature=1.0, max_new_tokens=6, stop_at_eos=False))
    assert torch.isinf(gen.logits[..., [3, 4]]).all() and torch.isfinite(gen.logits[..., 5:]).all()
    head = llama_layers.lean_head(model.lm_head)
    assert head is not model.lm_head
    h = torch.randn(4, 48)
    torch.testing.assert_close(head(h), model.lm_head(h), atol=1e-6, rtol=1e-5)


def test_without_onednn_the_layers_run_one_by_one_with_the_same_outputs(monkeypatch):
    """Where the weights cannot be prepacked (no oneDNN; a GPU) each linear layer runs on its own
    weight (no side-by-side copy), and the decoder still computes the full forward's logits."""
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    attn = tiny_llama().model.layers[0].self_attn
    x = torch.randn(4, 1, 48, generator=torch.Generator().manual_seed(0))
    qk, v = llama_layers.lean_side_by_side(attn.q_proj, attn.k_proj, attn.v_proj, groups=(2, 1))(x)
    assert torch.equal(qk, torch.cat([attn.q_proj(x), attn.k_proj(x)], -1)) and torch.equal(v, attn.v_proj(x))
    model = tiny_llama()
    gen = _generate(model, SamplingConfig(temperature=1.0, max_new_tokens=8, stop_at_eos=False))
    attention = gen.attention_mask.long()
    with torch.no_grad():
        full = model(input_ids=gen.sequences, attention_mask=attention,
                     position_ids=(attention.cumsum(-1) - 1).clamp(min=0))  # fmt: skip
    P, T = IDS.shape[1], gen.response_ids.shape[1]
    torch.testing.assert_close(gen.logits, full.logits[:, P - 1 : P + T - 1].float(), atol=1e-5, rtol=1e-5)


def test_a_prefill_cache_gives_the_uncached_outputs_and_follows_a_weight_changed_in_place(monkeypatch):
    """A second sampling of the same prompts (another temperature, as a lab notch) takes the prompt pass
    from the cache: the same tokens, logits, hidden states and kept layer output as without a cache. A
    weight changed in place (version counter) makes the cached pass stale: it is computed again."""
    passes = []
    real = LlamaDecoder._prefill_distinct
    monkeypatch.setattr(
        LlamaDecoder, "_prefill_distinct", lambda self, *a, **k: passes.append(1) or real(self, *a, **k)
    )
    model = tiny_llama()
    ids = IDS[[0, 1, 0, 2]]
    cache = llama.PrefillCache()

    def sample(temperature: float, prefill_cache=None):
        config = SamplingConfig(temperature=temperature, max_new_tokens=5, stop_at_eos=False)
        return generate(model, ids, ids != 0, config, eos_token_id=None, pad_token_id=0, keep_hidden=True,
                        generator=torch.Generator().manual_seed(3), keep_layers=2, prefill_cache=prefill_cache)  # fmt: skip

    sample(1.0, cache)
    for _ in range(2):  # the second time on a changed weight
        passes.clear()
        cached, uncached = sample(1.4, cache), sample(1.4)
        assert len(passes) == (1 if _ == 0 else 2)  # 0: taken from the cache; 1: stale, computed again
        assert torch.equal(cached.response_ids, uncached.response_ids)
        for name in ("logits", "hidden", "trunk_hidden"):
            assert torch.equal(getattr(cached, name), getattr(uncached, name)), name
        with torch.no_grad():
            model.model.layers[0].self_attn.k_proj.weight.mul_(1.5)


def test_a_merged_or_disabled_lora_layer_runs_as_its_base_layer():
    """PPO's rollout merges the LoRA deltas into the base weights: each LoRA layer then computes its base
    layer alone, and the decoder runs it as that plain layer (prepacked, beside q / k / v), with the
    merged model's logits; an active unmerged adapter stays the module."""
    from engine.models.precision import merged_lora

    model = MODELS["lora"]()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    q_proj = model.get_base_model().model.layers[0].self_attn.q_proj
    assert llama_layers.as_computed(q_proj) is q_proj
    config = SamplingConfig(temperature=1.0, max_new_tokens=6, stop_at_eos=False)
    unmerged = _generate(model, config)
    with merged_lora(model):
        assert llama_layers.as_computed(q_proj) is q_proj.get_base_layer()
        merged = _generate(model, config)
    with model.disable_adapter():
        assert llama_layers.as_computed(q_proj) is q_proj.get_base_layer()
    assert torch.equal(merged.response_ids, unmerged.response_ids)
    torch.testing.assert_close(merged.logits, unmerged.logits, atol=1e-5, rtol=1e-5)


def test_prompts_that_open_alike_run_their_opening_once_with_the_full_forwards_outputs(monkeypatch):
    """Prompts sharing their first tokens (a chat template's system turn), left-padded to one width:
    the opening runs on one row, then each row from the first column past it; the logits, last hidden
    states and the kept layer output at every real position are the full forward's."""
    ids = torch.tensor([[0, 0, 5, 6, 7, 8, 9], [5, 6, 7, 8, 10, 11, 12], [0, 5, 6, 7, 13, 14, 15]])[
        [0, 1, 0, 2]
    ]
    assert LlamaDecoder._shared_prefix(ids != 0, ids) == 3
    rows_seen = []
    real_forward = LlamaDecoder._forward
    monkeypatch.setattr(
        LlamaDecoder,
        "_forward",
        lambda self, h, *a, **k: rows_seen.append(tuple(h.shape[:2])) or real_forward(self, h, *a, **k),
    )
    model = tiny_llama()
    config = SamplingConfig(temperature=1.0, max_new_tokens=4, stop_at_eos=False)
    gen = generate(model, ids, ids != 0, config, eos_token_id=None, pad_token_id=0, keep_hidden=True,
                   generator=torch.Generator().manual_seed(3), keep_layers=2)  # fmt: skip
    assert rows_seen[:2] == [(1, 3), (4, 4)]  # the opening once; then columns 3.. of the 4 rows
    full = _full_forward_matches(model, gen)
    real = gen.attention_mask.bool()
    torch.testing.assert_close(gen.trunk_hidden[real], full.hidden_states[2][real], atol=1e-5, rtol=1e-5)
