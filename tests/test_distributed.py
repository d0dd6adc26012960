"""Data-parallel PPO on torch.distributed: 2 CPU processes (gloo, torch.multiprocessing spawn) against
a 1-process run of the same config.

Shown: the world size is 2 and the backend gloo; on fixed rollouts the all-reduced gradient is the
mean of the per-rank gradients; the parameters are identical on both ranks after every step; the
store holds exactly the global batch of each step, once each, with both ranks' rows; the 2-process
run's loss and KL agree with the 1-process run's within the tolerances below (not bit-equal: each
rank samples and whitens its own shard). And the job as the app launches it, under torchrun: its
ranks stop when torchrun is killed, and ``jobs stop`` stops them without a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import torch

from engine.config import ConfigError
from engine.ppo.config import ModelConfig, PPOConfig, PPOHyperConfig, RunConfig
from engine.ppo.distributed import SINGLE, Dist, init_from_env
from engine.ppo.launch import Job, launch
from engine.runs import effective_state, read_status
from tests.ppo_fixtures import one_thread, save_tiny_rm  # noqa: F401 (fixture)
from tests.tiny_models import save_tiny

pytestmark = pytest.mark.slow

STEPS = 3
# 1- vs 2-process agreement on the same seeded data (same prompts per step, seed, models): KL to the
# reference is 0 at step 1 in both (a fresh adapter) and small after; the losses differ by sampling
# and per-rank whitening. Measured (printed by the test): |dKL| <= 0.0034, |dloss| <= 0.091.
KL_ATOL = 0.02
LOSS_ATOL = 0.25


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_config(root: Path) -> PPOConfig:
    policy = save_tiny(root / "policy")
    rm = save_tiny_rm(root / "rm")
    prompts = root / "prompts.jsonl"
    lines = [
        json.dumps({"id": f"q{i}", "prompt": f"w{i} w{i + 1} w{i + 2}", "family": "ab"[i % 2]})
        for i in range(8)
    ]
    prompts.write_text("\n".join(lines) + "\n")
    return PPOConfig(
        model=ModelConfig(policy=str(policy), reward_model=str(rm), lora_r=4, lora_alpha=8),
        ppo=PPOHyperConfig(ppo_epochs=2, num_minibatches=2, kl_coef=0.1, learning_rate=1e-3),
        run=RunConfig(
            steps=STEPS, prompts_per_step=4, samples_per_prompt=2, save_every=2, prompts_file=str(prompts)
        ),
    ).replace(max_new_tokens=8)


def flat_params(trainer) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in trainer.trainable_parameters()])


def gathered(t: torch.Tensor, world: int) -> list[torch.Tensor]:
    import torch.distributed as tdist

    out = [torch.zeros_like(t) for _ in range(world)]
    tdist.all_gather(out, t)
    return out


def check_gradient_mean(config: PPOConfig, dist: Dist) -> float:
    """On a fixed rollout of each rank's shard: the all-reduced gradient == the mean of the per-rank ones."""
    from engine.ppo.build import build_trainer
    from engine.ppo.rollout import policy_forward, rollout

    trainer = build_trainer(config, dist=dist, device="cpu")
    texts = [p.text for p in dist.shard(trainer.prompt_batch(1))]
    ids, mask = trainer.encode(texts)
    gen = torch.Generator().manual_seed(100 + dist.rank)
    ro = rollout(
        trainer.model, trainer.value_head, ids, mask, config.sampling,
        eos_token_id=trainer.tokenizer.eos_token_id, pad_token_id=trainer.tokenizer.pad_token_id, generator=gen,
    )  # fmt: skip
    logprobs, values, _ = policy_forward(
        trainer.model,
        ro.sequences,
        ro.attention_mask,
        ro.prompt_ids.shape[1],
        ro.temperature,
        trainer.value_head,
    )
    loss = -(logprobs * ro.response_mask).sum() / ro.response_mask.sum() + (values**2).mean()
    params = trainer.trainable_parameters()
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    local = torch.cat([p.grad.reshape(-1) for p in params]).clone()
    expected = torch.stack(gathered(local, dist.world_size)).mean(0)
    dist.mean_gradients_(params)
    reduced = torch.cat([p.grad.reshape(-1) for p in params])
    assert not torch.equal(*gathered(local, dist.world_size)), "the ranks' shards gave the same gradient"
    return float((reduced - expected).abs().max())


def worker(rank: int, world: int, port: int, root: str) -> None:
    """One rank: join the group from the environment (as under torchrun), check, then run the job."""
    import torch.distributed as tdist

    from engine.ppo.job import run_job
    from engine.ppo.trainer import PPOTrainer

    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    root_path = Path(root)
    config = PPOConfig.from_dict(json.loads((root_path / "config.json").read_text()))
    dist, device = init_from_env("cpu")
    report: dict = {
        "world_size": tdist.get_world_size(),
        "backend": tdist.get_backend(),
        "device": str(device),
    }
    report["grad_mean_max_abs_diff"] = check_gradient_mean(config, dist)

    # Parameters after every step, compared across the ranks (every rank calls log_step once per step).
    diffs: list[float] = []
    log_step = PPOTrainer.log_step

    def checked_log_step(self, result) -> None:
        log_step(self, result)
        a, b = gathered(flat_params(self), world)
        diffs.append(float((a - b).abs().max()))

    PPOTrainer.log_step = checked_log_step
    run_job(config, root_path / "runs" / "dp2", progress=False)
    report["param_diffs"] = diffs
    (root_path / f"rank{rank}.json").write_text(json.dumps(report))


def test_world_size_one_without_launcher(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "0")  # a stray LOCAL_RANK alone starts no group
    assert init_from_env("cpu") == (SINGLE, torch.device("cpu"))


def test_processes_need_a_launcher(tmp_path, monkeypatch):
    from engine.ppo.job import run_job

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    config = PPOConfig(run=RunConfig(prompts_per_step=4, samples_per_prompt=2, processes=2))
    with pytest.raises(ConfigError, match="torchrun"):
        run_job(config, tmp_path / "run")
    with pytest.raises(ConfigError, match="split evenly"):
        RunConfig(prompts_per_step=3, processes=2)


def test_two_processes_match_one(tmp_path, monkeypatch):
    import torch.multiprocessing as mp

    from engine.ppo.job import run_job

    config = make_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    try:
        mp.spawn(worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    except (mp.ProcessExitedException, mp.ProcessRaisedException) as exc:
        # Twice in a full suite of a fresh clone on the 2-core EPYC a rank died while starting, before
        # any check: by SIGABRT inside gloo ("terminate called without an active exception"), and by
        # "cannot import name 'AutoModelForCausalLM' from 'transformers'" on its first import. Neither
        # showed in 14 runs of this file alone. Such a start-up death is retried once on a fresh port;
        # an assertion or any other error fails the test.
        started_badly = getattr(exc, "signal_name", None) is not None or "ImportError" in str(exc)
        if not started_badly:
            raise
        shutil.rmtree(tmp_path / "runs", ignore_errors=True)
        mp.spawn(worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for report in reports:
        assert report["world_size"] == 2 and report["backend"] == "gloo"
        assert report["grad_mean_max_abs_diff"] < 1e-6
        assert len(report["param_diffs"]) == STEPS and max(report["param_diffs"]) == 0.0

    dp2 = tmp_path / "runs" / "dp2"
    record = json.loads((dp2 / "run.json").read_text())
    assert record["config"]["run"]["processes"] == 2
    con = duckdb.connect()
    rows = con.sql(
        f"select step, prompt_id, sample_idx, rank from read_parquet('{dp2}/rollouts/*.parquet')"
    ).df()
    batch = config.run.batch_size
    assert rows.groupby("step").size().tolist() == [batch] * STEPS
    assert not rows.duplicated(["step", "prompt_id", "sample_idx"]).any()
    assert (rows.groupby(["step", "rank"]).size() == batch // 2).all()  # each rank's shard, once
    assert sorted(rows["rank"].unique()) == [0, 1]
    assert sorted(p.name for p in (dp2 / "checkpoints").iterdir()) == ["step-2", "step-3"]

    # The same config in one process.
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    run_job(config, tmp_path / "runs" / "dp1", progress=False)

    def metric(run: str, key: str) -> list[float]:
        sql = f"select value from read_parquet('{tmp_path}/runs/{run}/metrics/*.parquet') where key = '{key}' order by step"
        return [v for (v,) in con.sql(sql).fetchall()]

    kl1, kl2 = metric("dp1", "objective/kl"), metric("dp2", "objective/kl")
    loss1, loss2 = metric("dp1", "loss/total"), metric("dp2", "loss/total")
    print(f"1- vs 2-process: kl {kl1} vs {kl2}; loss/total {loss1} vs {loss2}")
    assert abs(kl1[0]) < 1e-5 and abs(kl2[0]) < 1e-5  # a fresh adapter is the reference in both
    assert max(abs(a - b) for a, b in zip(kl1, kl2, strict=True)) < KL_ATOL
    assert max(abs(a - b) for a, b in zip(loss1, loss2, strict=True)) < LOSS_ATOL


def test_launch_uses_torchrun_for_several_processes():
    import sys

    from engine.ppo.launch import job_command

    assert job_command(1) == [sys.executable, "-m", "engine", "ppo"]
    assert job_command(2)[:6] == [
        sys.executable,
        "-m",
        "engine.ppo.torchrun",  # torchrun, a failed rank in one line (the next test)
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    assert job_command(2)[-3:] == ["-m", "engine", "ppo"]


def test_a_failed_rank_is_one_line_and_its_exit_code_not_torchruns_traceback(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(
        "import os, sys\nif os.environ['RANK'] == '1':\n    sys.exit('error: rank 1 could not go on')\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "engine.ppo.torchrun", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr  # sys.exit(message) exits 1
    assert "Traceback" not in out.stderr and "ChildFailedError" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines[-2:] == ["error: rank 1 could not go on", lines[-1]]
    assert lines[-1].startswith("torchrun: rank 1 (pid ") and lines[-1].endswith("exited with code 1")

    script.write_text("import os, sys\nsys.exit(2 if os.environ['RANK'] == '0' else 0)\n")
    out = subprocess.run(
        [sys.executable, "-m", "engine.ppo.torchrun", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and out.stderr.splitlines()[-1].endswith("exited with code 2"), out.stderr


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _wait_for(predicate, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def _launch_torchrun(config: PPOConfig, root: Path, *, resume: bool = False) -> Job:
    """The run as the app launches it (torchrun, 2 gloo ranks), once it trains; a start-up death
    (see test_two_processes_match_one) is retried once."""
    kwargs = {"run_id": "tr", "root": root, "resume": resume, "env": {"WORKBENCH_THREADS": "1"}}
    try:
        job = launch(None if resume else config, wait=True, timeout=240, **kwargs)
    except ConfigError as exc:
        if "did not start" not in str(exc):
            raise
        job = launch(None if resume else config, wait=True, timeout=240, **kwargs)
    start = read_status(job.run_dir)["step"]
    assert _wait_for(lambda: read_status(job.run_dir)["step"] > start, 240), read_status(job.run_dir)
    return job


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal and /proc: Linux")
def test_ranks_stop_when_torchrun_is_killed_and_jobs_stop_stops_them_cleanly(tmp_path):
    # Killed at the end whatever happens: a failed check must not leave 1000 steps running.
    started: list[int] = []
    try:
        config = make_config(tmp_path).replace(processes=2, steps=1000, save_every=1000, probe_every=0)
        root = tmp_path / "runs"

        # kill -9 of torchrun: both ranks stop by themselves after their step.
        job = _launch_torchrun(config, root)
        status = read_status(job.run_dir)
        ranks = status["pids"]
        started += [job.pid, *ranks]
        assert status["pid"] == job.pid and len(ranks) == 2 and job.pid not in ranks
        os.kill(job.pid, signal.SIGKILL)
        job.process.wait(timeout=30)
        assert _wait_for(lambda: all(_gone(p) for p in ranks), 120), [_gone(p) for p in ranks]
        status = read_status(job.run_dir)
        # What it shows: stopped after the step in flight, with its checkpoint, not "running" forever.
        assert status["state"] == "stopped" and effective_state(job.run_dir) == "stopped", status
        assert (job.run_dir / "checkpoints" / f"step-{status['step']}").is_dir()

        # jobs stop (--runs-dir after the action): the ranks stop after the same step, torchrun exits 0.
        job = _launch_torchrun(config, root, resume=True)
        ranks = read_status(job.run_dir)["pids"]
        started += [job.pid, *ranks]
        out = subprocess.run(
            [sys.executable, "-m", "engine", "jobs", "stop", "tr", "--runs-dir", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert job.process.wait(timeout=120) == 0
        log = (job.run_dir / "job.log").read_text()
        assert "SignalException" not in log and "Traceback" not in log, log[-3000:]
        assert read_status(job.run_dir)["state"] == "stopped"
        assert all(_gone(p) for p in ranks)
    finally:
        for pid in started:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
