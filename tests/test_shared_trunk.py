"""An RM on the policy's own base scores from the reference pass's hidden states (engine.models.
trunk.SharedTrunk): the same scores as the RM's own forward, the same reference log-probs, and no sharing
where the weights differ or have changed since."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.config import SamplingConfig
from engine.lab import SamplingLab
from engine.models import LoadedModel, attach_lora, load_causal_lm, reference_mode
from engine.models.trunk import shared_trunk
from engine.ppo.build import PromptItem
from engine.ppo.rollout import policy_forward, reference_pass, rollout
from engine.ppo.steps import PhaseTimer
from engine.ppo.trainer import PPOTrainer
from engine.reward import AdapterRewardModel, AdapterRMSettings, SequenceClassifierRM
from engine.sampling import encode_prompts, generate
from tests.ppo_fixtures import one_thread, tiny_config  # noqa: F401 (autouse: one torch thread)

PROMPTS = ["w1 w2 w3", "w4", "w5 w6", "w1 w2 w3"]


def _policy(tiny_llama_dir):
    """The tiny Llama with a LoRA adapter moved off zero (policy != reference), and its tokenizer."""
    loaded = load_causal_lm(str(tiny_llama_dir))
    torch.manual_seed(0)
    model = attach_lora(loaded.model, r=4, alpha=8).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model, loaded.tokenizer


def _adapter_rm(tiny_llama_dir) -> AdapterRewardModel:
    torch.manual_seed(1)
    rm, _ = AdapterRewardModel.build(AdapterRMSettings(base=str(tiny_llama_dir), top_layers=1, lora_r=2))
    with torch.no_grad():
        for name, p in rm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return rm.eval().requires_grad_(False)


def _classifier_rm(tiny_llama_dir, seed: int = 2) -> SequenceClassifierRM:
    """A sequence classifier from the base's own weights (the smollm2-cpu bench's RM), head drawn."""
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_llama_dir), num_labels=1)
    return SequenceClassifierRM(model).eval().requires_grad_(False)


def _rollout(model, tok):
    ids, mask = encode_prompts(tok, PROMPTS, torch.device("cpu"))  # left-padded, lengths 1-3
    # EOS may stop a row early: rows end at different columns, padded after
    config = SamplingConfig(temperature=0.9, max_new_tokens=6)
    return rollout(
        model, None, ids, mask, config, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["adapter", "classifier"])
def test_shared_trunk_scores_equal_the_rms_own(tiny_llama_dir, kind):
    policy, tok = _policy(tiny_llama_dir)
    rm = _adapter_rm(tiny_llama_dir) if kind == "adapter" else _classifier_rm(tiny_llama_dir)
    trunk = shared_trunk(rm, policy)
    assert trunk is not None and trunk.layers == (1 if kind == "adapter" else 2)
    ro = _rollout(policy, tok)
    logprobs, hidden = reference_pass(policy, ro, trunk=trunk)
    assert hidden.shape == (*ro.sequences.shape, 32)

    own = rm(ro.sequences, ro.attention_mask)  # (B,)
    shared = trunk.score(hidden, ro.sequences, ro.attention_mask)
    assert torch.allclose(shared, own, atol=1e-5), (shared, own)
    # the reference log-probs are those of the pass without the kept states
    plain, none = reference_pass(policy, ro)
    assert none is None
    assert torch.allclose(logprobs, plain, atol=1e-6)
    with torch.no_grad(), reference_mode(policy):
        direct = policy_forward(policy, ro.sequences, ro.attention_mask, ro.prompt_ids.shape[1], 0.9)[0]
    assert torch.allclose(plain, direct.masked_fill(~ro.response_mask, 0.0), atol=1e-6)


def test_no_shared_trunk_where_the_weights_differ_or_change(tiny_llama_dir, tmp_path):
    from tests.tiny_models import save_tiny

    policy, _ = _policy(tiny_llama_dir)
    other = _classifier_rm(save_tiny(tmp_path / "other", "llama", seed=5))
    assert shared_trunk(other, policy) is None  # another base: nothing shared
    rm = _adapter_rm(tiny_llama_dir)
    trunk = shared_trunk(rm, policy)
    assert trunk.intact()
    with torch.no_grad():
        rm.body.layers[0].mlp.up_proj.weight.add_(1e-3)  # an RM refresh trains in place
    assert not trunk.intact()


def test_the_trainer_scores_through_the_trunk_with_the_rms_own_scores(tiny_llama_dir, monkeypatch):
    policy, tok = _policy(tiny_llama_dir)
    rm = _adapter_rm(tiny_llama_dir)
    trainer = PPOTrainer(
        tiny_config(), LoadedModel(policy, tok, "policy", None), LoadedModel(rm, tok, "rm", None),
        [PromptItem(f"p{i}", "family", t) for i, t in enumerate(PROMPTS)],
    )  # fmt: skip
    assert trainer.trunk is not None and trainer.trunk.layers == 1
    calls = []
    monkeypatch.setattr(rm, "forward", lambda *a: calls.append(a) or torch.zeros(len(a[0])))
    scored = trainer.sample_and_score(
        trainer.prompt_batch(1), 2, trainer.config.sampling, torch.Generator().manual_seed(0), PhaseTimer()
    )
    assert not calls, "the RM's full forward did not run"
    monkeypatch.undo()
    own = rm(scored.rollout.sequences, scored.rollout.attention_mask)
    assert torch.allclose(scored.scores, own, atol=1e-5)


def test_sampling_keeps_the_trunk_and_the_rm_scores_from_it(tiny_llama_dir):
    """The lean Llama decoder keeps the shared layers' output at every position of prompt + response
    (the last drawn token's too), and the RM's score from it is its own forward's."""
    loaded = load_causal_lm(str(tiny_llama_dir))
    rm = _adapter_rm(tiny_llama_dir)
    trunk = shared_trunk(rm, loaded.model)
    ids, mask = encode_prompts(loaded.tokenizer, PROMPTS, torch.device("cpu"))
    config = SamplingConfig(temperature=1.0, max_new_tokens=7)
    gen = generate(
        loaded.model, ids, mask, config, eos_token_id=2, pad_token_id=0,
        generator=torch.Generator().manual_seed(0), keep_layers=trunk.layers,
    )  # fmt: skip
    assert gen.trunk_hidden.shape == (*gen.sequences.shape, 32)
    real = gen.attention_mask.bool()
    with torch.no_grad():
        lower = rm.lower(gen.sequences, gen.attention_mask)  # (B, L, H)
    torch.testing.assert_close(gen.trunk_hidden[real], lower[real], atol=1e-5, rtol=1e-5)
    own = rm(gen.sequences, gen.attention_mask)
    torch.testing.assert_close(
        trunk.score(gen.trunk_hidden, gen.sequences, gen.attention_mask), own, atol=1e-5, rtol=1e-5
    )
    plain = generate(loaded.model, ids, mask, config, eos_token_id=2, pad_token_id=0,
                     generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert plain.trunk_hidden is None and torch.equal(plain.response_ids, gen.response_ids)


def test_the_lab_scores_a_real_rm_through_the_trunk(tiny_llama_dir, tmp_path, monkeypatch):
    rm_dir = tmp_path / "rm"
    _adapter_rm(tiny_llama_dir).save(rm_dir)
    lab = SamplingLab()
    source = str(tiny_llama_dir)
    rm = lab.reward_model(str(rm_dir)).model
    monkeypatch.setattr(rm, "forward", lambda *a: pytest.fail("the RM's full forward ran"))
    config = SamplingConfig(temperature=1.0, max_new_tokens=6)
    batch = lab.sample(source, ["w1 w2", "w3"], config, n_samples=3, seed=0, reward_source=str(rm_dir))
    assert lab._trunks[(source, str(rm_dir))].layers == 1
    assert batch.generation.trunk_hidden is None  # used once, not cached
    monkeypatch.undo()
    gen = batch.generation
    own = rm(gen.sequences, gen.attention_mask)
    np.testing.assert_allclose(batch.rewards, own.numpy(), atol=1e-5)


@pytest.mark.slow
def test_the_real_rm_scores_smollm2_samples_from_its_26_shared_layers():
    """On the real model: the lab's SmolLM2 samples, scored by the real world's RM (LoRA on the top 4
    of 30 layers) from the decoder's kept layers, get the RM's own scores (the same token ids: chat
    template and EOS as sampled)."""
    from engine.lab import real_rm_source, real_tasks

    rm_source = real_rm_source()
    if rm_source is None:
        pytest.skip("the real world's RM is not built (python -m engine real build)")
    lab = SamplingLab()
    config = SamplingConfig(temperature=1.0, max_new_tokens=10)
    batch = lab.sample("smollm2", [next(iter(real_tasks()))], config, n_samples=4, seed=0)
    assert lab._trunks[("smollm2", rm_source)].layers == 26
    gen = batch.generation
    own = lab.reward_model(rm_source).model(gen.sequences, gen.attention_mask)
    np.testing.assert_allclose(batch.rewards, own.numpy(), atol=1e-4)


@pytest.mark.parametrize("kind", ["adapter", "classifier"])
def test_a_tied_trunk_is_the_policys_weights_and_scores_as_before(tiny_llama_dir, kind):
    """Tied, the RM's shared layers hold the policy's own tensors (one copy in memory); its scores,
    through the trunk or its own forward, are what they were; sampling's merge and restore of the
    policy's base (which bumps the tensors' versions) leaves it intact."""
    from engine.models.precision import merged_lora

    policy, tok = _policy(tiny_llama_dir)
    rm = _adapter_rm(tiny_llama_dir) if kind == "adapter" else _classifier_rm(tiny_llama_dir)
    ro = _rollout(policy, tok)
    before = rm(ro.sequences, ro.attention_mask)  # (B,)
    own_count = sum(p.numel() for p in rm.parameters())
    trunk = shared_trunk(rm, policy, tie=True)
    assert trunk is not None and trunk.layers == (1 if kind == "adapter" else 2)
    policy_weights = {id(p) for p in policy.parameters()}
    rm_body = rm.body if kind == "adapter" else rm.model.model
    shared = [rm_body.embed_tokens, *rm_body.layers[: trunk.layers]]
    assert all(
        id(p) in policy_weights for part in shared for n, p in part.named_parameters() if "lora_" not in n
    )
    above = [p for n, p in rm.named_parameters() if id(p) not in policy_weights]
    assert above and sum(p.numel() for p in rm.parameters()) == own_count  # the RM's own top and head
    with merged_lora(policy):
        pass  # the rollout's merge and bit-for-bit restore
    assert trunk.intact()
    torch.testing.assert_close(rm(ro.sequences, ro.attention_mask), before, atol=0, rtol=0)
    _, hidden = reference_pass(policy, ro, trunk=trunk)
    torch.testing.assert_close(
        trunk.score(hidden, ro.sequences, ro.attention_mask), before, atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("refresh_every", [0, 5])
def test_the_trainer_ties_the_trunk_only_where_no_rm_refresh_trains_it(tiny_llama_dir, refresh_every):
    from dataclasses import replace

    policy, tok = _policy(tiny_llama_dir)
    rm = _adapter_rm(tiny_llama_dir)
    config = tiny_config()
    config = replace(config, model=replace(config.model, rm_refresh_every=refresh_every, rm_labeller="human"))
    trainer = PPOTrainer(
        config, LoadedModel(policy, tok, "policy", None), LoadedModel(rm, tok, "rm", None),
        [PromptItem(f"p{i}", "family", t) for i, t in enumerate(PROMPTS)],
    )  # fmt: skip
    assert trainer.trunk is not None
    embedding = trainer.model.get_input_embeddings().weight
    assert (rm.body.embed_tokens.weight is embedding) == (refresh_every == 0)
