"""One definition per analysis concept: the Python functions against naive loops and against the
store's SQL on the same samples (per-prompt normalisation; RM-gold agreement with one tie rule)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.agreement import pairwise_agreement
from engine.analysis.normalise import normalise_per_prompt
from engine.store import RunWriter, prompt_drilldown, rm_gold_agreement

PROMPTS = ["a"] * 4 + ["b"] * 3 + ["c"] * 3
REWARD = np.array([1.0, 2.0, 2.0, 5.0, -1.0, 0.0, 0.5, 3.0, 3.0, 3.0])
GOLD = np.array([0.1, 0.2, 0.3, 0.3, 0.5, 0.1, 0.2, 0.0, 0.4, 0.9])


def _naive_agreement(scores, reference, prompts):
    credit = []
    for i, j in itertools.combinations(range(len(prompts)), 2):
        if prompts[i] != prompts[j] or abs(reference[i] - reference[j]) <= 1e-9:
            continue
        if scores[i] == scores[j]:
            credit.append(0.5)
        else:
            credit.append(float((scores[i] > scores[j]) == (reference[i] > reference[j])))
    return sum(credit) / len(credit), len(credit)


def test_pairwise_agreement_matches_naive_with_ties():
    assert pairwise_agreement(REWARD, GOLD, PROMPTS) == pytest.approx(_naive_agreement(REWARD, GOLD, PROMPTS))
    assert np.isnan(pairwise_agreement(REWARD, np.zeros(10), PROMPTS)[0])  # no ordered pair


def _store(tmp_path):
    rows = {
        "prompt_id": PROMPTS,
        "sample_idx": [0, 1, 2, 3, 0, 1, 2, 0, 1, 2],
        "response": [f"r{i}" for i in range(10)],
        "reward": REWARD.tolist(),
        "gold": GOLD.tolist(),
    }
    writer = RunWriter.create(tmp_path / "run", kind="ppo", config={}, seed=0)
    writer.write_rollouts(1, rows)
    return tmp_path / "run"


def test_sql_agreement_is_the_python_one(tmp_path):
    frame = rm_gold_agreement(_store(tmp_path))
    expected, n = pairwise_agreement(REWARD, GOLD, PROMPTS)
    assert frame["agreement"].iloc[0] == pytest.approx(expected) and frame["n_pairs"].iloc[0] == n


def test_sql_normalisation_is_the_python_one(tmp_path):
    run = _store(tmp_path)
    keys = zip(PROMPTS, [0, 1, 2, 3, 0, 1, 2, 0, 1, 2], strict=True)
    expected = dict(zip(keys, normalise_per_prompt(REWARD, PROMPTS), strict=True))
    for prompt in "abc":
        frame = prompt_drilldown(run, prompt, token_columns=["tokens"])
        for row in frame.itertuples():
            assert row.reward_norm == pytest.approx(expected[(prompt, row.sample_idx)])
