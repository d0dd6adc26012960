"""KL per step from the logged per-token log-probs (k1 and the non-negative k3) vs a per-token loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.store import RunWriter, kl_per_step


def _loop(rows: list[dict]) -> tuple[float, float]:
    """Mean over responses of the per-response sums of k1 and k3, token by token."""
    k1s, k3s = [], []
    for row in rows:
        k1 = k3 = 0.0
        for lp, ref in zip(row["logprob"], row["ref_logprob"], strict=True):
            log_r = ref - lp  # r = p_ref / p
            k1 += lp - ref
            k3 += (math.exp(log_r) - 1) - log_r
        k1s.append(k1)
        k3s.append(k3)
    return float(np.mean(k1s)), float(np.mean(k3s))


def test_kl_per_step_matches_a_token_loop(tmp_path):
    rng = np.random.default_rng(0)
    writer = RunWriter.create(tmp_path / "r", kind="ppo", config={}, seed=0)
    expected = {}
    for step in (1, 2):
        rows = []
        for i in range(6):
            n = int(rng.integers(1, 9))
            lp = rng.normal(-1.5, 0.8, n).astype(np.float32)
            ref = (lp + rng.normal(0.1, 0.5, n)).astype(np.float32)
            rows.append({"prompt_id": f"p{i % 2}", "sample_idx": i // 2, "response": "x", "reward": 0.0,
                         "tokens": ["t"] * n, "logprob": lp.tolist(), "ref_logprob": ref.tolist()})  # fmt: skip
        rows.append({"prompt_id": "p9", "sample_idx": 0, "response": "y", "reward": 0.0})  # no token lists
        writer.write_rollouts(step, rows)
        expected[step] = _loop(rows[:-1])
    frame = kl_per_step([tmp_path / "r"])
    assert frame["step"].tolist() == [1, 2] and frame["n_rows"].tolist() == [6, 6]
    for _, row in frame.iterrows():
        k1, k3 = expected[row["step"]]
        assert row["k1"] == pytest.approx(k1, rel=1e-5) and row["k3"] == pytest.approx(k3, rel=1e-5)
        assert row["k3"] >= 0


def test_kl_per_step_without_rollouts_is_empty(tmp_path):
    RunWriter.create(tmp_path / "r", kind="ppo", config={}, seed=0)
    assert kl_per_step([tmp_path / "r"]).empty
