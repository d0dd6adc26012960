"""The gold judge: a deterministic score in [0, 1] of (prompt, response).

It plays the seed's human labeller / GPT-4. Score = content (per-family parse: slot relevance,
coverage, mood match, exact counts) x fluency (template followed) x length x repetition x EOS.
The RM learns it only approximately, so PPO can find what the RM over-rates (repeated good words,
run-on answers) and the judge does not.

A response is the decoded text of the generated tokens: it ends with ``[EOS]`` when the model
stopped by itself; anything after the first ``[EOS]`` is ignored.
"""

from __future__ import annotations

import math
from collections import Counter

from engine.world.families import parse_prompt
from engine.world.vocab import EOS, PAD

UNPARSED_PROMPT_SCORE = 0.0
NON_CONTENT = {",", "and", ".", "the", "is", "was", "this", "movie", "about"}


def split_response(response: str) -> tuple[list[str], bool]:
    """(words before the first EOS, whether there was an EOS); padding dropped."""
    words = [w for w in response.split() if w != PAD]
    if EOS in words:
        return words[: words.index(EOS)], True
    return words, False


def repetition_factor(words: list[str]) -> float:
    """0.6 per extra occurrence of a content word."""
    counts = Counter(w for w in words if w not in NON_CONTENT)
    extra = sum(c - 1 for c in counts.values())
    return 0.6**extra


def length_factor(n_words: int, expected: int) -> float:
    """1 up to expected + 2 words, then decays; short answers lose content instead."""
    excess = n_words - (expected + 2)
    return 1.0 if excess <= 0 else math.exp(-excess / 4)


def gold_score(prompt: str, response: str) -> float:
    parsed = parse_prompt(prompt)
    if parsed is None:
        return UNPARSED_PROMPT_SCORE
    family, slots = parsed
    words, has_eos = split_response(response)
    if not words:
        return 0.0
    content, fluent = family.content(slots, words)
    score = content * (1.0 if fluent else 0.6)
    score *= length_factor(len(words), family.expected_length)
    score *= repetition_factor(words)
    score *= 1.0 if has_eos else 0.5
    return float(min(max(score, 0.0), 1.0))


def gold_batch(prompts: list[str], responses: list[str]) -> list[float]:
    return [gold_score(p, r) for p, r in zip(prompts, responses, strict=True)]
