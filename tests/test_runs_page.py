"""AppTest of the Runs page: empty state, a validation error, a launch from the form, a finished run's curves."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from engine.paths import REPO_ROOT
from engine.ppo.config import PPOConfig
from engine.runs import list_runs, read_status
from engine.store import RunWriter
from tests.ppo_fixtures import make_tiny_sources

PAGE = str(REPO_ROOT / "pages" / "runs.py")


@pytest.fixture()
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "no-data"))  # no built world: path inputs
    monkeypatch.setenv("WORKBENCH_THREADS", "1")
    return tmp_path


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _text(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.info, *at.error, *at.success)]
    return "\n".join(str(p) for p in parts)


def test_empty_runs_dir_shows_the_form_and_a_hint(env):
    at = _page()
    assert "No PPO runs in" in _text(at)
    assert at.button(key="FormSubmitter:runs_form-Launch run") is not None
    assert at.number_input(key="runs_kl_coef").value == PPOConfig().ppo.kl_coef


def test_inconsistent_batch_is_a_clear_error(env):
    at = _page()
    at.number_input(key="runs_prompts_per_step").set_value(3)
    at.number_input(key="runs_samples_per_prompt").set_value(1)
    at.button(key="FormSubmitter:runs_form-Launch run").click().run()
    assert "not divisible by num_minibatches" in _text(at)
    assert list_runs(env / "runs") == []


def test_launch_from_the_form_then_watch_it_finish(env):
    sources, prompts_file = make_tiny_sources(env / "models")
    at = _page()
    at.text_input(key="runs_policy").set_value(sources.policy)
    at.text_input(key="runs_reward_model").set_value(sources.reward_model)
    at.text_input(key="runs_prompts_file").set_value(str(prompts_file))
    at.text_input(key="runs_run_id").set_value("from-page")
    at.number_input(key="runs_steps").set_value(2)
    at.number_input(key="runs_prompts_per_step").set_value(2)
    at.number_input(key="runs_max_new_tokens").set_value(6)
    at.button(key="FormSubmitter:runs_form-Launch run").click().run()
    assert not at.exception, at.exception
    assert "Started from-page" in _text(at), _text(at)
    run_dir = env / "runs" / "from-page"
    end = time.time() + 120
    while (read_status(run_dir) or {}).get("state") != "finished" and time.time() < end:
        time.sleep(0.2)
    assert read_status(run_dir)["state"] == "finished"
    at = _page()
    assert at.selectbox(key="runs_pick").value == "from-page"
    assert "finished" in _text(at), _text(at)
    assert [c.key for c in at.get("plotly_chart")] == [
        "runs_curves",
        "runs_probes",
    ]  # the probe set per family
    # a launch into the same run id is refused, nothing overwritten
    at.text_input(key="runs_policy").set_value(sources.policy)
    at.text_input(key="runs_reward_model").set_value(sources.reward_model)
    at.text_input(key="runs_prompts_file").set_value(str(prompts_file))
    at.text_input(key="runs_run_id").set_value("from-page")
    at.number_input(key="runs_prompts_per_step").set_value(2)
    at.button(key="FormSubmitter:runs_form-Launch run").click().run()
    assert "already exists" in _text(at)
    assert RunWriter.open(run_dir).logged_steps() == [1, 2]


def test_interrupted_run_offers_resume(env):
    run_dir = env / "runs" / "old"
    writer = RunWriter.create(run_dir, kind="ppo", config={"run": {"steps": 5}}, seed=0)
    writer.write_metrics(1, {"objective/reward": 0.5, "objective/kl": 0.0, "objective/entropy": 2.0})
    (run_dir / "status.json").write_text('{"state": "running", "step": 1, "steps": 5, "pid": 999999}')
    at = _page()
    assert "interrupted" in _text(at)
    assert at.button(key="runs_resume") is not None
    assert len(at.get("plotly_chart")) == 1


def test_form_offers_the_worlds_epochs_and_families(monkeypatch, tmp_path):
    from engine.paths import world_dir

    if not (world_dir() / "world.json").is_file():
        pytest.skip("the built-in world is not built")
    from engine.world import load_world

    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    world = load_world()
    at = _page()
    assert at.selectbox(key="runs_sft_epoch").value == world.default_epoch
    assert set(at.multiselect(key="runs_families").value) == {f.name for f in world.families}


def test_curves_show_each_step_and_a_moving_average():
    import pandas as pd

    from workbench.figures.runs import curves_figure, moving_average_window, run_panels

    steps = list(range(1, 51))
    values = [float(s % 7) for s in steps]
    metrics = pd.DataFrame({"step": steps, "key": "objective/reward", "value": values})
    fig = curves_figure(run_panels(metrics, pd.DataFrame(), kl_estimator="k1", probes=False))
    points, trend = fig.data[0], fig.data[1]
    assert list(points.y) == values and points.mode == "markers"
    window = moving_average_window(50)
    assert window == 5 and "last 5 steps" in trend.name
    assert trend.y[-1] == pytest.approx(sum(values[-5:]) / 5)
    assert trend.y[0] == values[0]  # a short head averages what there is
    assert trend.mode == "lines"
    assert len(fig.layout.annotations) == 4 + 3  # 4 panel titles + "not logged" for the 3 missing keys
    first_step = curves_figure(run_panels(metrics.iloc[:1], pd.DataFrame(), kl_estimator="k1", probes=False))
    assert first_step.data[1].mode == "lines+markers" and list(first_step.data[1].y) == [values[0]]
    titles = [a.text for a in fig.layout.annotations]
    assert "KL to the SFT policy (k1, sum per response)" in titles and "noisy" in titles[3]


def test_glance_shows_gold_and_probe_entropy_side_by_side():
    import pandas as pd

    from workbench.figures.runs import glance_figure

    steps = list(range(1, 21))
    metrics = pd.DataFrame(
        {"step": steps * 3, "key": ["objective/gold"] * 20 + ["probe/entropy"] * 20 + ["objective/kl"] * 20,
         "value": [0.2 + 0.01 * s for s in steps] + [1.0 - 0.02 * s for s in steps] + [0.0] * 20}
    )  # fmt: skip
    fig = glance_figure(metrics)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["gold score (mean)", "per-token entropy on the probe set (nats)"]
    gold_points, _, entropy_points, entropy_trend = fig.data
    assert list(gold_points.y) == [0.2 + 0.01 * s for s in steps]
    assert entropy_trend.y[-1] == pytest.approx(sum(1.0 - 0.02 * s for s in steps[-2:]) / 2)  # window 2
    no_probes = glance_figure(metrics[metrics["key"] != "probe/entropy"])
    assert [a.text for a in no_probes.layout.annotations] == ["gold score (mean)"]
    assert glance_figure(metrics[metrics["key"] == "objective/kl"]) is None


def test_kl_panel_prefers_k3_and_entropy_prefers_probes():
    import pandas as pd

    from workbench.figures.runs import curves_figure, probe_families, probe_figure, run_panels

    metrics = pd.DataFrame(
        {"step": [1, 2, 1, 2, 1, 2], "key": ["objective/kl"] * 2 + ["probe/entropy"] * 2 + ["probe/count/entropy"] * 2,
         "value": [-0.5, -1.0, 1.2, 1.0, 0.4, 0.3]}
    )  # fmt: skip
    kl = pd.DataFrame({"run_id": "r", "step": [1, 2], "k1": [-0.5, -1.0], "k3": [0.1, 0.2]})
    panels = run_panels(metrics, kl, kl_estimator="k1", probes=True)
    assert panels[2][0] == "KL to the SFT policy (k3, sum per response)" and list(panels[2][2]["value"]) == [
        0.1,
        0.2,
    ]
    assert "probe set" in panels[3][0] and list(panels[3][2]["value"]) == [1.2, 1.0]
    assert curves_figure(panels).data
    families = probe_families(sorted(set(metrics["key"])))
    assert families == ["count"] and probe_figure(metrics, families).data[0].name == "count"


def test_form_is_generated_from_every_config_field(env):
    import dataclasses

    from engine.ppo.config import SECTION_TYPES, field_docs

    at = _page()
    keys = set()
    for algorithm in ("ppo", "grpo"):  # each field is in the form of an algorithm that reads it
        at.selectbox(key="runs_algorithm").set_value(algorithm).run()
        keys |= {w.key for kind in ("number_input", "selectbox", "checkbox", "text_input", "multiselect")
                 for w in at.get(kind)}  # fmt: skip
    for section, cls in SECTION_TYPES.items():
        for f in dataclasses.fields(cls):
            if f.name in ("sft_epoch", "families"):  # world-only fields: no world in this env
                continue
            assert f"runs_{f.name}" in keys, f"no form widget for {section}.{f.name}"
    assert at.selectbox(key="runs_kl_estimator").options == ["k1", "k3"]
    assert field_docs(SECTION_TYPES["ppo"])["kl_estimator"] in at.selectbox(key="runs_kl_estimator").help


def _form_keys(at: AppTest) -> set[str]:
    return {w.key for kind in ("number_input", "selectbox", "checkbox", "text_input") for w in at.get(kind)}


def test_the_form_shows_only_the_chosen_algorithms_fields_and_launches_it(env, monkeypatch):
    import engine.ppo.launch as jobs
    from engine.ppo.config import GROUP_ONLY, PPO_ONLY

    launched = []

    def fake_launch(config=None, *, run_id=None, **kwargs):
        launched.append(config)
        _finished_run(env / "runs", run_id)
        return jobs.Job(run_id=run_id, run_dir=env / "runs" / run_id, pid=1)

    monkeypatch.setattr(jobs, "launch", fake_launch)
    monkeypatch.setattr("engine.ppo.build.check_inputs", lambda config: None)  # "p" and "r" are no models
    at = _page()
    algorithm = at.selectbox(key="runs_algorithm")
    assert algorithm.value == "ppo" and algorithm.options == ["ppo", "grpo", "rloo"]
    keys = _form_keys(at)
    assert {f"runs_{n}" for n in PPO_ONLY} <= keys and not {f"runs_{n}" for n in GROUP_ONLY} & keys
    at.selectbox(key="runs_algorithm").set_value("grpo").run()
    keys = _form_keys(at)
    assert {f"runs_{n}" for n in GROUP_ONLY} <= keys and not {f"runs_{n}" for n in PPO_ONLY} & keys
    at.number_input(key="runs_kl_loss_coef").set_value(0.02)
    at.text_input(key="runs_policy").set_value("p")
    at.text_input(key="runs_reward_model").set_value("r")
    at.text_input(key="runs_run_id").set_value("group-run")
    at.button(key="FormSubmitter:runs_form-Launch run").click().run()
    assert not at.exception, at.exception
    (config,) = launched
    assert (config.ppo.algorithm, config.ppo.kl_loss_coef) == ("grpo", 0.02)
    assert config.ppo.kl_coef == PPOConfig().ppo.kl_coef  # not shown: the default, which GRPO ignores


def test_one_sample_per_prompt_explains_reward_norm_and_odd_settings_warn(env):
    at = _page()
    at.number_input(key="runs_samples_per_prompt").set_value(1)
    at.button(key="FormSubmitter:runs_form-Launch run").click().run()
    assert "Reward normalisation" in _text(at) and "Samples per prompt" in _text(at)
    from engine.ppo.config import PPOConfig
    from workbench.launch_form import run_warnings

    warnings = run_warnings(PPOConfig().replace(max_new_tokens=1, prompts_per_step=1, num_minibatches=1))
    assert any("1 new token" in w for w in warnings) and any("1 prompt per step" in w for w in warnings)
    assert run_warnings(PPOConfig()) == []


def _finished_run(root, run_id, steps=3, planned=5, status_step=None):
    run_dir = root / run_id
    writer = RunWriter.create(run_dir, kind="ppo", config={"run": {"steps": planned}}, seed=0)
    for step in range(1, steps + 1):
        writer.write_metrics(step, {"objective/reward": 0.1 * step, "objective/entropy": 2.0 - 0.1 * step})
    step = steps if status_step is None else status_step
    (run_dir / "status.json").write_text(
        f'{{"state": "stopped", "step": {step}, "steps": {planned}, "pid": 1}}'
    )
    return run_dir


def test_second_launch_moves_the_picker_to_the_new_run(env, monkeypatch):
    import engine.ppo.launch as jobs

    _finished_run(env / "runs", "first")

    def fake_launch(config=None, *, run_id=None, **kwargs):
        _finished_run(env / "runs", run_id)
        return jobs.Job(run_id=run_id, run_dir=env / "runs" / run_id, pid=1)

    monkeypatch.setattr(jobs, "launch", fake_launch)
    monkeypatch.setattr("engine.ppo.build.check_inputs", lambda config: None)  # "p" and "r" are no models
    at = _page()
    assert at.selectbox(key="runs_pick").value == "first"
    at.text_input(key="runs_policy").set_value("p")
    at.text_input(key="runs_reward_model").set_value("r")
    at.text_input(key="runs_run_id").set_value("second")
    at.button(key="FormSubmitter:runs_form-Launch run").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="runs_pick").value == "second"


def test_resuming_run_shows_its_last_logged_step_in_caption_and_table(env):
    _finished_run(env / "runs", "res", steps=3, planned=5, status_step=0)  # a resumed job still loading
    at = _page()
    assert "step 3 of 5" in _text(at)
    assert at.dataframe[0].value.set_index("run").loc["res", "step"] == "3/5"


def test_demo_runs_are_listed_read_only(env, monkeypatch):
    data = env / "data"
    _finished_run(data / "demo_runs", "demo-default")
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(data))
    at = _page()
    assert at.selectbox(key="runs_pick").value == "demo-default"
    assert at.dataframe[0].value["whose"].tolist() == ["demo (read-only)"]
    assert "read-only" in _text(at)
    keys = {b.key for b in at.button}
    assert "runs_resume" not in keys and "runs_stop" not in keys


def test_sft_epochs_hand_off_preselects_the_epoch(monkeypatch, tmp_path):
    from engine.paths import world_dir
    from workbench.launch_form import HANDOFF_SFT_EPOCH

    if not (world_dir() / "world.json").is_file():
        pytest.skip("the built-in world is not built")
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state[HANDOFF_SFT_EPOCH] = 1
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="runs_sft_epoch").value == 1


def test_trend_sentence_reads_the_runs_own_curves():
    import pandas as pd

    from workbench.run_text import first_and_last, trend_sentence

    steps = list(range(1, 21))
    frame = pd.DataFrame(
        {"step": steps * 2, "key": ["objective/gold"] * 20 + ["probe/entropy"] * 20,
         "value": [0.2 + 0.01 * s for s in steps] + [1.0 - 0.02 * s for s in steps]}
    )  # fmt: skip
    assert first_and_last(frame, "objective/gold") == pytest.approx((0.215, 0.395))
    text = trend_sentence(frame, probes=True)
    assert "gold rose from 0.215 to 0.395" in text and "probe-set entropy fell" in text
    assert trend_sentence(frame.iloc[:0], probes=False) == ""


def test_shows_entropy_reduction_only_when_gold_rose_and_entropy_fell():
    import pandas as pd

    from workbench.run_text import shows_entropy_reduction

    steps = list(range(1, 21))
    gold = [0.2 + 0.01 * s for s in steps]
    falling = [1.0 - 0.02 * s for s in steps]
    frame = pd.DataFrame({"step": steps * 2, "key": ["objective/gold"] * 20 + ["probe/entropy"] * 20,
                          "value": gold + falling})  # fmt: skip
    assert shows_entropy_reduction(frame, probes=True)
    assert not shows_entropy_reduction(frame, probes=False)  # no batch entropy logged
    rising = frame.assign(value=gold + falling[::-1])
    assert not shows_entropy_reduction(rising, probes=True)


SUBMIT = "FormSubmitter:runs_form-Launch run"


@pytest.fixture()
def launches(env, monkeypatch) -> list:
    """The page's calls to launch (none may happen on a refused form); the inputs pass the engine's check."""
    import engine.ppo.launch

    calls: list = []
    monkeypatch.setattr(engine.ppo.launch, "launch", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.setattr("engine.ppo.build.check_inputs", lambda config: None)
    return calls


def test_run_id_follows_the_engines_rule(launches):
    at = _page()
    at.text_input(key="runs_run_id").set_value("my run ✓ ☃")
    at.button(key=SUBMIT).click().run()
    assert not at.exception, at.exception
    assert "run id must be 1-100 characters" in _text(at), _text(at)
    assert launches == []


def test_an_emptied_number_is_an_error_not_a_default(launches):
    at = _page()
    at.number_input(key="runs_steps").set_value(None)
    at.number_input(key="runs_kl_coef").set_value(None)
    at.button(key=SUBMIT).click().run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any("Empty: Steps, KL coefficient" in e for e in errors), errors
    assert launches == []


def test_max_new_tokens_past_the_context_is_refused_on_the_form(env, monkeypatch):
    import engine.ppo.launch

    calls: list = []
    monkeypatch.setattr(engine.ppo.launch, "launch", lambda *args, **kwargs: calls.append(args))
    sources, prompts_file = make_tiny_sources(env / "models")
    at = _page()
    at.text_input(key="runs_policy").set_value(sources.policy)
    at.text_input(key="runs_reward_model").set_value(sources.reward_model)
    at.text_input(key="runs_prompts_file").set_value(str(prompts_file))
    at.number_input(key="runs_max_new_tokens").set_value(100_000)
    at.button(key=SUBMIT).click().run()
    assert not at.exception, at.exception
    assert "exceed the model's context" in _text(at), _text(at)
    assert calls == []


def test_a_refused_launch_never_says_launched(env, monkeypatch):
    import engine.ppo.launch
    from engine.config import ConfigError

    def refuse(*args, **kwargs):
        raise ConfigError("run dup already exists; resume it or pick another id")

    monkeypatch.setattr(engine.ppo.launch, "launch", refuse)
    monkeypatch.setattr("engine.ppo.build.check_inputs", lambda config: None)
    at = _page()
    at.number_input(key="runs_steps").set_value(2)  # a setting that warns ("too short for a trend")
    at.text_input(key="runs_run_id").set_value("dup")
    at.button(key=SUBMIT).click().run()
    assert "already exists" in _text(at)
    assert not [w.value for w in at.warning if "Launched" in w.value]


def test_the_picked_run_is_in_the_url_and_an_unknown_one_says_so(env):
    _finished_run(env / "runs", "first")
    _finished_run(env / "runs", "second")
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["run"] = "second"
    at.run()
    assert at.selectbox(key="runs_pick").value == "second"
    at.selectbox(key="runs_pick").set_value("first").run()
    assert at.query_params["run"] == "first"  # a reload reopens it
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["run"] = "gone"
    at.run()
    assert not at.exception, at.exception
    assert any("No PPO run `gone`" in w.value for w in at.warning)


def test_resume_sits_with_the_runs_status_above_its_curves(env):
    _finished_run(env / "runs", "paused")
    at = _page()
    order = [getattr(node, "key", None) for node in at.main]
    status = next(i for i, node in enumerate(at.main) if "stopped" in str(getattr(node, "value", "")))
    assert status < order.index("runs_resume") < order.index("runs_curves")


def test_the_reward_panel_names_the_judge_when_the_reward_is_the_gold_score():
    import pandas as pd

    from workbench.figures.runs import run_panels

    steps = [1, 2, 3]
    gold = pd.DataFrame({"step": steps, "key": "objective/gold", "value": [0.1, 0.2, 0.25]})
    judged = pd.concat([gold, gold.assign(key="objective/reward")])
    titles = [p[0] for p in run_panels(judged, pd.DataFrame(), kl_estimator="k1", probes=False)]
    assert titles[0] == "reward: the judge's score (mean)"
    rm = pd.concat([gold, gold.assign(key="objective/reward", value=[2.0, 2.5, 3.0])])
    titles = [p[0] for p in run_panels(rm, pd.DataFrame(), kl_estimator="k1", probes=False)]
    assert titles[0] == "RM reward (mean)"
