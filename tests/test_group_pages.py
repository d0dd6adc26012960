"""The pages of group methods and the ceiling: two runs side by side on the Runs page, the group-filter
audit on Failure modes (its phantom rows open the Rollout browser), the Ceiling page (pass@k against
the start, or the command and a button that make the samples), Learn step 6 (PPO beside GRPO); their
figures and the sentences they write, each tested with data pointing both ways."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from learn_fixture import build_demo_runs
from streamlit.testing.v1 import AppTest

from engine.config import ConfigError
from engine.paths import REPO_ROOT
from engine.world_tools.coverage import spread
from workbench.figures.groups import audit_figure, compare_figure, pass_at_k_figure, shared_keys
from workbench.group_text import ceiling_sentence, compare_sentence, groups_sentence, methods_sentence
from workbench.navigation import PAGES_DIR

APP = str(REPO_ROOT / "workbench" / "app.py")


def _long(curves: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """A long metrics frame from {run: {key: values per step 1..n}}."""
    rows = [
        {"run_id": run, "step": i + 1, "key": key, "value": v}
        for run, keys in curves.items()
        for key, values in keys.items()
        for i, v in enumerate(values)
    ]
    return pd.DataFrame(rows)


def _noisy(level: float, n: int = 60, seed: int = 0) -> list[float]:
    return (level + 0.01 * np.random.default_rng(seed).standard_normal(n)).tolist()


# --- figures ---------------------------------------------------------------------------------


def test_shared_keys_put_the_compare_keys_first_and_leave_out_what_one_run_lacks():
    a = ["z/other", "objective/kl", "objective/gold", "objective/frac_reward_zero_std", "probe/entropy"]
    b = ["objective/gold", "z/other", "objective/kl", "probe/entropy"]
    assert shared_keys(a, b) == ["objective/gold", "probe/entropy", "objective/kl", "z/other"]


def test_compare_figure_overlays_each_run_in_each_panel():
    metrics = _long({"ppo": {"objective/gold": [0.1, 0.2, 0.3], "probe/entropy": [1.0, 0.9, 0.8]},
                     "grpo": {"objective/gold": [0.1, 0.15, 0.2]}})  # fmt: skip
    fig = compare_figure(metrics, ["objective/gold", "probe/entropy"], ["ppo", "grpo"])
    lines = [(t.name, t.xaxis) for t in fig.data if t.mode == "lines"]
    assert lines == [("ppo", "x"), ("grpo", "x"), ("ppo", "x2")]  # grpo has no probe entropy: no line
    assert [t.showlegend for t in fig.data if t.mode == "lines"] == [
        True,
        True,
        False,
    ]  # one legend entry per run
    assert [a.text for a in fig.layout.annotations] == ["gold", "probe-set entropy"]


def test_audit_figure_draws_each_share_and_leaves_out_gold_when_the_run_has_none():
    with_gold = [{"step": 1, "frac_zero_std": 0.2, "std_filter_drop": 0.2, "mean_filter_drop": 0.5,
                  "binary_gate_drop": 0.6, "n_phantom": 1}]  # fmt: skip
    assert [t.name for t in audit_figure(with_gold, "r").data] == [
        "zero-std groups", "std filter drops", "mean filter drops", "binary gold gate drops"]  # fmt: skip
    without = [{**with_gold[0], "binary_gate_drop": None, "n_phantom": None}]
    assert "binary gold gate drops" not in [t.name for t in audit_figure(without, "r").data]


def test_pass_at_k_figure_marks_the_crossing_only_when_there_is_one():
    curves = {"sft": {1: 0.2, 2: 0.4, 4: 0.7}, "ppo": {1: 0.4, 2: 0.5, 4: 0.6}}
    crossed = pass_at_k_figure(curves, 4)
    assert [t.name for t in crossed.data] == ["sft", "ppo"] and list(crossed.data[0].x) == [1, 2, 4]
    assert len(crossed.layout.shapes) == 1 and crossed.layout.shapes[0].x0 == 4
    assert len(pass_at_k_figure(curves, None).layout.shapes) == 0


# --- sentences, both ways --------------------------------------------------------------------


def test_compare_sentence_names_the_higher_run_either_way_and_says_when_it_is_noise():
    up = _long({"a": {"objective/gold": _noisy(0.5)}, "b": {"objective/gold": _noisy(0.3, seed=1)}})
    assert "`a` ends higher than `b`" in compare_sentence(up, ["a", "b"], "objective/gold", "gold")
    down = _long({"a": {"objective/gold": _noisy(0.3)}, "b": {"objective/gold": _noisy(0.5, seed=1)}})
    assert "`b` ends higher than `a`" in compare_sentence(down, ["a", "b"], "objective/gold", "gold")
    same = _long({"a": {"objective/gold": _noisy(0.4)}, "b": {"objective/gold": _noisy(0.4, seed=1)}})
    assert "within the step-to-step noise" in compare_sentence(same, ["a", "b"], "objective/gold", "gold")
    assert compare_sentence(same, ["a", "b"], "probe/entropy", "entropy") is None


def test_methods_sentence_says_whether_the_narrower_run_is_the_better_one():
    narrowed = _long({"ppo": {"objective/gold": _noisy(0.5), "probe/entropy": _noisy(0.7)},
                      "grpo": {"objective/gold": _noisy(0.4, seed=1), "probe/entropy": _noisy(0.9, seed=1)}})  # fmt: skip
    text = methods_sentence(narrowed, ["ppo", "grpo"], "probe/entropy")
    assert "`ppo` ends with more gold and less entropy than `grpo`" in text
    wider = _long({"ppo": {"objective/gold": _noisy(0.5), "probe/entropy": _noisy(0.9)},
                   "grpo": {"objective/gold": _noisy(0.4, seed=1), "probe/entropy": _noisy(0.7, seed=1)}})  # fmt: skip
    assert "more gold *and* more entropy" in methods_sentence(wider, ["ppo", "grpo"], "probe/entropy")
    even = _long({"ppo": {"objective/gold": _noisy(0.5), "probe/entropy": _noisy(0.9)},
                  "grpo": {"objective/gold": _noisy(0.5, seed=1), "probe/entropy": _noisy(0.7, seed=1)}})  # fmt: skip
    assert "about the same gold" in methods_sentence(even, ["ppo", "grpo"], "probe/entropy")


def _overall(zero: float, gate: float | None, phantom: int | None) -> dict:
    return {"n_groups": 100, "frac_zero_std": zero, "std_filter_drop": zero, "mean_filter_drop": 0.3,
            "binary_gate_drop": gate, "n_phantom": phantom}  # fmt: skip


def test_groups_sentence_either_way():
    text = groups_sentence(_overall(0.2, 0.5, 3), has_gold=True)
    assert "20% have zero reward std (GRPO" in text and "the binary gold gate 50%, more than" in text
    assert "3 phantom-advantage groups" in text
    text = groups_sentence(_overall(0.0, 0.0, 0), has_gold=True)
    assert "no group is without signal" in text and "no more than the std filter" in text
    assert "No phantom-advantage group" in text
    assert "Without gold scores" in groups_sentence(_overall(0.2, None, None), has_gold=False)
    assert "No group" in groups_sentence(None, has_gold=False)


def test_ceiling_sentence_crossing_or_not():
    crossing = {"sft": {1: 0.2, 4: 0.6, 16: 0.9}, "ppo": {1: 0.4, 4: 0.6, 16: 0.7}}
    text = ceiling_sentence(crossing, "sft", "ppo", 16)
    assert "cross at k = 16: `ppo` wins at small k, `sft` from k = 16 on" in text and "ceiling" in text
    above = {"sft": {1: 0.2, 4: 0.4, 16: 0.6}, "ppo": {1: 0.4, 4: 0.6, 16: 0.7}}
    text = ceiling_sentence(above, "sft", "ppo", None)
    assert "do not cross up to k = 16: `ppo` is at or above" in text


# --- the quick coverage look -----------------------------------------------------------------


def test_spread_takes_evenly_spaced_prompts():
    assert spread(list(range(10)), 5) == [0, 2, 4, 6, 8]
    assert spread(list(range(3)), 5) == [0, 1, 2] and spread(list(range(3)), None) == [0, 1, 2]


def test_max_prompts_below_one_is_refused_before_any_sampling():
    from engine.world_tools.coverage import measure_coverage

    with pytest.raises(ConfigError, match="--max-prompts must be >= 1"):
        measure_coverage(None, ["x"], "ppo", samples=4, max_prompts=0)


def test_mean_range_default_follows_the_rewards_units():
    from workbench.sections.groups import mean_range_default

    assert mean_range_default(pd.Series([0.1, 0.5, 0.9])) == (0.0, 1.0)
    low, high = mean_range_default(pd.Series(np.linspace(-9.0, -5.0, 101)))
    assert (low, high) == pytest.approx((-8.6, -5.4))


# --- the pages -------------------------------------------------------------------------------


@pytest.fixture()
def demo_env(monkeypatch, tmp_path):
    """Stand-in demo runs, demo-grpo among them, and no run of the user's own."""
    build_demo_runs(tmp_path / "data" / "demo_runs", ("demo-default", "demo-grpo"))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def _app(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(str(PAGES_DIR / page)).run()
    assert not at.exception, at.exception
    return at


def test_runs_page_puts_a_second_run_beside_the_first(demo_env):
    at = _app("runs.py")
    at.selectbox(key="runs_pick").set_value("demo-default").run()
    assert "runs_compare_keys" not in at.session_state  # nothing beside it until a run is picked
    at.selectbox(key="runs_compare").set_value("demo-grpo").run()
    assert not at.exception, at.exception
    assert at.multiselect(key="runs_compare_keys").value == [
        "objective/gold",
        "objective/reward",
        "objective/kl",
    ]
    assert any("on `demo-default` and" in m.value and "`demo-grpo`" in m.value for m in at.markdown)
    assert any(
        link.proto.label == "Ceiling of demo-default: pass@k against its start"
        for link in at.get("page_link")
    )
    at.selectbox(key="runs_pick").set_value("demo-grpo").run()  # the compared run becomes the shown one
    assert not at.exception, at.exception
    assert at.selectbox(key="runs_compare").value is None


def test_failure_modes_audits_groups_and_a_phantom_row_opens_the_browser(demo_env):
    at = _app("failure_modes.py")
    text = "\n".join(m.value for m in at.markdown)
    assert "phantom-advantage groups" in text
    table = next(d.value for d in at.dataframe if "rewards" in d.value.columns)
    assert len(table) and (table["gold"].map(max) < 0.5).all()  # every sample fails by gold
    first = table.iloc[0]
    at.session_state["groups_phantoms"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    assert at.query_params["prompt"] == first["prompt_id"]
    assert at.session_state["browser_run"] == first["run_id"]


def test_a_bad_mean_range_is_a_message(demo_env):
    at = _app("failure_modes.py")
    low = next(n for n in at.number_input if n.key.startswith("groups_low"))
    high = next(n for n in at.number_input if n.key.startswith("groups_high"))
    low.set_value(high.value + 1).run()
    assert not at.exception
    assert any("needs low < high" in e.value for e in at.error)


def test_ceiling_without_samples_shows_the_command_then_reads_a_file(demo_env):
    at = _app("ceiling.py")
    at.selectbox(key="ceiling_run").set_value("demo-default").run()
    commands = [c.value for c in at.code]
    out = demo_env / "runs" / ".coverage" / "demo-default"
    assert any("--policy demo-default@last" in c and f"--out {out}" in c for c in commands), commands
    # the file the command writes: one row per sample (the start finds more answers at large k)
    hits = {  # per prompt: which of its 4 samples are correct
        "world:sft-epoch-3": [(1, 0, 0, 0), (0, 0, 0, 1)],  # pass@1 0.25, pass@4 1.0
        "demo-default@last": [(1, 1, 1, 0), (0, 0, 0, 0)],  # pass@1 0.375, pass@4 0.5
    }
    rows = [
        {"policy": policy, "prompt_id": f"q{i}", "correct": bool(c), "answer": str(s), "token_entropy": 0.5,
         "n_tokens": 4, "gold": float(c)}
        for policy, prompts in hits.items()
        for i, samples in enumerate(prompts)
        for s, c in enumerate(samples)
    ]  # fmt: skip
    out.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(out / "coverage.parquet")
    at.run()
    assert not at.exception, at.exception
    text = "\n".join(m.value for m in at.markdown)
    assert "The curves cross at k = 4: `demo-default@last` wins at small k, `world:sft-epoch-3`" in text
    assert len(at.get("plotly_chart")) == 1


@pytest.mark.slow
def test_the_ceiling_button_measures_a_run_on_the_world(monkeypatch, tmp_path):
    """On the shipped world and a demo run that ships no samples (demo-default ships its own): 16
    samples on 16 prompts per policy, then the curves."""
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    at = _app("ceiling.py")
    at.selectbox(key="ceiling_run").set_value("demo-late-epoch").run()
    at.button(key="ceiling_measure").click().run(timeout=600)
    assert not at.exception, at.exception
    assert (tmp_path / "runs" / ".coverage" / "demo-late-epoch" / "coverage.parquet").is_file()
    assert any("pass@1:" in m.value for m in at.markdown)


def test_learn_step_six_puts_ppo_beside_grpo(demo_env):
    at = _app("learn.py")
    at.radio(key="learn_step").set_value("methods").run()
    assert not at.exception, at.exception
    assert any("gold ends at" in m.value and "`demo-grpo`" in m.value for m in at.markdown)
    at.multiselect(key="learn_methods_keys").set_value(["objective/kl"]).run()
    assert not at.exception


def test_learn_step_six_without_the_grpo_demo_says_what_to_run(monkeypatch, tmp_path):
    build_demo_runs(tmp_path / "data" / "demo_runs", ("demo-default",))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    at = _app("learn.py")
    at.radio(key="learn_step").set_value("methods").run()
    assert any("python -m engine demo build" in c.value for c in at.code)


def test_a_compare_link_opens_the_runs_page_with_that_run_beside(demo_env):
    at = AppTest.from_file(str(PAGES_DIR / "runs.py"), default_timeout=120).run()
    shown = at.selectbox(key="runs_pick").value
    other = next(r for r in ("demo-default", "demo-grpo") if r != shown)
    at.query_params["compare"] = other
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="runs_compare").value == other
    assert any(f"on `{shown}` and" in m.value and f"`{other}`" in m.value for m in at.markdown)
