"""The sampling-space signals against naive per-position references, masking, generation and seeds."""

from __future__ import annotations

import math

import pytest
import torch

from engine.config import SamplingConfig
from engine.models import load_causal_lm
from engine.sampling import (
    encode_prompts,
    generate,
    generate_text,
    sampling_logits,
    token_signals,
)

SETTINGS = [
    SamplingConfig(temperature=t, top_k=k, top_p=p)
    for t in (0.5, 1.0, 1.5)
    for k in (0, 1, 5)
    for p in (0.1, 0.9, 1.0)
] + [SamplingConfig(temperature=0.0), SamplingConfig(temperature=0.0, top_k=5, top_p=0.5)]
SHAPES = [(1, 1, 7), (2, 5, 11), (3, 4, 50)]


def _naive_support(row: list[float], cfg: SamplingConfig) -> dict[int, float]:
    """Token -> probability under the sampling distribution, one position, in plain Python."""
    if cfg.temperature == 0:
        best = max(range(len(row)), key=lambda i: row[i])
        return {best: 1.0}
    scaled = [z / cfg.temperature for z in row]
    kept = list(range(len(row)))
    if 0 < cfg.top_k < len(row):
        kth = sorted(scaled, reverse=True)[cfg.top_k - 1]
        kept = [i for i in kept if scaled[i] >= kth]
    total = sum(math.exp(scaled[i]) for i in kept)
    probs = {i: math.exp(scaled[i]) / total for i in kept}
    if cfg.top_p < 1:
        chosen, mass = [], 0.0
        for i in sorted(kept, key=lambda i: -probs[i]):
            if mass >= cfg.top_p:
                break
            chosen.append(i)
            mass += probs[i]
        total = sum(probs[i] for i in chosen)
        probs = {i: probs[i] / total for i in chosen}
    return probs


def _naive_signals(row: list[float], token: int, cfg: SamplingConfig) -> dict[str, float]:
    total = sum(math.exp(z) for z in row)
    p = [math.exp(z) / total for z in row]
    q = _naive_support(row, cfg)
    t = cfg.temperature if cfg.temperature > 0 else 1.0
    scaled_total = sum(math.exp(z / t) for z in row)
    return {
        "entropy": -sum(pi * math.log(pi) for pi in p),
        "sampling_entropy": -sum(qi * math.log(qi) for qi in q.values() if qi > 0),
        "max_prob": max(p),
        "sampled_prob": p[token],
        "sampled_prob_q": q.get(token, 0.0),
        "n_candidates": float(len(q)),
        "logprob": row[token] / t - math.log(scaled_total),
    }


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("cfg", SETTINGS, ids=lambda c: f"T{c.temperature}-k{c.top_k}-p{c.top_p}")
def test_token_signals_match_naive_reference(shape, cfg):
    batch, steps, vocab = shape
    gen = torch.Generator().manual_seed(hash(shape) % 1000)
    logits = torch.randn(shape, generator=gen, dtype=torch.float64) * 2.5
    tokens = torch.randint(0, vocab, (batch, steps), generator=gen)
    mask = torch.ones(batch, steps, dtype=torch.bool)
    signals = token_signals(logits, tokens, mask, cfg).as_dict()
    for b in range(batch):
        for t in range(steps):
            expected = _naive_signals(logits[b, t].tolist(), int(tokens[b, t]), cfg)
            for name, value in expected.items():
                got = float(signals[name][b, t])
                assert got == pytest.approx(value, rel=1e-4, abs=1e-5), (name, b, t)


@pytest.mark.parametrize("cfg", SETTINGS, ids=lambda c: f"T{c.temperature}-k{c.top_k}-p{c.top_p}")
def test_sampling_logits_support_matches_naive(cfg):
    logits = torch.randn(4, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    q = torch.softmax(sampling_logits(logits, cfg), dim=-1)
    for b in range(4):
        expected = _naive_support(logits[b].tolist(), cfg)
        assert set(torch.nonzero(q[b]).flatten().tolist()) == set(expected)
        for i, prob in expected.items():
            assert float(q[b, i]) == pytest.approx(prob, rel=1e-6)


def test_top_k_keeps_ties_with_kth_logit():
    logits = torch.tensor([[3.0, 1.0, 1.0, 0.0]])
    zq = sampling_logits(logits, SamplingConfig(top_k=2))
    assert torch.isfinite(zq).tolist() == [[True, True, True, False]]


def test_greedy_signals():
    """T = 0: the support is the argmax, q is a point mass and the PPO log-prob uses T = 1."""
    logits = torch.randn(2, 3, 9, generator=torch.Generator().manual_seed(2))
    tokens = logits.argmax(-1)
    mask = torch.ones(2, 3, dtype=torch.bool)
    s = token_signals(logits, tokens, mask, SamplingConfig(temperature=0))
    assert torch.equal(s.n_candidates, torch.ones(2, 3, dtype=s.n_candidates.dtype))
    assert torch.allclose(s.sampling_entropy, torch.zeros(2, 3))
    assert torch.allclose(s.sampled_prob_q, torch.ones(2, 3))
    assert torch.allclose(s.sampled_prob, s.max_prob)
    assert torch.allclose(s.logprob, torch.log_softmax(logits, -1).gather(-1, tokens[..., None])[..., 0])


def test_padding_never_enters_a_statistic():
    logits = torch.randn(2, 4, 10, generator=torch.Generator().manual_seed(3))
    tokens = torch.zeros(2, 4, dtype=torch.long)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    s = token_signals(logits, tokens, mask, SamplingConfig(top_p=0.8))
    for name, value in s.as_dict().items():
        assert float(value[~mask].abs().sum()) == 0, name
    # Changing the padded logits changes nothing.
    noisy = logits.clone()
    noisy[0, 2:] = 100 * torch.randn(2, 10)
    s2 = token_signals(noisy, tokens, mask, SamplingConfig(top_p=0.8))
    assert s.summary(mask) == pytest.approx(s2.summary(mask))
    naive = {
        n: sum(float(v[b, t]) for b in range(2) for t in range(4) if mask[b, t]) / 6
        for n, v in s.as_dict().items()
    }
    assert s.summary(mask) == pytest.approx(naive)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def tiny_lm(request, tiny_gpt2_dir, tiny_llama_dir):
    path = tiny_gpt2_dir if request.param == "gpt2" else tiny_llama_dir
    return load_causal_lm(str(path), device="cpu")


def test_left_padded_generation_logits_equal_full_forward(tiny_lm):
    """The KV-cached, left-padded loop sees exactly what one forward pass over the sequence sees."""
    ids, mask = encode_prompts(tiny_lm.tokenizer, ["w1 w2 w3 w4 w5", "w7", "w3 w9"], torch.device("cpu"))
    cfg = SamplingConfig(temperature=1.3, top_k=8, max_new_tokens=6, stop_at_eos=False)
    gen = generate(
        tiny_lm.model,
        ids,
        mask,
        cfg,
        eos_token_id=None,
        pad_token_id=0,
        generator=torch.Generator().manual_seed(0),
    )
    for b in range(ids.shape[0]):
        real = gen.sequences[b][gen.attention_mask[b]]  # the unpadded sequence alone
        full = tiny_lm.model(input_ids=real[None]).logits[0]
        prompt_len = int(mask[b].sum())
        expected = full[prompt_len - 1 : prompt_len - 1 + cfg.max_new_tokens]
        assert torch.allclose(gen.logits[b], expected, atol=1e-4), b


def test_same_seed_same_samples_and_resignal_without_resampling(tiny_lm):
    cfg = SamplingConfig(temperature=1.5, max_new_tokens=8)
    a = generate_text(tiny_lm, ["w1 w2", "w5"], cfg, seed=11, samples_per_prompt=4)
    b = generate_text(tiny_lm, ["w1 w2", "w5"], cfg, seed=11, samples_per_prompt=4)
    c = generate_text(tiny_lm, ["w1 w2", "w5"], cfg, seed=12, samples_per_prompt=4)
    assert torch.equal(a.response_ids, b.response_ids) and torch.equal(a.response_mask, b.response_mask)
    assert not torch.equal(a.response_ids, c.response_ids)
    # Re-scoring under new settings keeps the tokens and equals a fresh token_signals call.
    other = SamplingConfig(temperature=0.7, top_p=0.5)
    resignal = a.signals(other)
    direct = token_signals(a.logits, a.response_ids, a.response_mask, other)
    for name, value in resignal.as_dict().items():
        assert torch.equal(value, direct.as_dict()[name]), name


def test_eos_stops_a_row_and_masks_the_rest(tiny_lm):
    cfg = SamplingConfig(temperature=1.0, max_new_tokens=12)
    gen = generate_text(tiny_lm, ["w1"], cfg, seed=0, samples_per_prompt=32)
    eos = tiny_lm.tokenizer.eos_token_id
    for row, keep, has_eos in zip(gen.response_ids, gen.response_mask, gen.has_eos, strict=True):
        real = row[keep].tolist()
        assert keep.tolist() == sorted(keep.tolist(), reverse=True)  # mask is a prefix
        assert (eos in real) == bool(has_eos)
        if has_eos:
            assert real.index(eos) == len(real) - 1


def test_greedy_generation_is_argmax_and_seed_free(tiny_lm):
    cfg = SamplingConfig(temperature=0, max_new_tokens=5, stop_at_eos=False)
    a = generate_text(tiny_lm, ["w4 w2"], cfg, seed=1, samples_per_prompt=2)
    b = generate_text(tiny_lm, ["w4 w2"], cfg, seed=2, samples_per_prompt=1)
    assert torch.equal(a.response_ids[0], a.response_ids[1]) and torch.equal(
        a.response_ids[0], b.response_ids[0]
    )
    assert torch.equal(a.response_ids, a.logits.argmax(-1))


def _full_forward(model, gen):
    """One forward of ``model`` over a generation's prompt + response (left padding skipped)."""
    attention = gen.attention_mask.long()
    with torch.no_grad():
        return model(
            input_ids=gen.sequences,
            attention_mask=attention,
            position_ids=(attention.cumsum(-1) - 1).clamp(min=0),
            output_hidden_states=True,
        )


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("stop_at_eos", [False, True])
def test_decode_logits_and_hidden_equal_a_full_forward(
    arch, stop_at_eos, tiny_gpt2_dir, tiny_llama_dir, monkeypatch
):
    """The decode loop (GPT-2: the lean per-block path) gives the logits and last hidden states of
    one full forward over prompt + response, left-padded rows included."""
    from engine.models.decoders import gpt2

    steps = []
    real_step = gpt2.Gpt2Decoder.step
    monkeypatch.setattr(gpt2.Gpt2Decoder, "step", lambda self, *a: steps.append(1) or real_step(self, *a))
    loaded = load_causal_lm(str(tiny_gpt2_dir if arch == "gpt2" else tiny_llama_dir), device="cpu")
    ids, mask = encode_prompts(loaded.tokenizer, ["w1 w2 w3 w4 w5 w6", "w7", "w8 w9 w10"], loaded.device)
    config = SamplingConfig(temperature=1.3, max_new_tokens=12, stop_at_eos=stop_at_eos)
    gen = generate(
        loaded.model,
        ids,
        mask,
        config,
        eos_token_id=loaded.tokenizer.eos_token_id,
        pad_token_id=loaded.tokenizer.pad_token_id,
        generator=torch.Generator().manual_seed(3),
        keep_hidden=True,
    )
    assert bool(steps) == (arch == "gpt2")
    full = _full_forward(loaded.model, gen)
    P, T = ids.shape[1], gen.response_ids.shape[1]
    real = gen.response_mask  # (B, T): positions after EOS were never fed back
    torch.testing.assert_close(
        gen.logits[real], full.logits[:, P - 1 : P + T - 1][real], atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(
        gen.hidden[real], full.hidden_states[-1][:, P - 1 : P + T - 1][real], atol=1e-5, rtol=1e-5
    )


def test_gpt2_prompt_pass_runs_once_per_distinct_prompt_and_equals_a_full_forward(tiny_gpt2_dir, monkeypatch):
    """PPO samples each prompt k times: the lean decode's prompt pass runs on the distinct prompts only
    (3 here, of 7 rows), and every row's logits still equal one full forward over its sequence."""
    from engine.models.decoders import gpt2

    prefilled = []
    real_prefill = gpt2.Gpt2Decoder._prefill
    monkeypatch.setattr(
        gpt2.Gpt2Decoder,
        "_prefill",
        lambda self, ids, pos: prefilled.append(len(ids)) or real_prefill(self, ids, pos),
    )
    loaded = load_causal_lm(str(tiny_gpt2_dir), device="cpu")
    texts = ["w1 w2 w3 w4", "w7", "w1 w2 w3 w4", "w8 w9", "w7", "w1 w2 w3 w4", "w8 w9"]
    ids, mask = encode_prompts(loaded.tokenizer, texts, loaded.device)
    config = SamplingConfig(temperature=1.0, max_new_tokens=6, stop_at_eos=False)
    tok = loaded.tokenizer
    gen = generate(
        loaded.model, ids, mask, config, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        generator=torch.Generator().manual_seed(0), keep_hidden=True,
    )  # fmt: skip
    assert prefilled == [3]
    full = _full_forward(loaded.model, gen)
    P = ids.shape[1]
    torch.testing.assert_close(gen.logits, full.logits[:, P - 1 : -1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gen.hidden, full.hidden_states[-1][:, P - 1 : -1], atol=1e-5, rtol=1e-5)


def test_lean_decode_runs_plain_layers_functionally_and_wrapped_layers_as_modules(tiny_gpt2_dir):
    """A plain Conv1D, LayerNorm or Embedding runs as its own functional op (bit for bit); a layer with
    a wrapper the decode must honour (a hook, the bf16 path's patched forward, a LoRA layer) stays
    the module."""
    from engine.models import attach_lora, frozen_matmuls_in_bf16
    from engine.models.decoders.gpt2 import _lean

    def model():
        return load_causal_lm(str(tiny_gpt2_dir), device="cpu").model

    body = model().transformer
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 1, body.config.n_embd, generator=g)
    ids = torch.randint(0, body.config.vocab_size, (3, 1), generator=g)
    for layer, x in ((body.h[0].attn.c_attn, hidden), (body.h[0].ln_1, hidden), (body.wte, ids)):
        lean = _lean(layer)
        assert lean is not layer and torch.equal(lean(x), layer(x)), type(layer).__name__

    layer = body.h[0].attn.c_attn
    layer.register_forward_hook(lambda *_: None)
    assert _lean(layer) is layer

    bf16 = model().requires_grad_(False)
    assert frozen_matmuls_in_bf16(bf16, "bf16") > 0
    assert _lean(bf16.transformer.h[0].attn.c_attn) is bf16.transformer.h[0].attn.c_attn

    lora = attach_lora(model(), r=4, alpha=8)
    wrapped = lora.get_base_model().transformer.h[0].attn.c_attn
    assert _lean(wrapped) is wrapped


def test_lean_decode_runs_a_merged_lora_layer_as_its_base_layer():
    """Inside ``merged_lora`` (the rollout) a LoRA layer's forward is its base layer's: the decode runs
    that base layer functionally, bit for bit the wrapper's output; outside it, or with the adapters
    disabled, the wrapper stays the module."""
    from engine.models import merged_lora, reference_mode
    from engine.models.decoders.gpt2 import _lean
    from tests.ppo_fixtures import lora_policy

    model, _ = lora_policy()
    wrapped = model.get_base_model().transformer.h[0].attn.c_attn
    x = torch.randn(3, 1, wrapped.base_layer.weight.shape[0], generator=torch.Generator().manual_seed(0))
    assert _lean(wrapped) is wrapped
    with torch.no_grad(), merged_lora(model):
        lean = _lean(wrapped)
        assert lean is not wrapped and lean is not wrapped.base_layer  # the base's own addmm
        assert torch.equal(lean(x), wrapped(x))
    with reference_mode(model):
        assert _lean(wrapped) is wrapped


def test_decode_over_lora_on_a_bf16_base_equals_a_full_forward():
    """PPO's rollout model (a LoRA adapter, moved off zero, over the bf16 base): the decode loop's
    logits are the full forward's."""
    from engine.models import frozen_matmuls_in_bf16
    from tests.ppo_fixtures import lora_policy

    model, tok = lora_policy()
    assert frozen_matmuls_in_bf16(model, "bf16") > 0
    ids, mask = encode_prompts(tok, ["w1 w2 w3", "w7"], torch.device("cpu"))
    config = SamplingConfig(temperature=1.0, max_new_tokens=8, stop_at_eos=False)
    gen = generate(model, ids, mask, config, eos_token_id=None, pad_token_id=tok.pad_token_id,
                   generator=torch.Generator().manual_seed(2))  # fmt: skip
    attention = gen.attention_mask.long()
    with torch.no_grad():
        full = model(
            input_ids=gen.sequences,
            attention_mask=attention,
            position_ids=(attention.cumsum(-1) - 1).clamp(min=0),
        )
    P, T = ids.shape[1], gen.response_ids.shape[1]
    torch.testing.assert_close(gen.logits, full.logits[:, P - 1 : P + T - 1].float(), atol=1e-4, rtol=1e-4)


def test_generation_picks_the_lean_decoder_only_where_it_applies(tiny_gpt2_dir, tiny_llama_dir):
    """GPT-2 and Llama in eval mode decode through their lean decoders; a model in training mode
    (dropout) through its own forward (variants without a lean decoder: tests/test_llama_decoder.py)."""
    from engine.models.decoders import ForwardDecoder, Gpt2Decoder, LlamaDecoder, decoder_for

    mask = torch.ones((2, 3), dtype=torch.bool)
    gpt2 = load_causal_lm(str(tiny_gpt2_dir), device="cpu").model.eval()
    llama = load_causal_lm(str(tiny_llama_dir), device="cpu").model.eval()
    assert isinstance(decoder_for(gpt2, mask, 4, keep_hidden=False), Gpt2Decoder)
    assert isinstance(decoder_for(llama, mask, 4, keep_hidden=False), LlamaDecoder)
    assert isinstance(decoder_for(llama.train(), mask, 4, keep_hidden=False), ForwardDecoder)
    assert isinstance(decoder_for(gpt2.train(), mask, 4, keep_hidden=False), ForwardDecoder)


def test_stored_tokens_read_as_text_under_a_byte_level_tokenizer():
    """SmolLM2's tokenizer is byte-level BPE: its raw pieces carry 'Ġ' for a space; the store, the lab
    and imported signals keep the text each token stands for."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from engine.token_text import decode_tokens, token_texts

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(["the sum is 12", "the answer is 7"] * 20, trainers.BpeTrainer(vocab_size=300))
    tok = PreTrainedTokenizerFast(tokenizer_object=core)
    ids = tok("the sum is 12")["input_ids"]
    assert any("Ġ" in piece for piece in tok.convert_ids_to_tokens(ids))  # the raw pieces
    texts = token_texts(tok, ids)
    assert "".join(texts) == "the sum is 12" and not any("Ġ" in t for t in texts)
    rows = decode_tokens(tok, torch.tensor([ids + [0]]), torch.tensor([[True] * len(ids) + [False]]))
    assert rows == [texts]
