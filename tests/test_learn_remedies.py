"""The Learn steps on the note's remedies and its ceiling: the ceiling (pass@k of demo-default beside its
SFT start, with intervals), the RM refreshed (demo-kl0 beside demo-kl0-refresh over the same steps)
and the data-range step's measured text; each sentence tested with data pointing both ways, each step
in an AppTest on the stand-in world and demo runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from learn_fixture import STEPS, build_demo_runs, write_epoch_samples
from streamlit.testing.v1 import AppTest

from engine.analysis.coverage import pass_at_k, pass_at_k_gaps
from engine.paths import REPO_ROOT
from engine.store import RunWriter
from workbench.group_text import ceiling_sentence, refresh_sentence, same_start_sentence, selection_sentence
from workbench.learn.refresh import AGREEMENT, same_steps
from workbench.navigation import PAGES_DIR

APP = str(REPO_ROOT / "workbench" / "app.py")
PAGE = str(PAGES_DIR / "learn.py")


# --- pass@k differences with their interval ------------------------------------------------------------


def _samples(policy: str, correct: dict[str, list[bool]]) -> pd.DataFrame:
    rows = [{"policy": policy, "prompt_id": p, "correct": c} for p, cs in correct.items() for c in cs]
    return pd.DataFrame(rows)


def test_pass_at_k_gaps_are_paired_over_the_shared_prompts():
    trained = {"p1": [True, True, False, False], "p2": [False] * 4, "p3": [True, False, False, False],
               "only-trained": [True] * 4}  # fmt: skip
    start = {"p1": [True, False, False, False], "p2": [True, False, False, False], "p3": [False] * 4}
    frame = pd.concat([_samples("ppo", trained), _samples("sft", start)])
    gaps = pass_at_k_gaps(frame, "ppo", "sft")
    assert sorted(gaps) == [1, 2, 4]
    for k, gap in gaps.items():  # naive: the per-prompt differences over p1..p3, their mean and s.e.
        diffs = [
            pass_at_k(4, sum(trained[p]), k) - pass_at_k(4, sum(start[p]), k) for p in ("p1", "p2", "p3")
        ]
        assert gap.n_prompts == 3
        assert gap.gap == pytest.approx(np.mean(diffs))
        assert gap.se == pytest.approx(np.std(diffs, ddof=1) / math.sqrt(3))
    one = pass_at_k_gaps(frame[frame["prompt_id"] == "p1"], "ppo", "sft")
    assert one[1].se is None and one[1].n_prompts == 1
    assert pass_at_k_gaps(frame, "ppo", "nobody") == {}


def _gap(gap: float, se: float):
    from engine.analysis.coverage import PassGap

    return PassGap(gap, se, 60)


def test_ceiling_sentence_carries_the_interval_and_says_when_the_far_end_is_noise():
    curves = {"sft": {1: 0.2, 4: 0.6, 16: 0.9}, "ppo": {1: 0.4, 4: 0.6, 16: 0.7}}
    clear = ceiling_sentence(curves, "sft", "ppo", 16, {1: _gap(0.2, 0.05), 16: _gap(-0.2, 0.05)})
    assert "difference +0.20 ± 0.10, 2 standard errors over 60 prompts)" in clear
    assert "cross at k = 16" in clear and "ceiling" in clear and "within the noise" not in clear
    unsure = ceiling_sentence(curves, "sft", "ppo", 16, {1: _gap(0.2, 0.05), 16: _gap(-0.2, 0.15)})
    assert "-0.20 ± 0.30, 2 standard errors over 60 prompts: within the noise" in unsure
    assert "this run does not show it beyond doubt" in unsure
    above = {"sft": {1: 0.2, 16: 0.6}, "ppo": {1: 0.4, 16: 0.7}}
    apart = ceiling_sentence(above, "sft", "ppo", None, {1: _gap(0.2, 0.05), 16: _gap(0.1, 0.1)})
    assert "on this run they do not cross" in apart and "+0.10 ± 0.20" in apart


# --- the RM refreshed ---------------------------------------------------------------------------------------


def _long(series: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    rows = [{"run_id": run, "step": step, "key": key, "value": v}
            for run, keys in series.items() for key, values in keys.items()
            for step, v in enumerate(values, start=1)]  # fmt: skip
    return pd.DataFrame(rows)


def _noisy(level: float, n: int = 60, seed: int = 0) -> list[float]:
    return (level + 0.005 * np.random.default_rng(seed).standard_normal(n)).tolist()


def _runs(gold_refreshed: float, agreement_refreshed: float) -> pd.DataFrame:
    return _long({
        "base": {"objective/gold": _noisy(0.35), AGREEMENT: _noisy(0.6, seed=1)},
        "refreshed": {"objective/gold": _noisy(gold_refreshed, seed=2), AGREEMENT: _noisy(agreement_refreshed, seed=3)},
    })  # fmt: skip


def test_refresh_sentence_both_ways():
    assert "the remedy works" in refresh_sentence(_runs(0.45, 0.75), "base", "refreshed", AGREEMENT)
    no_gold = refresh_sentence(_runs(0.35, 0.75), "base", "refreshed", AGREEMENT)
    assert "kept it more accurate" in no_gold and "does not show a gold gain" in no_gold
    less_gold = refresh_sentence(_runs(0.25, 0.75), "base", "refreshed", AGREEMENT)
    assert "*less* gold" in less_gold and "does not show the remedy paying off" in less_gold
    same = refresh_sentence(_runs(0.45, 0.6), "base", "refreshed", AGREEMENT)
    assert "this run does not show the refresh keeping the RM accurate" in same
    assert "opposite" in refresh_sentence(_runs(0.45, 0.5), "base", "refreshed", AGREEMENT)
    assert refresh_sentence(_runs(0.45, 0.75), "base", "nobody", AGREEMENT) is None


def test_same_start_sentence_says_whether_two_runs_are_one_until_the_first_refresh():
    gold = _noisy(0.4, n=10)
    one = _long({"a": {"objective/gold": gold}, "b": {"objective/gold": gold[:5] + [0.9] * 5}})
    assert "they are one run, the same gold at each of the 4 steps" in same_start_sentence(
        one, ["a", "b"], "objective/gold", "gold", 5
    )
    apart = _long({"a": {"objective/gold": gold}, "b": {"objective/gold": [g + 0.01 for g in gold]}})
    assert "differs by up to 0.01" in same_start_sentence(apart, ["a", "b"], "objective/gold", "gold", 5)
    assert same_start_sentence(one, ["a", "b"], "objective/gold", "gold", 1) is None


def test_same_steps_compares_the_runs_over_the_steps_both_logged():
    metrics = _long(
        {"a": {"objective/gold": [0.1] * 8, "objective/kl": [1.0] * 8}, "b": {"objective/gold": [0.2] * 6}}
    )
    agreement = pd.DataFrame({"run_id": ["a"] * 4 + ["b"] * 3, "step": [1, 3, 5, 7, 1, 5, 9],
                              "n_pairs": 10, "agreement": 0.7})  # fmt: skip
    frame = same_steps(metrics, agreement)
    assert frame["step"].max() == 6 and set(frame["key"]) == {"objective/gold", AGREEMENT}
    assert sorted(frame.loc[frame["key"] == AGREEMENT, "step"].unique()) == [1, 5]  # kept by both, <= 6


# --- prompt selection -----------------------------------------------------------------------------------------


def test_selection_sentence_both_ways():
    steps = (0, 10, 20, 30, 40, 50, 60)
    high, low = (0.28, 0.30, 0.31, 0.32, 0.33, 0.34, 0.35), (0.28, 0.28, 0.29, 0.28, 0.29, 0.28, 0.29)
    assert "**The high-variance prompts gained more**" in selection_sentence(steps, high, low)
    assert "**The low-variance prompts gained more**" in selection_sentence(steps, low, high)
    noisy = (0.28, 0.35, 0.25, 0.36, 0.24, 0.37, 0.30)
    assert "does not tell them apart" in selection_sentence(steps, noisy, low)


# --- the steps in the app ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def remedies_data(tmp_path_factory):
    """The stand-in world and demo runs, with demo-kl0-refresh (its RM refreshed at step 4, gold higher
    after it) and coverage samples that ship with demo-default."""
    from fake_world import build_fake_world

    data = tmp_path_factory.mktemp("remedies-data")
    write_epoch_samples(build_fake_world(data))
    demo = build_demo_runs(
        data / "demo_runs", ("demo-default", "demo-kl0", "demo-late-epoch", "demo-kl0-refresh")
    )
    writer = RunWriter.open(demo / "demo-kl0-refresh")
    for step in STEPS:
        gold = 0.2 + 0.1 * min(step, 4) + (0.05 * (step - 4) if step > 4 else 0.0)
        version = (
            {"rm/version": 1.0, "rm/agreement_before": 0.6, "rm/agreement_after": 0.8} if step >= 4 else {}
        )
        writer.write_metrics(step, {"objective/reward": float(step), "objective/gold": gold,
                                    "objective/kl": 0.5 * step**1.5, **version})  # fmt: skip
    rng = np.random.default_rng(0)
    rows = [{"policy": policy, "prompt_id": f"c{p}", "family": "count", "response": "w1 [EOS]", "answer": "w1",
             "gold": float(c), "correct": bool(c), "token_entropy": 0.5, "n_tokens": 2}
            for policy, rate in (("world:sft-epoch-2", 0.3), ("demo-default@last", 0.5))
            for p in range(6) for c in rng.random(8) < rate]  # fmt: skip
    (demo / "demo-default" / "evals").mkdir(exist_ok=True)
    pd.DataFrame(rows).to_parquet(demo / "demo-default" / "evals" / "coverage.parquet", index=False)
    return data


def _learn(monkeypatch, data, tmp_path, step: str) -> AppTest:
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(data))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page(PAGE).run()
    at.radio(key="learn_step").set_value(step).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _charts(at: AppTest) -> list[str]:
    return [c.proto.id for c in at.get("plotly_chart")]


def test_the_ceiling_step_shows_pass_at_k_from_the_samples_shipped_with_the_demo_run(
    monkeypatch, remedies_data, tmp_path
):
    at = _learn(monkeypatch, remedies_data, tmp_path, "ceiling")
    assert any("ceiling_plot" in c for c in _charts(at))
    text = " ".join(m.value for m in at.markdown)
    assert "for `demo-default@last` vs" in text and "2 standard errors over 6 prompts" in text
    assert any("evals/coverage.parquet" in c.value for c in at.caption)  # where the figure comes from


def test_the_ceiling_step_without_samples_offers_to_measure(monkeypatch, remedies_data, tmp_path):
    shipped = remedies_data / "demo_runs" / "demo-default" / "evals" / "coverage.parquet"
    moved = shipped.with_name("moved.parquet")
    shipped.rename(moved)
    try:
        at = _learn(monkeypatch, remedies_data, tmp_path, "ceiling")
        assert at.button(key="ceiling_measure") is not None
        assert any("analyse coverage" in c.value for c in at.code)
    finally:
        moved.rename(shipped)


def test_the_refresh_step_sets_the_two_runs_side_by_side(monkeypatch, remedies_data, tmp_path):
    at = _learn(monkeypatch, remedies_data, tmp_path, "refresh")
    assert any("learn_refresh_curves" in c for c in _charts(at))
    text = " ".join(m.value for m in at.markdown)
    assert "Over steps 1–7 of both runs" in text
    assert (
        "Up to the first RM refresh (step 4) the two runs share their config and seed: they are one run"
        in text
    )
    assert "gold ends at" in text and "RM-gold agreement ends at" in text and "**What it shows**" in text
    at.multiselect(key="learn_refresh_keys").set_value(["objective/gold"]).run()
    assert not at.exception


def test_the_refresh_step_without_the_refreshed_run_says_what_to_run(monkeypatch, remedies_data, tmp_path):
    data = tmp_path / "data"
    (data / "demo_runs").mkdir(parents=True)
    for name in ("world", "demo_runs/demo-kl0"):
        (data / name).symlink_to(remedies_data / name)
    at = _learn(monkeypatch, data, tmp_path, "refresh")
    assert any("demo-kl0-refresh" in i.value for i in at.info)
    assert any("python -m engine demo build" in c.value for c in at.code)


def test_the_data_range_step_says_what_it_measured(monkeypatch, remedies_data, tmp_path):
    at = _learn(monkeypatch, remedies_data, tmp_path, "range")
    text = " ".join(m.value for m in at.markdown)
    assert "**(2) Did PPO gain more gold outside SFT's range?**" in text
    assert "gold changed by" in text and (
        "standard errors over families" in text or "too few families" in text
    )
    assert "PPO pays off outside" not in text  # the note's expectation is never stated as the finding
    assert "**The high-variance prompts gained more**" in text and "not the note's" in text
    assert any("high RM-score variance" in d.value.index for d in at.dataframe)  # the recorded table
