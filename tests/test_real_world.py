"""The real world's tasks and checkers: every checker with answers pointing both ways, the task sets
reproducible from a seed and disjoint."""

from __future__ import annotations

import pytest

from engine.config import ConfigError
from engine.real_world import FAMILIES, Task, make_task_sets, score
from engine.real_world.checkers import correct_number, count_words, exact_words, final_number, number_only

ADD = "What is 7 + 5?"


@pytest.mark.parametrize(
    "response",
    [
        "12",
        "12.",
        "The answer is 12.",
        "7 + 5 = 12",
        "7+5=12",
        "The sum of 7 and 5 is 12.",
        "**12**",
        "Twelve.",
        "7 + 5 equals 12.",
        "The answer is 12. This is a simple addition.",
        "12 (7 + 5)",
        "Sure! 7 + 5 = 12<|im_end|>",
        "Answer: 12",
        "The sum is equal to 12, because 10 + 2 makes it.",
        "7 x 5 is wrong; 7 + 5 = 12",
    ],
)
def test_correct_number_accepts_natural_right_answers(response):
    assert correct_number(response, 12, ADD) == 1.0


@pytest.mark.parametrize(
    "response",
    [
        "13",
        "The answer is 13.",
        "7 + 5 = 13",
        "12 or 13",
        "7 + 5 = 12 + 1 = 13",
        "I don't know.",
        "",
        "7 + 5",  # the operands echoed back are not an answer
        "112",
        "1.2",
    ],
)
def test_correct_number_refuses_wrong_answers(response):
    assert correct_number(response, 12, ADD) == 0.0


def test_numbers_inside_words_and_rambles_are_not_answers():
    prompt = 'How many times does the letter "e" appear in the word "letter"?'
    assert (
        correct_number('The letter "e" appears 0 times in "letter" due to a misconfiguration (P2', 2, prompt)
        == 0.0
    )
    assert correct_number("H2O has 2 hydrogen atoms", 2, prompt) == 1.0
    assert correct_number("Maybe 2, maybe 3.", 2, prompt) == 0.0
    assert final_number("It is the 3rd letter") is None


def test_final_number_reads_thousands_and_negative_numbers():
    assert final_number("733 + 799 = 1,532") == 1532
    assert final_number("The result: -3") == -3
    assert final_number("no digits here") is None


def test_count_letter_accepts_words_for_counts():
    prompt = 'How many times does the letter "r" appear in the word "strawberry"?'
    assert correct_number('The letter "r" appears 3 times in "strawberry".', 3, prompt) == 1.0
    assert correct_number("There are three r's in strawberry.", 3, prompt) == 1.0
    assert correct_number("It appears twice.", 3, prompt) == 0.0
    assert correct_number("It appears twice.", 2, prompt) == 1.0


def test_number_only_gives_partial_credit_for_a_right_answer_in_words():
    prompt = "What is 7 + 5? Answer with the number only."
    assert number_only("12", 12, prompt) == 1.0
    assert number_only(" 12.<|im_end|>", 12, prompt) == 1.0
    assert number_only("**12**", 12, prompt) == 1.0
    assert number_only("The answer is 12.", 12, prompt) == 0.5
    assert number_only("13", 12, prompt) == 0.0
    assert number_only("The answer is 13.", 12, prompt) == 0.0


def test_exact_words_counts_words_not_punctuation():
    assert count_words("Vast, deep, blue.") == 3
    assert count_words("Don't stop well-known music<|im_end|>") == 4
    assert exact_words("Vast, deep, blue.", 3) == 1.0
    assert exact_words("Vast, deep, blue and calm.", 3) == 0.0
    assert exact_words("Sure! Here are three words: vast, deep, blue.", 3) == 0.0
    assert exact_words("", 2) == 0.0


def test_score_dispatches_on_the_family():
    add = Task(task_id="t", family="add-easy", prompt=ADD, answer=12)
    assert score(add, "7 + 5 = 12") == 1.0
    assert score(add, "7 + 5 = 11") == 0.0
    words = Task(task_id="w", family="exact-words", prompt="Describe rain in exactly 2 words.", answer=2)
    assert score(words, "Wet, grey.") == 1.0
    assert score(words, "Wet.") == 0.0


def test_each_familys_drawn_answer_passes_its_own_checker():
    """A response that states the answer the family drew scores 1: draw and checker agree."""
    sets = make_task_sets(3, train_per_family=8, held_out_per_family=4)
    for task in sets.train + sets.held_out:
        right = " ".join(["word"] * task.answer) if task.family == "exact-words" else str(task.answer)
        wrong = (
            " ".join(["word"] * (task.answer + 1)) if task.family == "exact-words" else str(task.answer + 1)
        )
        assert score(task, right) == 1.0, task
        assert score(task, wrong) == 0.0, task


def test_task_sets_are_reproducible_and_disjoint():
    a = make_task_sets(7, train_per_family=16, held_out_per_family=6)
    b = make_task_sets(7, train_per_family=16, held_out_per_family=6)
    other = make_task_sets(8, train_per_family=16, held_out_per_family=6)
    assert a == b
    assert a.held_out != other.held_out
    assert len(a.train) == 16 * len(FAMILIES) and len(a.held_out) == 6 * len(FAMILIES)
    assert not {t.prompt for t in a.train} & {t.prompt for t in a.held_out}
    assert len({t.task_id for t in a.train + a.held_out}) == len(a.train) + len(a.held_out)
    # the held-out set does not move when the training set grows
    assert make_task_sets(7, train_per_family=40, held_out_per_family=6).held_out == a.held_out


def test_task_sets_refuse_bad_requests():
    with pytest.raises(ConfigError, match="unknown task families"):
        make_task_sets(0, train_per_family=1, held_out_per_family=1, families=["division"])
    with pytest.raises(ConfigError, match="fewer than"):
        make_task_sets(0, train_per_family=100, held_out_per_family=0, families=["mul-easy"])


def test_the_preference_test_set_pairs_held_out_answers_the_checker_orders(tmp_path):
    import json

    from engine.real_world.world import HELD_OUT_SAMPLES, TASK_FILES, load_real_world

    tasks = [Task("t1", "add-easy", "What is 2 + 3?", 5), Task("t2", "add-easy", "What is 4 + 4?", 8)]
    for split, name in TASK_FILES.items():
        rows = tasks if split == "held_out" else tasks[:1]
        (tmp_path / name).write_text("".join(json.dumps(t.as_dict()) + "\n" for t in rows))
    answers = [
        ("t1", "5", 1.0),
        ("t1", "six", 0.0),
        ("t1", "It is 5.", 1.0),
        ("t2", "8", 1.0),
        ("t2", "8!", 1.0),
    ]
    (tmp_path / HELD_OUT_SAMPLES).write_text(
        "".join(json.dumps({"task_id": t, "family": "add-easy", "response": r, "score": s}) + "\n" for t, r, s in answers)
    )  # fmt: skip
    pairs = load_real_world(tmp_path).preference_test()
    # t1: two right answers against one wrong; t2: all right, no pair
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [
        ("What is 2 + 3?", "5", "six"),
        ("What is 2 + 3?", "It is 5.", "six"),
    ]
    assert all(p.gold_chosen > p.gold_rejected for p in pairs)
    (tmp_path / HELD_OUT_SAMPLES).write_text('{"task_id": "t1", "family": "add-easy"}\n')  # no response
    with pytest.raises(ConfigError, match="cannot read the real world's preference test set"):
        load_real_world(tmp_path).preference_test()
    (tmp_path / HELD_OUT_SAMPLES).write_text(
        '{"task_id": "t9", "family": "add-easy", "response": "1", "score": 1}\n'
    )
    with pytest.raises(ConfigError, match="not held-out tasks"):
        load_real_world(tmp_path).preference_test()
    (tmp_path / HELD_OUT_SAMPLES).unlink()
    with pytest.raises(ConfigError, match="no preference test set"):
        load_real_world(tmp_path).preference_test()
