"""A stand-in for the built-in world, made of tiny random models, so world-only UI paths are testable
without the (minutes-long) real build. Same on-disk layout as ``python -m engine world build``."""

from __future__ import annotations

import json
from pathlib import Path

from tiny_models import make_gpt2, make_tokenizer, save_tiny

FAMILIES = [
    {"name": "greet", "description": "say hello", "in_sft": True},
    {"name": "count", "description": "count things (PPO only)", "in_sft": False},
]
PROMPTS = [
    {"prompt_id": "g0", "family": "greet", "text": "w1 w2 w3", "split": "sft_train"},
    {"prompt_id": "g1", "family": "greet", "text": "w1 w4", "split": "eval"},
    {"prompt_id": "c0", "family": "count", "text": "w9 w8", "split": "ppo_only"},
]


def build_fake_world(data_dir: Path, epochs: tuple[int, ...] = (1, 2)) -> Path:
    """Write ``data_dir/world`` (use with WORKBENCH_DATA_DIR=data_dir) and return it."""
    from engine.reward import PooledRewardModel

    world = data_dir / "world"
    for epoch in epochs:
        save_tiny(world / "sft" / f"epoch-{epoch}", "gpt2", seed=epoch)
    tok = make_tokenizer()
    tok.save_pretrained(world / "tokenizer")
    body = make_gpt2(len(tok), seed=7).transformer
    PooledRewardModel(body, body.config.n_embd).save(world / "rm")
    tok.save_pretrained(world / "rm")
    (world / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    manifest = {
        "families": FAMILIES,
        "sft_epochs": list(epochs),
        "default_epoch": epochs[-1],
        "policy_params": 30000,
        "rm_params": 30000,
        "config": {"seed": 0},
    }
    (world / "world.json").write_text(json.dumps(manifest))
    return world
