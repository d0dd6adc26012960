"""The group-filter audit (``analyse groups``) on a small store whose answers are counted by hand."""

from __future__ import annotations

import json

import pytest

from engine.config import ConfigError
from engine.store import RunWriter
from engine.store.group_queries import group_audit
from tests.store_fixture import rollout_row

# step -> (prompt_id, rewards, gold); gold threshold 0.5, mean range (0, 1)
GROUPS = {
    1: [
        ("p1", [0.2, 0.2, 0.2], [0.0, 0.0, 0.0]),  # zero std; all fail: gate drops; not phantom (std 0)
        ("p2", [0.1, 0.5, 0.3], [0.1, 0.2, 0.0]),  # all fail, rewards vary: phantom; gate drops
        ("p3", [1.0, 1.0, 1.0], [1.0, 1.0, 0.9]),  # zero std; mean 1 is not < 1: mean drops; all pass
        ("p4", [0.0, 1.0, 0.5], [0.0, 1.0, 0.6]),  # mixed: every filter keeps it
    ],
    2: [
        ("p1", [2.0, 3.0], [0.2, 0.4]),  # phantom; mean 2.5: mean drops; gate drops
    ],
}


def _write(run_dir, kind: str = "ppo", with_gold: bool = True):
    writer = RunWriter.create(run_dir, kind=kind, config={}, seed=0)
    for step, groups in GROUPS.items():
        rows = [
            rollout_row(
                pid,
                "fam",
                f"prompt {pid}",
                i,
                ["a"],
                [0.5],
                reward=r,
                gold=g if with_gold else None,
                has_eos=True,
            )
            for pid, rewards, gold in groups
            for i, (r, g) in enumerate(zip(rewards, gold, strict=True))
        ]
        writer.write_rollouts(step, rows)
    return run_dir


def test_group_audit_counts_each_filter_and_lists_phantom_groups(tmp_path):
    report = group_audit(_write(tmp_path / "run"))
    assert report["has_gold"] and report["n_groups"] == 5
    step1, step2 = report["per_step"]
    assert step1 == {
        "step": 1, "n_groups": 4, "frac_zero_std": 0.5, "std_filter_drop": 0.5, "mean_filter_drop": 0.25,
        "binary_gate_drop": 0.75, "n_phantom": 1,
    }  # fmt: skip
    assert step2 == {
        "step": 2, "n_groups": 1, "frac_zero_std": 0.0, "std_filter_drop": 0.0, "mean_filter_drop": 1.0,
        "binary_gate_drop": 1.0, "n_phantom": 1,
    }  # fmt: skip
    assert report["overall"]["frac_zero_std"] == pytest.approx(2 / 5)
    assert report["overall"]["binary_gate_drop"] == pytest.approx(4 / 5)
    phantoms = report["phantom_groups"]
    assert [(p["step"], p["prompt_id"]) for p in phantoms] == [(1, "p2"), (2, "p1")]
    assert phantoms[0]["rewards"] == pytest.approx([0.1, 0.5, 0.3]) and phantoms[0]["prompt"] == "prompt p2"
    assert phantoms[0]["gold"] == pytest.approx([0.1, 0.2, 0.0])
    json.dumps(report)  # JSON-ready


def test_group_audit_settings_move_the_answers(tmp_path):
    run = _write(tmp_path / "run")
    wide = group_audit(run, mean_range=(-1.0, 3.0))
    assert wide["overall"]["mean_filter_drop"] == 0.0
    # threshold 0.15: p2's 0.2 passes, so p2 is mixed (no gate, no phantom); p1 at step 2 passes both
    low = group_audit(run, gold_threshold=0.15)
    assert low["per_step"][0]["binary_gate_drop"] == pytest.approx(0.5)  # p1 all fail, p3 all pass
    assert [(p["step"], p["prompt_id"]) for p in low["phantom_groups"]] == []
    assert len(group_audit(run, max_phantoms=1)["phantom_groups"]) == 1
    with pytest.raises(ConfigError, match="low < high"):
        group_audit(run, mean_range=(1.0, 0.0))


def test_group_audit_without_gold_or_rollouts(tmp_path):
    report = group_audit(_write(tmp_path / "import", kind="import", with_gold=False))
    assert not report["has_gold"] and report["phantom_groups"] is None
    assert report["overall"]["binary_gate_drop"] is None and report["overall"][
        "frac_zero_std"
    ] == pytest.approx(2 / 5)
    RunWriter.create(tmp_path / "empty", kind="ppo", config={}, seed=0)
    empty = group_audit(tmp_path / "empty")
    assert empty["n_groups"] == 0 and empty["per_step"] == [] and empty["overall"] is None


def test_analyse_groups_cli_json(tmp_path, capsys):
    from engine.__main__ import main

    _write(tmp_path / "runs" / "run")
    args = [
        "analyse",
        "groups",
        "run",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--json",
        "--gold-threshold",
        "0.5",
    ]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["overall"]["n_phantom"] == 2 and report["run_dir"].endswith("run")
    assert (
        main(["analyse", "groups", "run", "--runs-dir", str(tmp_path / "runs"), "--mean-range", "2", "1"])
        == 2
    )
    assert "low < high" in capsys.readouterr().err
