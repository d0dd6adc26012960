"""The built-in world: judge, families, data generation, a miniature build, and the shipped artifacts."""

from __future__ import annotations

import random

import pytest

from engine.config import ConfigError
from engine.world.data import (
    build_tokenizer,
    label_pair,
    make_prompts,
    pairs_from_samples,
    preference_pairs,
    sft_examples,
)
from engine.world.families import FAMILIES, join_list, parse_prompt, split_list
from engine.world.judge import gold_score, repetition_factor, split_response
from engine.world.vocab import vocabulary


def test_vocabulary_is_fixed_and_unique():
    vocab = vocabulary()
    assert len(vocab) == len(set(vocab))
    assert vocab[:4] == ["[PAD]", "[BOS]", "[EOS]", "[UNK]"]


def test_tokenizer_round_trips_every_prompt_and_response():
    tok = build_tokenizer()
    rng = random.Random(0)
    for prompt in make_prompts(0):
        family = FAMILIES[prompt.family]
        slots = family.parse_prompt(prompt.text.split())
        response = " ".join(family.response(slots, rng.random(), rng)) + " [EOS]"
        ids = tok(f"{prompt.text} {response}", add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids
        assert " ".join(tok.convert_ids_to_tokens(ids)) == f"{prompt.text} {response}"


@pytest.mark.parametrize("items", [["a"], ["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d"]])
def test_join_and_split_list_are_inverse(items):
    assert split_list(join_list(items)) == items


def test_every_prompt_parses_back_to_its_family():
    for prompt in make_prompts(0):
        family, _ = parse_prompt(prompt.text)
        assert family.name == prompt.family


@pytest.mark.parametrize(
    "prompt, response, expected",
    [
        ("describe the cat :", "the cat is furry , playful and small . [EOS]", 1.0),
        # 2 of 3 wanted traits, both right: 0.4 * 1 + 0.6 * 2/3
        ("describe the cat :", "the cat is furry and small . [EOS]", 0.8),
        # wrong subject keeps 0.3 of the content
        ("describe the cat :", "the dog is furry , playful and small . [EOS]", 0.3),
        # no EOS halves the score
        ("describe the cat :", "the cat is furry , playful and small .", 0.5),
        ("count from two to five :", "two three four five . [EOS]", 1.0),
        ("review a good movie about war :", "this movie about war was great and funny . [EOS]", 1.0),
        ("review a good movie about war :", "this movie about war was boring and dull . [EOS]", 0.0),
        ("list two red things :", "apple and rose . [EOS]", 1.0),
        # three items for two: count factor 0.6
        ("list two red things :", "apple , rose and ruby . [EOS]", 0.6),
        ("review a movie about love :", "this movie about love was great and moving . [EOS]", 1.0),
        ("list three traits of the owl :", "quiet , small and wise . [EOS]", 1.0),
        ("not a world prompt", "anything [EOS]", 0.0),
        ("describe the cat :", "[EOS]", 0.0),
    ],
)
def test_gold_judge_known_answers(prompt, response, expected):
    assert gold_score(prompt, response) == pytest.approx(expected)


def test_judge_penalises_repetition_and_ignores_text_after_eos():
    clean = gold_score("review a movie about love :", "this movie about love was great and moving . [EOS]")
    spam = gold_score(
        "review a movie about love :", "this movie about love was great , great and great . [EOS]"
    )
    assert spam < 0.5 * clean
    assert repetition_factor(["great", "great", "great"]) == pytest.approx(0.36)
    assert split_response("a b [EOS] c [PAD]") == (["a", "b"], True)


def test_prompt_splits_hold_out_sft_prompts_and_keep_ppo_only_families_out_of_sft():
    prompts = make_prompts(0)
    by_split = {s: {p.family for p in prompts if p.split == s} for s in ("sft_train", "eval", "ppo_only")}
    assert by_split["ppo_only"] == {f.name for f in FAMILIES.values() if not f.in_sft}
    assert by_split["sft_train"] == by_split["eval"] == {f.name for f in FAMILIES.values() if f.in_sft}
    sft_prompts = {p for p, _ in sft_examples(prompts, 0)}
    assert sft_prompts == {p.text for p in prompts if p.split == "sft_train"}


def test_data_generation_is_reproducible_from_the_seed():
    assert make_prompts(3) == make_prompts(3)
    prompts = make_prompts(3)
    assert sft_examples(prompts, 3) == sft_examples(prompts, 3)
    assert preference_pairs(prompts, 50, 7) == preference_pairs(prompts, 50, 7)
    assert make_prompts(3) != make_prompts(4)


def test_preference_labels_are_mostly_gold_with_bradley_terry_noise():
    pairs = preference_pairs(make_prompts(0), 2000, 1)
    flipped = sum(p.gold_chosen < p.gold_rejected for p in pairs) / len(pairs)
    assert 0.01 < flipped < 0.2
    assert all(p.gold_chosen != p.gold_rejected for p in pairs)


def test_label_pair_skips_ties_and_flips_close_pairs_more_often():
    rng = random.Random(0)
    assert label_pair("p", "f", "a", "b", 0.5, 0.5, rng) is None
    close = [label_pair("p", "f", "a", "b", 0.51, 0.5, rng).chosen == "b" for _ in range(2000)]
    far = [label_pair("p", "f", "a", "b", 0.9, 0.1, rng).chosen == "b" for _ in range(2000)]
    assert sum(close) / 2000 > 0.4 > 0.01 > sum(far) / 2000


def test_pairs_from_samples_compare_distinct_responses_of_one_prompt_up_to_the_cap():
    prompts = ["p"] * 4 + ["q"] * 3
    responses = ["a", "b", "c", "a", "x", "y", "z"]
    golds = [0.1, 0.2, 0.3, 0.1, 0.5, 0.5, 0.9]  # p: a-a is a duplicate; q: x-y is a gold tie
    pairs = pairs_from_samples(["f"] * 7, prompts, responses, golds, seed=0)
    assert len(pairs) == 5 + 2  # p: 6 pairs less the identical (a, a); q: 3 pairs less the tie (x, y)
    assert all(p.chosen != p.rejected and p.gold_chosen != p.gold_rejected for p in pairs)
    assert all(
        {p.chosen, p.rejected} <= set(responses[:4] if p.prompt == "p" else responses[4:]) for p in pairs
    )
    capped = pairs_from_samples(["f"] * 7, prompts, responses, golds, seed=0, max_pairs_per_prompt=1)
    assert [p.prompt for p in capped].count("p") == 1 and [p.prompt for p in capped].count("q") <= 1


def test_load_world_without_a_build_is_a_clear_error(tmp_path):
    from engine.world import load_world

    with pytest.raises(ConfigError, match="world build"):
        load_world(tmp_path)


def test_try_load_world_gives_the_world_or_why_not(tmp_path):
    """The one home of "the world, or None": None with load_world's error while nothing is built,
    the world once it is."""
    from engine.world import World, try_load_world

    world, why = try_load_world(tmp_path)
    assert world is None and "python -m engine world build" in why
    (tmp_path / "world.json").write_text("{}")
    world, why = try_load_world(tmp_path)
    assert isinstance(world, World) and world.path == tmp_path and why is None


def test_sft_collate_pads_right_and_masks_the_prompt():
    from engine.sft import collate

    ids, attention, loss_mask = collate([([5, 6, 7, 8], 2), ([9, 10], 1)], pad_id=0)
    assert ids.tolist() == [[5, 6, 7, 8], [9, 10, 0, 0]]
    assert attention.int().tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert loss_mask.int().tolist() == [[0, 0, 1, 1], [0, 1, 0, 0]]


@pytest.mark.parametrize(
    "flags, kind",
    [
        ("fpu avx2 avx512f amx_bf16 avx512_bf16", "amx"),
        ("fpu avx2 avx512f avx512_bf16", "avx512_bf16"),
        ("fpu avx2 avx512f avx512bw", "avx512 (no bf16)"),
        ("fpu sse4_2 avx2 fma", "avx2 only"),
        ("fpu sse4_2", "no avx2"),
    ],
)
def test_cpu_kind_from_cpuinfo_flags(flags, kind):
    from engine.models.precision import cpu_kind

    assert cpu_kind(f"processor : 0\nflags\t\t: {flags}\n") == kind
