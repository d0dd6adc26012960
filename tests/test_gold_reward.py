"""``reward_model = "gold"``: PPO rewarded by the world's gold judge itself, no learned RM (issue 26:
what the learned RM costs is a run with it beside one with the checker as the reward). The stored
reward is the judge's score, the config refuses what has no judge, and the RM-gold agreement views
do not measure an RM that is not there."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
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


def test_a_half_adapter_demo_ships_fp16_weights_that_load_as_the_trained_ones(tiny_llama_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    from engine.demo import ADAPTER_WEIGHTS, DemoSpec, _thin
    from engine.models import attach_lora, load_causal_lm
    from engine.models.loading import hub_offline

    model = attach_lora(load_causal_lm(str(tiny_llama_dir), device="cpu").model, r=4, alpha=8)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    checkpoint = tmp_path / "run" / "checkpoints" / "step-2"
    with hub_offline():
        model.save_pretrained(str(checkpoint))
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    with torch.no_grad():
        trained = model(ids).logits  # (1, P, V)
    spec = DemoSpec("run", "t", tiny_config(steps=2), keep_every=1, half_adapter=True)
    _thin(tmp_path / "run", spec)
    assert {t.dtype for t in load_file(str(checkpoint / ADAPTER_WEIGHTS)).values()} == {torch.float16}
    with torch.no_grad():
        shipped = load_causal_lm(str(checkpoint), device="cpu").model(ids).logits
    real = torch.isfinite(trained)  # the filler tokens' logits are -inf in both
    assert torch.equal(real, torch.isfinite(shipped))
    assert torch.allclose(shipped[real], trained[real], atol=1e-3)
    assert not torch.allclose(shipped[real], trained[real], atol=0)  # the weights were rounded


# --- real check: what the learned RM costs ----------------------------------------------------------


def two_runs_frame(start: list[float], end: list[float]) -> pd.DataFrame:
    """A check's samples: per task one sample of the start and one of the end, with these scores."""
    rows = [
        {"policy": policy, "prompt_id": f"p{i}", "gold": score}
        for policy, scores in (("start", start), ("end", end))
        for i, score in enumerate(scores)
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("rm_end", "checker_end", "sign"),
    [
        ([0, 0, 1, 0] * 5, [1, 1, 1, 0] * 5, 1),
        ([1, 1, 1, 0] * 5, [0, 0, 1, 0] * 5, -1),
        ([0, 1] * 10, [0, 1] * 10, 0),
    ],
)
def test_rm_cost_is_the_checker_runs_gain_minus_the_rm_runs(tmp_path, rm_end, checker_end, sign):
    from engine.real_tools.check import rm_cost

    start = [0.0] * 20
    runs = {}
    for run_id, reward_model in (("r", "some/rm"), ("r-checker", GOLD_REWARD)):
        runs[run_id] = tmp_path / run_id
        config = PPOConfig().replace(reward_model=reward_model)
        RunWriter.create(runs[run_id], kind="ppo", config=config.to_dict(), seed=0)
    cost = rm_cost(
        runs["r"], runs["r-checker"], two_runs_frame(start, rm_end), two_runs_frame(start, checker_end)
    )
    assert cost["value"] == pytest.approx(np.mean(checker_end) - np.mean(rm_end))
    assert cost["rm_run"]["gain"] == pytest.approx(np.mean(rm_end))
    assert cost["checker_run"]["gain"] == pytest.approx(np.mean(checker_end))
    lo, hi = cost["interval"]
    assert (lo > 0, hi < 0, lo <= 0 <= hi) == (sign > 0, sign < 0, sign == 0)
    assert cost["settings_differ"] == [] and "the RM costs" in cost["detail"]


def test_rm_cost_without_a_checker_twin_says_the_run_does_not_show_it(tmp_path):
    from engine.real_tools.check import rm_cost

    frame = two_runs_frame([0.0], [1.0])
    for reward_model, why in (
        ("some/rm", "no run rewarded by the checker beside it"),
        (GOLD_REWARD, "itself"),
    ):
        run_dir = tmp_path / reward_model.replace("/", "_")
        RunWriter.create(
            run_dir, kind="ppo", config=PPOConfig().replace(reward_model=reward_model).to_dict(), seed=0
        )
        cost = rm_cost(run_dir, None, frame, None)
        assert (
            cost["value"] is None
            and cost["detail"].startswith("this run does not show it")
            and why in cost["detail"]
        )


@pytest.fixture
def tiny_twin_runs(tiny_llama_dir, tmp_path, monkeypatch):
    """Two 2-step runs of the tiny Llama on four real-world tasks: ``tiny`` with a (tiny) learned RM,
    ``tiny-checker`` the same with the judge as the reward."""
    from engine.ppo.build import Sources, prompt_item
    from engine.real_world.world import load_real_world
    from tests.ppo_fixtures import save_tiny_rm

    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    prompts = [prompt_item(t) for t in load_real_world().split("train")[::40][:4]]
    rm = save_tiny_rm(tmp_path / "rm")
    for run_id, reward_model in (("tiny", str(rm)), ("tiny-checker", GOLD_REWARD)):
        config = tiny_config(steps=2, save_every=2, probe_every=0, prompts_per_step=4)
        config = config.replace(policy=str(tiny_llama_dir), reward_model=reward_model)
        sources = Sources(str(tiny_llama_dir), reward_model, prompts, judge=length_judge)
        writer = RunWriter.create(tmp_path / "runs" / run_id, kind="ppo", config=config.to_dict(), seed=0)
        build_trainer(config, writer, sources=sources, device="cpu").train()
    return tmp_path / "runs"


def test_real_check_samples_the_checker_twin_beside_the_run(tiny_twin_runs, capsys):
    from engine.cli import main
    from engine.real_tools.check import saved_check

    assert main(
        ["real", "check", "--run", "tiny", "--prompts", "4", "--samples", "2", "--save", "--json"]
    ) in (0, 1)
    report = json.loads(capsys.readouterr().out)
    cost = report["rm_cost"]
    assert report["settings"]["checker_run"] == "tiny-checker@step-2"
    assert cost["n_prompts"] == 4 and cost["rm_run"]["start"] == cost["checker_run"]["start"]  # one start
    assert cost["rm_run"]["gain"] == report["R1"]["value"]
    assert cost["value"] == pytest.approx(cost["checker_run"]["end"] - cost["rm_run"]["end"], abs=1e-3)
    saved = pd.read_parquet(tiny_twin_runs / "tiny" / "evals" / "real_check.parquet")
    assert set(saved["policy"]) == {"start", "end"}  # the twin's samples are not kept in this run
    # Saved: the twin's own saved check beside the run gives the same comparison.
    assert saved_check(tiny_twin_runs / "tiny")["rm_cost"]["value"] is None  # the twin kept none yet
    assert main(
        ["real", "check", "--run", "tiny-checker", "--prompts", "4", "--samples", "2", "--save", "--json"]
    ) in (0, 1)
    twin_report = json.loads(capsys.readouterr().out)
    assert "rewarded by the checker itself" in twin_report["rm_cost"]["detail"]
    assert "the reward is the checker" in twin_report["R4"]["detail"]
    assert saved_check(tiny_twin_runs / "tiny")["rm_cost"] == cost
    # A named twin that is not rewarded by the checker is refused in one line.
    assert main(["real", "check", "--run", "tiny-checker", "--checker-run", "tiny", "--json"]) == 2
    assert main(["real", "check", "--run", "tiny", "--checker-run", "tiny", "--json"]) == 2
    assert "not rewarded by the checker" in capsys.readouterr().err


def test_rm_cost_names_the_settings_the_two_runs_differ_in_besides_the_reward(tmp_path):
    from engine.real_tools.check import other_differences

    dirs = []
    for run_id, config in (
        ("r", PPOConfig().replace(reward_model="some/rm")),
        ("same", PPOConfig().replace(reward_model=GOLD_REWARD)),
        ("longer", PPOConfig().replace(reward_model=GOLD_REWARD, steps=40)),
    ):
        dirs.append(tmp_path / run_id)
        RunWriter.create(dirs[-1], kind="ppo", config=config.to_dict(), seed=0)
    assert other_differences(dirs[0], dirs[1]) == [] and other_differences(dirs[0], dirs[2]) == ["steps"]
    record = json.loads((dirs[1] / "run.json").read_text())
    del record["config"]["run"]["kl_metric_every"]  # a record older than the setting: its default
    (dirs[1] / "run.json").write_text(json.dumps(record))
    assert other_differences(dirs[0], dirs[1]) == []


def test_gold_on_the_built_in_world_is_its_judge(fake_world_data_dir, monkeypatch):
    from engine.world import load_world

    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(fake_world_data_dir))
    sources = resolve_sources(PPOConfig().replace(reward_model=GOLD_REWARD))
    world = load_world()
    assert sources.reward_model == GOLD_REWARD and sources.policy == world.policy_source(None)
    prompts = [p.text for p in sources.prompts[:2]]
    assert list(sources.judge(prompts, ["a", "b"])) == list(world.gold_batch(prompts, ["a", "b"]))


def test_the_lab_rewards_with_the_judge_when_asked_for_gold(tiny_gpt2_dir, monkeypatch):
    """``sample --reward-model gold`` / the lab's reward box: the judge's score is the reward, as in a
    PPO run rewarded by it; a model without a judge here is a clear error, not a model lookup of 'gold'."""
    from engine.config import SamplingConfig
    from engine.lab import SamplingLab

    lab = SamplingLab(world=None)
    setting = SamplingConfig(max_new_tokens=6)
    with pytest.raises(ConfigError, match="rewards with the gold judge"):
        lab.sample(str(tiny_gpt2_dir), ["w1 w2"], setting, n_samples=3, seed=0, reward_source=GOLD_REWARD)
    monkeypatch.setattr(
        lab, "scorers", lambda source, loaded, prompts, reward_source: (reward_source, length_judge)
    )
    batch = lab.sample(
        str(tiny_gpt2_dir), ["w1 w2", "w3"], setting, n_samples=3, seed=0, reward_source=" gold"
    )
    assert batch.gold is not None and batch.rewards is not None
    assert batch.rewards.tolist() == batch.gold.tolist()
    assert all(score * 8 == round(score * 8) for score in batch.gold)  # the stand-in judge's scores
    assert lab._reward_models == {}  # noqa: SLF001 (no RM was looked for, let alone loaded)
