"""Failure-mode detectors and RM-accuracy monitors on the hand-computed fixture store."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from store_fixture import BETA_REWARDS

from engine.config import ConfigError
from engine.store import (
    DETECTORS,
    DetectorParams,
    failure_counts,
    failure_examples,
    logprob_accuracy,
    reward_spread,
    rm_gold_agreement,
)


def _flagged(frame) -> dict[tuple[str, int, str], int]:
    return {(r.run_id, r.step, r.detector): r.n_flagged for r in frame.itertuples() if r.n_flagged}


def test_failure_counts_match_hand_computed_hits(runs):
    frame = failure_counts(runs.iterdir())
    # every detector appears at every step, flagged or not
    assert len(frame) == len(DETECTORS) * 3 and set(frame["detector"]) == set(DETECTORS)
    assert _flagged(frame) == {
        # step 0: p2's two samples are both "hi"
        ("alpha", 0, "entropy_collapse"): 2,
        # step 1: reward q3 = 6, gold q1 = 1 -> (reward 8, gold 1) is a loophole
        ("alpha", 1, "rm_loophole"): 1,
        # the sample "x y z x y z x y z": kl 12 > 10, length 9 > 2 x median(3, 2, 1, 1),
        # 4 of its 7 trigrams repeat, no EOS
        ("alpha", 1, "kl_blowup"): 1,
        ("alpha", 1, "length_explosion"): 1,
        ("alpha", 1, "repetition"): 1,
        ("alpha", 1, "missing_eos"): 1,
        # beta: 100 among twelve zeros is more than 3 sd from the mean
        ("beta", 5, "reward_tail"): 1,
    }
    assert frame.query("run_id == 'alpha' and step == 1")["n_samples"].unique().tolist() == [5]
    z = (100 - np.mean(BETA_REWARDS)) / np.std(BETA_REWARDS, ddof=1)
    assert z > 3


def test_detector_params_change_hits(runs):
    loose = failure_counts(
        runs / "alpha", DetectorParams(kl_threshold=1.5, length_ratio=1.4, repetition_share=0.6)
    )
    hits = _flagged(loose)
    assert hits[("alpha", 1, "kl_blowup")] == 3  # kl 12, 2, 2
    assert hits[("alpha", 0, "length_explosion")] == 1  # length 3 > 1.4 x 1.5
    assert hits[("alpha", 0, "length_collapse")] == 2  # length 1 < 1.5 / 1.4
    assert ("alpha", 1, "repetition") not in hits  # 4/7 < 0.6
    with pytest.raises(ConfigError, match="kl_threshold"):
        DetectorParams(kl_threshold=0)
    with pytest.raises(ConfigError, match="repetition_share"):
        DetectorParams(repetition_share=0)


def test_failure_examples(runs):
    ex = failure_examples(runs.iterdir(), "repetition")
    assert ex[["run_id", "step", "prompt_id", "sample_idx"]].values.tolist() == [["alpha", 1, "p1", 1]]
    assert ex.loc[0, "score"] == pytest.approx(4 / 7) and ex.loc[0, "response"] == "x y z x y z x y z"
    collapse = failure_examples(runs / "alpha", "entropy_collapse", limit=1)
    assert len(collapse) == 1 and collapse.loc[0, "prompt_id"] == "p2"
    assert failure_examples(runs / "alpha", "reward_tail").empty
    assert failure_examples(runs / "empty", "kl_blowup").empty
    with pytest.raises(ConfigError, match="detector"):
        failure_examples(runs / "alpha", "kl_blowup OR 1=1")


def test_reward_spread(runs):
    frame = reward_spread(runs.iterdir()).set_index(["run_id", "step"])
    assert frame.loc[("alpha", 1), "reward_var"] == pytest.approx(np.var([0, 4, 2, 6, 8], ddof=1))
    assert frame.loc[("alpha", 0), "tail_share"] == 0
    assert frame.loc[("beta", 5), "tail_share"] == pytest.approx(1 / 13)
    assert frame.loc[("beta", 5), "reward_skew"] > 3


def test_rm_gold_agreement(runs):
    # step 0: p1's one pair agrees, p2's pair is a gold tie (skipped);
    # step 1: p1 pairs (0,1) no, (0,2) yes, (1,2) no; p2 pair no -> 1 of 4
    frame = rm_gold_agreement(runs.iterdir())
    assert frame[["run_id", "step", "n_pairs"]].values.tolist() == [["alpha", 0, 1], ["alpha", 1, 4]]
    assert frame["agreement"].tolist() == pytest.approx([1.0, 0.25])
    assert rm_gold_agreement(runs / "beta").empty


def test_logprob_accuracy_read_or_absent(runs):
    frame = logprob_accuracy(runs.iterdir())
    assert frame["accuracy"].tolist() == pytest.approx([0.6, 0.65])
    assert logprob_accuracy(runs / "beta").empty
    (runs / "empty" / "evals").mkdir()
    (runs / "empty" / "evals" / "logprob_accuracy.parquet").write_bytes(b"PAR1 garbage")
    assert logprob_accuracy(runs / "empty").empty


def test_repetition_without_stored_repeat_share(tmp_path):
    # files written by another tool lack repeat_share: the detector falls back to SQL over tokens
    rollouts = tmp_path / "ext" / "rollouts"
    rollouts.mkdir(parents=True)
    table = pa.table(
        {
            "step": [0, 0],
            "prompt_id": ["a", "a"],
            "response": ["x", "y"],
            "reward": [1.0, 2.0],
            "tokens": [list("abcabcabc"), list("abcd")],
        }
    )
    pq.write_table(table, rollouts / "step-000000.parquet")
    ex = failure_examples(tmp_path / "ext", "repetition")
    assert ex["response"].tolist() == ["x"] and ex.loc[0, "score"] == pytest.approx(4 / 7)


def test_entropy_collapse_without_stored_flag(tmp_path):
    # files written by another tool lack prompt_collapsed: the detector groups the responses in SQL
    rollouts = tmp_path / "ext" / "rollouts"
    rollouts.mkdir(parents=True)
    table = pa.table(
        {
            "step": [0, 0, 0, 0, 0],
            "prompt_id": ["a", "a", "b", "b", "c"],
            "response": ["same", "same", "one", "two", "alone"],
            "reward": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    pq.write_table(table, rollouts / "step-000000.parquet")
    hits = _flagged(failure_counts(tmp_path / "ext"))
    assert hits == {("ext", 0, "entropy_collapse"): 2}
    ex = failure_examples(tmp_path / "ext", "entropy_collapse")
    assert sorted(ex["reward"].tolist()) == [1.0, 2.0]
