"""PPO on the real world (issue 26): ``--policy smollm2`` resolves to the real world's tasks, RM and
checker; checkpoints record the named base; ``real check``'s statistics against data pointing both
ways; ``real check`` and ``analyse coverage --prompts real-held-out`` end to end on a tiny run.
Every test here runs on tiny models; the real SmolLM2 is the slow test at the end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.cli import main
from engine.config import ConfigError
from engine.ppo.build import Sources, build_trainer, record_named_base, resolve_sources
from engine.ppo.presets import PRESETS, preset_config
from engine.real_tools.check import END, START, measure, r4_agreement, real_check, saved_check
from engine.real_world import FAMILIES, make_task_sets
from engine.real_world.world import FALLBACK_COUNTS, canonical_answer, is_correct, load_real_world
from engine.store import RunWriter
from tests.ppo_fixtures import one_thread, save_tiny_rm, tiny_config  # noqa: F401 (fixture)


@pytest.fixture
def real_data(tmp_path, monkeypatch) -> Path:
    """A data dir whose real world has a (stand-in) reward model; WORKBENCH_DATA_DIR points at it."""
    rm = tmp_path / "data" / "real" / "rm"
    rm.mkdir(parents=True)
    (rm / "config.json").write_text("{}")
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


# --- sources ----------------------------------------------------------------------------------------


def test_policy_smollm2_is_the_real_world_with_its_rm_tasks_and_checker(real_data):
    sources = resolve_sources(preset_config("smollm2-cpu"))
    tasks = make_task_sets(0, **FALLBACK_COUNTS)  # no task sets built: drawn from the seed
    assert (sources.policy, sources.reward_model) == ("smollm2", str(real_data / "real" / "rm"))
    assert [p.text for p in sources.prompts] == [t.prompt for t in tasks.train]
    assert {p.family for p in sources.prompts} == {t.family for t in tasks.train}
    task = tasks.train[0]  # add-easy
    assert sources.judge(
        [task.prompt, task.prompt], [f"It is {task.answer}.", f"It is {task.answer + 1}."]
    ) == [1, 0]
    assert sources.judge(["not a task"], ["12"]) == [0.0]  # a text the world cannot check


def test_the_real_worlds_families_filter_its_prompts(real_data):
    sources = resolve_sources(preset_config("smollm2-cpu", families=("mul-easy", "exact-words")))
    assert {p.family for p in sources.prompts} == {"mul-easy", "exact-words"}
    with pytest.raises(ConfigError, match="unknown prompt families"):
        resolve_sources(preset_config("smollm2-cpu", families=("count",)))


def test_without_a_built_reward_model_the_error_says_run_real_build(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="python -m engine real build"):
        resolve_sources(preset_config("smollm2-cpu"))


def test_an_explicit_rm_and_prompts_file_leave_the_real_world(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))  # no real world built: not needed
    prompts = tmp_path / "p.txt"
    prompts.write_text("hello\n")
    config = preset_config("smollm2-cpu", reward_model="some/rm", prompts_file=str(prompts))
    sources = resolve_sources(config)
    assert (sources.reward_model, [p.text for p in sources.prompts], sources.judge) == (
        "some/rm",
        ["hello"],
        None,
    )


def test_task_sets_shipped_in_data_real_are_read_and_bad_ones_refused(real_data):
    sets = make_task_sets(5, train_per_family=2, held_out_per_family=1, families=["add-easy"])
    for split, tasks in (("train", sets.train), ("held_out", sets.held_out)):
        (real_data / "real" / f"tasks_{split}.jsonl").write_text(
            "".join(json.dumps(t.as_dict()) + "\n" for t in tasks)
        )
    world = load_real_world()
    assert (world.tasks.train, world.tasks.held_out) == (sets.train, sets.held_out)
    assert world.source == str(real_data / "real")
    (real_data / "real" / "tasks_train.jsonl").write_text('{"task_id": "x"}\n')
    with pytest.raises(ConfigError, match="cannot read the real world's tasks"):
        load_real_world()


def test_correct_is_full_credit_and_answers_are_what_the_checker_reads():
    assert is_correct(1.0) and not is_correct(0.5)
    assert canonical_answer("add-easy", "What is 7 + 5?", "7 + 5 = 12.") == "12"
    assert canonical_answer("add-easy", "What is 7 + 5?", "no idea") == ""
    assert canonical_answer("exact-words", "Describe rain in exactly 2 words.", "Wet  Drops") == "wet drops"


def test_the_preset_is_a_valid_config_for_two_cores():
    config = preset_config("smollm2-cpu")
    assert (config.model.policy, config.run.batch_size, config.sampling.max_new_tokens) == ("smollm2", 32, 16)
    assert set(PRESETS["smollm2-cpu"]) <= {*config.to_dict()["model"], *config.to_dict()["ppo"],
                                           *config.to_dict()["run"], *config.to_dict()["sampling"]}  # fmt: skip
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_config("gpu-farm")


def test_ppo_cli_preset_with_flags_over_it(monkeypatch):
    from engine.cli import build_parser
    from engine.ppo.argv import config_from_args

    args = build_parser().parse_args(["ppo", "--preset", "smollm2-cpu", "--steps", "3"])
    config = config_from_args(args, preset_config(args.preset))
    assert (config.model.policy, config.run.steps, config.run.prompts_per_step) == ("smollm2", 3, 8)


# --- checkpoints record the named base -------------------------------------------------------------


def test_an_adapter_of_a_named_source_records_the_name_not_the_cache_path(tiny_llama_dir, tmp_path):
    from engine.models import attach_lora, load_causal_lm
    from engine.models.loading import hub_offline

    for source, recorded in (("smollm2", "smollm2"), (str(tiny_llama_dir), str(tiny_llama_dir))):
        model = load_causal_lm(str(tiny_llama_dir), device="cpu").model
        record_named_base(model, source)
        with hub_offline():
            attach_lora(model, r=2, alpha=4).save_pretrained(str(tmp_path / "a"))
        assert (
            json.loads((tmp_path / "a" / "adapter_config.json").read_text())["base_model_name_or_path"]
            == recorded
        )


# --- real check's statistics ------------------------------------------------------------------------


def samples_frame(start_correct: list[list[int]], end_correct: list[list[int]]) -> pd.DataFrame:
    """Samples of the two policies: per prompt, a 1/0 score per sample (entropy falls where it is right)."""
    rows = []
    for policy, table in ((START, start_correct), (END, end_correct)):
        for i, scores in enumerate(table):
            for s in scores:
                rows.append(
                    {"policy": policy, "prompt_id": f"p{i}", "gold": float(s), "correct": bool(s),
                     "token_entropy": 0.5 if s else 2.0, "n_tokens": 4}
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_measure_reads_a_gain_as_a_gain_with_its_interval():
    rng = np.random.default_rng(0)
    start = [[int(x) for x in rng.random(4) < 0.1] for _ in range(20)]
    end = [[int(x) for x in rng.random(4) < 0.7] for _ in range(20)]
    r = measure(samples_frame(start, end), 4)
    assert r["R1"]["ok"] and r["R1"]["value"] >= 0.2
    assert r["R1"]["start"] == pytest.approx(np.mean(start)) and r["R1"]["end"] == pytest.approx(np.mean(end))
    lo, hi = r["R1"]["interval"]
    assert 0 < lo <= r["R1"]["value"] <= hi
    assert r["R2"]["ok"] and r["R2"]["value"] < 0  # more right answers: lower entropy here
    assert r["R3"]["ok"] and r["R3"]["pass_at_k"]["k"] == 4
    assert r["R3"]["pass_at_k"]["start"] == pytest.approx(np.mean([max(s) for s in start]))
    assert "pass@4" in r["R3"]["detail"] and "90% interval" in r["R1"]["detail"]


def test_measure_reads_no_change_as_no_change():
    same = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]] * 3
    r = measure(samples_frame(same, same), 4)
    assert (r["R1"]["ok"], r["R1"]["value"], r["R2"]["ok"], r["R3"]["ok"]) == (False, 0.0, False, False)


def test_measure_reads_a_loss_as_a_loss():
    good, bad = [[1, 1, 1, 0]] * 10, [[0, 0, 0, 1]] * 10
    r = measure(samples_frame(good, bad), 4)
    assert not r["R1"]["ok"] and r["R1"]["value"] == pytest.approx(-0.5)
    assert not r["R2"]["ok"] and r["R2"]["value"] > 0


# --- end to end on a tiny run ------------------------------------------------------------------------


def parity_judge(prompts: list[str], responses: list[str]) -> list[float]:
    return [float(len(r) % 2) for r in responses]


@pytest.fixture
def tiny_real_run(tiny_llama_dir, tmp_path, monkeypatch) -> tuple[str, Path]:
    """A 2-step run of the tiny Llama on four real-world tasks; its judge scores a response by the
    parity of its length (the tiny model's words are no answers, and R4 needs scores that differ
    within a prompt)."""
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    world = load_real_world()
    prompts = world.split("train")[::40][:4]
    from engine.ppo.build import prompt_item

    rm = save_tiny_rm(tmp_path / "rm")
    sources = Sources(str(tiny_llama_dir), str(rm), [prompt_item(t) for t in prompts], judge=parity_judge)
    config = tiny_config(steps=2, save_every=2, probe_every=0, prompts_per_step=4).replace(
        policy=str(tiny_llama_dir)
    )
    writer = RunWriter.create(tmp_path / "runs" / "tiny-real", kind="ppo", config=config.to_dict(), seed=0)
    build_trainer(config, writer, sources=sources, device="cpu").train()
    return "tiny-real", tmp_path / "runs"


def test_real_check_end_to_end_on_a_tiny_run(tiny_real_run, capsys):
    run_id, runs = tiny_real_run
    argv = ["real", "check", "--run", run_id, "--prompts", "9", "--samples", "2", "--save", "--json"]
    assert main(argv) in (0, 1)
    report = json.loads(capsys.readouterr().out)
    assert report["run"]["run_id"] == run_id and report["run"]["step"] == 2
    assert (report["settings"]["n_prompts"], report["settings"]["samples_per_prompt"]) == (9, 2)
    assert report["settings"]["families"] == sorted(FAMILIES)  # the run named no families: all of them
    for key in ("R1", "R2", "R3"):
        assert {"ok", "value", "detail", "start", "end", "interval"} <= set(report[key])
    assert report["R3"]["pass_at_k"]["k"] == 2
    assert report["cpu"]["ok"] is None and "load average" in report["cpu"]["detail"]
    r4 = report["R4"]
    assert r4 == r4_agreement(runs / run_id)
    assert r4["steps"] == [1, 2] and min(r4["n_pairs"]) > 0 and 0 <= r4["start"] <= 1
    saved = saved_check(runs / run_id)  # R1-R4 again, from the kept samples alone
    assert saved == {key: report[key] for key in ("R1", "R2", "R3", "R4", "rm_cost")}
    assert len(pd.read_parquet(runs / run_id / "evals" / "real_check.parquet")) == 2 * 9 * 2


def test_real_check_refuses_an_unknown_run_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))
    assert main(["real", "check", "--run", "nosuch", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_analyse_coverage_on_the_real_held_out_tasks(tiny_real_run, tmp_path, capsys):
    run_id, _ = tiny_real_run
    argv = ["analyse", "coverage", "--policy", f"{run_id}@step-2", "--prompts", "real-held-out"]
    assert main([*argv, "--samples", "2", "--max-prompts", "9", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    policy = report["policies"][f"{run_id}@step-2"]
    assert (policy["n_prompts"], policy["n_samples"], policy["step"]) == (9, 18, 2)
    assert set(policy["by_family"]) == set(FAMILIES)  # 9 prompts spread over the nine families
    assert report["thresholds"] == {f: 1.0 for f in FAMILIES}
    samples = pd.read_parquet(report["samples_path"])
    assert samples["correct"].tolist() == [g >= 1.0 for g in samples["gold"]]


def test_real_check_measures_the_families_the_run_trained_on(tiny_real_run):
    run_id, runs = tiny_real_run
    record_path = runs / run_id / "run.json"
    record = json.loads(record_path.read_text())
    record["config"]["run"]["families"] = ["mul-easy", "number-only"]
    record_path.write_text(json.dumps(record))
    report = real_check(run_id, runs_root=runs, prompts=4, samples=2)
    assert (
        report["settings"]["families"] == ["mul-easy", "number-only"] and report["settings"]["n_prompts"] == 4
    )


# --- the real SmolLM2 --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_smollm2_checkpoint_loads_by_its_run_reference_on_the_named_base(tmp_path):
    """An adapter trained on smollm2 names ``smollm2`` as its base and loads as RUN@step-K, its
    adapter changing the logits (the base is found by name, not by this machine's cache path)."""
    import torch

    from engine.models import attach_lora, load_causal_lm
    from engine.models.loading import hub_offline
    from engine.runs.layout import TRAINER_STATE
    from engine.world_tools.coverage import resolve_policy

    base = load_causal_lm("smollm2", device="cpu")
    record_named_base(base.model, "smollm2")
    torch.manual_seed(0)
    model = attach_lora(base.model, r=2, alpha=4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    run = tmp_path / "runs" / "mine"
    with hub_offline():
        model.save_pretrained(str(run / "checkpoints" / "step-3"))
    (run / "checkpoints" / "step-3" / TRAINER_STATE).write_text('{"step": 3}')  # a complete checkpoint
    (run / "run.json").write_text(json.dumps({"run_id": "mine", "config": {"model": {"policy": "smollm2"}}}))
    policy = resolve_policy("mine@step-3", runs_root=tmp_path / "runs")
    adapter = json.loads((Path(policy.source) / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "smollm2"
    loaded = load_causal_lm(policy.source, device="cpu")
    ids = base.tokenizer("What is 7 + 5?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        tuned = loaded.model(ids).logits  # (1, P, V)
        with loaded.model.disable_adapter():
            plain = loaded.model(ids).logits
    assert not torch.allclose(tuned, plain)
