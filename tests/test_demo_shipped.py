"""The shipped demo runs (data/demo_runs) are what ``python -m engine demo build`` makes from
:func:`engine.demo.demo_specs`: complete steps, their own names inside, the recorded config, small."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from engine.demo import demo_specs
from engine.paths import demo_runs_dir
from engine.ppo.config import PPOConfig
from engine.runs.layout import PROBES_DIR, ROLLOUTS_DIR
from engine.store.schema import step_files

SPECS = {spec.run_id: spec for spec in demo_specs()}


def _size(folder) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_the_demo_runs_are_small():
    """Each demo run at most 10 MiB, all of them together at most 45 MiB (what a clone carries)."""
    sizes = {run_id: _size(demo_runs_dir() / run_id) for run_id in SPECS}
    assert all(0 < size <= 10 * 2**20 for size in sizes.values()), sizes
    assert _size(demo_runs_dir()) <= 45 * 2**20
    assert sorted(p.name for p in demo_runs_dir().iterdir()) == sorted(SPECS)


@pytest.mark.parametrize("run_id", sorted(SPECS))
def test_a_demo_run_is_its_recorded_config_with_every_rollout_of_a_kept_step(run_id):
    spec, run_dir = SPECS[run_id], demo_runs_dir() / run_id
    record = json.loads((run_dir / "run.json").read_text())
    assert record["run_id"] == run_id
    # What `demo build` would train now (the precision is the one the building machine computed in).
    recorded = PPOConfig.from_dict(record["config"])
    assert recorded.replace(base_precision=spec.config.ppo.base_precision) == spec.config
    run = spec.config.run
    steps = [step for step, _ in step_files(run_dir / ROLLOUTS_DIR)]
    assert steps == sorted({*range(1, run.steps + 1, spec.keep_every), run.steps})
    for step, path in step_files(run_dir / ROLLOUTS_DIR):
        table = pq.read_table(path, columns=["run_id", "step", "prompt_id", "is_probe", "tokens"])
        assert table.num_rows == run.prompts_per_step * run.samples_per_prompt, step
        assert set(table.column("run_id").to_pylist()) == {run_id}
        assert set(table.column("step").to_pylist()) == {step}
        assert not any(table.column("is_probe").to_pylist())
        sampled = {token for tokens in table.column("tokens").to_pylist() for token in tokens}
        assert not sampled & {"[PAD]", "[BOS]", "[UNK]"}, step  # never sampled (suppress_filler_tokens)
    probes = [step for step, _ in step_files(run_dir / PROBES_DIR)]
    assert probes == sorted({*range(1, run.steps + 1, run.probe_every), run.steps})
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
    assert any((run_dir / "evals").iterdir())  # the log-prob accuracy of its checkpoints
