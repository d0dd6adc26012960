"""What ``bench grpo``'s speed work changed in the trainer, each checked against the old path: a group
method at kl_loss_coef 0 takes the reference pass only at its KL metric's steps (``kl_metric_every``)
and trains exactly as with it at every step; the RM's GELU is the fused kernel, scores unchanged up
to rounding."""

from __future__ import annotations

import pytest
import torch

import engine.ppo.trainer as trainer_module
from engine.ppo.build import Sources, build_trainer
from engine.ppo.config import PPOConfig
from engine.ppo.rollout import reference_pass
from engine.reward import load_reward_model
from engine.store import RunWriter
from engine.store.reader import store_cursor
from tests.ppo_fixtures import make_tiny_sources, one_thread, tiny_config  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def tiny_sources(tmp_path_factory) -> Sources:
    return make_tiny_sources(tmp_path_factory.mktemp("models"))[0]


def test_takes_reference_at_the_kl_metric_steps_only_where_no_kl_term_needs_it():
    group = PPOConfig().replace(algorithm="grpo", steps=10, kl_metric_every=4)
    assert [s for s in range(1, 11) if group.takes_reference(s)] == [1, 4, 8, 10]  # first, every 4th, last
    assert not any(group.replace(kl_metric_every=0).takes_reference(s) for s in range(1, 11))
    assert all(group.replace(kl_loss_coef=0.01).takes_reference(s) for s in range(1, 11))  # KL in the loss
    assert all(PPOConfig().replace(kl_metric_every=0).takes_reference(s) for s in range(1, 11))  # PPO: reward


def _run(config: PPOConfig, sources: Sources, run_dir, monkeypatch) -> tuple[list, list[int], list]:
    """Train ``config``; (step results, the steps that took the reference pass, the final weights)."""
    reference_steps, current = [], {}

    def counted(model, batch, *args, **kwargs):
        reference_steps.append(current["step"])
        return reference_pass(model, batch, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "reference_pass", counted)
    writer = RunWriter.create(run_dir, kind="ppo", config=config.to_dict(), seed=0)
    trainer = build_trainer(config, writer, sources=sources, device="cpu")
    original_iteration = trainer.iteration

    def iteration(step):
        current["step"] = step
        return original_iteration(step)

    trainer.iteration = iteration
    results = []
    trainer.train(on_step=results.append)
    return results, reference_steps, [p.detach().clone() for p in trainer.trainable_parameters()]


def test_without_the_reference_pass_a_group_run_trains_exactly_as_with_it(
    tmp_path, tiny_sources, monkeypatch
):
    base = tiny_config(steps=4, probe_every=0).replace(algorithm="grpo", kl_loss_coef=0.0)
    every, every_steps, every_weights = _run(base, tiny_sources, tmp_path / "every", monkeypatch)
    sparse, sparse_steps, sparse_weights = _run(
        base.replace(kl_metric_every=3), tiny_sources, tmp_path / "sparse", monkeypatch
    )
    assert every_steps == [1, 2, 3, 4] and sparse_steps == [1, 3, 4]
    # The reference only fed the KL metrics: the update, its metrics and the weights are bit-identical.
    assert all(torch.equal(a, b) for a, b in zip(every_weights, sparse_weights, strict=True))
    for a, b in zip(every, sparse, strict=True):
        assert a.rows["advantage"][0].tolist() == b.rows["advantage"][0].tolist()
        for key in ("loss/total", "policy/grad_norm", "objective/reward", "objective/entropy"):
            assert a.metrics[key] == b.metrics[key], (a.step, key)
        has_kl = b.step in sparse_steps
        assert ("objective/kl" in b.metrics) == has_kl and "objective/kl" in a.metrics
        if has_kl:
            assert b.metrics["objective/kl"] == a.metrics["objective/kl"]
    # The store keeps the steps without the reference: no ref_logprob, no kl (NULL, not 0).
    with store_cursor(tmp_path / "sparse") as (cur, _):
        rows = cur.execute(
            "SELECT step, bool_and(ref_logprob IS NULL), bool_and(kl IS NULL) FROM rollouts GROUP BY step "
            "ORDER BY step"
        ).fetchall()
    assert rows == [(1, False, False), (2, True, True), (3, False, False), (4, False, False)]


def test_the_trainer_scores_with_the_fused_gelu_and_the_same_scores(tiny_sources):
    config = tiny_config(steps=1).replace(algorithm="grpo")
    trainer = build_trainer(config, None, sources=tiny_sources, device="cpu")
    from transformers.activations import NewGELUActivation

    from engine.models.precision import TanhGelu

    fused = trainer.reward.model
    plain = load_reward_model(tiny_sources.reward_model, device="cpu").model
    assert any(isinstance(m, TanhGelu) for m in fused.modules())
    assert not any(isinstance(m, NewGELUActivation) for m in fused.modules())
    assert any(isinstance(m, NewGELUActivation) for m in plain.modules())
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 20, (8, 12), generator=g)
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[:4, :3] = False  # left padding on some rows
    with torch.no_grad():
        torch.testing.assert_close(fused(ids, mask), plain(ids, mask), rtol=0, atol=1e-5)
