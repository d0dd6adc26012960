"""Jobs: CLI flags from PPOConfig, live-owner lock, SIGKILL + --resume (each step exactly once), SIGTERM stop."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import torch

from engine.config import ConfigError
from engine.ppo.argv import config_to_argv
from engine.ppo.config import ModelConfig, PPOConfig, PPOHyperConfig, RunConfig
from engine.ppo.job import run_job
from engine.ppo.launch import launch, stop
from engine.runs import (
    effective_state,
    is_live,
    list_runs,
    owner_lock,
    read_status,
    run_dir_of,
)
from engine.store import RunWriter
from tests.ppo_fixtures import make_tiny_sources, one_thread  # noqa: F401 (fixture)

ENV = {"WORKBENCH_THREADS": "1"}


@pytest.fixture(scope="module")
def job_config(tmp_path_factory) -> PPOConfig:
    sources, prompts_file = make_tiny_sources(tmp_path_factory.mktemp("models"))
    return PPOConfig(
        model=ModelConfig(policy=sources.policy, reward_model=sources.reward_model, lora_r=4, lora_alpha=8),
        ppo=PPOHyperConfig(ppo_epochs=2, num_minibatches=2, kl_coef=0.2),
        run=RunConfig(
            steps=8, prompts_per_step=2, samples_per_prompt=4, save_every=2, prompts_file=str(prompts_file)
        ),
    ).replace(max_new_tokens=8, families=("a", "b"))


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **ENV},
    )


def _wait(predicate, timeout: float = 60.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def _metric_steps(run_dir: Path) -> list[int]:
    return [
        r[0]
        for r in duckdb.sql(
            f"select step from read_parquet('{run_dir}/metrics/*.parquet') where key = 'objective/reward' order by step"
        ).fetchall()
    ]


def test_config_round_trips_through_argv(job_config):
    from engine.ppo.argv import add_config_arguments, config_from_args

    parser = __import__("argparse").ArgumentParser()
    add_config_arguments(parser)
    config = job_config.replace(kl_target=6.0, max_grad_norm=None, stop_at_eos=False, kl_estimator="k3")
    assert config_from_args(parser.parse_args(config_to_argv(config))) == config


def test_cli_help_lists_config_fields():
    out = _run_cli("ppo", "--help")
    assert out.returncode == 0
    for flag in (
        "--kl-coef",
        "--samples-per-prompt",
        "--resume",
        "--temperature",
        "--families",
        "--sft-epoch",
    ):
        assert flag in out.stdout
    assert "Initial coefficient of the per-token KL penalty" in out.stdout


def test_bad_inputs_are_config_errors(tmp_path, job_config):
    out = _run_cli("ppo", "--runs-dir", str(tmp_path), "--resume", "nope")
    assert out.returncode == 2 and "cannot resume nope" in out.stderr
    out = _run_cli("ppo", "--runs-dir", str(tmp_path), "--kl-coef", "-1")
    assert out.returncode == 2 and "kl_coef" in out.stderr
    out = _run_cli("ppo", "--runs-dir", str(tmp_path), "--prompts-per-step", "3", "--samples-per-prompt", "1")
    assert out.returncode == 2 and "not divisible" in out.stderr
    with pytest.raises(ConfigError, match="cannot resume"):
        launch(resume=True, run_id="nope", root=tmp_path)
    run_dir = run_dir_of("owned", tmp_path)
    with owner_lock(run_dir):  # another live job owns the directory
        assert is_live(run_dir)
        with pytest.raises(ConfigError, match="live job"):
            launch(job_config, run_id="owned", root=tmp_path)
        with pytest.raises(ConfigError, match="live job"):
            run_job(job_config, run_dir)
    assert not is_live(run_dir) and not (run_dir / "run.json").exists()


def test_sigkill_then_resume_logs_each_step_once(tmp_path, job_config):
    job = launch(job_config, run_id="k", root=tmp_path, env=ENV)
    writer = RunWriter(job.run_dir)
    _wait(lambda: len(writer.logged_steps()) >= 3)
    assert effective_state(job.run_dir) == "running" and read_status(job.run_dir)["pid"] == job.pid
    # a second launch into the live run is refused
    with pytest.raises(ConfigError, match="live job"):
        launch(job_config, run_id="k", root=tmp_path)
    os.kill(job.pid, signal.SIGKILL)
    job.process.wait(timeout=30)
    assert effective_state(job.run_dir) == "interrupted"
    killed_at = _metric_steps(job.run_dir)  # the store stays readable
    assert killed_at == list(range(1, len(killed_at) + 1))

    out = _run_cli("ppo", "--runs-dir", str(tmp_path), "--resume", "k", "--no-progress")
    assert out.returncode == 0, out.stderr[-2000:]
    assert _metric_steps(job.run_dir) == list(range(1, 9))
    rollout_steps = duckdb.sql(
        f"select step, count(*) from read_parquet('{job.run_dir}/rollouts/*.parquet') group by step order by step"
    ).fetchall()
    assert rollout_steps == [(s, 8) for s in range(1, 9)]
    assert read_status(job.run_dir)["state"] == "finished"
    assert [r.state for r in list_runs(tmp_path)] == ["finished"]


def test_sigterm_stops_cleanly_with_a_checkpoint(tmp_path, job_config):
    job = launch(job_config.replace(steps=200, save_every=100), run_id="t", root=tmp_path, env=ENV)
    _wait(lambda: len(RunWriter(job.run_dir).logged_steps()) >= 2)
    assert stop("t", tmp_path)
    assert job.process.wait(timeout=60) == 0
    status = read_status(job.run_dir)
    assert status["state"] == "stopped" and not is_live(job.run_dir)
    assert (job.run_dir / "checkpoints" / f"step-{status['step']}" / "adapter_model.safetensors").is_file()
    assert RunWriter(job.run_dir).logged_steps() == list(range(1, status["step"] + 1))
    assert not stop("t", tmp_path)


def test_two_tabs_launching_the_same_run_start_one_job(tmp_path, job_config):
    config = job_config.replace(steps=3)
    first = launch(config, run_id="twin", root=tmp_path, env=ENV)
    second = launch(config, run_id="twin", root=tmp_path, env=ENV)  # raced past the pre-checks
    codes = sorted([first.process.wait(timeout=120), second.process.wait(timeout=120)])
    assert codes == [0, 2]
    log_text = (first.run_dir / "job.log").read_text()
    assert "owned by a live job" in log_text or "already exists" in log_text
    assert _metric_steps(first.run_dir) == [1, 2, 3]
    with pytest.raises(ConfigError, match="already exists"):
        launch(config, run_id="twin", root=tmp_path, wait=True)
    job = launch(config.replace(steps=4), run_id="twin", root=tmp_path, resume=True, env=ENV, wait=True)
    job.process.wait(timeout=120)
    assert _metric_steps(first.run_dir) == [1, 2, 3]  # resume keeps the recorded config (3 steps)


@pytest.mark.parametrize(
    "bad",
    [
        {"policy": "/nonexistent/policy"},  # a missing policy
        {"reward_model": "/nonexistent/rm"},  # a missing RM
        {"prompts_file": "/nonexistent/prompts.txt"},  # a missing prompts file
        {"prompts_file": "EMPTY"},  # an empty prompts file
    ],
    ids=["policy", "rm", "prompts", "empty-prompts"],
)
def test_a_failed_start_leaves_nothing_behind(tmp_path, job_config, bad):
    if bad.get("prompts_file") == "EMPTY":
        (tmp_path / "empty.txt").write_text("\n")
        bad = {"prompts_file": str(tmp_path / "empty.txt")}
    config = job_config.replace(**bad)
    run_dir = run_dir_of("bad", tmp_path / "runs")
    with pytest.raises(ConfigError):
        run_job(config, run_dir)
    assert not run_dir.exists()
    # from the app: the launcher reports the child's error and removes what it made
    with pytest.raises(ConfigError, match="did not start"):
        launch(config, run_id="bad", root=tmp_path / "runs", env=ENV, wait=True)
    assert not run_dir.exists() and list_runs(tmp_path / "runs") == []
    # the id can be used again
    run_job(job_config.replace(steps=1), run_dir)
    assert read_status(run_dir)["state"] == "finished"


def test_run_record_says_the_precision_used(tmp_path, job_config):
    from engine.models import bf16_matmul_is_fast

    run_dir = run_dir_of("prec", tmp_path)
    run_job(job_config.replace(steps=1, base_precision="bf16"), run_dir)
    recorded = json.loads((run_dir / "run.json").read_text())["config"]["ppo"]["base_precision"]
    assert recorded == ("bf16" if bf16_matmul_is_fast(torch.device("cpu")) else "fp32")


def test_runs_dir_is_accepted_after_the_action(tmp_path):
    RunWriter.create(tmp_path / "r", kind="ppo", config={}, seed=0)
    (tmp_path / "r" / "status.json").write_text('{"state": "stopped", "step": 2, "pid": 1}')
    out = _run_cli("jobs", "status", "r", "--runs-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "stopped"
    for argv in (["stop", "r", "--runs-dir", str(tmp_path)], ["--runs-dir", str(tmp_path), "stop", "r"]):
        out = _run_cli("jobs", *argv)
        assert out.returncode == 2 and "run r has no live job to stop" in out.stderr, out.stderr
    out = _run_cli("jobs", "list", "--runs-dir", str(tmp_path))
    assert out.returncode == 0 and out.stdout.startswith("r\tppo\tstopped\t2"), out.stdout


def _ppo_process(*args: str, file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    """``python -m engine ppo ...`` as a real job process; ``file_size_limit`` (bytes) makes every
    write past it fail with EFBIG, as a full disk fails with ENOSPC (root ignores file modes, so this
    is the failing write a test can make anywhere)."""

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [sys.executable, "-m", "engine", "ppo", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **ENV},
        preexec_fn=limit_files if file_size_limit else None,
    )


@pytest.mark.slow
def test_a_failed_write_stops_the_job_with_one_error_line_and_resume_finishes(tmp_path, job_config):
    config = job_config.replace(steps=2, probe_every=0)
    runs = str(tmp_path)
    first = _ppo_process("--runs-dir", runs, "--run-id", "full", *config_to_argv(config))
    assert first.returncode == 0, first.stderr[-2000:]
    run_dir = tmp_path / "full"

    # A rollout file is ~11 KB: step 3's cannot be written, its metrics (2 KB) and the status can.
    full = _ppo_process("--runs-dir", runs, "--resume", "full", "--steps", "4", file_size_limit=4096)
    lines = [line for line in full.stderr.splitlines() if line.strip()]
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr[-3000:]
    assert lines[-1].startswith(f"error: could not write {run_dir}/rollouts/step-000003.parquet: "), lines[-1]
    assert "steps up to 2 are saved" in lines[-1]
    status = read_status(run_dir)
    assert status["state"] == "failed" and "could not write" in status["message"]
    assert effective_state(run_dir) == "failed"
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]
    assert _metric_steps(run_dir) == [1, 2]

    again = _ppo_process("--runs-dir", runs, "--resume", "full", "--steps", "4")
    assert again.returncode == 0, again.stderr[-2000:]
    assert _metric_steps(run_dir) == [1, 2, 3, 4]
    assert read_status(run_dir)["state"] == "finished"


def _mount(*args: str) -> bool:
    return _mount_run(*args).returncode == 0


def _mount_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


class ReadOnlySwitch:
    """Turns a directory read-only for everyone, root included (a read-only bind mount over it)."""

    def __init__(self) -> None:
        self.mounted: list[Path] = []

    def on(self, path: Path) -> None:
        if not _mount("--bind", str(path), str(path)):
            pytest.skip("cannot bind-mount here (the RLIMIT_FSIZE test covers a failed write)")
        self.mounted.append(path)
        # The kernel refuses to make a mount read-only while a file is open for writing through it
        # (EBUSY), and the job writes every step: try again until a moment between two writes.
        for _ in range(100):
            done = _mount_run("-o", "remount,ro,bind", str(path), str(path))
            if done.returncode == 0:
                return
            time.sleep(0.02)
        pytest.fail(f"could not remount {path} read-only: {done.stderr.strip()}")

    def off(self, path: Path) -> None:
        subprocess.run(["umount", str(path)], check=True)
        self.mounted.remove(path)


@pytest.fixture
def read_only():
    switch = ReadOnlySwitch()
    yield switch
    for path in list(switch.mounted):
        switch.off(path)


@pytest.mark.slow
def test_a_run_directory_turned_read_only_fails_with_one_error_line(tmp_path, job_config, read_only):
    config = job_config.replace(steps=200, save_every=1, probe_every=0)  # resume goes on from any step
    job = launch(config, run_id="ro", root=tmp_path, env=ENV)
    writer = RunWriter(job.run_dir)
    try:
        _wait(lambda: len(writer.logged_steps()) >= 2)
        read_only.on(job.run_dir)  # the job's log, open since the start, stays writable
        assert job.process.wait(timeout=120) == 2
    finally:
        if job.process.poll() is None:
            job.process.kill()
    log_lines = [line for line in (job.run_dir / "job.log").read_text().splitlines() if line.strip()]
    assert "Traceback" not in "\n".join(log_lines), log_lines[-30:]
    assert log_lines[-1].startswith(f"error: could not write {job.run_dir}/"), log_lines[-1]
    assert "Read-only file system" in log_lines[-1]
    assert effective_state(job.run_dir) == "interrupted"  # its status could not be written either
    done = _metric_steps(job.run_dir)
    assert done == list(range(1, len(done) + 1))

    # Resuming while it is read-only: the same kind of line, nothing changed.
    out = _ppo_process("--runs-dir", str(tmp_path), "--resume", "ro")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: could not write {job.run_dir}/")
    assert _metric_steps(job.run_dir) == done

    # Writable again: the resumed job trains on from the last checkpoint.
    read_only.off(job.run_dir)
    job = launch(run_id="ro", root=tmp_path, resume=True, env=ENV, wait=True)
    _wait(lambda: len(writer.logged_steps()) > len(done))
    assert stop("ro", tmp_path) and job.process.wait(timeout=120) == 0
    assert read_status(job.run_dir)["state"] == "stopped"
    after = _metric_steps(job.run_dir)
    assert after == list(range(1, len(after) + 1)) and len(after) > len(done)
    assert not [p for p in job.run_dir.rglob("*") if p.name.endswith(".tmp")]  # the resume removed them
