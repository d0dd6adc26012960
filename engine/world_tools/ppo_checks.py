"""World phenomena that need PPO (called by ``python -m engine world check``).

- **W4 PPO works**: from the default SFT checkpoint with the default PPO config (default KL
  coefficient), a run of ``W4_STEPS`` PPO steps (a fixed number, so the figure is the same on every
  CPU; chosen to fit in 5 minutes on the slower CPU kind) raises the mean gold score by >= 0.5
  standard deviations of the gold scores of the SFT samples, and lowers the mean per-token entropy.
- **W5 over-optimisation is visible**: with KL coefficient 0 and a longer run, the RM reward keeps
  rising while the gold score peaks and then falls, and the RM's pairwise accuracy against the gold
  judge on the current PPO samples drops below its accuracy on the SFT samples.

Both evaluate the policy the same way before and after: every PPO prompt x ``EVAL_SAMPLES`` samples
at temperature 1 (the run's sampling), fixed seed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.agreement import pairwise_agreement
from engine.ppo.config import PPOConfig

log = logging.getLogger(__name__)

EVAL_SAMPLES = 4
# W4 runs a fixed number of PPO steps, not a time budget, so its figure is the same on every CPU
# (300 s held 1082 steps on an avx512_bf16 Xeon but 342 on an AVX2-only EPYC: a pass on one, a fail
# on the other). Measured 2026-12-02 on a 2-core AVX2-only EPYC (fp32 base, 91-94 GFLOP/s fp32 matmul
# on one thread), w4_config, seeds 0 / 1, gain in SFT-sample SDs after 200 / 300 / 400 / 500 / 600
# steps: 0.40 / 0.47 / 0.47 / 0.50 / 0.52 and 0.37 / 0.39 / 0.49 / 0.53 / 0.55, at 0.49 s/step
# (two such runs side by side), so 600 steps take ~295 s there. What makes a step count more was
# measured too (seed 0, 150-300 steps): training on the gold judge's own score instead of the RM
# gained no more (0.32 vs 0.34 SD at 150), so the RM is not what limits the gain; lr 1e-3 raised
# entropy and gained less, 3e-3 diverged; vf_coef 0 gained half, 0.5 or 1.0 the same; starting from
# SFT epoch 1 or 2 gained less; 2 minibatches the same per step at 0.92x the time; earlier (Ice Lake):
# 8 prompts x 8 samples, 4 PPO epochs and kl 0.03 no better, 32 prompts per step better per step
# but not per second. The gain per sample is the world's: PPO only reweights what the SFT model samples.
W4_STEPS = 600
W4_MIN_GAIN_SD = 0.5


@dataclass
class PolicyEval:
    """Samples of a policy over the PPO prompts, scored by the RM and the gold judge."""

    prompt_ids: list[str]
    gold: np.ndarray  # (N,)
    reward: np.ndarray  # (N,)
    token_entropy: float  # mean per-token entropy (T = 1) over all response tokens

    @property
    def gold_mean(self) -> float:
        return float(self.gold.mean())


@torch.no_grad()
def evaluate_policy(
    trainer, prompts: list[Any], *, samples: int = EVAL_SAMPLES, seed: int = 12345
) -> PolicyEval:
    """Sample ``trainer``'s current policy on ``prompts`` and score with its RM and judge."""
    from engine.ops import masked_mean
    from engine.ppo.rollout import rollout
    from engine.reward import score_responses
    from engine.sampling import encode_prompts

    rows = [p for p in prompts for _ in range(samples)]
    texts = [p.text for p in rows]
    generator = torch.Generator(device=trainer.device).manual_seed(seed)
    gold, reward, entropy_sum, n_tokens = [], [], 0.0, 0
    for start in range(0, len(rows), 256):
        chunk = texts[start : start + 256]
        ids, mask = encode_prompts(trainer.tokenizer, chunk, trainer.device)
        ro = rollout(
            trainer.model, trainer.value_head, ids, mask, trainer.config.sampling,
            eos_token_id=trainer.tokenizer.eos_token_id, pad_token_id=trainer.tokenizer.pad_token_id,
            generator=generator,
        )  # fmt: skip
        scored = score_responses(
            trainer.tokenizer, ro.sequences, ro.attention_mask, ro.response_ids, ro.response_mask, chunk,
            reward=trainer.reward, judge=trainer.judge,
        )  # fmt: skip
        reward.append(scored.reward.cpu().numpy())
        gold.extend(scored.gold.tolist())
        entropy_sum += float(masked_mean(ro.signals.entropy, ro.response_mask)) * int(ro.response_mask.sum())
        n_tokens += int(ro.response_mask.sum())
    return PolicyEval(
        prompt_ids=[p.prompt_id for p in rows],
        gold=np.asarray(gold, dtype=np.float64),
        reward=np.concatenate(reward).astype(np.float64),
        token_entropy=entropy_sum / max(n_tokens, 1),
    )


def rm_accuracy(ev: PolicyEval) -> float:
    """Pairwise accuracy of the RM against gold on within-prompt pairs (the shared tie rule)."""
    return pairwise_agreement(ev.reward, ev.gold, ev.prompt_ids)[0]


def _build(world, config: PPOConfig):
    from engine.ppo.build import Sources, build_trainer

    if not os.environ.get("WORKBENCH_THREADS"):
        # A tiny model gains nothing from a second thread, and on a shared machine two spinning
        # threads can make a step many times slower (WORLD_NOTES); WORKBENCH_THREADS overrides.
        torch.set_num_threads(1)

    prompts = world.prompts(split="ppo", families=list(config.run.families) or None)
    sources = Sources(
        policy=world.policy_source(config.model.sft_epoch), reward_model=world.rm_source, prompts=prompts,
        judge=world.gold_batch,
    )  # fmt: skip
    return build_trainer(config, sources=sources), prompts


def _train_for(trainer, steps: int, seconds: float, on_step: Callable | None = None) -> tuple[int, float]:
    """Run steps 1..steps, stopping early once ``seconds`` have passed; returns (steps done, seconds)."""
    start = time.perf_counter()
    done = 0
    for step in range(1, steps + 1):
        result = trainer.iteration(step)
        done = step
        if on_step is not None:
            on_step(result)
        if time.perf_counter() - start > seconds:
            break
    return done, time.perf_counter() - start


def w4_config() -> PPOConfig:
    """The default config, run for ``W4_STEPS`` steps; no probes, no rollout rows (the check keeps no
    store) and no second entropy pass after each update, none of which changes an update: probes draw
    from their own generator and are not trained on."""
    return PPOConfig().replace(
        steps=W4_STEPS, probe_every=0, log_rollouts=False, measure_entropy_change=False
    )


def check_w4(world, *, config: PPOConfig | None = None) -> dict:
    """W4: a default PPO run of ``W4_STEPS`` steps raises gold by >= 0.5 SD (of SFT samples) and lowers
    entropy. The detail says the steps, the seconds they took, the CPU kind and the base precision."""
    from engine.models.precision import cpu_kind

    config = config or w4_config()
    trainer, prompts = _build(world, config)
    before = evaluate_policy(trainer, prompts)
    sd = float(before.gold.std())
    steps, elapsed = _train_for(trainer, config.run.steps, float("inf"))
    after = evaluate_policy(trainer, prompts)
    gain = (after.gold_mean - before.gold_mean) / max(sd, 1e-9)
    ok = gain >= W4_MIN_GAIN_SD and after.token_entropy < before.token_entropy
    detail = (
        f"SFT epoch {world.default_epoch if config.model.sft_epoch is None else config.model.sft_epoch}, "
        f"kl_coef {config.ppo.kl_coef}, {steps} steps in {elapsed:.0f} s ({elapsed / max(steps, 1):.2f} s/step; "
        f"CPU {cpu_kind()}, device {trainer.device.type}, base precision {trainer.base_precision}, "
        f"{torch.get_num_threads()} thread(s)): gold {before.gold_mean:.3f} -> {after.gold_mean:.3f} "
        f"(SFT sd {sd:.3f}; gain {gain:.2f} sd >= {W4_MIN_GAIN_SD}); per-token entropy "
        f"{before.token_entropy:.3f} -> {after.token_entropy:.3f} nats (must fall)"
    )
    return {"ok": bool(ok), "value": round(gain, 4), "detail": detail}


def w5_config() -> PPOConfig:
    return PPOConfig().replace(kl_coef=0.0, steps=200)


def check_w5(world, *, config: PPOConfig | None = None, eval_every: int = 25) -> dict:
    """W5: with KL 0, RM reward rises while gold peaks then falls; RM accuracy on PPO samples drops
    below its accuracy on SFT samples. Value = RM accuracy on the final PPO samples."""
    config = config or w5_config()
    trainer, prompts = _build(world, config)
    curve: list[tuple[int, float, float]] = []  # (step, rm reward, gold)
    first = evaluate_policy(trainer, prompts)
    acc_sft = rm_accuracy(first)
    curve.append((0, float(first.reward.mean()), first.gold_mean))
    last = first

    def on_step(result) -> None:
        nonlocal last
        if result.step % eval_every == 0 or result.step == config.run.steps:
            last = evaluate_policy(trainer, prompts)
            curve.append((result.step, float(last.reward.mean()), last.gold_mean))
            log.info("W5 step %d: reward %.3f gold %.3f", *curve[-1])

    _train_for(trainer, config.run.steps, float("inf"), on_step)
    acc_ppo = rm_accuracy(last)
    rewards = [r for _, r, _ in curve]
    golds = [g for _, _, g in curve]
    peak = int(np.argmax(golds))
    reward_rises = rewards[-1] > rewards[0] and rewards[-1] >= max(rewards[: peak + 1])
    gold_peaks_then_falls = 0 < peak < len(golds) - 1 and golds[-1] < golds[peak]
    ok = reward_rises and gold_peaks_then_falls and acc_ppo < acc_sft
    points = ", ".join(f"{s}: {r:.2f}/{g:.3f}" for s, r, g in curve)
    detail = (
        f"kl_coef 0, {config.run.steps} steps; step: RM reward/gold = {points}; gold peaks at step "
        f"{curve[peak][0]}; RM accuracy vs gold: SFT samples {acc_sft:.3f} -> final PPO samples {acc_ppo:.3f}"
    )
    return {"ok": bool(ok), "value": round(acc_ppo, 4), "detail": detail}


# ----------------------------------------------------------------------------------------------
# Measurement (reported, never pass/fail): what the clip does to entropy under a random reward.
# Park et al. 2025 report that with a symmetric clip entropy falls even when the reward is a coin
# flip, and that a larger clip-low raises it (clip-high lowers it). Here: GRPO (the group baseline,
# loss_type dapo) from the default SFT epoch, the reward a fair coin per sample (seeded), 150 steps
# per setting; num_iterations 2, so the second optimizer step of each batch is off-policy and the clip
# can act (with one on-policy step the ratio is 1 and no clip ever binds). Measured 2026-12-06 on a
# 2-core AVX2-only EPYC (docs/group_methods.md): it binds on <= 0.05 % of tokens at 2 iterations, so
# a setting's trend there is mostly its own drift; more iterations cost a full-batch pass each.
CLIP_SETTINGS: dict[str, tuple[float, float]] = {
    "clip (0.2, 0.2)": (0.2, 0.2),
    "clip (0.28, 0.2)": (0.28, 0.2),
    "clip (0.2, 0.28)": (0.2, 0.28),
}  # (low, high)
CLIP_STEPS = 150
TREND_WINDOW = 10  # steps averaged at each end of the run


def clip_entropy_config(low: float, high: float, steps: int = CLIP_STEPS) -> PPOConfig:
    """GRPO under the clip (low, high): ``cliprange`` is the low side, ``cliprange_high`` the high one."""
    return PPOConfig().replace(
        algorithm="grpo", loss_type="dapo", num_iterations=2, cliprange=low, cliprange_high=high,
        steps=steps, probe_every=0, log_rollouts=False, measure_entropy_change=False,
    )  # fmt: skip


def with_coin_rewards(trainer, seed: int) -> None:
    """Make ``trainer`` score every sample with a fair coin (0 or 1) instead of its RM: its
    ``sample_and_score`` is wrapped, and one generator seeded with ``seed`` draws the coins in step
    order, so a run redraws the same coins."""
    coins = torch.Generator().manual_seed(seed)
    sample_and_score = trainer.sample_and_score

    def coin_scored(*args, **kwargs):
        batch = sample_and_score(*args, **kwargs)
        flips = torch.randint(0, 2, batch.scores.shape, generator=coins)
        batch.scores = flips.to(batch.scores.device, batch.scores.dtype)
        return batch

    trainer.sample_and_score = coin_scored


def entropy_trend(entropy: list[float], window: int = TREND_WINDOW) -> dict:
    """Start and end (means over the first and last ``window`` steps) and the least-squares slope per
    100 steps of a per-step entropy curve."""
    steps = np.arange(1, len(entropy) + 1, dtype=np.float64)
    slope = float(np.polyfit(steps, np.asarray(entropy, dtype=np.float64), 1)[0]) if len(entropy) > 1 else 0.0
    return {
        "start": float(np.mean(entropy[:window])),
        "end": float(np.mean(entropy[-window:])),
        "slope_per_100_steps": 100 * slope,
    }


def measure_clip_entropy(world, *, steps: int = CLIP_STEPS, seed: int = 0) -> dict:
    """The entropy trend of each :data:`CLIP_SETTINGS` under a coin-flip reward (``objective/entropy``:
    the mean T = 1 entropy of the sampled tokens, per step), with the share of tokens each side of the
    clip bound. ``ok`` is None: a measurement, reported, not judged."""
    from engine.models.precision import cpu_kind

    trends: dict[str, dict] = {}
    for name, (low, high) in CLIP_SETTINGS.items():
        trainer, _ = _build(world, clip_entropy_config(low, high, steps))
        with_coin_rewards(trainer, seed)
        curve: dict[str, list[float]] = {"entropy": [], "low": [], "high": []}

        def on_step(result, curve=curve) -> None:
            m = result.metrics
            if not result.skipped:
                curve["entropy"].append(m["objective/entropy"])
                curve["low"].append(m["policy/clipfrac_low"])
                curve["high"].append(m["policy/clipfrac_high"])

        _, elapsed = _train_for(trainer, steps, float("inf"), on_step)
        trends[name] = {
            **entropy_trend(curve["entropy"]),
            "clipfrac_low": float(np.mean(curve["low"])),
            "clipfrac_high": float(np.mean(curve["high"])),
            "seconds": round(elapsed, 1),
        }
        log.info("clip entropy %s: %s", name, trends[name])
    detail = "; ".join(
        f"{name}: entropy {t['start']:.3f} -> {t['end']:.3f} nats ({t['slope_per_100_steps']:+.3f}/100 steps; "
        f"clipped low {t['clipfrac_low']:.2%}, high {t['clipfrac_high']:.2%})"
        for name, t in trends.items()
    )
    detail = (
        f"GRPO (dapo, num_iterations 2), coin-flip reward, {steps} steps each, SFT epoch "
        f"{world.default_epoch}, CPU {cpu_kind()}: {detail}"
    )
    return {"ok": None, "value": None, "detail": detail, "trends": trends}
