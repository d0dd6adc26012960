"""Tiny stand-ins for the shipped demo runs (``demo-default``, ``demo-kl0``, ``demo-late-epoch``) and
the world's per-epoch SFT samples, for the Learn path's tests and the probe queries' tests.

Each run: rollouts at steps 1..7 (two prompts x 4 samples), probes at steps 1, 3, 5, 7 (two probe
prompts x 4 samples, answers collapsing onto one as the steps go), and per-step RM / gold / KL metrics
where the RM keeps rising while gold peaks at step 4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from store_fixture import rollout_row

from engine.store import RunWriter

RUN_IDS = ("demo-default", "demo-kl0", "demo-late-epoch")
PROBE_STEPS = (1, 3, 5, 7)
STEPS = tuple(range(1, 8))
# prompt_id -> (family, prompt): the fake world's families (greet in SFT data, count PPO-only)
PROMPTS = {"g0": ("greet", "w1 w2 w3"), "c0": ("count", "w9 w8")}


def _row(prompt_id: str, idx: int, tokens: list[str], reward: float, gold: float) -> dict:
    family, prompt = PROMPTS[prompt_id]
    entropy = [0.2 + 0.3 * ((i + idx) % 4) for i in range(len(tokens))]
    return rollout_row(
        prompt_id, family, prompt, idx, tokens, entropy, reward=reward, gold=gold, kl=0.1 * idx, has_eos=True
    )


def _samples(step: int, probe: bool) -> list[dict]:
    rows = []
    for p, prompt_id in enumerate(PROMPTS):
        for idx in range(4):
            # later steps: more samples repeat answer 0 (fewer distinct answers)
            answer = 0 if idx < step // 2 else idx
            tokens = [f"w{answer + 1}", f"w{p + 5}", "[EOS]"]
            reward = float(step + idx - 2 * p + (3.0 if idx == 3 and step > 4 else 0.0))
            gold = float(np.clip(0.2 + 0.1 * min(step, 4) - 0.05 * max(step - 4, 0) + 0.05 * idx, 0, 1))
            if idx == 3 and step > 4 and not probe:
                gold = 0.0  # an RM exploit: top reward, zero gold
            rows.append(_row(prompt_id, idx, tokens, reward, gold))
    return rows


def build_demo_runs(demo_dir: Path, run_ids: tuple[str, ...] = RUN_IDS) -> Path:
    """Write the stand-in demo runs under ``demo_dir`` and return it."""
    for run_id in run_ids:
        writer = RunWriter.create(demo_dir / run_id, kind="ppo", config={}, seed=0, source=f"demo: {run_id}")
        for step in STEPS:
            writer.write_rollouts(step, _samples(step, probe=False))
            if step in PROBE_STEPS:
                writer.write_probes(step, [{**r, "is_probe": True} for r in _samples(step, probe=True)])
            gold = 0.2 + 0.1 * min(step, 4) - 0.05 * max(step - 4, 0)
            writer.write_metrics(
                step,
                {"objective/reward": float(step), "objective/gold": gold, "objective/kl": 0.5 * step**1.5},
            )
    return demo_dir


def write_epoch_samples(world_dir: Path, epochs: tuple[int, ...] = (1, 2)) -> Path:
    """``epoch_samples.parquet`` as ``engine.world_tools.epochs.sample_epochs`` writes it (4 samples per
    prompt of the fake world; entropy falling with the epoch, higher on the PPO-only prompt)."""
    rows = []
    splits = {"g0": "sft_train", "g1": "eval", "c0": "ppo_only"}
    families = {"g0": "greet", "g1": "greet", "c0": "count"}
    for epoch in epochs:
        for prompt_id, split in splits.items():
            for idx in range(4):
                base = (2.0 if split == "ppo_only" else 1.0) / epoch
                rows.append(
                    {
                        "epoch": epoch,
                        "prompt_id": prompt_id,
                        "split": split,
                        "family": families[prompt_id],
                        "response": f"w{idx % epoch + 1}",
                        "mean_entropy": base + 0.1 * idx,
                        "gold": 0.1 * idx + 0.1 * epoch,
                        "reward": -5.0 + idx + epoch,
                    }
                )
    path = world_dir / "epoch_samples.parquet"
    pd.DataFrame(rows).astype({"mean_entropy": "float32", "reward": "float32"}).to_parquet(path, index=False)
    return path
