"""The one-pass signals and the partial top-p sort against their plain definitions on a wide vocabulary,
over several row chunks and with logits outside the model's support (-inf)."""

from __future__ import annotations

import pytest
import torch

from engine import sampling
from engine.config import SamplingConfig
from engine.ops import entropy_from_log_probs, selective_log_softmax


def _plain_signals(logits, tokens, config):
    """The signals as their definitions read: full log-softmaxes, a full sort for top-p."""
    z = logits.double()
    logp = torch.log_softmax(z, -1)
    zq = logits / config.temperature if config.temperature else logits  # the support: in float32, as sampled
    if 0 < config.top_k < z.shape[-1]:
        zq = zq.masked_fill(zq < torch.topk(zq, config.top_k, -1).values[..., -1:], float("-inf"))
    if config.top_p < 1:  # a full sort of float32 probabilities (the mass at 0.999 is a float32 sum)
        probs, order = torch.sort(torch.softmax(zq, -1), -1, descending=True)
        drop = torch.zeros_like(probs, dtype=torch.bool).scatter(
            -1, order, probs.cumsum(-1) - probs >= config.top_p
        )
        zq = zq.masked_fill(drop, float("-inf"))
    logq = torch.log_softmax(zq.double(), -1)
    pick = tokens.unsqueeze(-1)
    return {
        "entropy": entropy_from_log_probs(logp),
        "sampling_entropy": entropy_from_log_probs(logq),
        "max_prob": logp.exp().amax(-1),
        "sampled_prob": logp.exp().gather(-1, pick).squeeze(-1),
        "sampled_prob_q": logq.exp().gather(-1, pick).squeeze(-1),
        "n_candidates": torch.isfinite(zq).sum(-1),
        "logprob": selective_log_softmax(z / (config.temperature or 1), tokens),
    }


@pytest.mark.parametrize(
    "config",
    [SamplingConfig(), SamplingConfig(temperature=0.7), SamplingConfig(temperature=1.3, top_p=0.9),
     SamplingConfig(top_k=20, top_p=0.5), SamplingConfig(temperature=0.8, top_p=0.999)],
    ids=["T1", "T0.7", "T1.3-p0.9", "k20-p0.5", "p0.999-past-the-first-partial-sort"],
)  # fmt: skip
def test_chunked_signals_equal_their_definitions(config, monkeypatch):
    """Rows split over several chunks (a chunk of 3 rows here) and logits with -inf entries (tokens the
    model never emits) give the signals of the full computation."""
    monkeypatch.setattr(sampling, "SIGNAL_CHUNK_BYTES", 3 * 4 * 5000)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 5000, generator=g) * 3  # (B, T, V)
    logits[..., :7] = float("-inf")
    tokens = torch.randint(7, 5000, (3, 5), generator=g)
    mask = torch.ones(3, 5, dtype=torch.bool)
    got = sampling.token_signals(logits, tokens, mask, config).as_dict()
    for name, expected in _plain_signals(logits, tokens, config).items():
        torch.testing.assert_close(got[name].double(), expected.double(), rtol=1e-4, atol=1e-5, msg=name)


def test_top_p_sorts_only_as_far_as_the_mass_needs(monkeypatch):
    """A peaked row stops at the first partial sort; a flat row makes it widen to the whole vocabulary;
    both keep what a full sort keeps."""
    calls = []
    real_topk = torch.topk
    monkeypatch.setattr(torch, "topk", lambda x, k, **kw: calls.append(k) or real_topk(x, k, **kw))
    peaked = torch.full((1, 1000), -10.0)
    peaked[0, :3] = torch.tensor([5.0, 4.0, 3.0])
    assert sampling.top_p_keep(peaked, 0.9).sum() == 2 and calls == [sampling.TOP_P_FIRST_K]
    calls.clear()
    flat = torch.zeros((1, 1000))
    kept = sampling.top_p_keep(flat, 0.95)
    assert calls == [64, 512, 1000] and int(kept.sum()) == 950


def test_top_p_widens_only_the_rows_short_of_the_mass(monkeypatch):
    """In a batch of a peaked and a flat row only the flat one is sorted further; both keep what a full
    sort keeps (the naive equivalent in the docstring)."""
    rows_and_k = []
    real_topk = torch.topk
    monkeypatch.setattr(
        torch, "topk", lambda x, k, **kw: rows_and_k.append((x.shape[0], k)) or real_topk(x, k, **kw)
    )
    z = torch.randn((2, 2, 1000), generator=torch.Generator().manual_seed(0)) * 1e-2  # nearly flat, no ties
    z[0, 1, :3] = torch.tensor([15.0, 14.0, 13.0])  # peaked; the other three rows flat
    kept = sampling.top_p_keep(z, 0.95)
    assert rows_and_k == [(4, 64), (3, 512), (3, 1000)]
    probs = torch.softmax(z, -1)
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    naive = torch.zeros_like(kept).scatter(-1, order, (sorted_probs.cumsum(-1) - sorted_probs) < 0.95)
    assert torch.equal(kept, naive) and kept.shape == z.shape
