"""The sampling lab on the real model (``smollm2``), with a tiny Llama standing in for the 40 s
conversion: the page converts it once and says which release it is, the chat template is applied, the
checker scores the real world's task prompts, and a missing real RM is said, not hidden."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.lab import SamplingLab, real_tasks, sample_batch
from engine.models.gguf_cache import needs_conversion
from engine.paths import REPO_ROOT
from tests.tiny_models import make_llama, make_tokenizer
from workbench.lab_tables import real_scoring_note, reward_note

PAGE = str(REPO_ROOT / "pages" / "sampling_lab.py")
TEMPLATE = "{% for m in messages %}[BOS] {{ m['content'] }} [EOS]{% endfor %}{% if add_generation_prompt %} w1{% endif %}"


def _tiny_release(gguf):
    """The conversion's (float model, tokenizer) in small: a tiny Llama with a chat template."""
    tok = make_tokenizer()
    tok.chat_template = TEMPLATE
    model = make_llama(len(tok))
    model.config.max_position_embeddings = 128
    return model, tok


@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    """``smollm2`` converted by the tiny stand-in into an empty cache; no world, no runs, no real RM."""
    monkeypatch.setenv("WORKBENCH_MODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr("engine.models.gguf_cache.dequantise_gguf", _tiny_release)
    return tmp_path


def test_the_lab_converts_smollm2_once_and_checks_the_real_tasks(stand_in):
    assert needs_conversion("smollm2")
    lab = SamplingLab()
    prompt = next(iter(real_tasks()))
    batch = lab.sample("smollm2", [prompt], lab_config(), n_samples=3, seed=0)
    assert not needs_conversion("smollm2")  # converted once, into the cache
    assert batch.rewards is None  # no real RM built
    assert batch.gold is not None and batch.gold.shape == (3,)
    typed = lab.sample("smollm2", ["w1 w2 w3"], lab_config(), n_samples=2, seed=0)
    assert typed.gold is None  # not a real-world task: no checker
    # The chat template wraps the prompt: the sampled batch's prompt ids end with the generation prompt.
    loaded = lab.model("smollm2")
    plain = sample_batch(loaded, [prompt], lab_config(), n_samples=1, seed=0)
    assert plain.generation.prompt_ids[0, -1] == loaded.tokenizer.convert_tokens_to_ids("w1")


def lab_config():
    from engine.config import SamplingConfig

    return SamplingConfig(max_new_tokens=4)


def test_real_scoring_note_follows_the_batch(stand_in):
    lab = SamplingLab()
    prompt = next(iter(real_tasks()))
    batch = lab.sample("smollm2", [prompt], lab_config(), n_samples=4, seed=0)
    assert "no real RM yet" in real_scoring_note(batch) and "Checker: mean score" in real_scoring_note(batch)
    batch.gold = None
    assert "only the real world's task prompts" in real_scoring_note(batch)
    batch.rewards = np.zeros(4)
    assert "no real RM yet" not in real_scoring_note(batch)
    assert reward_note(batch, real=True, scored=True) == real_scoring_note(batch)
    assert "No reward model" in reward_note(batch, real=False, scored=False)
    assert reward_note(batch, real=False, scored=True) is None


def test_lab_page_on_smollm2_says_which_release(stand_in):
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert at.slider(key="lab_n").value == 16  # the world's model
    at.radio(key="lab_model_kind").set_value("Real chat model")
    at.run()
    assert not at.exception, at.exception
    # a real model's own length sliders, at their smaller defaults, said under them
    assert (at.slider(key="lab_n_real").value, at.slider(key="lab_max_new_tokens_real").value) == (8, 16)
    captions = " ".join(c.value for c in at.caption)
    assert "8 samples x 16 new tokens by default (as PPO samples it)" in captions
    assert "Q4_1 GGUF release" in captions and "chat template" in captions
    assert at.multiselect(key="lab_real_prompts").value[0] in real_tasks()
    assert not needs_conversion("smollm2")


@pytest.mark.parametrize(("load", "expected"), [(0.0, 2), (0.3, 2), (0.7, 1), (3.6, 1)])
def test_a_large_model_takes_only_idle_cores(monkeypatch, load, expected):
    """On 2 cores a large model runs on 2 threads only while the machine is otherwise idle (other work
    below half a core: a browser showing the app)."""
    import torch

    from engine.models import threads

    monkeypatch.delenv("WORKBENCH_THREADS", raising=False)
    monkeypatch.setattr(threads, "SMALL_MODEL_PARAMS", 0)  # the tiny model counts as large here
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(threads, "own_load", lambda: 0.0)  # all of it other processes' load
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threads.threads_for(make_llama(len(make_tokenizer()))) as count:
            assert count == expected == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("load", "own", "expected"), [(1.0, 1.0, 2), (1.9, 1.0, 1), (0.9, 0.0, 1)])
def test_the_load_the_app_makes_itself_leaves_it_its_cores(monkeypatch, load, own, expected):
    """Notches keep the app's own core busy, which lifts the load average to ~1: that load is not
    another process's, so on an otherwise idle 2-core machine the app keeps its 2 threads."""
    from engine.models import threads

    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(threads, "own_load", lambda: own)
    assert threads.idle_cores() == expected


def test_own_load_is_this_processes_cpu_seconds_per_second(monkeypatch):
    from engine.models import threads

    clock = {"wall": 1000.0, "cpu": 50.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(threads.time, "process_time", lambda: clock["cpu"])
    monkeypatch.setattr(threads, "_CPU_SAMPLES", threads.deque())
    assert threads.own_load() == 0.0  # nothing to compare with yet
    clock.update(wall=1030.0, cpu=80.0)  # one core busy for 30 s
    assert threads.own_load() == pytest.approx(1.0)
    clock.update(wall=1100.0, cpu=85.0)  # then mostly idle: from the newest sample >= 60 s old
    assert threads.own_load() == pytest.approx((85.0 - 80.0) / 70.0)
    clock.update(wall=1200.0, cpu=86.0)
    assert threads.own_load() == pytest.approx((86.0 - 85.0) / 100.0)


def test_re_scoring_runs_on_the_threads_the_batch_was_sampled_on(stand_in, monkeypatch):
    """The page re-scores a batch outside the sampling call: it must not fall back to every core."""
    import torch

    from engine.sampling import Generation

    batch = SamplingLab().sample("smollm2", ["w1 w2"], lab_config(), n_samples=2, seed=0)
    seen = []
    real_signals = Generation.signals
    monkeypatch.setattr(
        Generation,
        "signals",
        lambda self, c=None: seen.append(torch.get_num_threads()) or real_signals(self, c),
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        batch.threads = 1
        batch.signals()
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
