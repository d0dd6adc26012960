"""Sampling a checkpoint over a prompt set, with per-sample entropy and gold scores."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from engine.config import SamplingConfig

SAMPLES_PER_PROMPT = 8


@dataclass
class Samples:
    """Samples of one checkpoint on a prompt set: per-sample arrays, aligned."""

    prompt_ids: list[str]
    families: list[str]
    prompts: list[str]
    responses: list[str]
    mean_entropy: np.ndarray  # per-sample mean per-token entropy (T = 1)
    lengths: np.ndarray  # per-sample response tokens (EOS included)
    token_entropy_sum: float
    n_tokens: int
    gold: np.ndarray
    reward: np.ndarray | None = None

    @property
    def token_mean_entropy(self) -> float:
        return self.token_entropy_sum / max(self.n_tokens, 1)


def sample_checkpoint(
    source: str,
    prompts: list,
    gold_fn: Callable[[list[str], list[str]], list[float]],
    config: SamplingConfig,
    *,
    samples_per_prompt: int = SAMPLES_PER_PROMPT,
    seed: int = 0,
    batch_size: int = 512,
    model_cache: dict | None = None,
    chat_template: bool = True,
    progress: Callable[[int], None] | None = None,
) -> Samples:
    """``samples_per_prompt`` samples of each prompt (prompts seen as PPO sees them: in the chat
    template when ``chat_template`` and the tokenizer has one), in batches of ``batch_size`` rows;
    ``progress(rows)`` after each batch with the rows it drew."""
    from engine.models import load_causal_lm
    from engine.ops import masked_mean
    from engine.sampling import chat_prompts, generate_from_texts
    from engine.token_text import decode_responses

    cache = model_cache if model_cache is not None else {}
    if source not in cache:
        cache[source] = load_causal_lm(source)
    loaded = cache[source]
    tok = loaded.tokenizer
    rows = [p for p in prompts for _ in range(samples_per_prompt)]
    generator = torch.Generator(device=loaded.device).manual_seed(seed)
    texts, entropies, lengths, ent_sum, n_tok = [], [], [], 0.0, 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        seen = chat_prompts(tok, [p.text for p in chunk], chat_template)
        gen = generate_from_texts(loaded, seen, config, generator)
        # entropy of the model distribution (T = 1) whatever the sampling settings
        entropy = gen.signals(SamplingConfig()).entropy
        entropies.append(masked_mean(entropy, gen.response_mask, dim=1).cpu().numpy())
        lengths.append(gen.lengths.cpu().numpy())
        ent_sum += float((entropy * gen.response_mask).sum())
        n_tok += int(gen.response_mask.sum())
        texts += decode_responses(tok, gen.response_ids, gen.response_mask)
        if progress is not None:
            progress(len(chunk))
    return Samples(
        prompt_ids=[p.prompt_id for p in rows],
        families=[p.family for p in rows],
        prompts=[p.text for p in rows],
        responses=texts,
        mean_entropy=np.concatenate(entropies),
        lengths=np.concatenate(lengths),
        token_entropy_sum=ent_sum,
        n_tokens=n_tok,
        gold=np.array(gold_fn([p.text for p in rows], texts)),
    )
