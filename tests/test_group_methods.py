"""GRPO and RLOO: each formula against a naive float64 loop, the config's checks, and both methods
end to end on a tiny model, their stored advantages recomputed from the stored rewards."""

from __future__ import annotations

import argparse
import math

import pytest
import torch

from engine.config import ConfigError
from engine.ppo.argv import add_config_arguments, config_from_args, config_to_argv
from engine.ppo.build import Sources, build_trainer, resume_step
from engine.ppo.config import PPOConfig
from engine.ppo.group_advantages import (
    STD_EPS,
    frac_reward_zero_std,
    group_advantages,
    grpo_advantages,
    rloo_advantages,
)
from engine.ppo.losses import aggregate_loss, k3_kl, policy_loss_terms
from engine.runs import list_checkpoints
from engine.store import RunWriter
from engine.store.reader import store_cursor
from tests.ppo_fixtures import make_tiny_sources, one_thread, tiny_config  # noqa: F401 (fixture)

# ---------------------------------------------------------------------- naive float64 references


def naive_grpo(rewards: list[float], k: int, scale: bool) -> list[float]:
    out = []
    for g in range(0, len(rewards), k):
        group = rewards[g : g + k]
        m = sum(group) / k
        s = math.sqrt(sum((x - m) ** 2 for x in group) / (k - 1))
        out += [0.0 if s == 0 else (x - m) / (s + STD_EPS) if scale else x - m for x in group]
    return out


def naive_rloo(rewards: list[float], k: int) -> list[float]:
    out = []
    for g in range(0, len(rewards), k):
        group = rewards[g : g + k]
        out += [x - (sum(group) - x) / (k - 1) for x in group]
    return out


def naive_aggregate(per_token: list[list[float]], lengths: list[int], loss_type: str, max_len: int) -> float:
    sums = [sum(row[:n]) for row, n in zip(per_token, lengths, strict=True)]
    if loss_type == "grpo":
        return sum(s / n for s, n in zip(sums, lengths, strict=True)) / len(sums)
    if loss_type == "dapo":
        return sum(sums) / sum(lengths)
    return sum(sums) / (len(sums) * max_len)


def _rewards(k: int, n_groups: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_groups * k, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("k", [2, 3, 8])
@pytest.mark.parametrize("scale", [True, False])
def test_grpo_advantages_match_float64_loop(k, scale):
    rewards = _rewards(k, 5)
    got = grpo_advantages(rewards, k, scale)
    assert got.tolist() == pytest.approx(naive_grpo(rewards.tolist(), k, scale), abs=1e-12)
    # float32 rewards, as the trainer's: the same up to float32 rounding
    got32 = grpo_advantages(rewards.float(), k, scale).double()
    assert got32.tolist() == pytest.approx(naive_grpo(rewards.tolist(), k, scale), abs=1e-5)


@pytest.mark.parametrize("k", [2, 4, 7])
def test_rloo_advantages_match_float64_loop(k):
    rewards = _rewards(k, 4, seed=1)
    assert rloo_advantages(rewards, k).tolist() == pytest.approx(naive_rloo(rewards.tolist(), k), abs=1e-12)


@pytest.mark.parametrize("scale", [True, False])
def test_a_constant_group_gets_exactly_zero_advantage_and_is_counted(scale):
    # 0.1 x 3: the float mean of equal values need not equal them; max == min makes it exactly 0
    rewards = torch.tensor([0.1, 0.1, 0.1, 0.7, 0.7, 0.7, 0.0, 1.0, 0.5], dtype=torch.float32)
    for adv in (grpo_advantages(rewards, 3, scale), rloo_advantages(rewards, 3)):
        assert adv[:6].tolist() == [0.0] * 6 and torch.isfinite(adv).all()
        assert adv[6:].abs().sum() > 0
    assert frac_reward_zero_std(rewards, 3) == pytest.approx(2 / 3)
    # scale_rewards on all-constant rewards: no division blow-up
    assert grpo_advantages(torch.full((8,), 3.0), 4, True).tolist() == [0.0] * 8


def test_a_nan_reward_spoils_its_group_only():
    rewards = torch.tensor([0.1, float("nan"), 0.3, 0.2, 0.5, 0.9])
    for adv in (grpo_advantages(rewards, 3), rloo_advantages(rewards, 3)):
        assert adv[:3].isnan().all() and torch.isfinite(adv[3:]).all()
    assert grpo_advantages(torch.full((4,), float("nan")), 2).isnan().all()  # all-NaN: the step is skipped


def test_group_advantage_is_on_every_token_of_the_response():
    rewards = torch.tensor([1.0, 0.0, 2.0, 2.0])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    adv = group_advantages(rewards, mask, 2, "rloo", scale_rewards=True)
    assert adv.tolist() == [[1.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_aggregate_loss_matches_float64_loops_and_chunks_add_up(loss_type):
    g = torch.Generator().manual_seed(2)
    B, T = 6, 5
    per_token = torch.randn(B, T, generator=g, dtype=torch.float64)
    lengths = [5, 1, 3, 4, 2, 5]
    mask = torch.arange(T).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    counts = {"n_sequences": B, "n_tokens": sum(lengths), "max_len": 8}
    whole = aggregate_loss(per_token, mask, loss_type, **counts)
    assert float(whole) == pytest.approx(
        naive_aggregate(per_token.tolist(), lengths, loss_type, 8), abs=1e-12
    )
    # gradient accumulation: the chunks' losses, each with the batch's counts, add up to the batch's
    chunks = [torch.tensor([0, 3]), torch.tensor([1, 2, 4, 5])]
    parts = sum(float(aggregate_loss(per_token[i], mask[i], loss_type, **counts)) for i in chunks)
    assert parts == pytest.approx(float(whole), abs=1e-12)


def test_k3_kl_matches_naive_and_is_non_negative():
    g = torch.Generator().manual_seed(3)
    lp, ref = -torch.rand(4, 6, generator=g, dtype=torch.float64) * 3, -torch.rand(4, 6, generator=g) * 3
    ref = ref.double()
    naive = [
        [math.exp(r - p) - (r - p) - 1 for p, r in zip(a, b, strict=True)]
        for a, b in zip(lp.tolist(), ref.tolist(), strict=True)
    ]
    got = k3_kl(lp, ref)
    assert got.tolist() == [pytest.approx(row, abs=1e-12) for row in naive] and (got >= 0).all()
    assert k3_kl(lp, lp).abs().max() == 0


def test_clip_ratios_are_trls_low_high_and_region():
    """clipfrac_low = r < 1 - e_low with A < 0; clipfrac_high = r > 1 + e_high with A > 0; clipfrac = either."""
    ratio = torch.tensor([[0.5, 0.5, 1.5, 1.5, 1.0, 0.75]])
    adv = torch.tensor([[-1.0, 1.0, 1.0, -1.0, 1.0, -1.0]])
    mask = torch.ones_like(adv, dtype=torch.bool)
    _, stats = policy_loss_terms(ratio.log(), torch.zeros_like(ratio), adv, mask, 0.2, 0.28)
    assert float(stats["policy/clipfrac_low"]) == pytest.approx(2 / 6)  # 0.5 and 0.75, both A < 0
    assert float(stats["policy/clipfrac_high"]) == pytest.approx(1 / 6)  # 1.5 with A > 0
    assert float(stats["policy/clipfrac"]) == pytest.approx(3 / 6)


# ---------------------------------------------------------------------- config and command line


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_a_group_of_one_sample_is_an_error_before_start(algorithm):
    with pytest.raises(ConfigError, match=f"algorithm='{algorithm}' needs samples_per_prompt >= 2"):
        PPOConfig().replace(algorithm=algorithm, samples_per_prompt=1)
    with pytest.raises(ConfigError, match="loss_type"):
        PPOConfig().replace(algorithm="grpo", loss_type="bnpo")
    with pytest.raises(ConfigError, match="num_iterations"):
        PPOConfig().replace(num_iterations=0)


def test_the_group_settings_are_flags_and_round_trip():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    argv = "--algorithm grpo --no-scale-rewards --loss-type dr_grpo --num-iterations 2 --kl-loss-coef 0.04"
    config = config_from_args(parser.parse_args(argv.split()))
    ppo = config.ppo
    assert (ppo.algorithm, ppo.scale_rewards, ppo.loss_type, ppo.num_iterations, ppo.kl_loss_coef) == (
        "grpo", False, "dr_grpo", 2, 0.04,
    )  # fmt: skip
    assert not config.uses_value_head and config.optimizer_steps_per_iteration == 2
    assert config_from_args(parser.parse_args(config_to_argv(config))) == config
    assert PPOConfig.from_dict(config.to_dict()) == config


# ---------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_sources(tmp_path_factory) -> Sources:
    return make_tiny_sources(tmp_path_factory.mktemp("models"))[0]


def _stored(run_dir) -> list[tuple]:
    """(step, prompt_id, sample_idx, reward, advantage list, value) of the stored rollouts, in order."""
    with store_cursor(run_dir) as (cur, _):
        return cur.execute(
            "SELECT step, prompt_id, sample_idx, reward, advantage, value FROM rollouts "
            "ORDER BY step, prompt_id, sample_idx"
        ).fetchall()


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_group_run_stores_the_group_advantage_recomputed_from_stored_rewards(
    algorithm, tmp_path, tiny_sources
):
    k = 4
    # 4 prompts a step out of 6: step 2 straddles two passes over the pool, and still draws a prompt
    # once, so a prompt at a step is one group
    config = tiny_config(steps=3, prompts_per_step=4, samples_per_prompt=k, save_every=2).replace(
        algorithm=algorithm, num_iterations=2, kl_loss_coef=0.05, cliprange_high=0.28, num_minibatches=2
    )
    writer = RunWriter.create(tmp_path / "run", kind="ppo", config=config.to_dict(), seed=0)
    trainer = build_trainer(config, writer, sources=tiny_sources, device="cpu")
    assert trainer.value_head is None
    before = [p.detach().clone() for p in trainer.trainable_parameters()]
    results = []
    trainer.train(on_step=results.append)
    m = results[0].metrics
    assert m["policy/ratio_first_minibatch"] == pytest.approx(1.0, abs=1e-5)  # on-policy first step
    for key in ("objective/frac_reward_zero_std", "policy/clipfrac_low", "policy/clipfrac_high", "policy/clipfrac",
                "entropy/before_update", "entropy/after_update", "loss/kl", "loss/total"):  # fmt: skip
        assert key in m, key
    assert not any(key.startswith("val/") for key in m)  # no critic
    assert any((a != b).any() for a, b in zip(before, trainer.trainable_parameters(), strict=True))

    rows = _stored(tmp_path / "run")
    assert len(rows) == 3 * 4 * k
    formula = naive_grpo if algorithm == "grpo" else naive_rloo
    checked = 0
    for start in range(0, len(rows), k):
        group = rows[start : start + k]
        assert len({(r[0], r[1]) for r in group}) == 1  # one step, one prompt
        rewards = [r[3] for r in group]
        expected = formula(rewards, k, True) if algorithm == "grpo" else formula(rewards, k)
        for row, want in zip(group, expected, strict=True):
            assert row[5] is None  # no value column without a critic
            assert all(a == pytest.approx(want, abs=2e-5) for a in row[4]), (row[:4], want)
            checked += 1
    assert checked == len(rows)
    # checkpoints without a value head, and a resume that loads them
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [2, 3]
    assert not (tmp_path / "run" / "checkpoints" / "step-2" / "value_head.safetensors").exists()
    again = build_trainer(config, RunWriter.open(tmp_path / "run"), sources=tiny_sources, device="cpu")
    assert resume_step(again) == 4


def test_constant_rewards_give_zero_advantage_and_no_update(tmp_path, tiny_sources, monkeypatch):
    config = tiny_config(steps=1).replace(algorithm="grpo", scale_rewards=True)
    trainer = build_trainer(config, None, sources=tiny_sources, device="cpu")
    monkeypatch.setattr(trainer.reward.model, "forward", lambda ids, mask: torch.full((ids.shape[0],), 0.3))
    before = [p.detach().clone() for p in trainer.trainable_parameters()]
    result = trainer.iteration(1)
    assert result.metrics["objective/frac_reward_zero_std"] == 1.0
    assert all(a.tolist() == [0.0] * len(a) for a in result.rows["advantage"])
    after = trainer.trainable_parameters()
    assert all(torch.isfinite(p).all() for p in after)
    # zero advantage, no KL term: a zero gradient (AdamW's weight decay still shrinks the LoRA weights)
    assert result.metrics["policy/grad_norm"] == 0.0
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_all_nan_rewards_skip_the_step_and_leave_the_weights(algorithm, tiny_sources, monkeypatch):
    config = tiny_config(steps=1).replace(algorithm=algorithm)
    trainer = build_trainer(config, None, sources=tiny_sources, device="cpu")
    monkeypatch.setattr(
        trainer.reward.model, "forward", lambda ids, mask: torch.full((ids.shape[0],), float("nan"))
    )
    before = [p.detach().clone() for p in trainer.trainable_parameters()]
    result = trainer.iteration(1)
    assert result.skipped and result.rows is None and result.metrics["guard/bad_step"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.trainable_parameters(), strict=True))


@pytest.mark.parametrize(
    ("control", "key"), [("clip_cov", "policy/clip_cov_frac"), ("kl_cov", "policy/kl_cov_frac")]
)
def test_the_entropy_controls_drive_the_group_loss_too(control, key, tiny_sources):
    config = tiny_config(steps=1).replace(algorithm="rloo", entropy_control=control, loss_type="dr_grpo")
    trainer = build_trainer(config, None, sources=tiny_sources, device="cpu")
    metrics = trainer.iteration(1).metrics
    assert key in metrics and math.isfinite(metrics["loss/total"])
