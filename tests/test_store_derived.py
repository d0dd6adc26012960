"""Derived per-row columns against their naive Python definitions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from engine.store.derived import list_means, prompt_collapsed, repeat_shares


def _naive_repeat_share(tokens: list, n: int = 3) -> float:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


@pytest.mark.parametrize("vocab", [3, 50, 5_000_000])  # the last forces the hashed (non-packed) path
@pytest.mark.parametrize("dtype", [pa.int32(), pa.int64(), pa.string()])
def test_repeat_shares_match_naive(vocab, dtype):
    rng = np.random.default_rng(vocab)
    lists = [list(rng.integers(0, vocab, rng.integers(0, 15))) for _ in range(300)] + [None, [], [1], [1, 2]]
    lists.append([7, 8, 9] * 4)
    if dtype == pa.string():
        arr = pa.array([None if t is None else [str(x) for x in t] for t in lists], pa.list_(dtype))
    else:
        arr = pa.array(lists, pa.list_(dtype))
    got = repeat_shares(arr).to_pylist()
    assert got[-5] is None  # a null list stays null
    expected = [None if t is None else _naive_repeat_share(t) for t in lists]
    assert got == pytest.approx(expected, abs=1e-6)
    assert got[-1] == pytest.approx(1 - 3 / 10)


def test_list_means():
    arr = pa.array([[1.0, 2.0], None, [], [4.0]], pa.list_(pa.float32()))
    assert list_means(arr).to_pylist() == [1.5, None, None, 4.0]


def test_list_means_with_trailing_empty_lists():
    arr = pa.array([[1.0, 2.0], [3.0], None, []], type=pa.list_(pa.float32()))
    assert list_means(arr).to_pylist() == [1.5, 3.0, None, None]


def test_prompt_collapsed_matches_naive():
    rng = np.random.default_rng(0)
    runs = rng.choice(["r1", "r2"], 400).tolist()
    prompts = rng.choice(["a", "b", "c", None], 400).tolist()
    responses = rng.choice(["x", "y", None], 400, p=[0.9, 0.05, 0.05]).tolist()
    runs[:3], prompts[:3], responses[:3] = ["solo"] * 3, ["only", "nulls", "nulls"], ["z", None, None]
    got = prompt_collapsed(pa.array(runs), pa.array(prompts), pa.array(responses)).to_pylist()

    def naive(i: int) -> bool:  # SQL: count(*) >= 2 AND min(response) = max(response)
        group = [j for j in range(400) if (runs[j], prompts[j]) == (runs[i], prompts[i])]
        texts = {responses[j] for j in group} - {None}
        return len(group) >= 2 and len(texts) == 1

    assert got == [naive(i) for i in range(400)]
    assert got[:3] == [False, False, False]  # a single sample; a group of null responses
