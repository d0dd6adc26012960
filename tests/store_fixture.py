"""A tiny run store whose statistics the store tests compute by hand.

Run ``alpha`` (ppo, steps 0 and 1, two prompts, gold scores, metrics, logprob-accuracy eval),
run ``beta`` (an import: step 5 only, no gold, no token ids, one reward far in the tail),
run ``empty`` (a run record, nothing logged yet).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine.store import RunWriter, write_eval


def rollout_row(
    prompt_id: str, family: str, prompt: str, idx: int, tokens: list[str], entropy: list[float], **fields
) -> dict:
    """A rollout row of ``tokens`` with fixed per-token probabilities (0.5 sampled, 0.6 max, 3
    candidates) at temperature 1; ``fields`` add or override columns."""
    return {
        "prompt_id": prompt_id,
        "prompt_family": family,
        "sample_idx": idx,
        "prompt": prompt,
        "response": " ".join(tokens),
        "tokens": tokens,
        "entropy": entropy,
        "sampled_prob": [0.5] * len(tokens),
        "max_prob": [0.6] * len(tokens),
        "n_candidates": [3] * len(tokens),
        "temperature": 1.0,
        **fields,
    }


def _sample(
    prompt_id: str, idx: int, tokens: list[str], reward: float, gold: float | None, kl: float, eos: bool
) -> dict:
    family, prompt = {"p1": ("math", "add two numbers"), "p2": ("chat", "say 'hi' to me")}[prompt_id]
    return rollout_row(
        prompt_id,
        family,
        prompt,
        idx,
        tokens,
        [0.5 + i for i in range(len(tokens))],
        token_ids=[sum(map(ord, t)) for t in tokens],
        reward=reward,
        gold=gold,
        kl=kl,
        has_eos=eos,
        top_p=1.0,
        top_k=0,
        checkpoint="sft-epoch-1",
    )


# (prompt_id, sample_idx, tokens, reward, gold, kl, has_eos)
ALPHA = {
    0: [
        ("p1", 0, ["a", "b", "c"], 1.0, 0.0, 0.5, True),
        ("p1", 1, ["a", "b"], 3.0, 1.0, 0.5, True),
        ("p2", 0, ["hi"], 5.0, 2.0, 1.0, True),
        ("p2", 1, ["hi"], 5.0, 2.0, 1.0, True),
    ],
    1: [
        ("p1", 0, ["a", "b"], 0.0, 1.0, 1.0, True),
        ("p1", 1, ["x", "y", "z", "x", "y", "z", "x", "y", "z"], 4.0, 0.0, 12.0, False),
        ("p1", 2, ["a", "c"], 2.0, 2.0, 1.0, True),
        ("p2", 0, ["hi", "there"], 6.0, 3.0, 2.0, True),
        ("p2", 1, ["hi", "you"], 8.0, 1.0, 2.0, True),
    ],
}
BETA_REWARDS = [0.0] * 12 + [100.0]


def build_store(runs_dir: Path) -> Path:
    """Write the fixture runs under ``runs_dir`` and return it."""
    alpha = RunWriter.create(runs_dir / "alpha", kind="ppo", config={"lr": 1e-4}, seed=1, source="fixture")
    for step, samples in ALPHA.items():
        alpha.write_rollouts(step, [_sample(*s) for s in samples])
        alpha.write_metrics(step, {"objective/kl": 0.1 + 0.2 * step, "env/reward_mean": 3.5 + 0.5 * step})
    (alpha.run_dir / "status.json").write_text(
        json.dumps({"state": "finished", "step": 1, "pid": 0, "heartbeat": time.time(), "message": ""})
    )
    write_eval(
        alpha.run_dir,
        "logprob_accuracy",
        {
            "run_id": ["alpha", "alpha"],
            "step": [0, 1],
            "checkpoint": ["c0", "c1"],
            "accuracy": [0.6, 0.65],
            "n_pairs": [20, 20],
        },
    )

    beta = RunWriter.create(runs_dir / "beta", kind="import", config={}, seed=None, source="jsonl")
    beta.write_rollouts(
        5,
        {
            "prompt_id": ["q1"] * len(BETA_REWARDS),
            "prompt_family": ["import"] * len(BETA_REWARDS),
            "sample_idx": list(range(len(BETA_REWARDS))),
            "prompt": ["imported prompt"] * len(BETA_REWARDS),
            "response": [f"answer {i}" for i in range(len(BETA_REWARDS))],
            "tokens": [["answer", str(i)] for i in range(len(BETA_REWARDS))],
            "reward": BETA_REWARDS,
            "has_eos": [True] * len(BETA_REWARDS),
        },
    )
    RunWriter.create(runs_dir / "empty", kind="ppo", config={}, seed=0)
    return runs_dir
