"""Shared pieces of the PPO engine tests: a tiny reward model, tiny sources, a tiny config, one thread.

Tests run with one torch thread: the test machine is shared, and with more runnable threads than
cores OpenMP's spinning makes tiny matmuls several times slower (measured 7.7 s vs 1.3 s for the
same e2e run).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.config import SamplingConfig
from engine.models import attach_lora
from engine.ppo.build import PromptItem, Sources
from engine.ppo.config import ModelConfig, PPOConfig, PPOHyperConfig, RunConfig
from tests.tiny_models import make_gpt2, make_llama, make_tokenizer, save_tiny


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def lora_policy(arch: str = "gpt2", seed: int = 0):
    """A tiny GPT-2 or Llama with a LoRA adapter moved off zero (so policy != reference), and its
    tokenizer."""
    tok = make_tokenizer()
    base = make_gpt2(len(tok), seed) if arch == "gpt2" else make_llama(len(tok), seed)
    model = attach_lora(base, r=4, alpha=8).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # a non-zero adapter, so policy != reference
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model, tok


def save_tiny_rm(path: Path, seed: int = 1) -> Path:
    from transformers import GPT2Config, GPT2ForSequenceClassification

    tok = make_tokenizer()
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=64,
        n_layer=1,
        n_head=2,
        n_embd=16,
        num_labels=1,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    GPT2ForSequenceClassification(config).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def length_judge(prompts: list[str], responses: list[str]) -> list[float]:
    """A stand-in gold judge: longer is better."""
    return [len(r.split()) / 8 for r in responses]


def make_tiny_sources(root: Path) -> tuple[Sources, Path]:
    """Tiny policy + RM saved under ``root`` and a prompts file; returns (Sources, prompts file)."""
    policy = save_tiny(root / "policy")
    rm = save_tiny_rm(root / "rm")
    texts = [f"w{i} w{i + 1} w{i + 2}" for i in range(6)]
    prompts_file = root / "prompts.txt"
    prompts_file.write_text("\n".join(texts) + "\n")
    prompts = [PromptItem(f"p{i}", "even" if i % 2 == 0 else "odd", t) for i, t in enumerate(texts)]
    return Sources(
        policy=str(policy), reward_model=str(rm), prompts=prompts, judge=length_judge
    ), prompts_file


def tiny_config(**run) -> PPOConfig:
    return PPOConfig(
        model=ModelConfig(policy="unused", reward_model="unused", lora_r=4, lora_alpha=8),
        sampling=SamplingConfig(temperature=0.9, top_k=20, max_new_tokens=8),
        ppo=PPOHyperConfig(kl_coef=0.1, ppo_epochs=2, num_minibatches=2, learning_rate=1e-3),
        run=RunConfig(**{"steps": 3, "prompts_per_step": 2, "samples_per_prompt": 4, "save_every": 2, **run}),
    )
