"""End-to-end PPO on a tiny model: rollouts and metrics land in the store; invariants hold; resume."""

from __future__ import annotations

import duckdb
import pytest
import torch

from engine.config import ConfigError
from engine.ppo.build import Sources, build_trainer, resume_step
from engine.ppo.config import PPOConfig, PPOHyperConfig, RunConfig
from engine.runs import list_checkpoints
from engine.store import RunWriter
from tests.ppo_fixtures import make_tiny_sources, one_thread, tiny_config  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def tiny_sources(tmp_path_factory) -> Sources:
    return make_tiny_sources(tmp_path_factory.mktemp("models"))[0]


def test_e2e_rollouts_and_metrics_in_store(tmp_path, tiny_sources):
    config = tiny_config()
    writer = RunWriter.create(tmp_path / "run", kind="ppo", config=config.to_dict(), seed=0)
    trainer = build_trainer(config, writer, sources=tiny_sources, device="cpu")
    results = []
    trainer.train(on_step=results.append)
    assert [r.step for r in results] == [1, 2, 3]
    m = results[0].metrics
    # first minibatch of the first epoch: the policy is the one that sampled, so ratio == 1
    assert abs(m["policy/ratio_first_minibatch"] - 1.0) < 1e-5
    # a fresh LoRA adapter (B = 0) is the reference: KL == 0 at step 1
    assert abs(m["objective/kl"]) < 1e-5
    for key in (
        "objective/kl",
        "objective/entropy",
        "objective/reward",
        "objective/gold",
        "policy/clipfrac",
        "policy/approxkl",
        "loss/policy",
        "loss/value",
        "val/explained_var",
        "response/length",
    ):
        assert key in m, key
    assert results[-1].metrics["objective/kl"] != 0.0  # the adapter has moved

    con = duckdb.connect()
    rel = con.sql(f"select * from read_parquet('{tmp_path}/run/rollouts/*.parquet')")
    rows = rel.fetchdf()
    assert len(rows) == 3 * 8 and sorted(rows.step.unique()) == [1, 2, 3]
    # probes every 5 steps from step 1, and at the last step; fixed prompts with 8 samples each
    probes = con.sql(f"select * from read_parquet('{tmp_path}/run/probes/*.parquet')").fetchdf()
    assert sorted(probes.step.unique()) == [1, 3] and probes.is_probe.all() and probes.advantage.isna().all()
    assert (probes.groupby(["step", "prompt_id"]).size() == 8).all()
    assert "probe/entropy" in results[0].metrics and "probe/entropy" not in results[1].metrics
    assert (rows.groupby(["step", "prompt_id"]).size() == 4).all()
    row = rows.iloc[0]
    n = int(row.length)
    for col in (
        "tokens",
        "token_ids",
        "entropy",
        "sampling_entropy",
        "max_prob",
        "sampled_prob",
        "n_candidates",
        "logprob",
        "ref_logprob",
        "value",
        "advantage",
    ):
        assert len(row[col]) == n, col
    assert rows.gold.notna().all() and rows.temperature.eq(0.9).all() and rows.top_k.eq(20).all()
    # top-k 20 reached the store: a token that ties with the 20th logit is kept as well (transformers' rule,
    # tests/test_sampling.py), and the bf16 logits of an avx512_bf16 CPU's base make ties common (21
    # seen on a Zen 4), so the bound holds for the typical position, not every one.
    counts = sorted(c for row in rows.n_candidates for c in row)
    assert counts[0] >= 1 and counts[len(counts) // 2] <= 20
    keys = con.sql(f"select distinct step from read_parquet('{tmp_path}/run/metrics/*.parquet')").fetchall()
    assert sorted(k[0] for k in keys) == [1, 2, 3]
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [2, 3]


def test_resume_continues_from_checkpoint(tmp_path, tiny_sources):
    config = tiny_config(steps=4)
    writer = RunWriter.create(tmp_path / "run", kind="ppo", config=config.to_dict(), seed=0)
    full = build_trainer(config, writer, sources=tiny_sources, device="cpu")
    reference = []
    full.train(on_step=reference.append)

    # a second run that "dies" after step 3 (checkpoint at 2), then resumes
    writer2 = RunWriter.create(tmp_path / "run2", kind="ppo", config=config.to_dict(), seed=0)
    first = build_trainer(config, writer2, sources=tiny_sources, device="cpu")
    for step in (1, 2, 3):
        first.log_step(first.iteration(step))
        if step == 2:
            first.save_checkpoint(step)
    again = build_trainer(config, RunWriter.open(tmp_path / "run2"), sources=tiny_sources, device="cpu")
    start = resume_step(again)
    assert start == 3 and RunWriter.open(tmp_path / "run2").logged_steps() == [1, 2]
    resumed = []
    again.train(start, on_step=resumed.append)
    assert [r.step for r in resumed] == [3, 4]
    assert RunWriter.open(tmp_path / "run2").logged_steps() == [1, 2, 3, 4]
    # the per-step seeds make the resumed steps redraw the same samples
    assert resumed[0].rows["token_ids"][0].tolist() == reference[2].rows["token_ids"][0].tolist()
    assert resumed[-1].metrics["objective/reward"] == pytest.approx(
        reference[-1].metrics["objective/reward"], abs=1e-4
    )


@pytest.mark.parametrize("precision", ["fp32", "bf16_grad", "bf16"])
def test_ratio_one_and_zero_kl_at_step_one_for_every_base_precision(precision, tiny_sources, monkeypatch):
    """Sampling, reference and update compute the same function in each precision mode."""
    monkeypatch.setattr("engine.ppo.trainer.bf16_matmul_is_fast", lambda device: True)  # any CPU runs bf16
    config = tiny_config(steps=1, prompts_per_step=4).replace(base_precision=precision)
    trainer = build_trainer(config, None, sources=tiny_sources, device="cpu")
    assert trainer.base_precision == precision
    m = trainer.iteration(1).metrics
    assert abs(m["policy/ratio_first_minibatch"] - 1.0) < 1e-5
    assert abs(m["objective/kl"]) < 1e-5
    assert m["guard/skipped_minibatches"] == 0


def test_bad_batch_arithmetic_and_negative_kl():
    with pytest.raises(ConfigError, match="not divisible"):
        PPOConfig(
            run=RunConfig(prompts_per_step=3, samples_per_prompt=1), ppo=PPOHyperConfig(num_minibatches=2)
        )
    with pytest.raises(ConfigError, match="kl_coef"):
        PPOHyperConfig(kl_coef=-0.1)
    with pytest.raises(ConfigError, match="unknown PPO setting"):
        PPOConfig().replace(kl_coeff=0.1)
    assert PPOConfig().replace(kl_coef=0.0, steps=3).run.steps == 3
    assert PPOConfig.from_dict(PPOConfig().to_dict()) == PPOConfig()
    with pytest.raises(ConfigError, match="base_precision"):
        PPOConfig().replace(base_precision="fp16")
    legacy = PPOConfig().to_dict()  # runs saved before base_precision replaced bf16_backward
    del legacy["ppo"]["base_precision"]
    legacy["ppo"]["bf16_backward"] = True
    assert PPOConfig.from_dict(legacy).ppo.base_precision == "bf16_grad"


@pytest.mark.parametrize(
    ("section", "field", "value", "message"),
    [
        ("model", "lora_r", 0, "lora_r must be an integer >= 1, got 0"),
        ("model", "sft_epoch", -1, "sft_epoch must be an integer >= 0 or None, got -1"),
        ("ppo", "kl_coef", float("inf"), "kl_coef must be a finite number >= 0, got inf"),
        ("ppo", "kl_estimator", "k2", "kl_estimator must be one of ('k1', 'k3'), got 'k2'"),
        ("ppo", "max_grad_norm", 0.0, "max_grad_norm must be > 0 or None, got 0.0"),
        ("ppo", "gamma", 1.5, "gamma must be in [0, 1], got 1.5"),
        (
            "ppo",
            "missing_eos_penalty",
            float("nan"),
            "missing_eos_penalty must be a number or None, got nan",
        ),
        (
            "ppo",
            "clip_cov_high",
            0.5,
            "the Clip-Cov band needs clip_cov_low < clip_cov_high, got 1.0, 0.5",
        ),
        ("run", "probe_every", -1, "probe_every must be an integer >= 0 (0 = no probes), got -1"),
        (
            "run",
            "probe_samples",
            1,
            "probe_samples must be an integer >= 2 (distinct responses need several), got 1",
        ),
        # a bool is not an integer setting (True passed as seed 1 before the rules became one table)
        ("run", "seed", True, "seed must be an integer >= 0, got True"),
    ],
)
def test_config_rules_name_the_field_and_the_value(section, field, value, message):
    from engine.ppo.config import SECTION_TYPES

    with pytest.raises(ConfigError) as caught:
        SECTION_TYPES[section](**{field: value})
    assert str(caught.value) == message


def test_nonfinite_step_is_skipped_not_logged(tmp_path, tiny_sources, monkeypatch):
    config = tiny_config(steps=1)
    writer = RunWriter.create(tmp_path / "run", kind="ppo", config=config.to_dict(), seed=0)
    trainer = build_trainer(config, writer, sources=tiny_sources, device="cpu")
    broken_rm = lambda ids, mask: torch.full((ids.shape[0],), float("nan"))  # noqa: E731
    monkeypatch.setattr(trainer.reward.model, "forward", broken_rm)
    result = trainer.iteration(1)
    assert result.skipped and result.rows is None and result.metrics["guard/bad_step"] == 1.0
    trainer.log_step(result)
    assert not (tmp_path / "run" / "rollouts").exists()


def test_bench_ppo_json_contract(capsys):
    """The tiny-ppo-cpu protocol's JSON (2 iterations: one warm-up, one measured; no timing asserts)."""
    import json

    from engine.__main__ import main

    assert main(["bench", "ppo", "--json", "--iterations", "2", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"] == "tiny-ppo-cpu"
    assert (
        result["optimizer_steps_per_iteration"],
        result["tokens_per_iteration"],
        result["ppo_epochs"],
    ) == (
        16,
        2048,
        4,
    )
    for key in ("seconds_per_iteration", "generation_seconds", "train_seconds", "peak_rss_mb"):
        assert result[key] > 0, key
    assert result["base_precision"] in ("fp32", "bf16")
    assert len(result["per_iteration"]) == 2


def _run_rows_and_metrics(tmp_path, name, tiny_sources, config):
    writer = RunWriter.create(tmp_path / name, kind="ppo", config=config.to_dict(), seed=config.run.seed)
    trainer = build_trainer(config, writer, sources=tiny_sources, device="cpu")
    results = []
    trainer.train(on_step=results.append)
    rows = duckdb.sql(
        f"select step, prompt_id, sample_idx, response, reward, logprob from "
        f"read_parquet('{tmp_path / name}/rollouts/*.parquet') order by step, prompt_id, sample_idx"
    ).fetchall()
    metrics = [{k: v for k, v in r.metrics.items() if not k.startswith("time/")} for r in results]
    return rows, metrics


def test_same_seed_reproduces_a_fresh_run(tmp_path, tiny_sources):
    """peft draws the LoRA init from the global generator: seeded from the run's seed before attaching."""
    config = tiny_config()
    torch.manual_seed(123)  # whatever the global generator's state before the run
    rows_a, metrics_a = _run_rows_and_metrics(tmp_path, "a", tiny_sources, config)
    torch.manual_seed(456)
    rows_b, metrics_b = _run_rows_and_metrics(tmp_path, "b", tiny_sources, config)
    assert rows_a == rows_b
    assert metrics_a == metrics_b


def test_entropy_before_and_after_each_update_are_measured(tmp_path, tiny_sources):
    from engine.store import ENTROPY_AFTER_UPDATE, ENTROPY_BEFORE_UPDATE

    trainer = build_trainer(tiny_config(steps=1), sources=tiny_sources, device="cpu")
    m = trainer.iteration(1).metrics
    assert m[ENTROPY_BEFORE_UPDATE] == pytest.approx(m["objective/entropy"], abs=1e-6)  # the same tokens
    assert m[ENTROPY_AFTER_UPDATE] != m[ENTROPY_BEFORE_UPDATE]  # the update moved the policy


def test_an_iteration_times_each_phase(tiny_sources):
    """The phase timings keep their keys (bench ppo and the pages read them); the probe has its own."""
    trainer = build_trainer(tiny_config(steps=2, probe_every=1), sources=tiny_sources, device="cpu")
    m = trainer.iteration(1).metrics
    timed = {k for k in m if k.startswith("time/")}
    assert timed == {"time/probe", "time/rollout", "time/score", "time/update", "time/rows", "time/step"}
    assert all(m[k] >= 0 for k in timed) and m["time/step"] >= m["time/rollout"] + m["time/update"]
    assert "policy/entropy" in m and m["policy/entropy"] > 0


@pytest.mark.parametrize(
    "settings",
    [{"cliprange_high": 0.28}, {"entropy_control": "clip_cov"}, {"entropy_control": "kl_cov"}],
    ids=["clip-higher", "clip-cov", "kl-cov"],
)
def test_entropy_control_settings_train(tmp_path, tiny_sources, settings):
    config = tiny_config(steps=1).replace(**settings)
    trainer = build_trainer(config, sources=tiny_sources, device="cpu")
    m = trainer.iteration(1).metrics
    assert abs(m["policy/ratio_first_minibatch"] - 1.0) < 1e-5
    key = {"clip_cov": "policy/clip_cov_frac", "kl_cov": "policy/kl_cov_frac"}.get(
        settings.get("entropy_control"), "policy/clipfrac_high"
    )
    assert key in m


def test_a_diverging_run_stops_at_that_step_and_keeps_the_earlier_ones(tmp_path, tiny_sources):
    """Two good steps, then a learning rate of 1e9: step 3 raises, naming itself and what broke; steps 1
    and 2 stay logged with their checkpoints, and nothing of step 3 is written."""
    from safetensors.torch import load_file

    from engine.ppo.update import TrainingDiverged
    from engine.runs import list_checkpoints

    config = tiny_config(steps=4, save_every=1)
    writer = RunWriter.create(tmp_path / "run", kind="ppo", config=config.to_dict(), seed=0)
    trainer = build_trainer(config, writer, sources=tiny_sources, device="cpu")

    def after_step(result) -> None:
        if result.step == 2:
            for group in trainer.optimizer.param_groups:
                group["lr"] = 1e9

    with pytest.raises(
        TrainingDiverged, match=r"^diverged at step 3: (loss is|gradient norm is|weights are) "
    ):
        trainer.train(on_step=after_step)
    assert RunWriter.open(tmp_path / "run").logged_steps() == [1, 2]
    for kind in ("rollouts", "metrics"):
        written = duckdb.sql(f"select distinct step from read_parquet('{tmp_path}/run/{kind}/*.parquet')")
        assert sorted(s for (s,) in written.fetchall()) == [1, 2], kind
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [1, 2]
    for _, path in list_checkpoints(tmp_path / "run"):
        for name in ("adapter_model.safetensors", "value_head.safetensors"):
            for key, tensor in load_file(path / name).items():
                assert torch.isfinite(tensor).all(), (path.name, name, key)


def test_a_policy_whose_rollout_overflows_has_diverged(tiny_sources):
    """Finite but huge weights whose rollout values overflow: the run stops (a bad score from the RM
    only skips its step, test_nonfinite_step_is_skipped_not_logged)."""
    from engine.ppo.update import TrainingDiverged

    trainer = build_trainer(tiny_config(steps=1), sources=tiny_sources, device="cpu")
    with torch.no_grad():
        trainer.value_head.summary.weight.fill_(3e38)  # finite; every value overflows to +-inf
    with pytest.raises(
        TrainingDiverged, match="^diverged at step 1: the policy's rollout log-probs or values"
    ):
        trainer.iteration(1)


def test_a_diverged_job_fails_with_one_error_line(tmp_path, capsys):
    """``python -m engine ppo --learning-rate 1e9``: status failed with the reason (jobs list shows it),
    one ``error:`` line and no traceback, a non-zero exit."""
    from engine.__main__ import main
    from engine.runs import read_status
    from tests.ppo_fixtures import make_tiny_sources

    sources, prompts_file = make_tiny_sources(tmp_path / "models")
    runs = tmp_path / "runs"
    flags = (
        f"--policy {sources.policy} --reward-model {sources.reward_model} --prompts-file {prompts_file} "
        "--lora-r 4 --lora-alpha 8 --prompts-per-step 2 --samples-per-prompt 4 --num-minibatches 2 "
        f"--max-new-tokens 8 --steps 3 --no-progress --runs-dir {runs} --run-id boom --learning-rate 1e9"
    )
    capsys.readouterr()
    assert main(["ppo", *flags.split()]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "diverged at step 1: " in errors[0], err
    status = read_status(runs / "boom")
    assert status["state"] == "failed" and "diverged at step 1: " in status["message"]
    assert main(["jobs", "--runs-dir", str(runs), "list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("boom")]
    assert len(listed) == 1 and "failed" in listed[0] and "diverged at step 1" in listed[0]


def test_a_checkpoint_torch_cannot_write_is_a_run_write_error(tmp_path, tiny_sources, monkeypatch):
    """torch.save reports a file it cannot open (a directory turned read-only mid-run) as a
    RuntimeError; the job must get the one-line RunWriteError it turns into 'resume once writable'."""
    from engine.runs.layout import RunWriteError

    config = tiny_config(steps=1)
    writer = RunWriter.create(tmp_path / "run", kind="ppo", config=config.to_dict(), seed=0)
    trainer = build_trainer(config, writer, sources=tiny_sources, device="cpu")

    def refuse(obj, path, *args, **kwargs):
        raise RuntimeError(f"File {path} cannot be opened.")

    monkeypatch.setattr(torch, "save", refuse)
    with pytest.raises(
        RunWriteError, match=r"could not write .*step-.*\.tmp \(a checkpoint\): .*cannot be opened"
    ):
        trainer.save_checkpoint(1)


@pytest.mark.parametrize("per_step", [4, 5, 6])
def test_a_step_draws_no_prompt_twice_and_a_pass_draws_each_once(tmp_path, tiny_sources, per_step):
    """6 prompts, 4 or 5 a step: steps straddle passes; none draws a prompt twice (its groups are its
    prompts), and each pass over the pool still draws every prompt once (6 a step: no straddle)."""
    config = tiny_config(steps=30, prompts_per_step=per_step)
    writer = RunWriter.create(tmp_path / "run", kind="ppo", config=config.to_dict(), seed=0)
    trainer = build_trainer(config, writer, sources=tiny_sources, device="cpu")
    drawn = [p.prompt_id for step in range(1, 31) for p in trainer.prompt_batch(step)]
    for step in range(30):
        ids = drawn[step * per_step : (step + 1) * per_step]
        assert len(set(ids)) == per_step, (step + 1, ids)
    for start in range(0, len(drawn), 6):
        assert sorted(drawn[start : start + 6]) == [f"p{i}" for i in range(6)]
    # the same draws from a fresh trainer asked for a late step first (a resumed run)
    again = build_trainer(config, writer, sources=tiny_sources, device="cpu")
    assert [p.prompt_id for p in again.prompt_batch(30)] == drawn[-per_step:]
