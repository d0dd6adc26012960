"""GRPO and RLOO: critic-free advantages from the other samples of the same prompt.

A *group* is the ``samples_per_prompt`` responses of one prompt in one step (the trainer samples each
prompt that many times, consecutively, so a (B,) batch is ``B / k`` groups of ``k`` rows). Each
response's scalar advantage is its reward against its group's baseline, and every token of the
response gets it. No value head is built, no GAE runs; the loss is the clipped surrogate of
:mod:`engine.ppo.losses` aggregated as TRL's ``loss_type`` says, plus an optional k3 KL term.

What differs from the papers (GRPO: Shao et al. 2024, arXiv 2402.03300; RLOO: Ahmadian et al. 2024,
arXiv 2402.14740) and from TRL's ``GRPOTrainer`` / ``RLOOTrainer``:

- the reward is the RM score (after the missing-EOS penalty and the clip, when set); PPO's
  ``reward_norm`` is skipped, the group baseline is the normalisation;
- a group whose rewards are all equal gets advantage exactly 0 (TRL gets ``0 / (0 + 1e-4)`` up to
  rounding); such groups are counted in ``objective/frac_reward_zero_std``;
- ``num_iterations`` optimizer steps per generation batch, each on the whole batch (its
  ``num_minibatches`` chunks accumulate gradients), so ``num_iterations = 1`` is on-policy (ratio 1);
- RLOO's advantage is never divided by a std (``scale_rewards`` is GRPO's), and RLOO, like GRPO here,
  has its KL to the reference as a loss term (``kl_loss_coef``), not in the reward;
- in a data-parallel run the ``dapo`` token normaliser is each rank's own token count (TRL divides the
  global count by the number of processes: the same on average).

Launch (one process; ``--processes 2`` for data parallel, as PPO)::

    python -m engine ppo --algorithm grpo --loss-type dapo --cliprange-high 0.28 --run-id grpo-1
    python -m engine ppo --algorithm rloo --kl-loss-coef 0.04 --run-id rloo-1
"""

from __future__ import annotations

import torch

# TRL's epsilon in the GRPO std (trl/trainer/grpo_trainer.py, ``std_rewards + 1e-4``).
STD_EPS = 1e-4


def constant_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(B,) rewards -> (B / k,) bool: the groups whose rewards are all equal (std 0).

    Compared with max == min, not std == 0: the float std of equal values can round above 0.
    """
    groups = rewards.view(-1, group_size)
    return groups.amax(-1) == groups.amin(-1)


def grpo_advantages(rewards: torch.Tensor, group_size: int, scale_rewards: bool = True) -> torch.Tensor:
    """GRPO's advantage, (B,) -> (B,): ``(r - group mean) / (group std + 1e-4)``; without the division
    when ``scale_rewards`` is off (Dr. GRPO, Liu et al. 2025, arXiv 2503.20783). The std is the unbiased
    one (Bessel), as TRL's ``rewards.view(-1, G).std(dim=1)``. A constant group gets exactly 0.

    Naive equivalent, per group ``g`` of ``k`` rewards:
    ``m = sum(g) / k; s = sqrt(sum((x - m) ** 2 for x in g) / (k - 1)); [(x - m) / (s + 1e-4) for x in g]``.
    """
    groups = rewards.view(-1, group_size)  # (G, k)
    centred = groups - groups.mean(-1, keepdim=True)
    if scale_rewards:
        centred = centred / (groups.std(-1, keepdim=True) + STD_EPS)
    constant = constant_groups(rewards, group_size).unsqueeze(-1)  # (G, 1)
    return centred.masked_fill(constant, 0.0).reshape(-1)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO's leave-one-out advantage, (B,) -> (B,): each reward minus the mean of the *other*
    ``k - 1`` rewards of its group (Ahmadian et al. 2024; Kool et al. 2019). A constant group gets 0.

    Naive equivalent, per group ``g``: ``[x - (sum(g) - x) / (k - 1) for x in g]``; it equals
    ``k / (k - 1) * (x - mean(g))``, the form used here.
    """
    groups = rewards.view(-1, group_size)  # (G, k)
    advantages = (groups - groups.mean(-1, keepdim=True)) * (group_size / (group_size - 1))
    constant = constant_groups(rewards, group_size).unsqueeze(-1)
    return advantages.masked_fill(constant, 0.0).reshape(-1)


def group_advantages(
    rewards: torch.Tensor, response_mask: torch.Tensor, group_size: int, algorithm: str, scale_rewards: bool
) -> torch.Tensor:
    """The algorithm's per-response advantage on every real token of the response: (B,), (B, T) -> (B, T),
    0 outside the mask. A NaN reward makes its whole group NaN (the trainer then skips the step)."""
    if algorithm == "grpo":
        per_response = grpo_advantages(rewards, group_size, scale_rewards)
    elif algorithm == "rloo":
        per_response = rloo_advantages(rewards, group_size)
    else:
        raise ValueError(f"no group advantage for algorithm {algorithm!r}")
    return per_response.unsqueeze(-1).expand_as(response_mask).masked_fill(~response_mask, 0.0)


def frac_reward_zero_std(rewards: torch.Tensor, group_size: int) -> float:
    """Share of the groups whose rewards are all equal: they get advantage 0 and teach nothing."""
    return float(constant_groups(rewards, group_size).float().mean())
