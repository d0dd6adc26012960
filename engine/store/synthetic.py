"""A synthetic PPO run in the real store layout, for benchmarks, demos and screenshots.

It mimics what the seed describes: rewards mix a large between-prompt offset with a within-prompt
spread; over the steps the within-prompt spread narrows and its mean rises (entropy reduction), so
the raw reward density barely moves while the per-prompt normalised one narrows and shifts. Late
steps grow a few RM loopholes (reward up, gold down), repetitive and over-long samples.
Everything is built as numpy / Arrow arrays: no per-token Python loops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.store.writer import RunWriter

FAMILIES = ("arithmetic", "greeting", "story", "translation", "unseen-puzzle")
VOCAB = np.array(
    "the a cat dog sat on mat and then ran to house big small red blue one two three four five six "
    "seven eight nine ten plus minus is equals hello hi friend good day story once upon time there "
    "was king queen castle far away word means in french le la chat chien rouge bleu puzzle answer "
    "because so yes no maybe think step first next finally <eos>".split()
)


def _lists(flat: np.ndarray, offsets: pa.Array, dtype: pa.DataType) -> pa.ListArray:
    return pa.ListArray.from_arrays(
        offsets, pa.array(flat.reshape(-1).astype(dtype.to_pandas_dtype()), type=dtype)
    )


def synthetic_step(
    rng: np.random.Generator, run_id: str, step: int, n_steps: int, n_prompts: int, samples: int, tokens: int
) -> dict[str, pa.Array]:
    """Columns of one step's rollouts: ``n_prompts * samples`` rows of ``tokens`` tokens each."""
    u = step / max(n_steps - 1, 1)  # training progress in [0, 1]
    n = n_prompts * samples
    prompt_idx = np.repeat(np.arange(n_prompts), samples)
    # Prompt offsets are fixed for the run (seeded by prompt index), so prompts stay comparable.
    offsets_rng = np.random.default_rng(12345)
    prompt_offset = offsets_rng.normal(0.0, 1.5, n_prompts)
    family_idx = offsets_rng.integers(0, len(FAMILIES), n_prompts)

    quality = rng.normal(0.8 * u, 1.0 - 0.6 * u, n)  # within-prompt: mean up, spread down
    reward = prompt_offset[prompt_idx] + quality
    gold = 0.8 * prompt_offset[prompt_idx] + quality + rng.normal(0, 0.4, n)
    loophole = rng.random(n) < 0.08 * u**2  # the RM's blind spot, found late in training
    reward[loophole] += 2.5
    gold[loophole] -= 2.0

    # Per-token signals (B, T): entropy falls with training, faster on the SFT-covered families.
    covered = (family_idx[prompt_idx] != len(FAMILIES) - 1)[:, None]
    scale = np.where(covered, 1.6 - 1.2 * u, 2.2 - 0.9 * u)
    entropy = rng.gamma(2.0, scale / 2.0, (n, tokens)).astype(np.float32)
    max_prob = np.clip(np.exp(-entropy) + rng.uniform(0, 0.2, (n, tokens)), 0.01, 1.0).astype(np.float32)
    sampled_prob = (max_prob * rng.uniform(0.3, 1.0, (n, tokens))).astype(np.float32)
    logprob = np.log(sampled_prob)
    ref_logprob = logprob - rng.gamma(1.0, 0.02 + 0.1 * u, (n, tokens)).astype(np.float32)
    token_ids = rng.integers(0, len(VOCAB) - 1, (n, tokens)).astype(np.int32)
    repeat = rng.random(n) < 0.1 * u**2  # degenerate loops: one trigram over and over
    token_ids[repeat] = np.tile(token_ids[repeat, :3], tokens // 3 + 1)[:, :tokens]
    length = np.full(n, tokens, np.int32)
    has_eos = rng.random(n) > 0.05 + 0.1 * u
    token_ids[has_eos, -1] = len(VOCAB) - 1

    list_offsets = pa.array(np.arange(0, (n + 1) * tokens, tokens, dtype=np.int32))
    token_ids_arr = _lists(token_ids, list_offsets, pa.int32())
    tokens_arr = pa.ListArray.from_arrays(list_offsets, pa.array(VOCAB).take(pa.array(token_ids.reshape(-1))))
    prompt_names = np.array([f"p{i:05d}" for i in range(n_prompts)], dtype=object)
    prompt_text = np.array(
        [f"[{FAMILIES[f]}] prompt {i}: please answer" for i, f in enumerate(family_idx)], dtype=object
    )
    return {
        "run_id": pa.array(np.full(n, run_id, dtype=object), pa.string()),
        "step": pa.array(np.full(n, step, np.int32)),
        "prompt_id": pa.array(prompt_names[prompt_idx], pa.string()),
        "prompt_family": pa.array(np.array(FAMILIES, dtype=object)[family_idx[prompt_idx]], pa.string()),
        "sample_idx": pa.array(np.tile(np.arange(samples, dtype=np.int16), n_prompts)),
        "prompt": pa.array(prompt_text[prompt_idx], pa.string()),
        "response": pc.binary_join(tokens_arr, " "),
        "tokens": tokens_arr,
        "token_ids": token_ids_arr,
        "entropy": _lists(entropy, list_offsets, pa.float32()),
        "sampling_entropy": _lists(entropy * 0.9, list_offsets, pa.float32()),
        "max_prob": _lists(max_prob, list_offsets, pa.float32()),
        "sampled_prob": _lists(sampled_prob, list_offsets, pa.float32()),
        "n_candidates": _lists(np.maximum(1, np.exp(entropy)).astype(np.int32), list_offsets, pa.int32()),
        "logprob": _lists(logprob, list_offsets, pa.float32()),
        "ref_logprob": _lists(ref_logprob, list_offsets, pa.float32()),
        "value": _lists(np.cumsum(rng.normal(0, 0.05, (n, tokens)), axis=1), list_offsets, pa.float32()),
        "reward": pa.array(reward.astype(np.float32)),
        "gold": pa.array(gold.astype(np.float32)),
        "kl": pa.array((logprob - ref_logprob).sum(axis=1).astype(np.float32)),
        "length": pa.array(length),
        "has_eos": pa.array(has_eos),
        "mean_entropy": pa.array(entropy.mean(axis=1)),
        "temperature": pa.array(np.ones(n, np.float32)),
        "top_p": pa.array(np.ones(n, np.float32)),
        "top_k": pa.array(np.zeros(n, np.int32)),
        "checkpoint": pa.array(np.full(n, f"step-{step}", dtype=object), pa.string()),
    }


def write_synthetic_run(
    run_dir: Path,
    *,
    steps: int,
    prompts: int,
    samples: int,
    tokens: int = 32,
    seed: int = 0,
    overwrite: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> float:
    """Write a synthetic run; returns the seconds spent inside ``write_rollouts`` (generation excluded)."""
    writer = RunWriter.create(
        run_dir,
        kind="ppo",
        config={"synthetic": True, "steps": steps, "prompts": prompts, "samples": samples, "tokens": tokens},
        seed=seed,
        source="engine.store.synthetic",
        overwrite=overwrite,
    )
    rng = np.random.default_rng(seed)
    write_s = 0.0
    for step in range(steps):
        columns = synthetic_step(rng, writer.run_id, step, steps, prompts, samples, tokens)
        start = time.perf_counter()
        writer.write_rollouts(step, columns)
        write_s += time.perf_counter() - start
        reward = columns["reward"].to_numpy()
        writer.write_metrics(
            step,
            {
                "env/reward_mean": float(reward.mean()),
                "env/reward_std": float(reward.std()),
                "objective/kl": float(columns["kl"].to_numpy().mean()),
                "objective/entropy": float(columns["mean_entropy"].to_numpy().mean()),
            },
        )
        if on_step is not None:
            on_step(step)
    return write_s
