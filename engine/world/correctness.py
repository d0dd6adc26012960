"""When the gold judge's score counts as a *correct answer*, and which answer a response gives.

pass@k and Cover@tau (:mod:`engine.analysis.coverage`) need a yes/no per sample; the judge gives a
score in [0, 1] (:mod:`engine.world.judge`). Each family's threshold sits in a gap of that family's
score scale (content x fluency x length x repetition x EOS, :mod:`engine.world.families`), so a
sample passes when its content is the answer the prompt asks for, in the template, ended by [EOS].
Every threshold is above 0.5, so a response that did not stop by itself (x 0.5) never passes, nor
does one off the template (at most 0.5 x 0.6 = 0.3). The gaps, from the content rules:

- ``count``: the exact numbers score 1.0; any slip is at most 0.7 (0.58 seen at SFT epoch 3).
- ``colour_list``, ``trait_list``: exactly n right distinct items score 1.0; one wrong item of four
  is 0.75, of three 0.67, a count off by one 0.6. Threshold 0.85: only the exact list passes.
- ``describe``: three true traits 1.0, four items with the three true ones 0.9, two true traits and
  nothing false 0.8; one false trait among three is 0.67. Threshold 0.75: every trait named is true
  (or the three true ones plus one), and at least two of the three asked for.
- ``review``, ``praise``: the topic and two moods of the right polarity 1.0, one right mood 0.7; a
  wrong mood beside a right one 0.5, a wrong topic at most 0.4. Threshold 0.65: the topic right
  and every mood of the right polarity.

Each threshold is a midpoint, so float rounding of the judge's products (0.4 + 0.6 * 2/3) never
decides a case.
"""

from __future__ import annotations

from engine.world.families import parse_prompt
from engine.world.judge import split_response

CORRECT_GOLD: dict[str, float] = {
    "count": 0.85,
    "colour_list": 0.85,
    "trait_list": 0.85,
    "describe": 0.75,
    "review": 0.65,
    "praise": 0.65,
}


def family_of(prompt: str) -> str | None:
    """The family the gold judge reads ``prompt`` as (what its threshold is), None when it reads none."""
    parsed = parse_prompt(prompt)
    return None if parsed is None else parsed[0].name


def is_correct(family: str, gold: float) -> bool:
    """Whether a sample of ``family`` with gold score ``gold`` is a correct answer (see the module)."""
    return gold >= CORRECT_GOLD[family]


def canonical_answer(response: str) -> str:
    """The answer a response gives: its words before the first [EOS], padding dropped, one space
    between words (what the judge reads). Every family answers in a fixed template with its lists in
    canonical (sorted) order, so two samples give the same answer exactly when these words are equal;
    whether the model stopped is form, not answer, so it is left out."""
    words, _ = split_response(response)
    return " ".join(words)
