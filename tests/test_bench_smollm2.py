"""bench sampling's JSON states the machine it measured on; bench ppo --protocol smollm2-cpu runs the
engine's side on SmolLM2 (slow: the real weights) and reports what its JSON promises."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.paths import REPO_ROOT


def _bench(*args: str, timeout: int = 300) -> dict:
    done = subprocess.run([sys.executable, "-m", "engine", "bench", *args, "--json"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_bench_sampling_states_cpu_threads_load_and_cpu_seconds(tiny_gpt2_dir):
    out = _bench("sampling", "--model", str(tiny_gpt2_dir), "--samples", "2", "--new-tokens", "3",
                 "--repeats", "1", "--threads", "1")  # fmt: skip
    assert out["threads"] == 1
    assert out["cpu"]["kind"] and out["cpu"]["cpus"] >= 1
    assert set(out["load_average"]) == {"before", "after"}
    assert out["cpu_seconds_ratio"] > 0 and out["plain_generate_cpu_s"] > 0


@pytest.mark.slow
def test_bench_ppo_smollm2_engine_side():
    """The engine's side alone (no TRL environment in the suite), at smoke sizes."""
    out = _bench("ppo", "--protocol", "smollm2-cpu", "--skip-trl", "--prompts-per-iteration", "2",
                 "--new-tokens", "2", "--iterations", "2", "--threads", "1")  # fmt: skip
    assert out["protocol"] == "custom"  # not the protocol's sizes: never reported as smollm2-cpu
    assert out["seconds_per_iteration"] > 0 and out["peak_rss_mb"] > 0
    assert out["trl_seconds_per_iteration"] is None and out["target_met"] is None
    assert "Q4_1" in out["model"] and "not the real world's trained RM" in out["reward_model"]
    assert out["settings"]["lora_targets"] == ["q_proj", "k_proj", "v_proj", "o_proj"]


def test_bench_app_notches_the_lab_on_the_world_model_or_smollm2():
    """``bench app --model smollm2`` measures the lab's slider notch on the real chat model; another
    name is refused by the parser (exit 2), as every bad flag."""
    import argparse

    from engine.bench import app

    parser = argparse.ArgumentParser()
    app.add_arguments(parser)
    assert parser.parse_args([]).model == "world"
    assert parser.parse_args(["--model", "smollm2"]).model == "smollm2"
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--model", "gpt9"])
    assert exc.value.code == 2
    # the bench clicks the lab's model picker by its label (the engine never imports the workbench)
    from workbench.lab_inputs import REAL

    assert app.REAL_MODEL_RADIO == REAL


def test_bench_app_says_in_one_line_what_a_page_did_not_show(monkeypatch, tmp_path):
    """A page that never shows what the bench waits for (a link it cannot click, a title that never
    comes) is a one-line ConfigError, not Playwright's traceback."""
    import argparse
    import contextlib
    import types

    playwright_api = pytest.importorskip("playwright.sync_api")
    from engine.bench import app
    from engine.config import ConfigError

    browser = types.SimpleNamespace(close=lambda: None)
    fake = types.SimpleNamespace(chromium=types.SimpleNamespace(launch=lambda **_: browser))
    monkeypatch.setattr(playwright_api, "sync_playwright", lambda: contextlib.nullcontext(fake))
    monkeypatch.setattr(app, "CHROMIUM", __file__)  # any existing file
    monkeypatch.setattr(app, "_cold_start", lambda *_: {"health_s": 1.0, "cold_start_s": 2.0})
    monkeypatch.setattr(app, "streamlit_server", lambda *_: contextlib.nullcontext(("http://x", None, None)))
    monkeypatch.setattr(app, "wait_healthy", lambda *_: None)

    def stuck(*_):
        raise playwright_api.TimeoutError(
            "Locator.click: Timeout 30000ms exceeded.\nCall log:\n  - waiting for x"
        )

    monkeypatch.setattr(app, "_pages", stuck)
    parser = argparse.ArgumentParser()
    app.add_arguments(parser)
    with pytest.raises(ConfigError, match=r"^bench app: Locator.click: Timeout 30000ms exceeded.$"):
        app.main(parser.parse_args([]))
