"""The real world's task families: short prompts with a verifiable answer, each with its checker, and
the training and held-out sets drawn from one seed.

Families (name: what the prompt asks; the checker in :mod:`engine.real_world.checkers`):

- ``add-easy`` / ``add-hard``: a + b with a, b in 2..49 / 100..999 (``correct_number``)
- ``sub-easy`` / ``sub-hard``: a - b, a > b, in 2..49 / 100..999 (``correct_number``)
- ``mul-easy`` / ``mul-hard``: a x b with a, b in 2..9 / a in 11..99, b in 3..9 (``correct_number``)
- ``count-letter``: how often a letter occurs in a word (``correct_number``; "twice" counts)
- ``number-only``: an ``add-easy`` sum, "Answer with the number only." (``number_only``, partial credit)
- ``exact-words``: describe a topic in exactly N words, N in 2..5 (``exact_words``)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass

from engine.config import ConfigError
from engine.real_world.checkers import correct_number, exact_words, number_only


@dataclass(frozen=True)
class Task:
    """One prompt and what its checker needs: ``answer`` is the number asked for, or for
    ``exact-words`` the number of words."""

    task_id: str
    family: str
    prompt: str
    answer: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    draw: Callable[[random.Random], tuple[str, int]]
    """(prompt, answer) of one random problem."""
    check: Callable[[Task, str], float]
    """Score of a response to a task of this family, in [0, 1]."""


@dataclass(frozen=True)
class TaskSets:
    """Training and held-out tasks, disjoint by prompt, grouped by family in :data:`FAMILIES` order."""

    seed: int
    train: list[Task]
    held_out: list[Task]


def _arithmetic(op: str, low: int, high: int, low_b: int | None = None, high_b: int | None = None):
    def draw(rng: random.Random) -> tuple[str, int]:
        a = rng.randint(low, high)
        b = rng.randint(low if low_b is None else low_b, high if high_b is None else high_b)
        if op == "-":
            a, b = max(a, b), min(a, b)
            a += a == b  # a > b: a positive difference
        value = {"+": a + b, "-": a - b, "x": a * b}[op]
        return f"What is {a} {op} {b}?", value

    return draw


def _numeric(task: Task, response: str) -> float:
    return correct_number(response, task.answer, task.prompt)


def _number_only(task: Task, response: str) -> float:
    return number_only(response, task.answer, task.prompt)


def _exact_words(task: Task, response: str) -> float:
    return exact_words(response, task.answer)


# Words with repeated letters: counting them is the hard case for a tokenizer-based model.
COUNT_WORDS = (
    "strawberry banana mississippi bookkeeper balloon committee coffee letter apple cherry pepper "
    "success address assessment parallel tomorrow raspberry necessary occurrence butterfly giraffe "
    "hippopotamus elephant programming remember excellent beginning difference umbrella grammar "
    "possession millennium accommodate embarrass recommend chocolate pineapple watermelon kangaroo "
    "referee"
).split()
TOPICS = (
    "the ocean, autumn, a cat, the moon, coffee, a library, rain, the city at night, a forest, "
    "winter, a good friend, the desert, music, a mountain, breakfast, the sun, a river, snow, "
    "a garden, the sky"
).split(", ")


def _count_letter(rng: random.Random) -> tuple[str, int]:
    word = rng.choice(COUNT_WORDS)
    letter = rng.choice(sorted(set(word)))
    return f'How many times does the letter "{letter}" appear in the word "{word}"?', word.count(letter)


def _number_only_sum(rng: random.Random) -> tuple[str, int]:
    prompt, value = _arithmetic("+", 2, 49)(rng)
    return f"{prompt} Answer with the number only.", value


def _describe(rng: random.Random) -> tuple[str, int]:
    n = rng.randint(2, 5)
    return f"Describe {rng.choice(TOPICS)} in exactly {n} words.", n


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("add-easy", "a + b, two-digit at most", _arithmetic("+", 2, 49), _numeric),
        Family("add-hard", "a + b, three-digit", _arithmetic("+", 100, 999), _numeric),
        Family("sub-easy", "a - b > 0, two-digit at most", _arithmetic("-", 2, 49), _numeric),
        Family("sub-hard", "a - b > 0, three-digit", _arithmetic("-", 100, 999), _numeric),
        Family("mul-easy", "a x b, one-digit", _arithmetic("x", 2, 9), _numeric),
        Family("mul-hard", "a x b, two-digit by one-digit", _arithmetic("x", 11, 99, 3, 9), _numeric),
        Family("count-letter", "how often a letter occurs in a word", _count_letter, _numeric),
        Family("number-only", "a sum, answered with the number only", _number_only_sum, _number_only),
        Family("exact-words", "describe a topic in exactly N words", _describe, _exact_words),
    )
}


PPO_FAMILIES = ("add-easy", "sub-easy", "mul-easy", "number-only")
"""The families the real world's shipped PPO runs train on and its reward model is trained for: short
answers the checker reads that SmolLM2 gets right now and then (room for PPO), so a run of a few
hundred samples is not spread over nine families."""


def score(task: Task, response: str) -> float:
    """The checker's score of ``response`` to ``task``, in [0, 1]."""
    return FAMILIES[task.family].check(task, response)


def make_task_sets(
    seed: int, *, train_per_family: int, held_out_per_family: int, families: list[str] | None = None
) -> TaskSets:
    """Training and held-out tasks of each family, reproducible from ``seed``, disjoint by prompt.

    Each family draws from its own generator (seeded by ``seed`` and its name), so adding a family
    leaves the others' tasks unchanged; the held-out tasks are drawn first, so a larger training set
    leaves the held-out set unchanged. The counts have no default: a family has a limited number of
    distinct prompts (``mul-easy`` 64), and the callers' counts (the build's, the fallback's) fit them.
    """
    names = families or list(FAMILIES)
    unknown = [name for name in names if name not in FAMILIES]
    if unknown:
        raise ConfigError(f"unknown task families {unknown}; known: {', '.join(FAMILIES)}")
    if train_per_family < 0 or held_out_per_family < 0:
        raise ConfigError("task counts must be >= 0")
    train, held_out = [], []
    for name in names:
        tasks = _draw_unique(
            FAMILIES[name], random.Random(f"{seed}:{name}"), train_per_family + held_out_per_family
        )
        held_out += tasks[:held_out_per_family]
        train += tasks[held_out_per_family:]
    return TaskSets(seed=seed, train=train, held_out=held_out)


def _draw_unique(family: Family, rng: random.Random, n: int) -> list[Task]:
    """``n`` tasks of ``family`` with distinct prompts; ConfigError when the family has fewer."""
    seen: dict[str, int] = {}
    attempts = 0
    while len(seen) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ConfigError(f"family {family.name!r} has fewer than {n} distinct prompts")
        prompt, answer = family.draw(rng)
        seen.setdefault(prompt, answer)
    return [
        Task(task_id=f"{family.name}-{i:04d}", family=family.name, prompt=prompt, answer=answer)
        for i, (prompt, answer) in enumerate(seen.items())
    ]
