"""A miniature world build end to end (tiny models, few epochs), its checks and epoch report."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from engine.world_tools.build import WorldConfig, build_world
from engine.world_tools.epochs import entropy_floor, epoch_table

MINI = WorldConfig(
    n_layer=1,
    n_embd=32,
    n_head=2,
    sft_epochs=2,
    sft_repeats=1,
    default_epoch=1,
    rm_layers=1,
    rm_embd=32,
    rm_pairs=60,
    rm_test_pairs=20,
    rm_samples_per_prompt=2,
    rm_epochs=1,
)


@pytest.fixture(scope="module")
def mini_world(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    build_world(data_dir / "world", MINI)
    return data_dir


def test_build_writes_every_artifact(mini_world):
    world_dir = mini_world / "world"
    manifest = json.loads((world_dir / "world.json").read_text())
    assert manifest["sft_epochs"] == [1, 2]
    for path in (
        "tokenizer",
        "sft/epoch-1",
        "sft/epoch-2",
        "rm",
        "prompts.jsonl",
        "sft_data.jsonl",
        "preferences_train.jsonl",
        "preferences_test.jsonl",
    ):
        assert (world_dir / path).exists(), path
    assert list((world_dir / "sft/epoch-1").glob("*.safetensors"))
    assert not (mini_world / "world.building").exists()


def test_built_world_loads_and_checks_run(mini_world, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(mini_world))
    from engine.models import load_causal_lm
    from engine.reward import load_reward_model
    from engine.world import load_world
    from engine.world_tools.check import run_checks

    world = load_world()
    assert load_causal_lm(world.policy_source(2)).model.config.n_layer == 1
    assert load_reward_model(world.rm_source).model.training is False
    results = run_checks(world, quick=True)
    assert set(results) >= {"W1", "W2", "W3", "W6", "W7"}
    for name in ("W1", "W2", "W3", "W6", "W7"):
        assert isinstance(results[name]["ok"], bool) and results[name]["detail"]


def test_epoch_table_and_floor():
    rows = []
    for epoch, (h_sft, h_ppo) in enumerate([(2.0, 2.2), (1.0, 1.8), (0.5, 1.5), (0.48, 1.4)], start=1):
        for prompt, gold in (("a", 0.2), ("a", 0.6), ("b", 0.4)):
            rows.append(
                {
                    "epoch": epoch,
                    "prompt_id": prompt,
                    "split": "sft_train",
                    "mean_entropy": h_sft,
                    "gold": gold,
                    "reward": gold,
                }
            )
            rows.append(
                {
                    "epoch": epoch,
                    "prompt_id": prompt + "p",
                    "split": "ppo_only",
                    "mean_entropy": h_ppo,
                    "gold": gold,
                    "reward": gold,
                }
            )
    table = epoch_table(pd.DataFrame(rows))
    assert table["entropy_ratio_ppo_only_vs_sft"].iloc[0] == pytest.approx(1.1)
    # best-of-N per prompt: a -> 0.6, b -> 0.4, mean 0.5 ; mean gold 0.4
    assert table["best_gold"].iloc[0] == pytest.approx(0.5)
    assert table["gold"].iloc[0] == pytest.approx(0.4)
    assert entropy_floor(table) == 3  # 0.5 is within 10 % of 0.48
