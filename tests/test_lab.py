"""The sampling lab's engine: batches, caching, re-scoring, rewards, sweeps, checkpoints, bench."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.analysis.normalise import normalise_per_prompt
from engine.config import ConfigError, SamplingConfig
from engine.lab import (
    SIGNALS,
    SamplingLab,
    checkpoint_choices,
    forking_tokens,
    reference_config,
    threads_for,
    top_alternatives,
)
from engine.paths import REPO_ROOT
from engine.sampling import sampling_logits

CFG = SamplingConfig(temperature=1.2, max_new_tokens=6)


@pytest.fixture(scope="module")
def lab() -> SamplingLab:
    return SamplingLab()


def test_batch_rows_grouped_by_prompt_and_cached(lab, tiny_gpt2_dir):
    source = str(tiny_gpt2_dir)
    batch = lab.sample(source, ["w1 w2", " w3 ", "w1 w2"], CFG, n_samples=3, seed=5)
    assert batch.prompts == ["w1 w2", "w3"] and batch.prompt_index == [0, 0, 0, 1, 1, 1]
    assert [len(t) for t in batch.tokens] == batch.mask.sum(-1).tolist()
    assert lab.sample(source, ["w1 w2", "w3"], CFG, n_samples=3, seed=5) is batch
    fresh = SamplingLab().sample(source, ["w1 w2", "w3"], CFG, n_samples=3, seed=5)
    assert torch.equal(fresh.generation.response_ids, batch.generation.response_ids)
    other = lab.sample(source, ["w1 w2", "w3"], CFG, n_samples=3, seed=6)
    assert not torch.equal(other.generation.response_ids, batch.generation.response_ids)


def test_signals_summary_and_resignal(lab, tiny_gpt2_dir):
    batch = lab.sample(str(tiny_gpt2_dir), ["w4"], CFG, n_samples=4, seed=0)
    signals = batch.signals()
    assert set(signals) == set(SIGNALS) and signals["entropy"].shape == tuple(batch.mask.shape)
    summary = batch.summary()
    mask = batch.mask.numpy()
    assert summary["entropy"] == pytest.approx(signals["entropy"][mask].mean())
    narrow = batch.summary(SamplingConfig(top_k=2, max_new_tokens=6))
    assert narrow["n_candidates"] <= 2 and narrow["entropy"] == pytest.approx(summary["entropy"])


def test_top_alternatives_are_ordered_and_consistent():
    logits = torch.randn(2, 3, 20, generator=torch.Generator().manual_seed(0))
    alt = top_alternatives(logits, SamplingConfig(top_k=2), k=5)
    assert alt.ids.shape == (2, 3, 5)
    assert torch.all(alt.p[..., :-1] >= alt.p[..., 1:])
    assert torch.allclose(alt.p, torch.softmax(logits, -1).gather(-1, alt.ids))
    assert torch.allclose(alt.q[..., :2].sum(-1), torch.ones(2, 3)) and torch.all(alt.q[..., 2:] == 0)


@pytest.mark.parametrize(
    "config",
    [SamplingConfig(), SamplingConfig(temperature=0.7, top_p=0.8), SamplingConfig(temperature=1.5, min_p=0.1),
     SamplingConfig(top_k=3), SamplingConfig(temperature=0.0)],
)  # fmt: skip
def test_top_alternatives_match_the_naive_softmax_over_row_chunks(monkeypatch, config):
    monkeypatch.setattr("engine.lab.SIGNAL_CHUNK_BYTES", 4 * 20 * 4)  # 4 rows a chunk: 6 rows, 2 chunks
    logits = torch.randn(2, 3, 20, generator=torch.Generator().manual_seed(1)) * 3
    logits[0, 0, 7] = float("-inf")  # a masked token (suppress_filler_tokens)
    alt = top_alternatives(logits, config, k=4)
    ids = torch.topk(logits, 4, dim=-1).indices
    assert torch.equal(alt.ids, ids)
    assert torch.allclose(alt.p, torch.softmax(logits, -1).gather(-1, ids), atol=1e-6)
    naive_q = torch.softmax(sampling_logits(logits, config), -1).gather(-1, ids)
    assert torch.allclose(alt.q, naive_q, atol=1e-6)


def test_a_notch_reuses_the_prompt_pass_with_the_same_samples_and_signals(tiny_llama_dir, monkeypatch):
    """A slider notch on a Llama model takes the prompt pass from the lab's cache (the prompt did not
    change): the same tokens and signals as a lab that never saw the prompt."""
    from engine.models.decoders import LlamaDecoder

    passes = []
    real = LlamaDecoder._prefill_distinct
    monkeypatch.setattr(
        LlamaDecoder, "_prefill_distinct", lambda self, *a, **k: passes.append(1) or real(self, *a, **k)
    )
    source, notch = str(tiny_llama_dir), SamplingConfig(temperature=1.3, top_p=0.9, max_new_tokens=6)
    warm = SamplingLab()
    warm.sample(source, ["w1 w2"], CFG, n_samples=3, seed=0)
    passes.clear()
    cached = warm.sample(source, ["w1 w2"], notch, n_samples=3, seed=0)
    assert passes == []
    fresh = SamplingLab().sample(source, ["w1 w2"], notch, n_samples=3, seed=0)
    assert passes == [1]
    assert torch.equal(cached.generation.response_ids, fresh.generation.response_ids)
    for name, values in cached.signals().items():
        np.testing.assert_array_equal(values, fresh.signals()[name], err_msg=name)


def test_the_lab_compares_two_vocabularies_once(lab, monkeypatch):
    calls = []
    monkeypatch.setattr("engine.lab.same_vocabulary", lambda a, b: calls.append(1) or True)
    one, other = SimpleNamespace(tokenizer="a"), SimpleNamespace(tokenizer="b")
    assert lab.same_vocabulary("m", "rm", one, other) and lab.same_vocabulary("m", "rm", one, other)
    assert calls == [1]


def test_normalise_per_prompt_matches_naive():
    rewards = np.array([1.0, 3.0, 10.0, 14.0, 12.0])
    index = [0, 0, 1, 1, 1]
    global_mean = rewards.mean()
    naive = [
        1 - 2 + global_mean,
        3 - 2 + global_mean,
        10 - 12 + global_mean,
        14 - 12 + global_mean,
        global_mean,
    ]
    assert normalise_per_prompt(rewards, index) == pytest.approx(naive)


def test_sweep_marks_each_grid_value(lab, tiny_gpt2_dir):
    seen = []
    points = lab.sweep(
        str(tiny_gpt2_dir),
        ["w2"],
        CFG,
        parameter="temperature",
        values=(0.5, 1.0, 2.0),
        n_samples=4,
        seed=0,
        progress=lambda f, text: seen.append(f),
    )
    assert [p.value for p in points] == [0.5, 1.0, 2.0] and seen[-1] == 1.0
    assert points[0].summary["sampling_entropy"] < points[2].summary["sampling_entropy"]
    assert points[0].reward is None and points[0].gold is None
    with pytest.raises(ConfigError, match="top_k"):  # top-k's sweep is not offered
        lab.sweep(str(tiny_gpt2_dir), ["w2"], CFG, parameter="top_k", values=(1,), n_samples=1, seed=0)


def test_bad_requests_are_config_errors(lab, tiny_gpt2_dir):
    with pytest.raises(ConfigError, match="prompt is empty"):
        lab.sample(str(tiny_gpt2_dir), ["  ", ""], CFG, n_samples=2, seed=0)
    with pytest.raises(ConfigError, match="samples"):
        lab.sample(str(tiny_gpt2_dir), ["w1"], CFG, n_samples=0, seed=0)


def test_reference_config_keeps_length():
    ref = reference_config(SamplingConfig(temperature=0, top_k=3, top_p=0.2, min_p=0.3, max_new_tokens=7))
    assert ref.is_default_distribution and ref.max_new_tokens == 7 and ref.min_p == 0.0


def test_min_p_sweep_narrows_the_candidates(lab, tiny_gpt2_dir):
    points = lab.sweep(
        str(tiny_gpt2_dir), ["w2"], CFG, parameter="min_p", values=(0.0, 0.9), n_samples=4, seed=0
    )
    assert points[1].summary["n_candidates"] < points[0].summary["n_candidates"]


def test_signals_are_computed_once_per_config(lab, tiny_gpt2_dir):
    batch = lab.sample(str(tiny_gpt2_dir), ["w1 w2"], CFG, n_samples=2, seed=0)
    assert batch.signals() is batch.signals() is batch.signals(CFG)
    assert batch.signals(reference_config(CFG)) is not batch.signals()


def test_forking_tokens_match_a_per_token_loop(lab, tiny_gpt2_dir):
    batch = lab.sample(str(tiny_gpt2_dir), ["w1 w2", "w3"], CFG, n_samples=3, seed=1)
    out = forking_tokens(batch, k=4)
    entropy = batch.signals()["entropy"]
    flat = [(float(entropy[r, t]), r, t) for r, row in enumerate(batch.tokens) for t in range(len(row))]
    assert out["distribution"]["n_tokens"] == len(flat)
    assert out["distribution"]["share_near_zero"] == pytest.approx(np.mean([e < 0.01 for e, _, _ in flat]))
    assert out["distribution"]["p80"] == pytest.approx(np.percentile([e for e, _, _ in flat], 80))
    best = sorted(flat, key=lambda x: (-x[0], x[1], x[2]))[:4]
    assert [(t["row"], t["position"]) for t in out["top"]] == [(r, t) for _, r, t in best]
    assert [t["token"] for t in out["top"]] == [batch.tokens[r][t] for _, r, t in best]
    assert all(t["sample_idx"] == t["row"] % 3 for t in out["top"])


def test_threads_for_small_model_restores(tiny_gpt2_dir, lab, monkeypatch):
    monkeypatch.delenv("WORKBENCH_THREADS", raising=False)
    before = torch.get_num_threads()
    with threads_for(lab.model(str(tiny_gpt2_dir)).model) as threads:
        assert threads == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before


def test_checkpoint_choices(tmp_path):
    for run, step in (("b", 10), ("a", 2), ("a", 10)):
        path = tmp_path / run / "checkpoints" / f"step-{step}"
        path.mkdir(parents=True)
        (path / "trainer_state.json").write_text("{}")
    (tmp_path / "a" / "checkpoints" / "step-x").mkdir()
    (tmp_path / "a" / "checkpoints" / "step-3").mkdir()  # no trainer state: not a complete checkpoint
    labels = [label for label, _ in checkpoint_choices(tmp_path)]
    assert labels == ["a / step 2", "a / step 10", "b / step 10"]


def test_bench_sampling_json(tiny_gpt2_dir):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "bench",
            "sampling",
            "--json",
            "--model",
            str(tiny_gpt2_dir),
            "--samples",
            "2",
            "--new-tokens",
            "4",
            "--repeats",
            "2",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    for key in ("generate_and_signals_ms", "plain_generate_ms", "overhead_ratio", "resignal_ms"):
        assert out[key] > 0
