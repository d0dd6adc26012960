"""Training of the real world's adapter RM (:class:`engine.reward.AdapterRewardModel`) on sampled
token rows and their labelled within-prompt pairs, the frozen layers run once per sample."""

from __future__ import annotations

import torch

from engine.reward import AdapterRewardModel, bradley_terry_loss, lr_schedule
from engine.sampling import pad_right


def train_adapter_reward_model(
    model: AdapterRewardModel,
    rows: list[list[int]],
    groups: list[list[tuple[int, int]]],
    *,
    pad_id: int,
    epochs: int = 2,
    batch_size: int = 32,
    lr: float = 5e-4,
    seed: int = 0,
) -> list[float]:
    """Bradley-Terry training of an adapter RM; returns the loss of each step.

    ``rows``: token ids (prompt + response, as sampled) of every sample; ``groups``: per prompt, its
    labelled (chosen, rejected) pairs as indices into ``rows``. A step takes whole prompts' groups
    (about ``batch_size`` samples), scores each sample once and averages the loss over all their pairs:
    n samples of a prompt give up to n^2/4 pairs for the cost of n. The frozen layers run once per
    sample, before the first epoch (:meth:`AdapterRewardModel.lower`); steps run the top layers only.
    """
    import random

    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    used = sorted({i for group in groups for pair in group for i in pair})
    cached: dict[int, torch.Tensor] = {}  # row -> (L_row, H) input of the first adapted layer
    by_length = sorted(used, key=lambda i: len(rows[i]))  # batches of similar length pad little
    with torch.no_grad():
        for start in tqdm(range(0, len(by_length), batch_size), desc="RM: frozen layers", leave=False):
            chunk = by_length[start : start + batch_size]
            ids, mask = pad_right([rows[i] for i in chunk], pad_id)
            hidden = model.lower(ids.to(device), mask.to(device))  # (B, L, H)
            for k, i in enumerate(chunk):
                cached[i] = hidden[k, : len(rows[i])].clone()

    rng = random.Random(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.01)
    steps_per_epoch = _group_batches(groups, batch_size, list(range(len(groups))))
    total = len(steps_per_epoch) * epochs
    schedule = lr_schedule(optimizer, lr, total)
    losses = []
    model.train()
    with tqdm(total=total, desc="RM: training", leave=False) as bar:
        for _ in range(epochs):
            order = list(range(len(groups)))
            rng.shuffle(order)
            for batch in _group_batches(groups, batch_size, order):
                pairs = [pair for g in batch for pair in groups[g]]
                members = sorted({i for pair in pairs for i in pair})
                where = {row: k for k, row in enumerate(members)}
                hidden, mask = _pad_cached([cached[i] for i in members])
                scores = model.upper(hidden.to(device), mask.to(device))  # (B,)
                chosen = scores[[where[c] for c, _ in pairs]]
                rejected = scores[[where[r] for _, r in pairs]]
                loss = bradley_terry_loss(chosen, rejected)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return losses


def _group_batches(groups: list[list[tuple[int, int]]], batch_size: int, order: list[int]) -> list[list[int]]:
    """``order``'s groups cut into batches of about ``batch_size`` distinct samples (whole groups)."""
    batches, current, size = [], [], 0
    for g in order:
        current.append(g)
        size += len({i for pair in groups[g] for i in pair})
        if size >= batch_size:
            batches.append(current)
            current, size = [], 0
    if current:
        batches.append(current)
    return batches


def _pad_cached(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, L, H) hidden states and (B, L) mask of per-row (L_row, H) states."""
    width = max(s.shape[0] for s in states)
    hidden = states[0].new_zeros(len(states), width, states[0].shape[1])
    mask = torch.zeros(len(states), width, dtype=torch.bool)
    for k, s in enumerate(states):
        hidden[k, : s.shape[0]] = s
        mask[k, : s.shape[0]] = True
    return hidden, mask
