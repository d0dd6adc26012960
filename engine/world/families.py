"""Prompt families of the built-in world: how each prompt is written, how the SFT data answers it,
and how the gold judge scores an answer's content.

Responses follow canonical templates with sorted lists, so the data generator itself has low
entropy: a model can memorise a prompt's few responses, which is what makes SFT entropy fall
epoch after epoch (WORLD_NOTES, W1). Families that only the PPO prompt set uses reuse an SFT
template with the wrong kind of slot word, so the SFT model is unsure there (W2).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from engine.world.vocab import (
    ANIMAL_TRAITS,
    BAD_MOODS,
    COLOUR_THINGS,
    DIFFICULTY,
    GOOD_MOODS,
    NUMBERS,
    TOPICS,
)

Slots = dict[str, str]


def join_list(items: list[str]) -> list[str]:
    """['a'] -> a ; ['a', 'b'] -> a and b ; ['a', 'b', 'c'] -> a , b and c"""
    if len(items) <= 1:
        return list(items)
    words: list[str] = []
    for item in items[:-2]:
        words += [item, ","]
    return words + [items[-2], "and", items[-1]]


def split_list(words: list[str]) -> list[str] | None:
    """Inverse of :func:`join_list`; None when the words are not such a list."""
    if not words:
        return None
    if len(words) == 1:
        return list(words)
    if len(words) < 3 or words[-2] != "and":
        return None
    head = words[:-2]
    items = head[0::2]
    if any(sep != "," for sep in head[1::2]) or len(head) % 2 == 0:
        return None
    return items + [words[-1]]


def coverage_score(items: list[str], correct: set[str], wanted: int) -> float:
    """0.4 x share of items that are correct + 0.6 x distinct correct items out of ``wanted``."""
    if not items:
        return 0.0
    relevance = sum(i in correct for i in items) / len(items)
    coverage = min(len(set(items) & correct), wanted) / wanted
    return 0.4 * relevance + 0.6 * coverage


def bag_score(words: list[str], correct: set[str], wanted: int) -> float:
    """Fallback for answers that miss the template: credit for relevant words only."""
    return min(len(set(words) & correct), wanted) / wanted


def off_template(words: list[str], correct: Iterable[str], wanted: int) -> tuple[float, bool]:
    """``content`` of an answer that misses the template: half the credit of its relevant words."""
    return 0.5 * bag_score(words, set(correct), wanted), False


def subject_list_content(
    words: list[str],
    items: list[str] | None,
    correct: set[str],
    wanted: int,
    subject: tuple[int, str],
    off: float,
) -> tuple[float, bool]:
    """``content`` of a templated list answer about a subject: the coverage of ``correct`` by ``items``
    (None: the template is missed), times ``off`` when the word at ``subject[0]`` is not ``subject[1]``."""
    if items is None:
        return off_template(words, correct, wanted)
    at, word = subject
    return (1.0 if words[at] == word else off) * coverage_score(items, correct, wanted), True


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    in_sft: bool
    expected_length: int  # typical response length in words, before EOS

    def all_slots(self) -> list[Slots]:
        raise NotImplementedError

    def prompt_words(self, slots: Slots) -> list[str]:
        raise NotImplementedError

    def parse_prompt(self, words: list[str]) -> Slots | None:
        raise NotImplementedError

    def difficulty(self, slots: Slots) -> float:
        return 0.0

    def response(self, slots: Slots, quality: float, rng: random.Random) -> list[str]:
        """An answer whose expected gold grows with ``quality`` in [0, 1]."""
        raise NotImplementedError

    def content(self, slots: Slots, words: list[str]) -> tuple[float, bool]:
        """(content score in [0, 1], whether the words follow the family's template)."""
        raise NotImplementedError


def _pick_items(
    correct: list[str], wrong: list[str], k: int, quality: float, rng: random.Random
) -> list[str]:
    """k distinct items, each correct with probability ``quality``; sorted (canonical order)."""
    good = [c for c in correct]
    bad = [w for w in wrong if w not in correct]
    chosen: list[str] = []
    for _ in range(k):
        pool = good if (rng.random() < quality and good) or not bad else bad
        item = rng.choice(pool)
        pool.remove(item)
        chosen.append(item)
    return sorted(chosen)


def _confusers(animal: str) -> list[str]:
    """Fixed wrong traits for an animal: the traits of the next animal in the table."""
    names = list(ANIMAL_TRAITS)
    partner = names[(names.index(animal) + 1) % len(names)]
    return [t for t in ANIMAL_TRAITS[partner] if t not in ANIMAL_TRAITS[animal]]


class Describe(Family):
    def all_slots(self):
        return [{"animal": a} for a in ANIMAL_TRAITS]

    def prompt_words(self, s):
        return ["describe", "the", s["animal"], ":"]

    def parse_prompt(self, w):
        if len(w) == 4 and w[:2] == ["describe", "the"] and w[2] in ANIMAL_TRAITS and w[3] == ":":
            return {"animal": w[2]}
        return None

    def difficulty(self, s):
        return DIFFICULTY[s["animal"]]

    def response(self, s, quality, rng):
        k = 3 if rng.random() < 0.5 + quality / 2 else 2
        items = _pick_items(ANIMAL_TRAITS[s["animal"]], _confusers(s["animal"]), k, quality, rng)
        return ["the", s["animal"], "is", *join_list(items), "."]

    def content(self, s, w):
        correct = set(ANIMAL_TRAITS[s["animal"]])
        items = (
            split_list(w[3:-1]) if len(w) >= 5 and w[0] == "the" and w[2] == "is" and w[-1] == "." else None
        )
        return subject_list_content(w, items, correct, 3, (1, s["animal"]), 0.3)


class Review(Family):
    def all_slots(self):
        return [{"polarity": p, "topic": t} for p in ("good", "bad") for t in TOPICS]

    def prompt_words(self, s):
        return ["review", "a", s["polarity"], "movie", "about", s["topic"], ":"]

    def parse_prompt(self, w):
        ok = (
            len(w) == 7
            and w[:2] == ["review", "a"]
            and w[2] in ("good", "bad")
            and w[3:5] == ["movie", "about"]
        )
        return {"polarity": w[2], "topic": w[5]} if ok and w[5] in TOPICS and w[6] == ":" else None

    def difficulty(self, s):
        return DIFFICULTY[s["topic"]]

    def response(self, s, quality, rng):
        right, wrong = (GOOD_MOODS, BAD_MOODS) if s["polarity"] == "good" else (BAD_MOODS, GOOD_MOODS)
        k = 2 if rng.random() < 0.4 + quality / 2 else 1
        topic = s["topic"] if rng.random() < 0.6 + 0.4 * quality else rng.choice(TOPICS)
        return [
            "this",
            "movie",
            "about",
            topic,
            "was",
            *join_list(_pick_items(right, wrong, k, quality, rng)),
            ".",
        ]

    def content(self, s, w):
        right = set(GOOD_MOODS if s["polarity"] == "good" else BAD_MOODS)
        ok = len(w) >= 7 and w[:3] == ["this", "movie", "about"] and w[4] == "was" and w[-1] == "."
        items = split_list(w[5:-1]) if ok else None
        return subject_list_content(w, items, right, 2, (3, s["topic"]), 0.4)


class Praise(Review):
    """PPO-only: the review request without its polarity word; the labeller prefers praise."""

    def all_slots(self):
        return [{"polarity": "good", "topic": t} for t in TOPICS]

    def prompt_words(self, s):
        return ["review", "a", "movie", "about", s["topic"], ":"]

    def parse_prompt(self, w):
        ok = len(w) == 6 and w[:4] == ["review", "a", "movie", "about"] and w[4] in TOPICS and w[5] == ":"
        return {"polarity": "good", "topic": w[4]} if ok else None


class ColourList(Family):
    def all_slots(self):
        return [{"n": n, "colour": c} for n in ("two", "three", "four") for c in COLOUR_THINGS]

    def prompt_words(self, s):
        return ["list", s["n"], s["colour"], "things", ":"]

    def parse_prompt(self, w):
        ok = len(w) == 5 and w[0] == "list" and w[1] in ("two", "three", "four") and w[3:] == ["things", ":"]
        return {"n": w[1], "colour": w[2]} if ok and w[2] in COLOUR_THINGS else None

    def difficulty(self, s):
        return DIFFICULTY[s["colour"]]

    def _correct(self, s) -> list[str]:
        return COLOUR_THINGS[s["colour"]]

    def _wrong(self, s) -> list[str]:
        colours = list(COLOUR_THINGS)
        other = colours[(colours.index(s["colour"]) + 1) % len(colours)]
        return COLOUR_THINGS[other]

    def _pool(self, s) -> tuple[list[str], list[str]]:
        return self._correct(s), self._wrong(s)

    def response(self, s, quality, rng):
        n = NUMBERS.index(s["n"]) + 1
        if rng.random() > 0.55 + quality / 2:
            n += rng.choice((-1, 1))
        correct, wrong = self._pool(s)
        return [*join_list(_pick_items(correct, wrong, max(n, 1), quality, rng)), "."]

    def content(self, s, w):
        correct, _ = self._pool(s)
        wanted = NUMBERS.index(s["n"]) + 1
        items = split_list(w[:-1]) if w and w[-1] == "." else None
        if items is None:
            return off_template(w, correct, wanted)
        relevance = sum(i in correct for i in items) / len(items)
        distinct = len(set(items)) / len(items)
        count = 1.0 if len(items) == wanted else 0.6 ** abs(len(items) - wanted)
        return relevance * distinct * count, True


class TraitList(ColourList):
    """PPO-only: the list template with an animal slot instead of a colour."""

    def all_slots(self):
        return [{"n": "three", "animal": a} for a in ANIMAL_TRAITS]

    def prompt_words(self, s):
        return ["list", s["n"], "traits", "of", "the", s["animal"], ":"]

    def parse_prompt(self, w):
        ok = (
            len(w) == 7
            and w[0] == "list"
            and w[1] in ("two", "three", "four")
            and w[2:5] == ["traits", "of", "the"]
        )
        return {"n": w[1], "animal": w[5]} if ok and w[5] in ANIMAL_TRAITS and w[6] == ":" else None

    def difficulty(self, s):
        return DIFFICULTY[s["animal"]]

    def _pool(self, s):
        return ANIMAL_TRAITS[s["animal"]], _confusers(s["animal"])


class Count(Family):
    """The easy family: one right answer, near-deterministic data."""

    def all_slots(self):
        return [
            {"start": NUMBERS[a], "end": NUMBERS[a + d]}
            for a in range(10)
            for d in range(2, 6)
            if a + d < len(NUMBERS)
        ]

    def prompt_words(self, s):
        return ["count", "from", s["start"], "to", s["end"], ":"]

    def parse_prompt(self, w):
        ok = len(w) == 6 and w[:2] == ["count", "from"] and w[3] == "to" and w[5] == ":"
        return {"start": w[2], "end": w[4]} if ok and w[2] in NUMBERS and w[4] in NUMBERS else None

    def _target(self, s) -> list[str]:
        return NUMBERS[NUMBERS.index(s["start"]) : NUMBERS.index(s["end"]) + 1]

    def response(self, s, quality, rng):
        words = self._target(s)
        if rng.random() > 0.85 + 0.15 * quality:  # a rare slip: one number skipped
            del words[rng.randrange(1, len(words) - 1)]
        return [*words, "."]

    def content(self, s, w):
        target = self._target(s)
        if not w or w[-1] != ".":
            return off_template(w, target, len(target))
        body = w[:-1]
        if body == target:
            return 1.0, True
        matches = sum(a == b for a, b in zip(body, target, strict=False))
        return 0.7 * matches / max(len(target), len(body)), True


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Describe("describe", "describe an animal by its traits", True, 8),
        Review("review", "review a good or bad movie about a topic", True, 9),
        ColourList("colour_list", "list n things of a colour", True, 8),
        Count("count", "count from one number to another (easy, near-deterministic)", True, 6),
        Praise(
            "praise", "review a movie, no polarity given; the labeller prefers praise (PPO only)", False, 9
        ),
        TraitList(
            "trait_list",
            "list three traits of an animal (PPO only: the list template with an animal)",
            False,
            8,
        ),
    )
}


def parse_prompt(text: str) -> tuple[Family, Slots] | None:
    words = text.split()
    for family in FAMILIES.values():
        slots = family.parse_prompt(words)
        if slots is not None:
            return family, slots
    return None
