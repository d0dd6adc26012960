"""The shipped world (data/world) loads and exhibits the seed's SFT-side phenomena."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.paths import REPO_ROOT, world_dir

pytestmark = pytest.mark.skipif(
    not (world_dir() / "world.json").is_file(), reason="the built-in world is not built"
)


def test_summary_lists_families_epochs_and_models():
    from engine.world import load_world

    summary = load_world().summary()
    families = {f["family"]: f for f in summary["families"]}
    assert {"describe", "review", "colour_list", "count", "praise", "trait_list"} == set(families)
    assert not families["praise"]["in_sft"] and families["describe"]["in_sft"]
    assert len(summary["sft_epochs"]) >= 5
    assert 500_000 < summary["policy_params"] < 5_000_000


def test_summary_needs_neither_torch_nor_transformers():
    """The home page shows the summary on its first run: it reads files, imports no model code, and
    its vocabulary size is the tokenizer's."""
    code = (
        "import sys; from engine.world import load_world; s = load_world().summary(); "
        "print(s['vocab_size'], 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    vocab_size, torch_loaded, transformers_loaded = out.stdout.split()
    assert (torch_loaded, transformers_loaded) == ("False", "False")
    from engine.world import load_world

    assert int(vocab_size) == len(load_world().tokenizer)


@pytest.mark.slow
def test_world_check_quick_holds_on_the_shipped_artifacts():
    """The contract command: one JSON object, exit code 0 when every measured phenomenon holds."""
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "world", "check", "--quick", "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    results = json.loads(proc.stdout)
    failed = {k: v for k, v in results.items() if v["ok"] is False}
    assert not failed, failed
    assert proc.returncode == 0
    for name in ("W1", "W2", "W3", "W6", "W7"):
        assert results[name]["ok"] is True, results[name]
    assert results["W4"]["ok"] is None and "skipped" in results["W4"]["detail"]
