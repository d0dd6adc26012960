"""``python -m engine real build`` and the adapter RM, on the tiny Llama fixture (seconds); two slow
tests on the shipped RM over real SmolLM2."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.config import ConfigError
from engine.real_tools import build as real_build
from engine.real_tools.build import QUICK, RealBuildConfig, Samples, build_real, label_pairs
from engine.real_tools.rm_training import train_adapter_reward_model
from engine.real_world import Task
from engine.reward import (
    ADAPTER_CONFIG,
    AdapterRewardModel,
    AdapterRMSettings,
    load_reward_model,
    score_texts,
    score_token_rows,
)
from engine.sampling import chat_prompts, pad_right
from tests.ppo_fixtures import one_thread  # noqa: F401 (fixture)

CHAT_TEMPLATE = "{% for m in messages %}[BOS] {{ m['content'] }} [EOS] {% endfor %}{% if add_generation_prompt %}w39{% endif %}"
pytestmark = pytest.mark.usefixtures("one_thread")
REPO_DATA = Path(__file__).resolve().parent.parent / "data" / "real"


def parity_checker(task: Task, response: str) -> float:
    """A stand-in checker the tiny model's random words can both pass and fail."""
    return float(len(response.split()) % 2)


@pytest.fixture
def tiny_config(tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> RealBuildConfig:
    monkeypatch.setattr(real_build, "score", parity_checker)
    return RealBuildConfig(base=str(tiny_llama_dir), **QUICK)


def tiny_rm(tiny_llama_dir: Path, seed: int = 0) -> tuple[AdapterRewardModel, object]:
    """A tiny adapter RM whose LoRA weights are moved off zero (so the adapter changes the scores)."""
    torch.manual_seed(seed)
    model, tokenizer = AdapterRewardModel.build(
        AdapterRMSettings(base=str(tiny_llama_dir), top_layers=1, lora_r=2)
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    return model.eval(), tokenizer


def test_quick_build_writes_everything_and_its_rm_loads(tmp_path, tiny_config):
    out = tmp_path / "real"
    manifest = build_real(out, tiny_config)

    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "real.json",
            "rm",
            "tasks_train.jsonl",
            "tasks_held_out.jsonl",
            "samples_train.jsonl",
            "samples_held_out.jsonl",
            "pairs_train.jsonl",
        ]
    )
    assert not list(tmp_path.glob(".real*")), "the temporary directory is gone"
    assert sorted(p.name for p in (out / "rm").iterdir()) == ["adapter.safetensors", ADAPTER_CONFIG]
    assert json.loads((out / "real.json").read_text()) == manifest
    tasks = [json.loads(line) for line in (out / "tasks_train.jsonl").read_text().splitlines()]
    assert set(tasks[0]) == {"task_id", "family", "prompt", "answer"}
    assert len(tasks) == manifest["counts"]["tasks_train"] == 2 * len(manifest["families"])

    for key in (
        "version",
        "seed",
        "config",
        "base",
        "counts",
        "checker_mean",
        "rm",
        "timings",
        "machine",
        "files",
    ):
        assert key in manifest, key
    counts = manifest["counts"]
    assert counts["samples_train"] == 2 * len(manifest["families"]) * QUICK["samples_per_prompt"]
    assert counts["pairs_train"] > 0 and counts["pairs_train"] == len(
        (out / "pairs_train.jsonl").read_text().splitlines()
    )
    accuracy = manifest["rm"]["held_out_pair_accuracy"]["all"]
    assert accuracy["pairs"] > 0 and 0 <= accuracy["value"] <= 1
    assert manifest["rm"]["settings"]["base"] == tiny_config.base
    assert set(manifest["files"]) >= {"rm/adapter.safetensors", "tasks_train.jsonl", "pairs_train.jsonl"}

    # The saved RM scores the held-out samples as the build did.
    reward = load_reward_model(str(out / "rm"), device="cpu")
    held = [json.loads(line) for line in (out / "samples_held_out.jsonl").read_text().splitlines()]
    built = build_rows(tiny_config, out)
    scores = score_token_rows(reward.model, built, reward.tokenizer.pad_token_id)
    assert torch.allclose(scores, torch.tensor([h["rm_score"] for h in held]), atol=1e-5)


def build_rows(config: RealBuildConfig, out: Path) -> list[list[int]]:
    """The held-out samples' token rows, re-encoded from their texts (the tiny tokenizer is word-level,
    so this is exact)."""
    from engine.models import load_tokenizer

    tokenizer = load_tokenizer(config.base)
    prompts = {
        t["task_id"]: t["prompt"]
        for t in map(json.loads, (out / "tasks_held_out.jsonl").read_text().splitlines())
    }
    rows = []
    for sample in map(json.loads, (out / "samples_held_out.jsonl").read_text().splitlines()):
        prompt = chat_prompts(tokenizer, [prompts[sample["task_id"]]])[0]
        rows.append(
            tokenizer(prompt, add_special_tokens=False)["input_ids"]
            + tokenizer(sample["response"], add_special_tokens=False)["input_ids"]
        )
    return rows


def test_same_seed_same_tasks_samples_and_labels(tmp_path, tiny_config):
    names = ["tasks_train.jsonl", "tasks_held_out.jsonl", "samples_train.jsonl", "pairs_train.jsonl"]
    build_real(tmp_path / "a", tiny_config)
    build_real(tmp_path / "b", tiny_config)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    other = RealBuildConfig(**{**tiny_config.__dict__, "seed": 1})
    build_real(tmp_path / "c", other)
    assert (tmp_path / "a" / "tasks_train.jsonl").read_bytes() != (
        tmp_path / "c" / "tasks_train.jsonl"
    ).read_bytes()


def test_a_rebuild_replaces_the_old_build_whole(tmp_path, tiny_config):
    out = tmp_path / "real"
    out.mkdir()
    (out / "stale.txt").write_text("from an older build")
    build_real(out, tiny_config)
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real"]


def test_label_noise_flips_at_the_configured_rate():
    n = 4000
    tasks = [Task(f"t{i // 2}", "add-easy", "What is 1 + 1?", 2) for i in range(n)]
    samples = Samples(
        tasks, ["a"] * n, [[1]] * n, [float(i % 2) for i in range(n)]
    )  # right vs wrong per prompt
    clean = [pair for group in label_pairs(samples, RealBuildConfig(label_noise=0.0)) for pair in group]
    assert len(clean) == n // 2 and all(samples.scores[c] > samples.scores[r] and not f for c, r, f in clean)
    noisy = [pair for group in label_pairs(samples, RealBuildConfig(label_noise=0.1)) for pair in group]
    flipped = [f for _, _, f in noisy]
    assert 0.07 < sum(flipped) / len(flipped) < 0.13  # 2000 pairs: 0.1 +- 3 standard errors (0.0067)
    assert all((samples.scores[c] < samples.scores[r]) == f for c, r, f in noisy)
    # sigma(-gap / s) at gap 1 is the configured chance
    assert math.isclose(1 / (1 + math.exp(1 / RealBuildConfig(label_noise=0.1).noise_scale)), 0.1)


def test_the_default_task_sets_can_be_drawn():
    from engine.real_world import make_task_sets

    config = RealBuildConfig()
    sets = make_task_sets(
        config.seed, train_per_family=config.train_tasks, held_out_per_family=config.held_out_tasks
    )
    assert len(sets.held_out) == config.held_out_tasks * 9


def test_bad_config_is_refused():
    with pytest.raises(ConfigError, match="label_noise"):
        RealBuildConfig(label_noise=0.5)
    with pytest.raises(ConfigError, match="rm_epochs must be >= 1"):
        RealBuildConfig(rm_epochs=0)
    with pytest.raises(ConfigError, match="rm_train_prompts"):
        RealBuildConfig(train_tasks=2, rm_train_prompts=3)
    with pytest.raises(ConfigError, match=r"rm_families must name task families; unknown: \['add-huge'\]"):
        RealBuildConfig(rm_families=("add-easy", "add-huge"))
    with pytest.raises(ConfigError, match="rm_families"):
        RealBuildConfig(rm_families=())


def test_a_build_removes_what_killed_builds_left_and_leaves_a_running_ones(tmp_path, tiny_config):
    killed = tmp_path / ".real.building-999999999"  # no such process
    running = tmp_path / f".real.building-{os.getppid()}"
    for path in (killed, running):
        (path / "rm").mkdir(parents=True)
    build_real(tmp_path / "real", tiny_config)
    assert not killed.exists() and running.is_dir()
    assert (tmp_path / "real" / "real.json").is_file()


def test_the_rm_is_trained_and_measured_on_its_families_only(tmp_path, tiny_config):
    config = RealBuildConfig(**{**tiny_config.__dict__, "rm_families": ("add-easy", "mul-easy")})
    manifest = build_real(tmp_path / "real", config)
    for name in ("samples_train.jsonl", "samples_held_out.jsonl"):
        rows = [json.loads(line) for line in (tmp_path / "real" / name).read_text().splitlines()]
        assert {row["family"] for row in rows} == {"add-easy", "mul-easy"}, name
    assert manifest["counts"]["samples_train"] == 2 * 2 * QUICK["samples_per_prompt"]
    # the task sets PPO draws from keep every family
    assert manifest["counts"]["tasks_train"] == 2 * 9
    assert manifest["config"]["rm_families"] == ["add-easy", "mul-easy"]


def test_upper_of_lower_is_the_forward(tiny_llama_dir):
    model, _ = tiny_rm(tiny_llama_dir)
    ids = torch.randint(4, 40, (3, 7))
    right = torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 3 + [0] * 4], dtype=torch.bool)
    left = right.flip(-1)
    for mask in (right, left):
        with torch.no_grad():
            full = model(ids, mask)
            split = model.upper(model.lower(ids, mask), mask)
        assert torch.allclose(full, split, atol=1e-5)
    # padding is not read: a row scores the same alone and in a padded batch
    with torch.no_grad():
        alone = model(ids[2:, :3], right[2:, :3])
        batched = model(ids, right)[2:]
    assert torch.allclose(alone, batched, atol=1e-5)


def test_save_load_round_trip_gives_identical_scores(tmp_path, tiny_llama_dir):
    model, tokenizer = tiny_rm(tiny_llama_dir)
    model.save(tmp_path / "rm")
    saved = json.loads((tmp_path / "rm" / ADAPTER_CONFIG).read_text())
    assert saved["base"] == str(tiny_llama_dir) and saved["chat_template"] is True
    reward = load_reward_model(str(tmp_path / "rm"), device="cpu")
    ids, mask = pad_right([[5, 6, 7, 8], [9, 10], [11, 12, 13]], tokenizer.pad_token_id)
    with torch.no_grad():
        assert torch.equal(reward.model(ids, mask), model(ids, mask))
    assert not any(p.requires_grad for p in reward.model.parameters())
    # only the adapter and the head are saved
    from safetensors.torch import load_file

    assert all(
        k.startswith("head.") or "lora_" in k for k in load_file(str(tmp_path / "rm" / "adapter.safetensors"))
    )


def test_a_damaged_adapter_rm_is_a_config_error(tmp_path, tiny_llama_dir):
    model, _ = tiny_rm(tiny_llama_dir)
    model.save(tmp_path / "rm")
    settings = json.loads((tmp_path / "rm" / ADAPTER_CONFIG).read_text())
    (tmp_path / "rm" / ADAPTER_CONFIG).write_text(json.dumps(settings | {"top_layers": 2}))
    with pytest.raises(ConfigError, match="does not match"):
        load_reward_model(str(tmp_path / "rm"), device="cpu")


def test_score_texts_reads_the_prompt_in_the_chat_template(tiny_llama_dir):
    from engine.models import LoadedModel

    model, tokenizer = tiny_rm(tiny_llama_dir)
    tokenizer.chat_template = CHAT_TEMPLATE
    reward = LoadedModel(model=model, tokenizer=tokenizer, source="x", path=None)
    prompts, responses = ["w1 w2", "w3"], ["w4 w5 [EOS]", "w6"]
    templated = chat_prompts(tokenizer, prompts)
    assert templated[0] != prompts[0]
    rows = [
        tokenizer(p, add_special_tokens=False)["input_ids"]
        + tokenizer(r, add_special_tokens=False)["input_ids"]
        for p, r in zip(templated, responses, strict=True)
    ]
    expected = score_token_rows(model, rows, tokenizer.pad_token_id)
    assert torch.allclose(score_texts(reward, prompts, responses), expected, atol=1e-6)


def test_training_learns_a_separable_preference(tiny_llama_dir):
    model, tokenizer = tiny_rm(tiny_llama_dir)
    rng = random.Random(0)
    rows, groups = [], []
    for g in range(12):  # chosen answers end in w5, rejected ones in w6
        prefix = [rng.randrange(4, 40) for _ in range(4)]
        rows += [prefix + [9, 5], prefix + [9, 6], prefix + [10, 5]]
        groups.append([(3 * g, 3 * g + 1), (3 * g + 2, 3 * g + 1)])
    pairs = [pair for group in groups for pair in group]

    def accuracy() -> float:
        scores = score_token_rows(model, rows, tokenizer.pad_token_id)
        return sum(float(scores[c] > scores[r]) for c, r in pairs) / len(pairs)

    before = accuracy()
    losses = train_adapter_reward_model(
        model, rows, groups, pad_id=tokenizer.pad_token_id, epochs=25, batch_size=9, lr=2e-2, seed=0
    )
    assert accuracy() == 1.0 > before
    assert sum(losses[-3:]) < sum(losses[:3])


def test_cli_quick_build_and_bad_out(tmp_path, tiny_llama_dir, monkeypatch, capsys):
    monkeypatch.setattr(real_build, "score", parity_checker)
    out = tmp_path / "real"
    quick = ["real", "build", "--quick", "--base", str(tiny_llama_dir)]
    assert main([*quick, "--rm-families", "add-easy", "number-only", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["pairs_train"] > 0 and "rm_held_out_pair_accuracy" in printed
    assert (out / "rm" / ADAPTER_CONFIG).is_file()
    assert json.loads((out / "real.json").read_text())["config"]["rm_families"] == ["add-easy", "number-only"]

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert (
        main(["real", "build", "--quick", "--base", str(tiny_llama_dir), "--out", str(blocker / "real")]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


@pytest.mark.slow
def test_shipped_rm_prefers_smollm2s_right_answers_on_held_out_tasks():
    """The shipped RM over real SmolLM2, loaded as PPO loads it: on SmolLM2's own answers to held-out
    arithmetic tasks (what PPO samples, not hand-written answers), it ranks right above wrong more
    often than not, and scores them as the build recorded (the build's figure is over all its pairs)."""
    from engine.agreement import pairwise_agreement

    if not (REPO_DATA / "rm" / ADAPTER_CONFIG).is_file():
        pytest.skip("data/real is not built")
    reward = load_reward_model(str(REPO_DATA / "rm"), device="cpu")
    prompts = {
        t["task_id"]: t["prompt"] for t in map(json.loads, (REPO_DATA / "tasks_held_out.jsonl").open())
    }
    samples = [json.loads(line) for line in (REPO_DATA / "samples_held_out.jsonl").read_text().splitlines()]
    mixed = [tid for tid in dict.fromkeys(s["task_id"] for s in samples if s["family"] == "mul-easy")
             if len({s["score"] for s in samples if s["task_id"] == tid}) > 1][:3]  # fmt: skip
    chosen = [s for s in samples if s["task_id"] in mixed]
    scores = score_texts(reward, [prompts[s["task_id"]] for s in chosen], [s["response"] for s in chosen])
    # the recorded scores are of the sampled tokens; re-tokenising an answer's text gives them back
    # for most answers (not all: a text can have a shorter tokenisation than the one sampled)
    recorded = torch.tensor([s["rm_score"] for s in chosen])
    assert ((scores - recorded).abs() < 1e-3).float().mean() > 0.8
    agreement, pairs = pairwise_agreement(
        scores.tolist(), [s["score"] for s in chosen], [s["task_id"] for s in chosen]
    )
    assert pairs > 0 and agreement > 0.5, (agreement, pairs)
