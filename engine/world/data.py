"""Datasets of the built-in world, generated from one seed: prompts and their splits, SFT
examples, and gold-labelled preference pairs with Bradley-Terry label noise."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.world.families import FAMILIES, Family, Slots
from engine.world.judge import gold_score
from engine.world.vocab import EOS, vocabulary

SFT_RESPONSES_PER_PROMPT = 4
SFT_HELD_OUT_SHARE = 0.2  # of SFT-family prompts, kept out of SFT data (the "eval" split)
LABEL_NOISE_SCALE = 0.1  # flip probability sigma(-|gold gap| / scale), as a human labeller would


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    family: str
    text: str
    split: str  # "sft_train" | "eval" (SFT family, held out of SFT data) | "ppo_only"


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    gold_chosen: float
    gold_rejected: float
    family: str


def build_tokenizer():
    """Word-level HF tokenizer over the world's fixed vocabulary."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(vocabulary())}
    core = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]", unk_token="[UNK]"
    )
    tok.padding_side = "left"
    return tok


def make_prompts(seed: int) -> list[Prompt]:
    rng = random.Random(seed)
    prompts: list[Prompt] = []
    for family in FAMILIES.values():
        slots = family.all_slots()
        order = list(range(len(slots)))
        rng.shuffle(order)
        held_out = set(order[: round(len(order) * SFT_HELD_OUT_SHARE)]) if family.in_sft else set()
        for i, s in enumerate(slots):
            split = "ppo_only" if not family.in_sft else ("eval" if i in held_out else "sft_train")
            prompts.append(
                Prompt(f"{family.name}-{i:03d}", family.name, " ".join(family.prompt_words(s)), split)
            )
    return prompts


def _slots(prompt: Prompt) -> tuple[Family, Slots]:
    family = FAMILIES[prompt.family]
    return family, family.parse_prompt(prompt.text.split())


def quality_centre(family: Family, slots: Slots, rng: random.Random) -> float:
    """Each prompt's typical SFT data quality: lower for hard slot words."""
    return min(max(1.0 - family.difficulty(slots) + rng.gauss(0, 0.05), 0.05), 0.95)


def sft_examples(prompts: list[Prompt], seed: int) -> list[tuple[str, str]]:
    """(prompt, response) pairs: a few distinct responses per SFT-train prompt, around its centre."""
    rng = random.Random(seed + 1)
    examples = []
    for prompt in prompts:
        if prompt.split != "sft_train":
            continue
        family, slots = _slots(prompt)
        centre = quality_centre(family, slots, rng)
        seen: set[str] = set()
        for _ in range(SFT_RESPONSES_PER_PROMPT * 5):
            quality = min(max(centre + rng.gauss(0, 0.12), 0.0), 1.0)
            response = " ".join(family.response(slots, quality, rng))
            if response not in seen:
                seen.add(response)
                examples.append((prompt.text, response))
            if len(seen) == SFT_RESPONSES_PER_PROMPT:
                break
    return examples


def _corrupt(words: list[str], rng: random.Random) -> list[str]:
    """Off-template answers the labeller also saw: truncated, shuffled or doubled."""
    kind = rng.randrange(4)
    if kind == 0 and len(words) > 2:
        return words[: rng.randrange(1, len(words) - 1)]
    if kind == 1:
        shuffled = list(words)
        rng.shuffle(shuffled)
        return shuffled
    if kind == 2:
        return words + words[: rng.randrange(1, len(words))]
    # a content word repeated in place: the spam a mean-pooled RM would otherwise reward
    i = rng.randrange(len(words))
    return words[: i + 1] + [words[i]] * rng.randrange(1, 4) + words[i + 1 :]


def label_flip_probability(gap: float, scale: float = LABEL_NOISE_SCALE) -> float:
    """Bradley-Terry label noise: the chance that a labeller prefers the worse of two responses whose
    gold scores differ by ``gap``, sigma(-|gap| / scale) (0 for ``scale`` 0)."""
    return 1 / (1 + math.exp(abs(gap) / scale)) if scale > 0 else 0.0


def label_pair(
    prompt: str, family: str, a: str, b: str, gold_a: float, gold_b: float, rng: random.Random
) -> PreferencePair | None:
    """Label a pair by the gold judge with Bradley-Terry noise; None on a gold tie."""
    if gold_a == gold_b:
        return None
    a_better = gold_a > gold_b
    if rng.random() < label_flip_probability(gold_a - gold_b):
        a_better = not a_better
    if a_better:
        return PreferencePair(prompt, a, b, gold_a, gold_b, family)
    return PreferencePair(prompt, b, a, gold_b, gold_a, family)


def preference_pairs(prompts: list[Prompt], n_pairs: int, seed: int) -> list[PreferencePair]:
    """Labelled pairs of data-generator answers over every family (gold ties skipped)."""
    rng = random.Random(seed)
    pairs: list[PreferencePair] = []
    while len(pairs) < n_pairs:
        prompt = rng.choice(prompts)
        family, slots = _slots(prompt)
        texts = []
        for _ in range(2):
            words = family.response(slots, rng.random(), rng)
            if rng.random() < 0.15:
                words = _corrupt(words, rng)
            eos = [EOS] if rng.random() > 0.05 else []
            texts.append(" ".join(words + eos))
        golds = [gold_score(prompt.text, t) for t in texts]
        pair = label_pair(prompt.text, prompt.family, texts[0], texts[1], golds[0], golds[1], rng)
        if pair:
            pairs.append(pair)
    return pairs


def pairs_from_samples(
    families: list[str],
    prompts: list[str],
    responses: list[str],
    golds: list[float],
    seed: int,
    max_pairs_per_prompt: int = 40,
) -> list[PreferencePair]:
    """Labelled pairs of model samples of the same prompt: a random subset of all pairs of distinct
    responses (n samples give n(n-1)/2 comparisons for the cost of n; the labeller ranks them)."""
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(prompt, []).append(i)
    pairs = []
    for idx in groups.values():
        candidates = [(a, b) for k, a in enumerate(idx) for b in idx[k + 1 :] if responses[a] != responses[b]]
        rng.shuffle(candidates)
        for a, b in candidates[:max_pairs_per_prompt]:
            pair = label_pair(prompts[a], families[a], responses[a], responses[b], golds[a], golds[b], rng)
            if pair:
                pairs.append(pair)
    return pairs


def write_jsonl(path: Path, rows: list) -> None:
    import json

    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(asdict(row) if hasattr(row, "__dataclass_fields__") else row) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    import json

    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
