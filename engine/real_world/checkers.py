"""The real world's gold judge: checkers that score a chat model's response to a task, 1 or 0
(``number_only`` gives documented partial credit).

A chat model rarely answers with the bare number. For "What is 7 + 5?" SmolLM2 writes "12", "The
answer is 12.", "7 + 5 = 12", "The sum of 7 and 5 is 12." or "twelve"; all must count, and "13",
"7 + 5 = 13", "12 or 13" must not. :func:`final_number` reads the response's answer:

1. number words up to twenty, "once" and "twice" become digits ("appears twice" -> 2);
2. the number right after the last answer marker (``=``, "equals", "equal to", "is", "answer:",
   "result:", "total:") is the answer: a model that shows its working ends with the result;
3. without a marker, the numbers the prompt does not contain (operands echoed back are not answers):
   one distinct number is the answer; several (a hedge such as "12 or 13", or a ramble) give none:
   the judge would rather miss a right answer than credit a guess.
"""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"<\|[^|>]*\|>")  # chat-template tokens such as <|im_end|>, when they were kept
# A number standing alone: not part of a word such as "P2", "H2O" or "3rd".
_NUMBER = r"(?<![^\W\d_])-?\d+(?:,\d{3})*(?:\.\d+)?(?![^\W\d_])"
_MARKED = re.compile(
    rf"(?:=|\bequals?(?:\s+to)?\b|\bis\b|\banswer\s*:|\bresult\s*:|\btotal\s*:)\s*[*_`\"'(]*\s*({_NUMBER})",
    re.IGNORECASE,
)
_ANY_NUMBER = re.compile(_NUMBER)
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")  # "don't" and "well-known" are one word each
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
} | {"once": "1", "twice": "2"}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)


def clean_response(response: str) -> str:
    """The response without chat-template special tokens, stripped."""
    return _SPECIAL.sub(" ", response).strip()


def _parse(number: str) -> float:
    return float(number.replace(",", ""))


def final_number(response: str, prompt: str = "") -> float | None:
    """The number a response gives as its answer (rules in the module docstring), or None."""
    text = _NUMBER_WORD.sub(lambda m: _NUMBER_WORDS[m.group(1).lower()], clean_response(response))
    marked = _MARKED.findall(text)
    if marked:
        return _parse(marked[-1])
    given = {_parse(n) for n in _ANY_NUMBER.findall(prompt)}
    found = [_parse(n) for n in _ANY_NUMBER.findall(text)]
    new = {n for n in found if n not in given} or set(found)
    return new.pop() if len(new) == 1 else None


def correct_number(response: str, answer: int, prompt: str = "") -> float:
    """1.0 when the response's answer (:func:`final_number`) is ``answer``, else 0.0."""
    given = final_number(response, prompt)
    return float(given is not None and given == answer)


def number_only(response: str, answer: int, prompt: str = "") -> float:
    """ "Answer with the number only": 1.0 for the bare number (a trailing full stop and markdown bold
    allowed), 0.5 for the right answer wrapped in words (right, but the instruction not followed),
    0.0 for a wrong answer."""
    bare = clean_response(response).strip("*_` ").rstrip(".").strip("*_` ")
    if re.fullmatch(_NUMBER, bare) and _parse(bare) == answer:
        return 1.0
    return 0.5 * correct_number(response, answer, prompt)


def count_words(response: str) -> int:
    """Words of the response: runs of letters or digits, with inner apostrophes and hyphens."""
    return len(_WORD.findall(clean_response(response)))


def exact_words(response: str, n_words: int) -> float:
    """1.0 when the response has exactly ``n_words`` words (:func:`count_words`), else 0.0."""
    return float(count_words(response) == n_words)
