"""PPO ops against naive references: log-probs, GAE (float64 loop), whitening, KL, losses, masking."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from engine.config import ConfigError, SamplingConfig
from engine.models import ValueHead, hidden_size, reference_mode
from engine.ops import whiten
from engine.ppo.advantages import explained_variance, gae
from engine.ppo.config import PPOHyperConfig
from engine.ppo.losses import policy_loss, value_loss
from engine.ppo.rewards import AdaptiveKLController, kl_per_token, process_scores, shaped_rewards
from engine.ppo.rollout import policy_forward, reference_logprobs, rollout
from engine.ppo.update import TrainingDiverged, UpdateBatch, non_finite, ppo_update
from tests.ppo_fixtures import lora_policy, one_thread  # noqa: F401 (fixture)


def _ragged_mask(B: int, T: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    return torch.arange(T)[None, :] < lengths[:, None]  # (B, T) right-padded


# ---------------------------------------------------------------------------------------- GAE


def _gae_loop(rewards, values, mask, gamma, lam):
    """Plain float64 loop, one sequence at a time, over its real tokens only."""
    B, T = rewards.shape
    adv = torch.zeros(B, T, dtype=torch.float64)
    for b in range(B):
        n = int(mask[b].sum())
        last = 0.0
        for t in reversed(range(n)):
            next_v = float(values[b, t + 1]) if t + 1 < n else 0.0
            delta = float(rewards[b, t]) + gamma * next_v - float(values[b, t])
            last = delta + gamma * lam * last
            adv[b, t] = last
    return adv, (adv + values.double()) * mask


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 1.0), (0.99, 0.0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gae_matches_float64_loop(gamma, lam, dtype):
    B, T = 6, 9
    g = torch.Generator().manual_seed(1)
    mask = _ragged_mask(B, T)
    rewards = torch.randn(B, T, generator=g, dtype=torch.float64)
    values = torch.randn(B, T, generator=g, dtype=torch.float64)
    # garbage outside the mask must not leak in
    rewards_g = torch.where(mask, rewards, torch.full_like(rewards, 1e3))
    values_g = torch.where(mask, values, torch.full_like(values, -1e3))
    adv, ret = gae(rewards_g.to(dtype), values_g.to(dtype), mask, gamma, lam)
    ref_adv, ref_ret = _gae_loop(rewards * mask, values * mask, mask, gamma, lam)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(adv.double(), ref_adv, atol=tol, rtol=tol)
    torch.testing.assert_close(ret.double(), ref_ret, atol=tol, rtol=tol)
    assert (adv[~mask] == 0).all()


# ---------------------------------------------------------------------------------- whitening


def test_whiten_with_mask_matches_naive():
    mask = _ragged_mask(5, 7, seed=3)
    x = torch.randn(5, 7, dtype=torch.float64)
    x_garbage = torch.where(mask, x, torch.full_like(x, 1e6))
    out = whiten(x_garbage, mask)
    real = x[mask]
    expected = (real - real.mean()) / real.std(unbiased=True)
    torch.testing.assert_close(out[mask], expected, atol=1e-6, rtol=1e-6)
    assert (out[~mask] == 0).all()
    kept = whiten(x, mask, shift_mean=False)
    torch.testing.assert_close(kept[mask].mean(), real.mean(), atol=1e-9, rtol=0)


# ---------------------------------------------------------------------------------------- KL


def test_kl_estimators_match_naive():
    g = torch.Generator().manual_seed(0)
    logp = torch.log(torch.rand(4, 6, generator=g, dtype=torch.float64))
    ref = torch.log(torch.rand(4, 6, generator=g, dtype=torch.float64))
    p, q = logp.exp(), ref.exp()
    torch.testing.assert_close(kl_per_token(logp, ref, "k1"), torch.log(p / q))
    r = q / p
    torch.testing.assert_close(kl_per_token(logp, ref, "k3"), (r - 1) - torch.log(r))
    assert (kl_per_token(logp, ref, "k3") >= 0).all()
    assert (kl_per_token(logp, logp, "k1") == 0).all() and (kl_per_token(logp, logp, "k3") == 0).all()


def test_k1_and_k3_are_unbiased_for_the_true_kl():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(8, generator=g, dtype=torch.float64), -1)
    q = torch.softmax(torch.randn(8, generator=g, dtype=torch.float64), -1)
    true_kl = float((p * (p / q).log()).sum())
    # exact expectation over the sampled token y ~ p
    for est in ("k1", "k3"):
        values = kl_per_token(p.log(), q.log(), est)
        assert math.isclose(float((p * values).sum()), true_kl, rel_tol=1e-9)


def test_shaped_rewards():
    mask = torch.tensor([[True, True, True], [True, False, False]])
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.5, 9.0, 9.0]])
    rewards = shaped_rewards(torch.tensor([1.0, 2.0]), kl, mask, kl_coef=0.5)
    expected = torch.tensor([[-0.05, -0.1, -0.15 + 1.0], [-0.25 + 2.0, 0.0, 0.0]])
    torch.testing.assert_close(rewards, expected)


def test_adaptive_kl_controller():
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ctl.update(current_kl=12.0, n_samples=1000)  # error clipped to +0.2
    assert math.isclose(ctl.value, 0.1 * (1 + 0.2 * 0.1))
    ctl.update(current_kl=3.0, n_samples=1000)  # error -0.5 clipped to -0.2
    assert math.isclose(ctl.value, 0.1 * 1.02 * 0.98)


def test_process_scores():
    cfg = PPOHyperConfig(missing_eos_penalty=1.0, reward_norm="prompt", reward_clip=10.0)
    scores = torch.tensor([1.0, 3.0, 10.0, 14.0])
    has_eos = torch.tensor([True, False, True, True])
    prompt = torch.tensor([0, 0, 1, 1])
    out = process_scores(scores, has_eos, prompt, cfg)
    penalised = torch.tensor([1.0, 2.0, 10.0, 14.0])
    centred = torch.tensor([-0.5, 0.5, -2.0, 2.0])
    torch.testing.assert_close(out, centred / penalised.std(unbiased=False))
    clipped = process_scores(scores, has_eos, prompt, PPOHyperConfig(reward_clip=2.0, reward_norm="none"))
    torch.testing.assert_close(clipped, torch.tensor([1.0, 2.0, 2.0, 2.0]))


# -------------------------------------------------------------------------------------- losses


def test_policy_loss_matches_naive_loop():
    g = torch.Generator().manual_seed(0)
    B, T, eps = 4, 5, 0.2
    mask = _ragged_mask(B, T, seed=2)
    new = torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3
    old = torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3
    adv = torch.randn(B, T, generator=g, dtype=torch.float64)
    garbage = torch.full_like(new, 50.0)
    loss, stats = policy_loss(
        torch.where(mask, new, garbage), torch.where(mask, old, -garbage), adv, mask, eps
    )
    terms, clipped, sq = [], [], []
    for b in range(B):
        for t in range(T):
            if not mask[b, t]:
                continue
            r = math.exp(float(new[b, t] - old[b, t]))
            a = float(adv[b, t])
            u, c = -a * r, -a * min(max(r, 1 - eps), 1 + eps)
            terms.append(max(u, c))
            clipped.append(float(c > u))
            sq.append(float(new[b, t] - old[b, t]) ** 2)
    assert math.isclose(float(loss), sum(terms) / len(terms), rel_tol=1e-9)
    assert math.isclose(float(stats["policy/clipfrac"]), sum(clipped) / len(clipped), rel_tol=1e-6)
    assert math.isclose(float(stats["policy/approxkl"]), 0.5 * sum(sq) / len(sq), rel_tol=1e-9)


def test_policy_loss_ratio_one_gradient_is_minus_advantage():
    old = torch.randn(2, 3, dtype=torch.float64)
    new = old.clone().requires_grad_(True)
    adv = torch.randn(2, 3, dtype=torch.float64)
    mask = torch.ones(2, 3, dtype=torch.bool)
    loss, stats = policy_loss(new, old, adv, mask, 0.2)
    loss.backward()
    torch.testing.assert_close(new.grad, -adv / 6)
    assert float(stats["policy/clipfrac"]) == 0.0 and float(stats["policy/ratio"]) == 1.0


def test_value_loss_matches_naive_loop():
    g = torch.Generator().manual_seed(0)
    B, T, eps = 3, 6, 0.2
    mask = _ragged_mask(B, T, seed=5)
    v = torch.randn(B, T, generator=g, dtype=torch.float64)
    old = torch.randn(B, T, generator=g, dtype=torch.float64)
    ret = torch.randn(B, T, generator=g, dtype=torch.float64)
    loss, stats = value_loss(v, old, ret, mask, eps)
    terms, fracs = [], []
    for b in range(B):
        for t in range(T):
            if mask[b, t]:
                vc = min(max(float(v[b, t]), float(old[b, t]) - eps), float(old[b, t]) + eps)
                lu, lc = (float(v[b, t]) - float(ret[b, t])) ** 2, (vc - float(ret[b, t])) ** 2
                terms.append(max(lu, lc))
                fracs.append(float(lc > lu))
    assert math.isclose(float(loss), 0.5 * sum(terms) / len(terms), rel_tol=1e-9)
    assert math.isclose(float(stats["val/clipfrac"]), sum(fracs) / len(fracs), rel_tol=1e-6)


def test_value_clipfrac_counts_no_rounding_as_clipping():
    """Values inside the clip range are not clipped, in float32 too (old + clamp(v - old) is not v)."""
    g = torch.Generator().manual_seed(1)
    old = torch.randn(64, 24, generator=g) * 5
    v = old + (torch.rand(64, 24, generator=g) - 0.5) * 0.3  # all within 0.2 of old
    ret = torch.randn(64, 24, generator=g) * 5
    _, stats = value_loss(v, old, ret, torch.ones(64, 24, dtype=torch.bool), 0.2)
    assert float(stats["val/clipfrac"]) == 0.0


def test_probe_metrics_match_naive():
    from types import SimpleNamespace

    from engine.ppo.metrics import probe_metrics

    prompts = [SimpleNamespace(family=f) for f in ("a", "a", "b")]
    k, T = 3, 4
    mask = torch.tensor([[1, 1, 1, 0]] * 9, dtype=torch.bool)
    entropy = torch.arange(9 * T, dtype=torch.float32).reshape(9, T) / 10 * mask
    logprobs = -torch.arange(9 * T, dtype=torch.float32).reshape(9, T) / 20 * mask
    ro = SimpleNamespace(response_mask=mask, signals=SimpleNamespace(entropy=entropy), logprobs=logprobs)
    responses = ["x", "x", "y", "p", "q", "r", "z", "z", "z"]
    m = probe_metrics(prompts, k, ro, responses)
    for family, rows in (("a", range(6)), ("b", range(6, 9)), (None, range(9))):
        prefix = "probe" if family is None else f"probe/{family}"
        naive_entropy = sum(float(entropy[r][mask[r]].sum()) for r in rows) / sum(
            int(mask[r].sum()) for r in rows
        )
        groups = [list(rows)[i : i + k] for i in range(0, len(rows), k)]
        naive_distinct = sum(len({responses[r] for r in g}) for g in groups) / len(groups)
        naive_top = sum(max(math.exp(float(logprobs[r].sum())) for r in g) for g in groups) / len(groups)
        assert m[f"{prefix}/entropy"] == pytest.approx(naive_entropy)
        assert m[f"{prefix}/distinct"] == pytest.approx(naive_distinct)
        assert m[f"{prefix}/top_mass"] == pytest.approx(naive_top)


def test_explained_variance():
    mask = torch.ones(2, 3, dtype=torch.bool)
    ret = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert explained_variance(ret, ret, mask) == 1.0
    assert explained_variance(torch.zeros_like(ret), ret, mask) == 0.0
    assert math.isnan(explained_variance(ret, torch.ones_like(ret), mask))


# ------------------------------------------------------------------------- model log-probs


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("temperature", [1.0, 0.7, 1.5])
def test_policy_forward_matches_naive_full_logits(arch, temperature):
    model, tok = lora_policy(arch)
    g = torch.Generator().manual_seed(0)
    B, P, T = 3, 4, 5
    seq = torch.randint(4, len(tok), (B, P + T), generator=g)
    attn = torch.ones(B, P + T, dtype=torch.bool)
    attn[1, :2] = False  # left padding
    seq[1, :2] = tok.pad_token_id
    head = ValueHead(32)
    logprobs, values, entropy = policy_forward(model, seq, attn, P, temperature, head, with_entropy=True)
    pos = (attn.long().cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(input_ids=seq, attention_mask=attn.long(), position_ids=pos, output_hidden_states=True)
    logits = out.logits[:, P - 1 : -1].double() / temperature  # (B, T, V)
    naive = torch.log_softmax(logits, -1).gather(-1, seq[:, P:, None])[..., 0]
    torch.testing.assert_close(logprobs.double(), naive, atol=1e-5, rtol=1e-5)
    p = torch.softmax(logits, -1)
    torch.testing.assert_close(entropy.double(), -(p * p.log()).sum(-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(values, head(out.hidden_states[-1][:, P - 1 : -1]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_policy_forward_fills_no_kv_cache(arch):
    """The update's forward asks the body for hidden states only: no KV cache is built (an eval-mode
    body would otherwise copy every layer's keys and values into one, on the graph)."""
    from engine.models import backbone_and_head

    model, tok = lora_policy(arch)
    body, _ = backbone_and_head(model)
    seen = []
    body.register_forward_hook(lambda _m, _args, out: seen.append(out.past_key_values))
    seq = torch.randint(4, len(tok), (2, 7), generator=torch.Generator().manual_seed(0))
    policy_forward(model, seq, torch.ones_like(seq, dtype=torch.bool), 3, 1.0)[0].sum().backward()
    assert seen == [None]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize(
    "sampling",
    [
        SamplingConfig(temperature=0.7, top_k=5, max_new_tokens=6),
        SamplingConfig(temperature=1.3, top_p=0.8, max_new_tokens=6),
        SamplingConfig(temperature=1.0, max_new_tokens=6, stop_at_eos=False),
    ],
)
def test_rollout_logprobs_and_values_match_training_forward(arch, sampling):
    """Temperature consistency: the log-prob that drew a token == the log-prob the update recomputes."""
    model, tok = lora_policy(arch)
    head = ValueHead(32)
    prompt_ids = torch.tensor([[0, 0, 5, 6], [7, 8, 9, 10], [0, 11, 12, 13]])
    prompt_mask = prompt_ids != 0
    ro = rollout(
        model,
        head,
        prompt_ids,
        prompt_mask,
        sampling,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        generator=torch.Generator().manual_seed(0),
    )
    with torch.no_grad():
        logprobs, values, _ = policy_forward(
            model, ro.sequences, ro.attention_mask, 4, sampling.temperature, head
        )
    m = ro.response_mask
    torch.testing.assert_close(logprobs[m], ro.logprobs[m], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(values[m], ro.values[m], atol=1e-5, rtol=1e-5)
    assert (ro.logprobs[~m] == 0).all() and (ro.values[~m] == 0).all()


@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_rollout_policy_entropy_is_the_training_forwards(temperature):
    """policy/entropy's per-token values, taken from the sampling pass, are the entropy the update's
    forward computes at the rollout's temperature (it used to be recomputed on every minibatch)."""
    model, tok = lora_policy()
    head = ValueHead(32)
    prompt_ids = torch.tensor([[0, 5, 6], [7, 8, 9]])
    sampling = SamplingConfig(temperature=temperature, max_new_tokens=6)
    ro = rollout(
        model, head, prompt_ids, prompt_ids != 0, sampling,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    with torch.no_grad():
        _, _, entropy = policy_forward(
            model, ro.sequences, ro.attention_mask, 3, temperature, with_entropy=True
        )
    m = ro.response_mask
    torch.testing.assert_close(ro.policy_entropy[m], entropy[m], atol=1e-5, rtol=1e-5)
    assert (ro.policy_entropy[~m] == 0).all()


def test_kl_is_zero_with_adapter_disabled():
    model, tok = lora_policy()
    head = ValueHead(32)
    prompt_ids = torch.tensor([[4, 5, 6], [7, 8, 9]])
    sampling = SamplingConfig(temperature=0.8, max_new_tokens=5)
    ro = rollout(
        model,
        head,
        prompt_ids,
        prompt_ids != 0,
        sampling,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        generator=torch.Generator().manual_seed(0),
    )
    ref = reference_logprobs(model, ro)
    with reference_mode(model), torch.no_grad():
        disabled, _, _ = policy_forward(model, ro.sequences, ro.attention_mask, 3, 0.8)
    m = ro.response_mask
    for est in ("k1", "k3"):
        assert float(kl_per_token(disabled, ref, est)[m].abs().max()) == 0.0
    # and the adapter really does change the policy
    assert float(kl_per_token(ro.logprobs, ref, "k1")[m].abs().max()) > 1e-3


def test_draw_samples_the_sampling_distribution_and_never_leaves_its_support():
    from engine.sampling import draw, sampling_logits

    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, -3.0, 0.0]]).repeat(40_000, 1)
    cfg = SamplingConfig(temperature=0.8, top_k=4)
    tokens = draw(logits, cfg, torch.Generator().manual_seed(0))
    q = torch.softmax(sampling_logits(logits[:1], cfg), -1)[0]
    freq = torch.bincount(tokens, minlength=6).double() / len(tokens)
    assert (freq[q == 0] == 0).all()
    torch.testing.assert_close(freq, q.double(), atol=0.01, rtol=0)


def test_merged_lora_restores_base_weights_bit_for_bit():
    from engine.models import merged_lora

    model, _ = lora_policy()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.tensor([[4, 5, 6, 7]])
    with torch.no_grad():
        unmerged = model(input_ids=ids).logits
        with merged_lora(model):
            merged = model(input_ids=ids).logits
        after = model(input_ids=ids).logits
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)
    assert torch.equal(after, unmerged)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fused_gelu_is_the_same_function():
    from transformers.activations import GELUTanh, NewGELUActivation

    x = torch.linspace(-8, 8, 10_001, dtype=torch.float64)
    torch.testing.assert_close(GELUTanh()(x), NewGELUActivation()(x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sigmoid_form_gelu_equals_gelu_new_and_its_gradient(dtype):
    from transformers.activations import NewGELUActivation

    from engine.models.precision import TanhGelu, tanh_gelu

    x = torch.cat([torch.linspace(-12, 12, 20_001, dtype=dtype), torch.randn(5_000, dtype=dtype) * 3])
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    reference = NewGELUActivation()(x.double())
    torch.testing.assert_close(tanh_gelu(x).double(), reference, atol=tol, rtol=0)
    # The module's own backward against autograd's through gelu_new's ops, in float64.
    g = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x_ref = x.double().clone().requires_grad_()
    NewGELUActivation()(x_ref).backward(g)
    x_fast = x.clone().requires_grad_()
    y = TanhGelu()(x_fast)
    y.backward(g.to(dtype))
    assert y.grad_fn is not None and "TanhGelu" in type(y.grad_fn).__name__  # the custom backward ran
    torch.testing.assert_close(y.double(), reference, atol=tol, rtol=0)
    torch.testing.assert_close(x_fast.grad.double(), x_ref.grad, atol=tol * 10, rtol=0)


def test_fuse_activations_swaps_gpt2_gelus_for_the_sigmoid_form():
    from transformers.activations import GELUTanh, NewGELUActivation

    from engine.models import fuse_activations
    from engine.models.precision import TanhGelu

    model = nn.Sequential(NewGELUActivation(), nn.Sequential(GELUTanh(), nn.ReLU()))
    assert fuse_activations(model) == 2
    assert [type(m) for m in model.modules() if not isinstance(m, nn.Sequential)] == [
        TanhGelu,
        TanhGelu,
        nn.ReLU,
    ]


def _logprobs_and_grads(precision: str | None):
    from engine.models import frozen_matmuls_in_bf16

    model, _ = lora_policy()
    if precision is not None:
        assert frozen_matmuls_in_bf16(model, precision) > 0
    seq = torch.randint(4, 40, (3, 9), generator=torch.Generator().manual_seed(0))
    logprobs, _, _ = policy_forward(model, seq, torch.ones_like(seq, dtype=torch.bool), 4, 0.7)
    logprobs.sum().backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return logprobs.detach(), grads


def test_bf16_grad_keeps_the_forward_and_approximates_the_gradient():
    lp32, g32 = _logprobs_and_grads(None)
    lp16, g16 = _logprobs_and_grads("bf16_grad")
    # The forward is fp32's: the patched layers run peft's three matmuls, the fp32 path's lean forward
    # one merged matmul per LoRA layer (engine.models.lora_matmul), so they differ by float32 rounding,
    # not by bf16's (~1e-2, as in the next test).
    torch.testing.assert_close(lp16, lp32, atol=1e-6, rtol=0)
    assert float((g16 - g32).norm() / g32.norm()) < 0.02


def test_bf16_base_approximates_forward_and_gradient():
    lp32, g32 = _logprobs_and_grads(None)
    lp16, g16 = _logprobs_and_grads("bf16")
    assert lp16.dtype == torch.float32
    torch.testing.assert_close(lp16, lp32, atol=0.05, rtol=0)  # bf16 rounding: ~3 significant digits
    assert not torch.equal(lp16, lp32)  # the bf16 path really ran
    assert float((g16 - g32).norm() / g32.norm()) < 0.03


def test_bf16_base_keeps_the_lora_unmerged_for_sampling():
    """Merged bf16(W + BA) is another function than bf16(W) + BA: sampling must not merge."""
    from engine.models import frozen_matmuls_in_bf16, merged_lora

    model, _ = lora_policy()
    frozen_matmuls_in_bf16(model, "bf16")
    ids = torch.tensor([[4, 5, 6, 7]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
        with merged_lora(model):
            inside = model(input_ids=ids).logits
    assert torch.equal(inside, before)


def test_non_finite_names_the_loss_the_gradient_norm_or_the_weights():
    """The divergence message says which value broke; the weights first (a non-finite weight makes the
    loss non-finite too, and is the cause)."""
    finite = [torch.ones(3), torch.zeros(2, 2)]
    nan, inf = torch.tensor(float("nan")), torch.tensor(float("inf"))
    assert non_finite(loss=nan, params=finite) == "loss is NaN"
    assert non_finite(loss=torch.tensor(1.0), grad_norm=inf, params=finite) == "gradient norm is inf"
    poisoned = [torch.ones(3), torch.tensor([[0.0, float("nan")], [1.0, 2.0]])]
    assert non_finite(loss=nan, grad_norm=nan, params=poisoned) == "weights are NaN (1 of 2 tensors)"
    assert non_finite(params=[torch.full((2,), float("-inf"))]) == "weights are inf (1 of 1 tensors)"
    diverged = TrainingDiverged("loss is NaN", step=7)
    assert isinstance(diverged, ConfigError) and str(diverged) == "diverged at step 7: loss is NaN"


def test_ppo_update_raises_at_a_non_finite_loss_or_weight():
    """A minibatch whose loss is NaN stops the update (it used to be skipped, and the run went on)."""
    model, tok = lora_policy()
    head = ValueHead(hidden_size(model))
    unused = torch.nn.Parameter(torch.zeros(2))  # in the optimizer, never in the loss: no gradient
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters()) + [unused]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    g = torch.Generator().manual_seed(0)
    B, P, T = 4, 3, 5
    seq = torch.randint(3, len(tok), (B, P + T), generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    batch = UpdateBatch(
        sequences=seq, attention_mask=torch.ones(B, P + T, dtype=torch.bool), response_mask=mask,
        old_logprobs=torch.full((B, T), -3.0), old_values=torch.zeros(B, T), advantages=torch.randn(B, T, generator=g),
        returns=torch.randn(B, T, generator=g), prompt_len=P, temperature=1.0,
    )  # fmt: skip
    cfg = PPOHyperConfig(ppo_epochs=1, num_minibatches=2)
    metrics = ppo_update(model, head, optimizer, batch, cfg, torch.Generator().manual_seed(1))
    assert metrics["guard/skipped_minibatches"] == 0 and math.isfinite(metrics["loss/total"])
    batch.returns[0, 0] = float("nan")  # a NaN value target: that minibatch's loss is NaN
    with pytest.raises(TrainingDiverged, match="loss is NaN"):
        ppo_update(model, head, optimizer, batch, cfg, torch.Generator().manual_seed(1))
    batch.returns[0, 0] = 0.0
    with torch.no_grad():
        unused[0] = float("nan")  # loss and gradients stay finite: the check after the last step sees it
    with pytest.raises(TrainingDiverged, match=r"weights are NaN \(1 of"):
        ppo_update(model, head, optimizer, batch, cfg, torch.Generator().manual_seed(1))
    with torch.no_grad():
        head.summary.weight[0, 0] = float("nan")  # now the loss is NaN too: the weights are named
    with pytest.raises(TrainingDiverged, match=r"weights are NaN \(2 of"):
        ppo_update(model, head, optimizer, batch, cfg, torch.Generator().manual_seed(1))
