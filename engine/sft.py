"""Supervised fine-tuning with a checkpoint per epoch (loss on response tokens only)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def encode_pairs(
    tokenizer, pairs: list[tuple[str, str]], *, add_eos: bool = True
) -> list[tuple[list[int], int]]:
    """(token ids of prompt + response [+ EOS], prompt length) per pair."""
    encoded = []
    for prompt, response in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r = tokenizer(response, add_special_tokens=False)["input_ids"]
        encoded.append((p + r + ([tokenizer.eos_token_id] if add_eos else []), len(p)))
    return encoded


def collate(
    batch: list[tuple[list[int], int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (ids, attention mask, loss mask over response tokens), each (B, L)."""
    from engine.sampling import pad_right

    ids, attention = pad_right([row for row, _ in batch], pad_id)
    loss_mask = attention.clone()
    for i, (_, prompt_len) in enumerate(batch):
        loss_mask[i, :prompt_len] = False
    return ids, attention, loss_mask


def response_nll(
    model: nn.Module, ids: torch.Tensor, attention: torch.Tensor, loss_mask: torch.Tensor
) -> torch.Tensor:
    """Mean negative log-likelihood of the masked (response) tokens."""
    logits = model(input_ids=ids, attention_mask=attention.long()).logits[:, :-1]  # (B, L-1, V)
    targets = ids[:, 1:]
    mask = loss_mask[:, 1:]
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    return (nll * mask).sum() / mask.sum()


def train_sft(
    model: nn.Module,
    tokenizer,
    pairs: list[tuple[str, str]],
    *,
    epochs: int,
    out_dir: Path,
    batch_size: int = 32,
    lr: float = 1e-3,
    warmup_steps: int = 20,
    seed: int = 0,
    on_epoch_end: Callable[[int, Path], None] | None = None,
) -> list[Path]:
    """Train and save ``out_dir/epoch-<k>`` (model + tokenizer, safetensors) after every epoch."""
    data = encode_pairs(tokenizer, pairs)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup_steps))
    model.train()
    saved = []
    steps_per_epoch = (len(data) + batch_size - 1) // batch_size
    for epoch in range(1, epochs + 1):
        order = list(range(len(data)))
        rng.shuffle(order)
        total = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"SFT epoch {epoch}/{epochs}", leave=False)
        for b in bar:
            batch = [data[i] for i in order[b * batch_size : (b + 1) * batch_size]]
            loss = response_nll(model, *collate(batch, tokenizer.pad_token_id))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            total += loss.item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        path = out_dir / f"epoch-{epoch}"
        model.eval()
        model.save_pretrained(path, safe_serialization=True)
        tokenizer.save_pretrained(path)
        model.train()
        log.info("SFT epoch %d: mean loss %.4f -> %s", epoch, total / steps_per_epoch, path)
        saved.append(path)
        if on_epoch_end:
            on_epoch_end(epoch, path)
    model.eval()
    return saved
