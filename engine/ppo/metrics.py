"""What an iteration reports: metrics (namespaced keys, as TRL's) and store rows, as pure functions
of the rollout and the tensors computed from it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from engine.ops import masked_mean
from engine.ppo.advantages import explained_variance
from engine.ppo.rollout import Rollout, ScoredRollout
from engine.token_text import decode_tokens


def objective_metrics(
    ro: Rollout,
    raw_scores: torch.Tensor,
    scores: torch.Tensor,
    kl: torch.Tensor | None,
    kl_coef: float,
    gold: torch.Tensor | None,
    advantages: torch.Tensor,
    returns: torch.Tensor | None,
) -> dict[str, float]:
    """Rollout-side metrics of one iteration. ``raw_scores`` / ``scores`` (B,) are the RM scores
    before / after processing; ``kl``, ``advantages``, ``returns`` are (B, T), 0 outside the mask
    (``returns`` None and no ``val/`` metrics without a critic: GRPO, RLOO; ``kl`` None and no KL
    metrics at a step without the reference pass, where kl_coef is 0)."""
    mask = ro.response_mask
    lengths = ro.lengths.float()
    metrics = {
        "objective/reward": float(raw_scores.mean()),
        "objective/reward_std": float(raw_scores.std(unbiased=False)),
        "objective/score": float(scores.mean()),
        "objective/kl_coef": kl_coef,
        "objective/entropy": float(masked_mean(ro.signals.entropy, mask)),
        "objective/sampling_entropy": float(masked_mean(ro.signals.sampling_entropy, mask)),
        "objective/max_prob": float(masked_mean(ro.signals.max_prob, mask)),
        "objective/n_candidates": float(masked_mean(ro.signals.n_candidates.float(), mask)),
        # Entropy of softmax(z / T), the distribution the ratio uses, of the policy that sampled the batch.
        "policy/entropy": float(masked_mean(ro.policy_entropy, mask)),
        "response/length": float(lengths.mean()),
        "response/eos_rate": float(ro.has_eos.float().mean()),
        "policy/advantage_abs": float(masked_mean(advantages.abs(), mask)),
    }
    if kl is not None:
        kl_per_seq = kl.sum(-1)  # (B,)
        metrics["objective/kl"] = float(kl_per_seq.mean())
        metrics["objective/kl_per_token"] = float(masked_mean(kl, mask))
        metrics["objective/rlhf_reward"] = float((scores - kl_coef * kl_per_seq).mean())
    else:  # no KL term anywhere (takes_reference): the RLHF reward is the score
        metrics["objective/rlhf_reward"] = float(scores.mean())
    if returns is not None and ro.values is not None:
        metrics["val/explained_var"] = explained_variance(ro.values, returns, mask)
        metrics["val/return_mean"] = float(masked_mean(returns, mask))
    if gold is not None:
        metrics["objective/gold"] = float(gold.mean())
        metrics["objective/gold_std"] = float(gold.std(unbiased=False))
    return metrics


def rollout_rows(
    batch: ScoredRollout,
    *,
    step: int,
    tokenizer: Any,
    advantages: torch.Tensor | None,
    rank: int = 0,
    is_probe: bool = False,
) -> dict[str, list]:
    """Store columns, one row per sample (the batch's prompts each repeated ``samples_per_prompt``
    times, in order); per-token lists are cut to the response length. ``advantages`` (B, T) are the ones
    the update used (after whitening), None for rows that are not trained on (the probes, ``is_probe``)."""
    ro, prompts, k, sampling = batch.rollout, batch.prompts, batch.samples_per_prompt, batch.sampling
    lengths = ro.lengths.cpu().numpy()
    token_arrays = {
        "entropy": ro.signals.entropy,
        "sampling_entropy": ro.signals.sampling_entropy,
        "max_prob": ro.signals.max_prob,
        "sampled_prob": ro.signals.sampled_prob,
        "n_candidates": ro.signals.n_candidates,
        "logprob": ro.logprobs,
        "ref_logprob": batch.ref_logprobs,
        "value": ro.values,
        "advantage": advantages,
        "token_ids": ro.response_ids,
    }
    n_rows = len(lengths)
    rows: dict[str, list] = {}
    for name, tensor in token_arrays.items():
        if tensor is None:
            rows[name] = [None] * n_rows
            continue
        array = tensor.detach().cpu().numpy()
        rows[name] = [array[i, : lengths[i]] for i in range(n_rows)]
    rows["tokens"] = decode_tokens(tokenizer, ro.response_ids.cpu(), ro.response_mask.cpu())
    rows["prompt_id"] = [p.prompt_id for p in prompts for _ in range(k)]
    rows["prompt_family"] = [p.family for p in prompts for _ in range(k)]
    rows["sample_idx"] = [j for _ in prompts for j in range(k)]
    rows["prompt"] = [p.text for p in prompts for _ in range(k)]
    rows["response"] = batch.responses
    rows["reward"] = batch.scores.cpu().tolist()
    rows["gold"] = batch.gold.tolist() if batch.gold is not None else [None] * n_rows
    rows["kl"] = batch.kl.sum(-1).cpu().tolist() if batch.kl is not None else [None] * n_rows
    rows["length"] = lengths.tolist()
    rows["has_eos"] = ro.has_eos.cpu().tolist()
    rows["temperature"] = [sampling.temperature] * n_rows
    rows["top_p"] = [sampling.top_p] * n_rows
    rows["top_k"] = [sampling.top_k] * n_rows
    rows["min_p"] = [sampling.min_p] * n_rows
    rows["is_probe"] = [is_probe] * n_rows
    rows["checkpoint"] = [f"step-{step - 1}"] * n_rows  # the policy that sampled: after step-1 updates
    rows["rank"] = [rank] * n_rows
    return rows


def probe_metrics(
    prompts: Sequence[Any], samples_per_prompt: int, ro: Rollout, responses: list[str]
) -> dict[str, float]:
    """The probe curves of one step, per family and over all probes (``probe/<family>/<name>`` and
    ``probe/<name>``), from ``samples_per_prompt`` T = 1 samples of each fixed probe prompt:

    - ``entropy``: mean per-token entropy of the samples (nats);
    - ``distinct``: distinct responses per prompt (out of ``samples_per_prompt``);
    - ``top_mass``: probability, under the policy, of the most likely response sampled for the prompt
      (``exp`` of its summed T = 1 log-probs), averaged over prompts: 1 when the policy has collapsed
      onto one answer.
    """
    k = samples_per_prompt
    mask = ro.response_mask
    entropy_sum = (ro.signals.entropy * mask).sum(-1).tolist()  # (B,)
    n_tokens = mask.sum(-1).tolist()
    sequence_prob = ro.logprobs.sum(-1).double().exp().tolist()  # (B,) the probes sample at T = 1
    groups: dict[str, dict[str, list[float]]] = {}
    for i, prompt in enumerate(prompts):
        rows = range(i * k, (i + 1) * k)
        for key in (prompt.family, None):
            g = groups.setdefault(key, {"entropy": [], "tokens": [], "distinct": [], "top_mass": []})
            g["entropy"] += [entropy_sum[r] for r in rows]
            g["tokens"] += [n_tokens[r] for r in rows]
            g["distinct"].append(len({responses[r] for r in rows}))
            g["top_mass"].append(max(sequence_prob[r] for r in rows))
    metrics = {}
    for family, g in groups.items():
        prefix = "probe" if family is None else f"probe/{family}"
        metrics[f"{prefix}/entropy"] = sum(g["entropy"]) / max(sum(g["tokens"]), 1)
        metrics[f"{prefix}/distinct"] = sum(g["distinct"]) / len(g["distinct"])
        metrics[f"{prefix}/top_mass"] = sum(g["top_mass"]) / len(g["top_mass"])
    return metrics
