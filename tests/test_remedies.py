"""The sampling-space remedies (issue 25): the RM refresh from PPO samples (judge or app labels), the
label files, and prompts chosen by the size of their sampling space."""

from __future__ import annotations

import logging

import pyarrow.parquet as pq
import pytest
import torch

from engine.config import ConfigError
from engine.ppo.build import Sources, build_trainer, resume_step
from engine.ppo.config import PPOConfig, RunConfig
from engine.ppo.prompt_selection import select
from engine.runs.labels import append_labels, read_labels
from engine.runs.layout import LABELS_DIR, PROMPT_SELECTION_FILE
from engine.store import RunWriter
from tests.ppo_fixtures import make_tiny_sources, one_thread, tiny_config  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def tiny_sources(tmp_path_factory) -> Sources:
    return make_tiny_sources(tmp_path_factory.mktemp("models"))[0]


def refresh_config(**leaves) -> PPOConfig:
    return tiny_config(steps=6).replace(rm_refresh_every=2, rm_refresh_pairs=64, **leaves)


def rm_weights(holder) -> dict[str, torch.Tensor]:
    """The RM's weights of a trainer (or of a loaded RM)."""
    model = holder.reward.model if hasattr(holder, "reward") else holder.model
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def new_run(tmp_path, name: str, config: PPOConfig, sources: Sources):
    """A trainer with its run's writer attached after the build, as a job does it (bad input fails
    before the run directory exists)."""
    trainer = build_trainer(config, sources=sources, device="cpu")
    trainer.writer = RunWriter.create(tmp_path / name, kind="ppo", config=config.to_dict(), seed=0)
    return trainer


# ---------------------------------------------------------------------- RM refresh


def test_rm_refresh_raises_the_version_at_its_steps_and_measures_agreement(tmp_path, tiny_sources, caplog):
    trainer = new_run(tmp_path, "run", refresh_config(), tiny_sources)
    before = rm_weights(trainer)
    results = []
    with caplog.at_level(logging.INFO, logger="engine.ppo.rm_refresh"):
        trainer.train(on_step=results.append)
    assert [r.metrics["rm/version"] for r in results] == [0, 1, 1, 2, 2, 3]
    for r in results:
        refreshed = r.step % 2 == 0
        assert ("rm/agreement_before" in r.metrics) == refreshed
        assert ("rm/agreement_after" in r.metrics) == refreshed
    # 2 prompts x 4 samples hold at most 12 pairs: the refresh uses what there is and says so
    assert 0 < results[1].metrics["rm/refresh_pairs"] <= 12
    assert "fewer than rm_refresh_pairs = 64" in caplog.text
    assert any(not torch.equal(before[k], v) for k, v in rm_weights(trainer).items())  # trained on
    assert len(trainer.rm_refresh.pairs) == sum(r.metrics.get("rm/refresh_pairs", 0) for r in results)
    # the step's metrics file carries them
    logged = RunWriter.open(tmp_path / "run").logged_steps()
    assert logged == [1, 2, 3, 4, 5, 6]


def test_a_resumed_run_goes_on_with_the_same_rm_version_and_weights(tmp_path, tiny_sources):
    config = refresh_config()
    full = new_run(tmp_path, "full", config, tiny_sources)
    at_step_4 = {}
    reference = []

    def keep(result):
        reference.append(result)
        if result.step == 4:
            at_step_4.update(rm_weights(full))

    full.train(on_step=keep)

    # a run stopped after step 4 (checkpointed there), then resumed by a fresh process
    stopped = new_run(tmp_path, "stopped", config, tiny_sources)
    stopped.train(should_stop=lambda: len(RunWriter.open(tmp_path / "stopped").logged_steps()) >= 4)
    again = build_trainer(config, RunWriter.open(tmp_path / "stopped"), sources=tiny_sources, device="cpu")
    assert again.rm_refresh.version == 0
    assert resume_step(again) == 5
    assert again.rm_refresh.version == 2
    assert all(torch.equal(at_step_4[k], v) for k, v in rm_weights(again).items())
    resumed = []
    again.train(5, on_step=resumed.append)
    assert [r.metrics["rm/version"] for r in resumed] == [2, 3]
    assert resumed[-1].metrics["rm/agreement_after"] == pytest.approx(
        reference[-1].metrics["rm/agreement_after"], abs=1e-6
    )
    final = rm_weights(full)
    assert all(torch.allclose(final[k], v, atol=1e-5) for k, v in rm_weights(again).items())


def test_human_labeller_without_labels_keeps_the_rm(tmp_path, tiny_sources, caplog):
    trainer = new_run(tmp_path, "run", refresh_config(rm_labeller="human", steps=2), tiny_sources)
    before = rm_weights(trainer)
    results = []
    with caplog.at_level(logging.WARNING, logger="engine.ppo.rm_refresh"):
        trainer.train(on_step=results.append)
    assert results[-1].metrics["rm/version"] == 0
    assert "no new labelled pairs in runs/<id>/labels/; the RM is kept" in caplog.text
    assert all(torch.equal(before[k], v) for k, v in rm_weights(trainer).items())


def test_human_labeller_trains_on_the_app_labels_once(tmp_path, tiny_sources):
    trainer = new_run(tmp_path, "run", refresh_config(rm_labeller="human", steps=4), tiny_sources)
    p = tiny_sources.prompts[0]
    append_labels(
        tmp_path / "run",
        [
            {"prompt_id": p.prompt_id, "prompt": p.text, "response_a": "x y z", "response_b": "x",
             "label": label, "step": 1}
            for label in ("a", "b", "tie", "skip")
        ],
    )  # fmt: skip
    results = []
    trainer.train(on_step=results.append)
    # the two ordered labels at step 2; nothing new at step 4
    assert [r.metrics["rm/version"] for r in results] == [0, 1, 1, 1]
    assert results[1].metrics["rm/refresh_pairs"] == 2
    assert sorted(trainer.rm_refresh.pairs) == sorted([(p.text, "x y z", "x"), (p.text, "x", "x y z")])


def test_a_short_bradley_terry_run_trains(tiny_sources):
    """Ten optimizer steps (a refresh of 320 pairs in batches of 64, two epochs) once divided by zero in
    the learning-rate schedule's warm-up."""
    from engine.reward import load_reward_model, train_reward_model

    rm = load_reward_model(tiny_sources.reward_model, device="cpu")
    rm.model.requires_grad_(True)
    pairs = [("w1 w2", "w3 w4 w5", "w3")] * 5
    before = rm_weights(rm)
    train_reward_model(rm.model, rm.tokenizer, pairs, epochs=2, batch_size=1, lr=1e-3)
    assert any(not torch.equal(before[k], v) for k, v in rm_weights(rm).items())


def test_judge_labeller_needs_a_judge(tiny_sources):
    no_judge = Sources(tiny_sources.policy, tiny_sources.reward_model, tiny_sources.prompts, judge=None)
    with pytest.raises(ConfigError, match="rm_labeller='judge' needs a gold judge"):
        build_trainer(refresh_config(), sources=no_judge, device="cpu")


def test_rm_refresh_settings_are_checked():
    with pytest.raises(ConfigError, match="rm_refresh_every must be an integer >= 0"):
        PPOConfig().replace(rm_refresh_every=-1)
    with pytest.raises(ConfigError, match="rm_labeller must be one of"):
        PPOConfig().replace(rm_labeller="crowd")
    with pytest.raises(ConfigError, match="rm_refresh_every needs processes = 1"):
        PPOConfig(run=RunConfig(processes=2)).replace(rm_refresh_every=5)


# ---------------------------------------------------------------------- label files


def test_labels_append_atomically_and_read_back(tmp_path):
    row = {"prompt_id": "p1", "prompt": "q", "response_a": "a1", "response_b": "b1", "label": "a", "step": 3}
    first = append_labels(tmp_path, [row])
    second = append_labels(tmp_path, [{**row, "label": "tie", "labelled_at": 5.0}])
    assert first != second and append_labels(tmp_path, []) is None
    labels = read_labels(tmp_path)
    assert [r["label"] for r in labels] == ["a", "tie"] and labels[1]["labelled_at"] == 5.0
    assert labels[0]["step"] == 3 and labels[0]["labelled_at"] > 0
    with pytest.raises(ConfigError, match="label must be one of"):
        append_labels(tmp_path, [{**row, "label": "both"}])
    with pytest.raises(ConfigError, match="lacks"):
        append_labels(tmp_path, [{"label": "a"}])
    # nothing half-written is left behind, and a hidden temp file is never read
    (tmp_path / LABELS_DIR / ".labels-x.parquet.123.tmp").write_bytes(b"partial")
    assert len(list((tmp_path / LABELS_DIR).glob("*.parquet"))) == 2
    assert len(read_labels(tmp_path)) == 2
    assert read_labels(tmp_path / "none") == []


# ---------------------------------------------------------------------- prompt selection

MEASURED = [
    {"prompt_id": "p0", "mean_entropy": 0.1, "reward_variance": 0.9},
    {"prompt_id": "p1", "mean_entropy": 0.9, "reward_variance": 0.1},
    {"prompt_id": "p2", "mean_entropy": 0.5, "reward_variance": 0.5},
    {"prompt_id": "p3", "mean_entropy": 0.7, "reward_variance": 0.0},
]


@pytest.mark.parametrize(
    "selection, share, kept",
    [
        ("high_entropy", 0.5, {"p1", "p3"}),
        ("low_entropy", 0.5, {"p0", "p2"}),
        ("high_variance", 0.5, {"p0", "p2"}),
        ("low_variance", 0.5, {"p3", "p1"}),
        ("high_entropy", 0.25, {"p1"}),
        ("low_variance", 0.01, {"p3"}),  # at least one prompt
        ("uniform", 0.25, {"p0", "p1", "p2", "p3"}),
    ],
)
def test_selection_keeps_the_chosen_share(selection, share, kept):
    rows = select(MEASURED, selection, share)
    assert {r["prompt_id"] for r in rows if r["kept"]} == kept
    assert sorted(r["rank"] for r in rows) == [1, 2, 3, 4]


def test_a_run_records_its_prompt_selection_and_trains_on_the_kept_prompts(tmp_path, tiny_sources):
    config = tiny_config(steps=2, prompt_selection="high_variance", prompt_selection_share=0.5)
    trainer = new_run(tmp_path, "run", config, tiny_sources)
    results = []
    trainer.train(on_step=results.append)
    table = pq.read_table(tmp_path / "run" / PROMPT_SELECTION_FILE).to_pylist()
    assert len(table) == len(tiny_sources.prompts) == 6
    kept = {r["prompt_id"] for r in table if r["kept"]}
    assert len(kept) == 3
    variances = sorted((r["reward_variance"] for r in table), reverse=True)
    assert sorted(r["reward_variance"] for r in table if r["kept"]) == sorted(variances[:3])
    assert all(r["mean_entropy"] > 0 for r in table)
    trained = {pid for r in results for pid in r.rows["prompt_id"]}
    assert trained <= kept
    # a resumed run reads the recorded choice instead of measuring its moved policy
    again = build_trainer(config, RunWriter.open(tmp_path / "run"), sources=tiny_sources, device="cpu")
    again.choose_prompts()
    assert {p.prompt_id for p in again.prompts} == kept


def test_prompt_selection_settings_are_checked():
    with pytest.raises(ConfigError, match="prompt_selection_share must be in \\(0, 1\\]"):
        PPOConfig().replace(prompt_selection_share=0.0)
    with pytest.raises(ConfigError, match="prompt_selection must be one of"):
        PPOConfig().replace(prompt_selection="widest")
