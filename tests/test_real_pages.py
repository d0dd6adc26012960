"""The real world's demo run on the app (issue 26): the analysis pages and the Learn step "the same
on a real model" on a stand-in ``demo-smollm2`` (a tiny Llama trained by the engine on the real
world's tasks with their checker as gold), and the step's sentences with data pointing both ways."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.config import GOLD_REWARD
from engine.paths import REPO_ROOT
from engine.ppo.build import Sources, build_trainer, prompt_item
from engine.real_tools.check import real_check
from engine.real_world.world import load_real_world
from engine.store import RunWriter
from tests.ppo_fixtures import one_thread, save_tiny_rm, tiny_config  # noqa: F401 (fixture)
from workbench.navigation import PAGES_DIR
from workbench.real_text import claim_sentence, held_out_sentence, rm_cost_sentence

APP = str(REPO_ROOT / "workbench" / "app.py")
RUN = "demo-smollm2"
CHECKER_RUN = "demo-smollm2-checker"
ANALYSIS_PAGES = ("rollout_browser", "entropy_dynamics", "rm_accuracy", "failure_modes", "reward_densities")


@pytest.fixture(scope="module")
def real_demo(tiny_llama_dir, tmp_path_factory) -> Path:
    """A data dir whose demo runs hold a stand-in demo-smollm2 trained on real tasks (4 steps)."""
    data = tmp_path_factory.mktemp("real-data")
    world = load_real_world(data / "real")
    tasks = world.split("train")[::32][:4]  # four families
    rm = save_tiny_rm(data / "rm")
    sources = Sources(str(tiny_llama_dir), str(rm), [prompt_item(t) for t in tasks], judge=world.gold_batch)
    config = tiny_config(steps=4, save_every=4, probe_every=2, prompts_per_step=4).replace(
        policy=str(tiny_llama_dir)
    )
    writer = RunWriter.create(data / "demo_runs" / RUN, kind="ppo", config=config.to_dict(), seed=0)
    build_trainer(config, writer, sources=sources, device="cpu").train()
    # Its twin rewarded by the checker itself (demo-smollm2-checker: what the learned RM costs).
    checker = config.replace(reward_model=GOLD_REWARD)
    writer = RunWriter.create(data / "demo_runs" / CHECKER_RUN, kind="ppo", config=checker.to_dict(), seed=0)
    build_trainer(checker, writer, sources=replace(sources, reward_model=GOLD_REWARD), device="cpu").train()
    for run in (RUN, CHECKER_RUN):
        real_check(
            run, runs_root=data / "demo_runs", prompts=4, samples=2, save=True
        )  # what demo build keeps
    return data


@pytest.fixture
def real_env(real_demo, monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(real_demo))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    return real_demo


def _text(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.info, *at.warning, *at.subheader, *at.title)]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("name", ANALYSIS_PAGES)
def test_the_analysis_pages_show_the_real_demo_run(real_env, name):
    at = AppTest.from_file(str(REPO_ROOT / "pages" / f"{name}.py"), default_timeout=120)
    at.query_params["run"] = RUN
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    if name in ("rollout_browser", "entropy_dynamics"):  # one run at a time: the page names it
        assert RUN in _text(at) or any(RUN in str(s.value) for s in at.selectbox)


def test_the_learn_step_reads_the_real_demo_run(real_env):
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page(str(PAGES_DIR / "learn.py")).run()
    at.radio(key="learn_step").set_value("real").run()
    assert not at.exception, [e.value for e in at.exception]
    text = _text(at)
    assert "SmolLM2-135M-Instruct" in text and "Checker accuracy on the training batches went from" in text
    assert "this run" in text and "first vs last tenth of 4 steps" in text
    assert "On held-out tasks" in text and "4 held-out tasks x 2 samples" in text
    # What the learned RM costs: the two runs' held-out accuracy side by side, and the difference.
    assert [m.label for m in at.metric] == ["Rewarded by the learned RM", "Rewarded by the checker itself"]
    assert "On the same 4 held-out tasks, checker accuracy gained" in text and f"`{CHECKER_RUN}`" in text
    at.multiselect(key="learn_real_keys").set_value(["objective/reward"]).run()
    assert not at.exception


def test_the_learn_step_without_the_run_says_what_to_run(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page(str(PAGES_DIR / "learn.py")).run()
    at.radio(key="learn_step").set_value("real").run()
    assert not at.exception
    assert any("demo build --only demo-smollm2" in c.value for c in at.code)


RISING = [
    0.1,
    0.12,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.35,
    0.4,
    0.42,
    0.45,
    0.5,
    0.52,
    0.55,
    0.6,
    0.6,
    0.62,
    0.65,
    0.7,
    0.7,
]


def test_held_out_sentences_say_what_the_check_found():
    entry = {
        "ok": True,
        "detail": "checker accuracy (goal +0.20): 0.050 -> 0.300 (+0.250, 90% interval 0.1 to 0.4)",
    }
    assert held_out_sentence(entry, "a gain").startswith("Checker accuracy (goal +0.20): 0.050")
    assert held_out_sentence(entry, "a gain").endswith("this run shows a gain.")
    assert held_out_sentence({**entry, "ok": False}, "a gain").endswith("this run does not show a gain.")


def test_claim_sentences_follow_the_data_both_ways():
    shown = claim_sentence(RISING, "Accuracy", "PPO raising it", up=True)
    assert "this run shows PPO raising it" in shown and "from 0.110 to 0.700" in shown and "±" in shown
    against = claim_sentence(RISING[::-1], "Accuracy", "PPO raising it", up=True)
    assert "the other way, so this run does not show PPO raising it" in against
    flat = claim_sentence([0.3, 0.5, 0.2, 0.6, 0.3, 0.5, 0.25, 0.55, 0.3, 0.5] * 2, "Accuracy", "it", up=True)
    assert "within the step-to-step noise, so this run does not show it" in flat
    assert "too few logged steps; this run does not show it" in claim_sentence(
        [0.1], "Accuracy", "it", up=True
    )


def cost_entry(value: float, interval: list[float] | None) -> dict:
    return {
        "value": value, "interval": interval, "n_prompts": 24, "settings_differ": [],
        "rm_run": {"run_id": "a", "start": 0.1, "end": 0.2, "gain": 0.1},
        "checker_run": {"run_id": "a-checker", "start": 0.1, "end": 0.2 + value, "gain": 0.1 + value},
    }  # fmt: skip


def test_the_rm_cost_sentence_says_what_the_difference_shows():
    shown = rm_cost_sentence(cost_entry(0.25, [0.1, 0.4]))
    assert (
        "gained +0.350 with the checker as the reward (`a-checker`) and +0.100 with the learned RM" in shown
    )
    assert (
        "checker minus RM +0.250 (90% interval 0.1 to 0.4): this run shows what the learned RM costs: 0.25"
        in shown
    )
    assert "the interval holds 0, so this run does not show" in rm_cost_sentence(
        cost_entry(0.05, [-0.1, 0.2])
    )
    assert "the RM run gained more, so this run does not show a cost" in rm_cost_sentence(
        cost_entry(-0.2, [-0.3, -0.1])
    )
    assert "too few tasks for an interval" in rm_cost_sentence(cost_entry(0.2, None))
    differ = rm_cost_sentence({**cost_entry(0.25, [0.1, 0.4]), "settings_differ": ["steps"]})
    assert differ.endswith("(the two runs differ in more than the reward: steps).")
    missing = rm_cost_sentence(
        {"value": None, "detail": "this run does not show it: no run rewarded by the checker"}
    )
    assert missing == "What the learned RM costs: this run does not show it: no run rewarded by the checker."


def test_the_rm_accuracy_page_measures_no_rm_on_a_run_rewarded_by_the_checker(real_env):
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "rm_accuracy.py"), default_timeout=120)
    at.query_params["run"] = CHECKER_RUN
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    infos = [i.value for i in at.info]
    assert any(f"`{CHECKER_RUN}`: the reward is the judge itself" in i for i in infos)
    assert not any("No gold (judge) scores" in i for i in infos)  # it has them: it has no RM
    charts = at.get("plotly_chart")
    assert charts and not any(c.proto.id.endswith("-rm_agreement") for c in charts)  # no agreement curve
