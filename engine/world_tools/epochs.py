"""Which SFT epoch to start PPO from: the sampling space of every SFT checkpoint.

For each epoch, samples on every prompt of every split give: mean per-token entropy on SFT-train
prompts vs held-out SFT-family prompts vs PPO-only prompts (the seed's 0.12 vs 0.19 comparison),
the RM and gold scores of the samples, and the best-of-N gold per prompt (the ceiling of what PPO
can reach by moving mass between samples the model can already produce).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from engine.config import SamplingConfig
from engine.world import World

REPORT_FILE = "epoch_samples.parquet"
MAX_NEW_TOKENS = 24


def sample_epochs(
    world: World,
    *,
    samples_per_prompt: int = 8,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """One row per sample: epoch, split, family, prompt_id, mean_entropy, n_tokens, gold, reward."""
    from engine.reward import load_reward_model, score_texts
    from engine.world_tools.samples import sample_checkpoint

    rm = load_reward_model(world.rm_source)
    prompts = world.prompts()
    split_of = {p.prompt_id: p.split for p in prompts}
    frames = []
    for i, epoch in enumerate(world.sft_epochs):
        s = sample_checkpoint(
            world.policy_source(epoch),
            prompts,
            world.gold_batch,
            SamplingConfig(max_new_tokens=MAX_NEW_TOKENS),
            samples_per_prompt=samples_per_prompt,
            seed=seed,
        )
        frames.append(
            pd.DataFrame(
                {
                    "epoch": epoch,
                    "prompt_id": s.prompt_ids,
                    "split": [split_of[p] for p in s.prompt_ids],
                    "family": s.families,
                    "response": s.responses,
                    "mean_entropy": s.mean_entropy,
                    "gold": s.gold,
                    "reward": score_texts(rm, s.prompts, s.responses).numpy(),
                }
            )
        )
        if progress:
            progress(i + 1, len(world.sft_epochs))
    return pd.concat(frames, ignore_index=True)


def report_path(world: World) -> Path:
    return world.path / REPORT_FILE


def load_or_sample(world: World, progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """The shipped per-epoch samples, computed (and saved) when missing."""
    path = report_path(world)
    if path.is_file():
        return pd.read_parquet(path)
    frame = sample_epochs(world, progress=progress)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return frame


def epoch_table(samples: pd.DataFrame) -> pd.DataFrame:
    """Per epoch: mean entropy by split, PPO-only / SFT-train ratio, mean and best-of-N gold and reward."""
    entropy = samples.pivot_table(index="epoch", columns="split", values="mean_entropy", aggfunc="mean")
    entropy.columns = [f"entropy_{c}" for c in entropy.columns]
    per_prompt = samples.groupby(["epoch", "prompt_id"]).agg(
        best_gold=("gold", "max"), best_reward=("reward", "max")
    )
    table = entropy.join(samples.groupby("epoch").agg(gold=("gold", "mean"), reward=("reward", "mean")))
    table = table.join(per_prompt.groupby("epoch").mean())
    if {"entropy_ppo_only", "entropy_sft_train"} <= set(table.columns):
        table["entropy_ratio_ppo_only_vs_sft"] = table["entropy_ppo_only"] / table["entropy_sft_train"]
    return table.reset_index()


def entropy_floor(table: pd.DataFrame, column: str = "entropy_sft_train", tolerance: float = 0.1) -> int:
    """First epoch whose entropy is within ``tolerance`` (relative) of the last epoch's: the floor."""
    last = float(table[column].iloc[-1])
    for epoch, value in zip(table["epoch"], table[column], strict=True):
        if value <= last * (1 + tolerance):
            return int(epoch)
    return int(table["epoch"].iloc[-1])
