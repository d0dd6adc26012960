"""``python -m engine bench grpo`` (contract): the JSON of the engine side at a tiny scale (2 steps of
2 prompts x 2 samples x 4 tokens, ``--skip-trl``: no TRL environment here), and bad sizes stopped
before any process starts. No timing is asserted."""

from __future__ import annotations

import argparse
import json

import pytest

from engine.bench import grpo as bench_grpo
from engine.config import ConfigError

TINY = ["--steps", "2", "--prompts-per-step", "2", "--samples-per-prompt", "2", "--new-tokens", "4"]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_grpo.add_arguments(parser)
    return parser.parse_args(argv)


def test_engine_side_json_contract(capsys):
    assert bench_grpo.main(parse([*TINY, "--skip-trl", "--threads", "1", "--json"])) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"] == "custom" and result["device"] == "cpu"
    for key in ("seconds_per_step", "cpu_seconds_per_step", "peak_rss_mb"):
        assert isinstance(result[key], float) and result[key] > 0, key
    for key in (
        "trl_seconds_per_step",
        "trl_cpu_seconds_per_step",
        "cpu_seconds_ratio",
        "trl_peak_rss_mb",
        "seconds_per_step_ratio",
        "target_met",
        "trl_split_seconds",
    ):
        assert result[key] is None, key
    assert set(result["split_seconds"]) == {
        "generation_s",
        "ref_and_reward_s",
        "update_s",
        "logging_s",
        "other_s",
    }
    assert [s["step"] for s in result["per_step"]] == [1, 2] and result["warmup_steps_discarded"] == 1
    assert result["seconds_per_step"] == result["per_step"][1]["total_s"]  # the median of the one kept step
    assert result["cpu"]["kind"] and result["versions"]["engine"]["torch"]
    assert result["threads"]["engine"] == 1
    # one more step, recorded for its matrix products and timed alone; TRL's side absent here
    floor = result["matmul"]["engine"]
    assert floor["products"] > 0 and floor["unreplayed"] == 0 and floor["gflop"] > 0 and floor["seconds"] > 0
    assert result["matmul"]["trl"] is None and result["matmul_floor_ratio"] is None
    assert result["process_peak_rss_mb"]["engine"] >= result["peak_rss_mb"]
    settings = result["settings"]
    assert (settings["loss_type"], settings["num_iterations"], settings["kl_loss_coef"]) == ("dapo", 1, 0.0)
    assert settings["sequences_per_step"] == 4 and settings["optimizer_steps_per_step"] == 1
    assert settings["policy_dir"].endswith("sft/epoch-3") and settings["lora_r"] == 16


def test_protocol_sizes_are_the_default():
    settings = bench_grpo.protocol_settings(parse([]))
    assert settings["protocol"] == "tiny-grpo-cpu"
    assert (settings["prompts_per_step"], settings["samples_per_prompt"], settings["new_tokens"]) == (
        16,
        4,
        32,
    )
    config = bench_grpo.engine_config(settings)
    assert config.ppo.algorithm == "grpo" and not config.sampling.stop_at_eos
    # beta 0: no reference pass on either side (TRL has none; the engine's KL metric is off)
    assert config.run.kl_metric_every == 0 and not any(config.takes_reference(s) for s in (1, 2, 5))
    assert config.run.batch_size == 64 and config.ppo.num_minibatches == bench_grpo.CHUNKS


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "1"], "--steps must be >= 2"),
        (["--samples-per-prompt", "1"], "needs samples_per_prompt >= 2"),
        (["--prompts-per-step", "3", "--samples-per-prompt", "3"], "not divisible by num_minibatches"),
    ],
)
def test_bad_sizes_are_config_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        bench_grpo.main(parse([*argv, "--skip-trl"]))
