"""``reward_model = "gold"``: PPO rewarded by the world's gold judge itself, no learned RM (issue 26:
what the learned RM costs is a run with it beside one with the checker as the reward). The stored
reward is the judge's score, the config refuses what has no judge, and the RM-gold agreement views
do not measure an RM that is not there."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

import engine.store as store
from engine.config import GOLD_REWARD, ConfigError
from engine.ppo.build import build_trainer, resolve_sources
from engine.ppo.config import PPOConfig
from engine.ppo.presets import preset_config
from engine.ppo.trainer import PPOTrainer
from engine.real_tools.check import r4_agreement
from engine.runs import reward_is_judge
from engine.store import RunWriter
from tests.ppo_fixtures import length_judge, make_tiny_sources, one_thread, tiny_config  # noqa: F401 (fixture)


def test_a_gold_rewarded_run_stores_the_judges_scores_as_its_reward(tmp_path):
    sources, _ = make_tiny_sources(tmp_path)
    sources = dataclasses.replace(sources, reward_model=GOLD_REWARD)
    config = tiny_config(steps=2, probe_every=0).replace(reward_model=GOLD_REWARD)
    run_dir = tmp_path / "runs" / "gold"
    writer = RunWriter.create(run_dir, kind="ppo", config=config.to_dict(), seed=0)
    trainer = build_trainer(config, writer, sources=sources, device="cpu")
    assert trainer.reward is None  # no RM was loaded
    trainer.train()
    rows = pd.concat(pd.read_parquet(p) for p in sorted((run_dir / "rollouts").glob("step-*.parquet")))
    assert len(rows) == 2 * 2 * 4 and rows["reward"].notna().all()
    expected = length_judge(rows["prompt"].tolist(), rows["response"].tolist())
    assert rows["reward"].tolist() == pytest.approx(expected)
    assert rows["reward"].tolist() == rows["gold"].tolist()
    assert json.loads((run_dir / "run.json").read_text())["config"]["model"]["reward_model"] == "gold"
    # No RM to agree with the judge: no agreement of 1, and real check's R4 says why.
    assert reward_is_judge(run_dir) and store.rm_gold_agreement(run_dir).empty
    assert (
        r4_agreement(run_dir)["value"] is None
        and "the reward is the checker" in r4_agreement(run_dir)["detail"]
    )


def test_the_agreement_of_a_judge_rewarded_run_is_dropped_beside_an_rm_run(tmp_path):
    """Two runs with the same rows, one of them judge-rewarded: only the RM run has an agreement."""
    frames = []
    for run_id, reward_model in (("rm", "some/rm"), ("gold", GOLD_REWARD)):
        run_dir = tmp_path / run_id
        config = PPOConfig().replace(reward_model=reward_model)
        writer = RunWriter.create(run_dir, kind="ppo", config=config.to_dict(), seed=0)
        writer.write_rollouts(1, {
            "prompt_id": ["a", "a"], "prompt": ["q", "q"], "response": ["x", "y"], "reward": [0.2, 0.9],
            "gold": [0.0, 1.0], "sample_idx": [0, 1],
        })  # fmt: skip
        frames.append(run_dir)
    table = store.rm_gold_agreement(frames)
    assert table["run_id"].tolist() == ["rm"] and table["agreement"].tolist() == [1.0]
    assert not reward_is_judge(frames[0]) and reward_is_judge(frames[1])


def test_gold_needs_no_learned_rm_on_the_real_world(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))  # no RM built: the checker alone will do
    sources = resolve_sources(preset_config("smollm2-cpu", reward_model=GOLD_REWARD))
    assert sources.reward_model == GOLD_REWARD and sources.judge is not None and sources.prompts


def test_the_config_refuses_gold_where_there_is_no_judge_or_no_rm(tmp_path):
    with pytest.raises(ConfigError, match="a prompts file has no gold judge"):
        PPOConfig().replace(reward_model="gold", prompts_file=str(tmp_path / "p.txt"))
    with pytest.raises(ConfigError, match="has none to refresh"):
        PPOConfig().replace(reward_model="gold", rm_refresh_every=5)
    policy = tmp_path / "policy"
    with pytest.raises(ConfigError, match="needs a gold judge"):  # another policy on the world's prompts
        resolve_sources(PPOConfig().replace(reward_model="gold", policy=str(policy)))


def test_a_trainer_without_rm_and_judge_is_refused(tmp_path):
    sources, _ = make_tiny_sources(tmp_path)
    trainer = build_trainer(tiny_config(steps=1), sources=sources, device="cpu")
    with pytest.raises(ConfigError, match="no reward"):
        PPOTrainer(trainer.config, trainer.policy, None, sources.prompts, judge=None)


def test_the_ppo_command_refuses_gold_with_a_prompts_file_in_one_line(tmp_path, capsys):
    from engine.cli import main

    prompts = tmp_path / "p.txt"
    prompts.write_text("hello\n")
    code = main(["ppo", "--reward-model", "gold", "--prompts-file", str(prompts), "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "gold" in err and err.count("\n") == 1
