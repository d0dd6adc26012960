"""The sampling-space ceiling (issue 25 section 1): pass@k, Cover@tau and answer entropy against
naive references, the world's correctness thresholds, checkpoint references, the samples Parquet
round trip, and ``analyse coverage`` end to end on the shipped world models."""

from __future__ import annotations

import itertools
import json
import math
import random
import shutil
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.analysis.coverage import (
    answer_entropy,
    correct_counts,
    cover_at_tau,
    coverage_stats,
    crossing_k,
    ks_up_to,
    mean_pass_at_k,
    pass_at_k,
    pass_at_k_from_file,
)
from engine.cli import main
from engine.cli.analyse import _print_coverage
from engine.config import ConfigError
from engine.paths import demo_runs_dir
from engine.ppo.checkpoints import find_checkpoint, parse_checkpoint_ref
from engine.world.correctness import CORRECT_GOLD, canonical_answer, family_of, is_correct
from engine.world.families import FAMILIES
from engine.world.judge import gold_score
from engine.world_tools.coverage import Destination, write_samples

# --- the statistics against naive references ---------------------------------------------------


def naive_pass_at_k(n: int, c: int, k: int) -> float:
    """The share of the k-subsets of n samples (the first c correct) that hold a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_matches_the_enumeration_of_every_k_subset():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(naive_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_is_stable_where_the_binomials_overflow_floats():
    n, c, k = 2000, 3, 1000  # C(2000, 1000) ~ 1e600: no float holds it
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)
    assert pass_at_k(n, 0, k) == 0.0 and pass_at_k(n, n, 1) == 1.0


def test_pass_at_k_refuses_k_outside_1_to_n():
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 0)


def test_ks_are_the_powers_of_two_up_to_n_and_n():
    assert ks_up_to(1) == [1]
    assert ks_up_to(4) == [1, 2, 4]
    assert ks_up_to(6) == [1, 2, 4, 6]
    assert ks_up_to(128) == [1, 2, 4, 8, 16, 32, 64, 128]


def test_cover_at_tau_and_answer_entropy_match_per_prompt_loops():
    rng = random.Random(0)
    ns = [rng.randint(1, 12) for _ in range(40)]
    cs = [rng.randint(0, n) for n in ns]
    # pass@1 is the mean share of correct samples
    assert mean_pass_at_k(ns, cs, [1])[1] == pytest.approx(
        np.mean([c / n for n, c in zip(ns, cs, strict=True)])
    )
    for tau in (0.0, 0.25, 0.5, 1.0):
        share = sum(1 for n, c in zip(ns, cs, strict=True) if c / n >= tau) / len(ns)
        assert cover_at_tau(ns, cs, [tau])[tau] == pytest.approx(share)
    for _ in range(20):
        answers = [rng.choice("abcde") for _ in range(rng.randint(1, 30))]
        counts = {}
        for a in answers:
            counts[a] = counts.get(a, 0) + 1
        naive = -sum(m / len(answers) * math.log(m / len(answers)) for m in counts.values())
        assert answer_entropy(answers) == pytest.approx(naive, abs=1e-12)
    assert answer_entropy(["same"] * 7) == 0.0


def random_samples(seed: int = 0) -> pd.DataFrame:
    """Two policies' samples: 5 prompts each, 6 samples per prompt, with answers and token counts."""
    rng = np.random.default_rng(seed)
    rows = []
    for policy in ("sft", "ppo"):
        for prompt in range(5):
            for _ in range(6):
                rows.append(
                    {
                        "policy": policy,
                        "prompt_id": f"p{prompt}",
                        "family": "count",
                        "response": "x",
                        "answer": str(rng.integers(3)),
                        "gold": float(rng.random()),
                        "correct": bool(rng.random() < 0.4),
                        "token_entropy": float(rng.random()),
                        "n_tokens": int(rng.integers(1, 10)),
                    }
                )
    return pd.DataFrame(rows)


def test_coverage_stats_match_per_prompt_loops():
    samples = random_samples()
    stats = coverage_stats(samples, taus=(0.25, 0.5))
    assert list(stats) == ["sft", "ppo"]
    for policy, s in stats.items():
        rows = samples[samples["policy"] == policy]
        by_prompt = {p: g for p, g in rows.groupby("prompt_id")}
        for k in (1, 2, 4, 6):
            naive = np.mean([naive_pass_at_k(len(g), int(g["correct"].sum()), k) for g in by_prompt.values()])
            assert s["pass_at_k"][k] == pytest.approx(naive, abs=1e-12)
        assert list(s["pass_at_k"]) == [1, 2, 4, 6]
        for tau in (0.25, 0.5):
            naive = np.mean([g["correct"].mean() >= tau for g in by_prompt.values()])
            assert s["cover_at_tau"][tau] == pytest.approx(naive)
        entropies = []
        for g in by_prompt.values():
            counts = Counter(g["answer"])
            entropies.append(-sum(m / len(g) * math.log(m / len(g)) for m in counts.values()))
        assert s["answer_entropy"] == pytest.approx(np.mean(entropies))
        token_sum = sum(e * n for e, n in zip(rows["token_entropy"], rows["n_tokens"], strict=True))
        assert s["token_entropy"] == pytest.approx(token_sum / rows["n_tokens"].sum())
        assert (s["n_prompts"], s["n_samples"]) == (5, 30)
        assert correct_counts(rows)[0] == [6] * 5


def test_crossing_k_finds_where_the_curves_swap_order():
    rl = {1: 0.6, 2: 0.7, 4: 0.75, 8: 0.78}
    base = {1: 0.3, 2: 0.5, 4: 0.75, 8: 0.9}
    assert crossing_k(rl, base) == 8  # a tie at 4 is not a crossing
    assert crossing_k(base, rl) == 8
    assert crossing_k(rl, {k: v - 0.1 for k, v in rl.items()}) is None
    assert crossing_k({1: 0.5, 2: 0.6}, {1: 0.5, 2: 0.7}) is None  # tied at 1, then one order
    assert crossing_k({1: 0.5, 2: 0.6, 4: 0.9}, {1: 0.5, 2: 0.7, 4: 0.8}) == 4


# --- what counts as correct on the world ------------------------------------------------------


def test_every_family_has_a_threshold_above_a_response_without_eos():
    assert set(CORRECT_GOLD) == set(FAMILIES)
    assert all(0.5 < t < 1.0 for t in CORRECT_GOLD.values())


@pytest.mark.parametrize(
    ("prompt", "response", "correct"),
    [
        ("count from two to five :", "two three four five . [EOS]", True),
        ("count from two to five :", "two three five . [EOS]", False),  # a slip
        ("count from two to five :", "two three four five .", False),  # did not stop
        ("list three red things :", "apple , cherry and rose . [EOS]", True),
        ("list three red things :", "apple , cherry and grass . [EOS]", False),
        ("describe the cat :", "the cat is furry , quiet and small . [EOS]", True),
        ("describe the cat :", "the cat is furry and quiet . [EOS]", True),  # two true traits, none false
        ("describe the cat :", "the cat is furry , quiet and loud . [EOS]", False),  # a false trait
        ("review a good movie about war :", "this movie about war was great . [EOS]", True),
        ("review a good movie about war :", "this movie about war was awful and great . [EOS]", False),
        ("review a good movie about war :", "this movie about love was great . [EOS]", False),
    ],
)
def test_a_correct_answer_counts_and_a_near_miss_does_not(prompt, response, correct):
    family = family_of(prompt)
    assert family is not None
    assert is_correct(family, gold_score(prompt, response)) is correct


def test_the_data_generators_full_quality_answers_are_all_correct():
    """At quality 1 every family's generator writes only right items (a review may name one mood)."""
    rng = random.Random(0)
    for family in FAMILIES.values():
        for slots in family.all_slots():
            prompt = " ".join(family.prompt_words(slots))
            response = " ".join(family.response(slots, 1.0, rng)) + " [EOS]"
            assert is_correct(family.name, gold_score(prompt, response)), (prompt, response)
            assert not is_correct(family.name, gold_score(prompt, response.removesuffix(" [EOS]")))


def test_canonical_answer_is_the_words_before_eos():
    assert canonical_answer("the  cat is small . [EOS] extra") == "the cat is small ."
    assert canonical_answer("[PAD] two three .") == "two three ."
    assert canonical_answer("[EOS]") == ""


# --- checkpoint references -----------------------------------------------------------------------


def test_checkpoint_references_parse_and_resolve(tmp_path):
    assert parse_checkpoint_ref("demo-default@last") == ("demo-default", None)
    assert parse_checkpoint_ref("my-run@step-50") == ("my-run", 50)
    for text in ("world:sft-epoch-3", "run@step-", "run@first", "@last"):
        assert parse_checkpoint_ref(text) is None
    last = find_checkpoint("demo-default", None, tmp_path)
    assert last.demo and last.step == 400 and last.path.name == "step-400"
    with pytest.raises(ConfigError, match=r"no checkpoint at step 7; it has steps \[400\]"):
        find_checkpoint("demo-default", 7, tmp_path)
    with pytest.raises(ConfigError, match="no run 'nope'"):
        find_checkpoint("nope", None, tmp_path)


# --- the samples file ----------------------------------------------------------------------------


def test_the_samples_parquet_round_trips_and_pass_at_k_recomputes_from_it(tmp_path):
    samples = random_samples(1)
    path = write_samples(samples, Destination(folder=tmp_path / "out"))
    assert path == tmp_path / "out" / "coverage.parquet"
    assert [p.name for p in path.parent.iterdir()] == ["coverage.parquet"]  # no temp file left
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, samples)
    stats = coverage_stats(samples)
    assert pass_at_k_from_file(path) == {p: s["pass_at_k"] for p, s in stats.items()}


# --- the command, end to end ---------------------------------------------------------------------

FOUR_PROMPTS = [
    {"id": "c1", "prompt": "count from two to five :"},
    {"id": "d1", "prompt": "describe the cat :"},
    {"id": "r1", "prompt": "review a good movie about war :"},
    {"id": "t1", "prompt": "list three traits of the fox :"},
]


@pytest.fixture
def coverage_env(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """(a runs dir holding 'mine', a copy of demo-default's record and last checkpoint; a prompts file)."""
    demo = demo_runs_dir() / "demo-default"
    mine = tmp_path / "runs" / "mine"
    shutil.copytree(demo / "checkpoints" / "step-400", mine / "checkpoints" / "step-400")
    shutil.copy(demo / "run.json", mine / "run.json")
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in FOUR_PROMPTS))
    return mine, prompts


def test_analyse_coverage_end_to_end_on_two_policies(coverage_env, capsys):
    mine, prompts = coverage_env
    argv = ["analyse", "coverage", "--policy", "world:sft-epoch-3", "--policy", "mine@last"]
    argv += ["--prompts", str(prompts), "--samples", "4", "--seed", "3", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    path = Path(report["samples_path"])
    assert path == mine / "evals" / "coverage.parquet"  # a run is named: its evals/
    assert (report["n_prompts"], report["samples_per_prompt"], report["seed"]) == (4, 4, 3)
    assert list(report["policies"]) == ["world:sft-epoch-3", "mine@last"]
    for p in report["policies"].values():
        assert list(p["pass_at_k"]) == ["1", "2", "4"]
        assert p["pass_at_k"]["1"] <= p["pass_at_k"]["2"] <= p["pass_at_k"]["4"]
        assert set(p["cover_at_tau"]) == {"0.25", "0.5"}
        assert (p["n_prompts"], p["n_samples"], p["temperature"], p["seed"]) == (4, 16, 1.0, 3)
        assert p["thresholds"] == {f: CORRECT_GOLD[f] for f in ("count", "describe", "review", "trait_list")}
        assert p["answer_entropy"] >= 0 and p["token_entropy"] > 0
    assert report["policies"]["mine@last"]["step"] == 400
    for p in report["policies"].values():
        by_family = p["by_family"]
        assert list(by_family) == ["count", "describe", "review", "trait_list"]
        assert all((s["n_prompts"], s["n_samples"]) == (1, 4) for s in by_family.values())
        assert all(list(s["pass_at_k"]) == ["1", "2", "4"] for s in by_family.values())
    [crossing] = report["crossings"]
    assert (crossing["a"], crossing["b"]) == ("world:sft-epoch-3", "mine@last")
    assert set(crossing["by_family"]) == {"count", "describe", "review", "trait_list"}
    _print_coverage(report)  # the summary for a person reads the same report
    summary = capsys.readouterr().out
    assert "world:sft-epoch-3: pass@1" in summary and "(pass@1->pass@4 by family)" in summary
    samples = pd.read_parquet(path)
    assert len(samples) == 32
    assert {"policy", "prompt_id", "family", "response", "gold", "correct", "answer"} <= set(samples)
    assert set(samples["family"]) == {"count", "describe", "review", "trait_list"}
    judged = [is_correct(f, g) for f, g in zip(samples["family"], samples["gold"], strict=True)]
    assert samples["correct"].tolist() == judged
    recomputed = pass_at_k_from_file(path)
    for label, p in report["policies"].items():
        assert {str(k): v for k, v in recomputed[label].items()} == p["pass_at_k"]


@pytest.mark.parametrize(
    ("policy", "samples", "prompts_text", "message"),
    [
        ("mine@step-7", "4", None, "no checkpoint at step 7"),
        ("nosuchrun@last", "4", None, "no run 'nosuchrun'"),
        ("world:sft-epoch-99", "4", None, "not found"),
        ("./no/such/model", "4", None, "does not exist"),
        ("world:sft-epoch-3", "0", None, "--samples must be >= 1"),
        ("world:sft-epoch-3", "4", "", "holds no prompts"),
        ("world:sft-epoch-3", "4", "hello there\n", "not a prompt of the world"),
    ],
)
def test_bad_input_is_one_error_line_and_writes_nothing(
    coverage_env, tmp_path, capsys, policy, samples, prompts_text, message
):
    _, prompts = coverage_env
    if prompts_text is not None:
        prompts = tmp_path / "bad.txt"
        prompts.write_text(prompts_text)
    out = tmp_path / "out"
    argv = ["analyse", "coverage", "--policy", policy, "--prompts", str(prompts), "--samples", samples]
    assert main([*argv, "--out", str(out), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and message in captured.err
    assert captured.err.count("\n") == 1
    assert not out.exists()


def test_without_out_the_samples_need_a_run_of_yours(coverage_env, capsys):
    _, prompts = coverage_env
    argv = ["analyse", "coverage", "--policy", "demo-default@last", "--prompts", str(prompts)]
    shipped = demo_runs_dir() / "demo-default" / "evals" / "coverage.parquet"  # the samples it ships with
    before = shipped.read_bytes() if shipped.exists() else None
    assert main([*argv, "--samples", "2"]) == 2
    assert "give --out DIR" in capsys.readouterr().err
    assert (shipped.read_bytes() if shipped.exists() else None) == before  # a demo run is never written
