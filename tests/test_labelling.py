"""Labelling in the Rollout browser: pairs of one prompt's samples, labels saved under the run's
``labels/`` (a demo run's apart), the count, the next pair, and a reload that keeps them."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
from store_fixture import build_store
from streamlit.testing.v1 import AppTest
from test_pages_store import _browser, store_env  # noqa: F401  (a fixture: pytest finds it here)

from engine.paths import runs_dir
from engine.ppo.rm_refresh import RMRefresh
from engine.runs.labels import read_labels
from workbench.sections.labelling import label_row, next_pair


def _count(at: AppTest) -> str:
    return next(c.value for c in at.caption if "labelled** for run" in c.value)


def _samples(*responses: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "prompt_id": "p",
            "prompt": "q",
            "step": 3,
            "sample_idx": range(len(responses)),
            "response": responses,
        }
    )


def test_next_pair_skips_labelled_pairs_in_either_order_and_equal_responses():
    samples = _samples("x", "x", "y", "z")
    a, b = next_pair(samples, [])
    assert (a["sample_idx"], b["sample_idx"]) == (0, 2)  # 0 and 1 say the same: no pair
    labels = [label_row(b, a, "tie")]  # labelled as (y, x): the pair is done in either order
    a, b = next_pair(samples, labels)
    assert (a["sample_idx"], b["sample_idx"]) == (0, 3)  # (1, 2) is the same texts as (0, 2)
    labels.append(label_row(a, b, "a"))
    assert [s["sample_idx"] for s in next_pair(samples, labels)] == [2, 3]
    labels.append(label_row(*next_pair(samples, labels), "skip"))
    assert next_pair(samples, labels) is None
    assert next_pair(samples, [{**labels[0], "step": 4}, *labels[1:]]) is not None  # another step's label


@pytest.mark.usefixtures("store_env")
def test_labelling_saves_each_label_shows_the_count_and_the_next_pair_and_a_reload_keeps_them():
    runs = runs_dir()
    at = _browser(run="alpha", prompt="p1", step="1")
    assert not at.exception, at.exception
    assert _count(at).startswith("**0 pairs labelled**")
    pair_html = [str(h.proto.body) for h in at.get("html")][-2:]  # the pair shown, A and B
    assert all("sample_idx" in h and "reward" not in h and "gold" not in h for h in pair_html)  # blind
    assert "reward" in str(at.get("html")[0].proto.body)  # the browser's own samples keep their scores
    for n, label in enumerate(("a", "b", "tie"), start=1):
        at.button(key=f"label_{label}").click().run()
        assert not at.exception, at.exception
        assert _count(at).startswith(f"**{n} pair{'' if n == 1 else 's'} labelled**")
        assert len(list((runs / "alpha" / "labels").glob("*.parquet"))) == n  # one file per label
    assert any("Every pair of this prompt" in i.value for i in at.info)  # p1 at step 1: 3 samples, 3 pairs
    rows = read_labels(runs / "alpha")
    assert [r["label"] for r in rows] == ["a", "b", "tie"]
    assert {r["prompt_id"] for r in rows} == {"p1"} and {r["step"] for r in rows} == {1}
    assert {frozenset((r["response_a"], r["response_b"])) for r in rows} == {
        frozenset(p) for p in (("a b", "x y z x y z x y z"), ("a b", "a c"), ("x y z x y z x y z", "a c"))
    }
    reloaded = _browser(run="alpha", prompt="p1", step="1")  # a new session: the labels are on disk
    assert _count(reloaded).startswith("**3 pairs labelled**")
    # The RM refresh's human labeller reads them: the two ordered labels, the chosen response first.
    pairs = RMRefresh.human_pairs(SimpleNamespace(pairs=[]), runs / "alpha")
    first = rows[0]
    assert pairs[0] == ("add two numbers", first["response_a"], first["response_b"])
    assert pairs[1] == ("add two numbers", rows[1]["response_b"], rows[1]["response_a"]) and len(pairs) == 2


def test_labels_of_a_demo_run_go_to_a_hidden_folder_of_the_users_runs(monkeypatch, tmp_path):
    demo = build_store(tmp_path / "data" / "demo_runs")
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    at = _browser(run="alpha", prompt="p1", step="1")
    at.button(key="label_skip").click().run()
    assert not at.exception, at.exception
    assert "kept apart" in _count(at) and _count(at).startswith("**1 pair labelled**")
    assert not (demo / "alpha" / "labels").exists()
    assert [r["label"] for r in read_labels(tmp_path / "mine" / ".labels" / "alpha")] == ["skip"]


def test_labels_are_a_preference_test_set_for_logprob_accuracy(tmp_path):
    from engine.models import load_causal_lm
    from engine.ppo.logprob_eval import logprob_accuracy, response_logprobs
    from engine.runs.labels import append_labels, preference_pairs
    from tests.ppo_fixtures import make_tiny_sources

    rows = [
        {"prompt_id": "p", "prompt": "w1 w2", "response_a": "w3 w4", "response_b": "w5", "label": "a", "step": 0},
        {"prompt_id": "p", "prompt": "w1 w2", "response_a": "w5", "response_b": "w6", "label": "b", "step": 0},
        {"prompt_id": "p", "prompt": "w1 w2", "response_a": "w3 w4", "response_b": "w6", "label": "tie", "step": 0},
        {"prompt_id": "p", "prompt": "w1 w2", "response_a": "w5", "response_b": "w3 w4", "label": "b", "step": 1},
    ]  # fmt: skip
    append_labels(tmp_path / "run", rows)
    pairs = preference_pairs(read_labels(tmp_path / "run"))
    assert pairs == [("w1 w2", "w3 w4", "w5"), ("w1 w2", "w6", "w5")]  # the tie gives no order; no repeat
    sources, _ = make_tiny_sources(tmp_path / "models")
    loaded = load_causal_lm(sources.policy, device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    chosen = response_logprobs(model, tok, [p.prompt for p in pairs], [p.chosen for p in pairs])
    rejected = response_logprobs(model, tok, [p.prompt for p in pairs], [p.rejected for p in pairs])
    assert logprob_accuracy(model, tok, pairs) == pytest.approx(float((chosen > rejected).float().mean()))


def test_the_human_labeller_takes_the_ordered_labels_not_yet_trained_on(tmp_path):
    from engine.runs.labels import append_labels, preference_pairs

    rows = [
        {"prompt_id": "p", "prompt": "q", "response_a": "x", "response_b": "y", "label": "a", "step": 1},
        {"prompt_id": "p", "prompt": "q", "response_a": "x", "response_b": "z", "label": "skip", "step": 1},
        {"prompt_id": "p", "prompt": "q", "response_a": "y", "response_b": "z", "label": "b", "step": 1},
        {"prompt_id": "p", "prompt": "q", "response_a": "y", "response_b": "x", "label": "b", "step": 2},
    ]  # fmt: skip
    append_labels(tmp_path, rows)
    every = preference_pairs(read_labels(tmp_path))
    assert every == [("q", "x", "y"), ("q", "z", "y")]  # the repeat of the first pair counts once
    assert RMRefresh.human_pairs(SimpleNamespace(pairs=[]), tmp_path) == every
    trained = SimpleNamespace(pairs=[("q", "x", "y")])  # the first refresh took it
    assert RMRefresh.human_pairs(trained, tmp_path) == [("q", "z", "y")]
    assert RMRefresh.human_pairs(trained, None) == []


def test_jobs_eval_reports_logprob_accuracy_on_the_runs_labels(tmp_path, capsys):
    from engine.cli import main
    from engine.models import load_causal_lm
    from engine.ppo.build import build_trainer
    from engine.ppo.logprob_eval import evaluate_labels, logprob_accuracy, watch_run
    from engine.runs.labels import append_labels, preference_pairs
    from engine.store import RunWriter
    from engine.store import logprob_accuracy as accuracy_frame
    from engine.store.schema import LABEL_ACCURACY
    from tests.ppo_fixtures import make_tiny_sources, tiny_config

    sources, prompts_file = make_tiny_sources(tmp_path / "models")
    config = tiny_config(steps=2, save_every=1).replace(
        policy=sources.policy, reward_model=sources.reward_model, prompts_file=str(prompts_file)
    )
    run = tmp_path / "runs" / "mine"
    writer = RunWriter.create(run, kind="ppo", config=config.to_dict(), seed=0)
    build_trainer(config, writer, sources=sources, device="cpu").train(progress=False)
    assert evaluate_labels(run, device="cpu") == []  # no labels: nothing, no file
    assert not (run / "evals" / "label_accuracy.parquet").exists()
    # a run of its own prompts has no preference test set: without labels, the error says so
    assert main(["jobs", "--runs-dir", str(run.parent), "eval", "mine"]) == 2
    assert "preference test set" in capsys.readouterr().err

    rows = [
        {"prompt_id": "p", "prompt": "w1 w2", "response_a": "w3 w4", "response_b": "w5", "label": "a", "step": 1},
        {"prompt_id": "p", "prompt": "w1 w2", "response_a": "w5", "response_b": "w6", "label": "b", "step": 1},
        {"prompt_id": "p", "prompt": "w1 w2", "response_a": "w3", "response_b": "w6", "label": "tie", "step": 1},
    ]  # fmt: skip
    append_labels(run, rows)
    assert main(["jobs", "--runs-dir", str(run.parent), "eval", "mine"]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [line[0] for line in lines] == ["sft", "step-1", "step-2"]
    assert all(line[2] == "2" and line[3] == "labels" for line in lines)  # the two ordered labels
    frame = accuracy_frame(run, LABEL_ACCURACY)
    assert list(frame["checkpoint"]) == ["sft", "step-1", "step-2"]
    base = load_causal_lm(sources.policy, device="cpu")  # the sft row is the starting policy's
    expected = logprob_accuracy(base.model, base.tokenizer, preference_pairs(read_labels(run)))
    assert float(frame["accuracy"].iloc[0]) == pytest.approx(expected)
    # The RM accuracy page's button runs `jobs eval --watch`: it too ends on the labels, for a run
    # without a preference test set too (it used to stop at the missing test set)
    (run / "evals" / "label_accuracy.parquet").unlink()
    watch_run(run, poll_seconds=0)
    assert list(accuracy_frame(run, LABEL_ACCURACY)["checkpoint"]) == ["sft", "step-1", "step-2"]
    assert not (run / "evals" / "logprob_accuracy.parquet").exists()
    (run / "evals" / "label_accuracy.parquet").unlink()
    watch_run(run, poll_seconds=0, pairs=preference_pairs(read_labels(run)))
    assert list(accuracy_frame(run, LABEL_ACCURACY)["checkpoint"]) == ["sft", "step-1", "step-2"]


@pytest.mark.usefixtures("store_env")
def test_the_rm_accuracy_page_shows_the_accuracy_on_the_runs_labels():
    from engine.paths import REPO_ROOT
    from engine.store import write_eval
    from engine.store.schema import LABEL_ACCURACY

    def charts() -> list[str]:
        at = AppTest.from_file(str(REPO_ROOT / "pages" / "rm_accuracy.py"), default_timeout=60).run()
        at.multiselect(key="rm_runs").set_value(["alpha"]).run()
        assert not at.exception, at.exception
        return [c.proto.id for c in at.get("plotly_chart")]

    before = charts()
    assert not any("rm_label_accuracy" in c for c in before)
    rows = {"run_id": ["alpha"] * 2, "step": [0, 1], "checkpoint": ["sft", "step-1"],
            "accuracy": [0.5, 0.75], "n_pairs": [4, 4]}  # fmt: skip
    write_eval(runs_dir() / "alpha", LABEL_ACCURACY, rows)
    after = charts()
    assert len(after) == len(before) + 1 and any("rm_label_accuracy" in c for c in after)
