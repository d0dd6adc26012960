"""Log-prob accuracy of checkpoints: the op against a naive forward, and the per-checkpoint eval file."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from engine.models import attach_lora, load_causal_lm
from engine.ppo.build import build_trainer
from engine.ppo.logprob_eval import evaluate_run, response_logprobs
from engine.store import RunWriter
from tests.ppo_fixtures import make_tiny_sources, one_thread, tiny_config  # noqa: F401 (fixture)


@dataclass
class Pair:
    prompt: str
    chosen: str
    rejected: str


PAIRS = [
    Pair("w1 w2", "w3 w4 [EOS]", "w5"),
    Pair("w7", "w8 w9 w10", "w11 w12"),
    Pair("w3 w3 w3", "w20", "w21 w22"),
]


def test_response_logprobs_match_naive_forward(tmp_path):
    sources, _ = make_tiny_sources(tmp_path)
    loaded = load_causal_lm(sources.policy, device="cpu")
    tok = loaded.tokenizer
    got = response_logprobs(
        loaded.model, tok, [p.prompt for p in PAIRS], [p.chosen for p in PAIRS], batch_size=2
    )
    for i, pair in enumerate(PAIRS):
        prompt = tok(pair.prompt, add_special_tokens=False)["input_ids"]
        response = tok(pair.chosen, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt + response])
        with torch.no_grad():
            logp = torch.log_softmax(loaded.model(input_ids=ids).logits[0].double(), -1)
        naive = sum(float(logp[len(prompt) - 1 + t, tok_id]) for t, tok_id in enumerate(response))
        assert abs(float(got[i]) - naive) < 1e-4


def test_evaluate_run_writes_one_row_per_checkpoint(tmp_path):
    sources, prompts_file = make_tiny_sources(tmp_path / "models")
    config = tiny_config(steps=2, save_every=1).replace(
        policy=sources.policy, reward_model=sources.reward_model, prompts_file=str(prompts_file)
    )
    writer = RunWriter.create(tmp_path / "run", kind="ppo", config=config.to_dict(), seed=0)
    build_trainer(config, writer, sources=sources, device="cpu").train()
    rows = evaluate_run(tmp_path / "run", PAIRS, device="cpu")
    assert [r["checkpoint"] for r in rows] == ["sft", "step-1", "step-2"]
    assert all(0 <= r["accuracy"] <= 1 and r["n_pairs"] == 3 for r in rows)
    assert evaluate_run(tmp_path / "run", PAIRS, device="cpu") == []  # nothing new
    frame = pd.read_parquet(tmp_path / "run" / "evals" / "logprob_accuracy.parquet")
    assert list(frame.checkpoint) == ["sft", "step-1", "step-2"]
    # the sft row is the base policy: same as evaluating a fresh adapter
    base = load_causal_lm(sources.policy, device="cpu")
    model = attach_lora(base.model, r=4, alpha=8)
    chosen = response_logprobs(model, base.tokenizer, [p.prompt for p in PAIRS], [p.chosen for p in PAIRS])
    rejected = response_logprobs(
        model, base.tokenizer, [p.prompt for p in PAIRS], [p.rejected for p in PAIRS]
    )
    assert rows[0]["accuracy"] == float((chosen > rejected).double().mean())


def test_evaluate_run_reads_the_prompts_in_the_chat_template_as_ppo_sampled_them(tmp_path, monkeypatch):
    import engine.ppo.logprob_eval as logprob_eval
    from engine.models import load_causal_lm as load

    sources, prompts_file = make_tiny_sources(tmp_path / "models")
    tokenizer = load(sources.policy, device="cpu").tokenizer
    tokenizer.chat_template = "{% for m in messages %}<user> {{ m['content'] }}{% endfor %} <bot>"
    tokenizer.save_pretrained(sources.policy)
    config = tiny_config(steps=1, save_every=1).replace(
        policy=sources.policy, reward_model=sources.reward_model, prompts_file=str(prompts_file)
    )
    writer = RunWriter.create(tmp_path / "run", kind="ppo", config=config.to_dict(), seed=0)
    build_trainer(config, writer, sources=sources, device="cpu").train(progress=False)
    seen = []
    monkeypatch.setattr(
        logprob_eval,
        "logprob_accuracy",
        lambda model, tok, pairs: seen.append([p.prompt for p in pairs]) or 0.5,
    )
    evaluate_run(tmp_path / "run", PAIRS, device="cpu")
    assert seen[0] == [f"<user> {p.prompt} <bot>" for p in PAIRS]
    assert [p.chosen for p in PAIRS] == ["w3 w4 [EOS]", "w8 w9 w10", "w20"]  # the responses untouched


def test_a_smollm2_run_is_evaluated_on_the_real_worlds_preference_test_set():
    from engine.ppo.config import PPOConfig
    from engine.ppo.logprob_eval import preference_test_set
    from engine.real_world.world import load_real_world

    pairs = preference_test_set(PPOConfig().replace(policy="smollm2"))
    assert pairs == load_real_world().preference_test() and len(pairs) > 0
