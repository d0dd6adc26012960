"""The built-in world's lexicon: slot words, their relations, and the fixed vocabulary.

Hand-written and deterministic so the world is the same on every machine. Each slot word carries
a *difficulty* in [0, 1]: the SFT data for prompts about hard words is of lower quality, which
gives every prompt its own typical reward (the between-prompt spread that per-prompt reward
normalisation removes).
"""

from __future__ import annotations

SPECIAL_TOKENS = ["[PAD]", "[BOS]", "[EOS]", "[UNK]"]
PAD, BOS, EOS, UNK = SPECIAL_TOKENS

# animal -> its true traits (canonical order)
ANIMAL_TRAITS: dict[str, list[str]] = {
    "cat": ["small", "furry", "quiet", "playful"],
    "dog": ["loyal", "furry", "playful", "loud"],
    "horse": ["fast", "strong", "tall", "gentle"],
    "cow": ["big", "slow", "gentle", "quiet"],
    "sheep": ["woolly", "gentle", "slow", "quiet"],
    "pig": ["pink", "clever", "loud", "muddy"],
    "fox": ["sly", "fast", "clever", "wild"],
    "wolf": ["wild", "fierce", "loud", "strong"],
    "bear": ["big", "strong", "furry", "fierce"],
    "lion": ["brave", "fierce", "strong", "loud"],
    "eagle": ["fast", "proud", "wild", "sharp"],
    "owl": ["wise", "quiet", "small", "sharp"],
    "frog": ["green", "slimy", "small", "loud"],
    "snake": ["long", "slimy", "quiet", "sly"],
    "mouse": ["tiny", "quiet", "fast", "shy"],
    "whale": ["huge", "gentle", "slow", "wise"],
}
TRAITS = sorted({t for ts in ANIMAL_TRAITS.values() for t in ts})

TOPICS = [
    "war",
    "love",
    "space",
    "crime",
    "music",
    "sport",
    "family",
    "robots",
    "magic",
    "history",
    "ocean",
    "school",
]
GOOD_MOODS = ["great", "wonderful", "moving", "funny", "brilliant", "charming", "clever"]
BAD_MOODS = ["boring", "dull", "awful", "silly", "weak", "painful", "slow"]

COLOUR_THINGS: dict[str, list[str]] = {
    "red": ["apple", "cherry", "rose", "brick", "tomato", "ruby"],
    "blue": ["sky", "sea", "jeans", "berry", "sapphire", "ink"],
    "green": ["leaf", "grass", "lime", "moss", "pea", "emerald"],
    "yellow": ["banana", "lemon", "sun", "corn", "butter", "gold"],
    "white": ["snow", "milk", "cloud", "salt", "pearl", "paper"],
    "black": ["coal", "night", "ink", "crow", "tar", "soot"],
}

NUMBERS = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
]

FUNCTION_WORDS = [
    ":",
    ",",
    ".",
    "and",
    "the",
    "is",
    "a",
    "this",
    "movie",
    "about",
    "was",
    "describe",
    "review",
    "good",
    "bad",
    "list",
    "things",
    "count",
    "from",
    "to",
    "praise",
    "traits",
    "of",
    "very",
    "it",
    "not",
]


# slot word -> difficulty (how poor the SFT data about it is). Deterministic, spread over [0.1, 0.9].
def _spread(words: list[str], offset: int) -> dict[str, float]:
    n = len(words)
    return {w: 0.1 + 0.8 * ((i * 7 + offset) % n) / max(n - 1, 1) for i, w in enumerate(words)}


DIFFICULTY: dict[str, float] = {
    **_spread(list(ANIMAL_TRAITS), 3),
    **_spread(TOPICS, 5),
    **_spread(list(COLOUR_THINGS), 1),
}


def vocabulary() -> list[str]:
    """All tokens, specials first; order fixed so token ids never change."""
    words: list[str] = []
    for group in (
        FUNCTION_WORDS,
        list(ANIMAL_TRAITS),
        TRAITS,
        TOPICS,
        GOOD_MOODS,
        BAD_MOODS,
        list(COLOUR_THINGS),
        [t for ts in COLOUR_THINGS.values() for t in ts],
        NUMBERS,
    ):
        for w in group:
            if w not in words:
                words.append(w)
    return SPECIAL_TOKENS + words
