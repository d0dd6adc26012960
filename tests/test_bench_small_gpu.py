"""``python -m engine bench ppo --protocol small-gpu`` (contract): the JSON contract, on CPU at a much
smaller shape (``--scale 0.05``); the full shape is Qwen2.5-0.5B's architecture, checked without
building it."""

from __future__ import annotations

import argparse
import json

from engine.bench import ppo as bench_ppo
from tests.ppo_fixtures import one_thread  # noqa: F401 (fixture)


def test_full_shape_is_qwen25_05b():
    c = bench_ppo.qwen25_05b_config()
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads) == (
        896,
        24,
        14,
        2,
    )
    assert (c.intermediate_size, c.vocab_size, c.rope_parameters["rope_theta"], c.tie_word_embeddings) == (
        4864,
        151936,
        1e6,
        True,
    )


def test_small_gpu_json_contract(capsys):
    parser = argparse.ArgumentParser()
    bench_ppo.add_arguments(parser)
    args = parser.parse_args(["--protocol", "small-gpu", "--scale", "0.05", "--iterations", "2", "--json"])
    assert bench_ppo.main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"] == "small-gpu" and result["scale"] == 0.05
    for key in ("seconds_per_iteration", "tokens_per_second", "generation_tokens_per_second", "peak_rss_mb"):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert result["tokens_per_iteration"] == result["prompts_per_iteration"] * result["new_tokens_per_prompt"]
    if result["device"] == "cpu":
        assert result["peak_gpu_memory_mb"] is None
    else:
        assert result["peak_gpu_memory_mb"] > 0
    assert result["model"]["num_key_value_heads"] == 2 and len(result["per_iteration"]) == 2
