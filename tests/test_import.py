"""Importers: one test per format on fixtures in each framework's real layout, and the bad inputs.

Each fixture names the file and commit of the framework code that writes the layout it copies.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import engine.cli as cli
from engine.config import ConfigError
from engine.importers import import_run, parse_mapping, preview


def _rows(run_dir: Path) -> pd.DataFrame:
    files = sorted((run_dir / "rollouts").glob("step-*.parquet"))
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


def _cli(monkeypatch, *argv: str) -> int:
    return cli.main(list(argv))


def _jsonl(path: Path, objects: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(o) + "\n" for o in objects))
    return path


# ---- TRL ---------------------------------------------------------------------------------------


def _trl_output(root: Path) -> Path:
    """huggingface/trl v1.9.0 (f2cd577) trl/trainer/grpo_trainer.py ``log``: a pandas frame of
    {step, prompt, completion, *rewards, *extra, advantage} to completions/completions_{step:05d}.parquet."""
    out = root / "trl-out"
    (out / "completions").mkdir(parents=True)
    for step in (1, 2):
        n = 8
        table = {
            "step": [step] * n,
            "prompt": [f"Question {i % 2}?" for i in range(n)],
            "completion": [f"answer {step}-{i}" for i in range(n)],
            "accuracy_reward": [float(i % 2) for i in range(n)],
            "format_reward": [0.5] * (n - 1) + [float("nan")],
            "judge_note": [f"note {i}" for i in range(n)],
            "advantage": [0.1 * i for i in range(n)],
        }
        pd.DataFrame(table).to_parquet(out / "completions" / f"completions_{step:05d}.parquet")
    return out


def test_trl_completions(tmp_path):
    result = import_run("trl", _trl_output(tmp_path), runs_dir=tmp_path / "runs", run_id="trl")
    assert (result.rows, result.steps, result.prompts) == (16, 2, 2)
    rows = _rows(Path(result.run_dir))
    extras = rows["extras"].map(json.loads)
    expected = extras.map(
        lambda e: e["accuracy_reward"] + (e["format_reward"] or 0.0)
    )  # NaN is stored as null
    np.testing.assert_allclose(rows["reward"], expected, rtol=1e-6)  # TRL's nansum of the reward columns
    assert {"accuracy_reward", "format_reward", "judge_note", "advantage"} <= set(extras.iloc[0])
    # grouped by prompt text within a step: 2 prompts x 4 samples
    per_group = rows.groupby(["step", "prompt_id"])["sample_idx"].apply(sorted)
    assert all(v == [0, 1, 2, 3] for v in per_group)
    record = json.loads((Path(result.run_dir) / "run.json").read_text())
    assert record["kind"] == "import" and record["config"]["format"] == "trl"
    assert record["config"]["mapping"]["reward"] == ["accuracy_reward", "format_reward"]

    # --map reward=COL picks one column
    picked = import_run("trl", _trl_output(tmp_path / "b"), runs_dir=tmp_path / "runs", run_id="trl-acc",
                        mapping=parse_mapping(["reward=accuracy_reward"]))  # fmt: skip
    rows = _rows(Path(picked.run_dir))
    assert rows["reward"].tolist() == rows["extras"].map(lambda e: json.loads(e)["accuracy_reward"]).tolist()


# ---- W&B tables --------------------------------------------------------------------------------


def test_wandb_table_trl_ppo_and_openrlhf(tmp_path):
    """TRL v1.9.0 trl/experimental/ppo/ppo_trainer.py logs wandb.Table(dataframe=df) of
    {query, model response, score} under 'completions'; W&B stores it as
    media/table/completions_<step>_<hash>.table.json = {"columns": [...], "data": [[...]]}."""
    media = tmp_path / "media" / "table"
    media.mkdir(parents=True)
    data = [[f"q{i % 3}", f"resp {i}", float(i)] for i in range(6)]
    (media / "completions_40_1a2b3c4d.table.json").write_text(
        json.dumps({"columns": ["query", "model response", "score"], "data": data})
    )
    result = import_run("wandb-table", media, runs_dir=tmp_path / "runs", run_id="ppo")
    rows = _rows(Path(result.run_dir))
    assert (result.rows, result.prompts, set(rows["step"])) == (6, 3, {40})

    # OpenRLHF (3c3be62) openrlhf/utils/logging_utils.py: Table(["global_step", "text", "reward"]),
    # re-logged whole with one row more at each step (cumulative).
    orlhf = tmp_path / "orlhf"
    orlhf.mkdir()
    for step in (1, 2):
        rows_ = [[s, f"prompt and answer {s}", 0.1 * s] for s in range(1, step + 1)]
        cols = ["global_step", "text", "reward"]
        (orlhf / f"train_generated_samples_{step}_abcdef{step}.table.json").write_text(
            json.dumps({"columns": cols, "data": rows_})
        )
    result = import_run("wandb-table", orlhf, runs_dir=tmp_path / "runs", run_id="orlhf")
    assert result.rows == 2 and result.steps == 2  # only the fullest table, not 1 + 2 rows
    assert any("re-logs" in w for w in result.warnings) and any("no prompt" in w for w in result.warnings)


# ---- verl --------------------------------------------------------------------------------------


def test_verl_rollout_dumps(tmp_path):
    """volcengine/verl b178a3c verl/trainer/ppo/ray_trainer.py ``_dump_generations``:
    <rollout_data_dir>/{global_step}.jsonl, one {input, output, gts, score, step, **reward_extra} per line."""
    dump = tmp_path / "rollout_data"
    for step in (1, 2):
        _jsonl(
            dump / f"{step}.jsonl",
            [
                {
                    "input": f"solve {i % 2}",
                    "output": f"x={i}",
                    "gts": "3" if i else ["3", "4"],
                    "score": float(i % 2),
                    "step": step,
                    "acc": bool(i % 2),
                }  # fmt: skip
                for i in range(4)
            ],
        )
    result = import_run("verl", dump, runs_dir=tmp_path / "runs", run_id="verl")
    assert (result.rows, result.steps, result.prompts) == (8, 2, 2)
    rows = _rows(Path(result.run_dir))
    extras = rows["extras"].map(json.loads)
    assert {"gts", "acc"} <= set(extras.iloc[0])  # gts switches type between lines: read line by line


# ---- NeMo-RL -----------------------------------------------------------------------------------


def _nemo_line(i: int) -> dict:
    """NVIDIA-NeMo/RL 7ea279a nemo_rl/algorithms/grpo.py (log_data) + nemo_rl/utils/logger.py
    ``log_batched_dict_as_jsonl``: one-sample batches (every value wrapped in a list) plus idx."""
    token_ids = [5, 6, 7, 8 + i, 9, 0, 0]  # prompt 5 6 7, response 8+i 9, padding
    mask = [0, 0, 0, 1, 1, 0, 0]
    return {
        "content": [["<user>What is 2+2?</user>", f"<assistant>{4 + i}</assistant>"]],
        "rewards": [float(i == 0)],
        "input_lengths": [5],
        "token_ids": [token_ids],
        "token_loss_mask": [mask],
        "sample_loss_mask": [1.0],
        "advantages": [[0.0, 0.0, 0.0, 0.5 - i, 0.5 - i, 0.0, 0.0]],
        "generation_logprobs": [[0.0, 0.0, 0.0, -0.1, -0.2, 0.0, 0.0]],
        "prev_logprobs": [[0.0, 0.0, 0.0, -0.15, -0.25, 0.0, 0.0]],
        "idx": i,
    }


def test_nemo_rl_train_data(tmp_path):
    logs = tmp_path / "logs" / "exp_001"
    for step in (1, 2):
        _jsonl(logs / f"train_data_step{step}.jsonl", [_nemo_line(i) for i in range(3)])
    result = import_run("nemo-rl", tmp_path / "logs", runs_dir=tmp_path / "runs", run_id="nemo")
    assert (result.rows, result.steps, result.prompts) == (6, 2, 1)
    rows = _rows(Path(result.run_dir)).sort_values(["step", "sample_idx"])
    first = rows.iloc[0]
    assert first["prompt"] == "<user>What is 2+2?</user>" and first["response"] == "<assistant>4</assistant>"
    assert list(first["token_ids"]) == [8, 9]
    np.testing.assert_allclose(first["logprob"], [-0.1, -0.2], rtol=1e-6)
    np.testing.assert_allclose(first["advantage"], [0.5, 0.5])
    extras = json.loads(first["extras"])
    assert extras["prev_logprobs"] == [-0.15, -0.25] and extras["idx"] == 0


# ---- prime-rl ----------------------------------------------------------------------------------


def _episode(i: int, step: int) -> dict:
    """PrimeIntellect-ai/prime-rl 559b447 src/prime_rl/monitors/file.py ``log_episodes`` writes
    verifiers v1 Episode.to_record() (PrimeIntellect-ai/verifiers a60a606 verifiers/v1/episode.py,
    trace.py, graph.py MessageNode) to rollouts/step_N/train/effective/traces.jsonl."""
    return {
        "id": f"ep{i}",
        "env": {"id": "gsm8k", "name": "gsm8k"},
        "task": {"type": "gsm8k", "data": {"question": "2+2?"}},
        "group": {"id": f"group-{i // 2}"},
        "run": {"type": "train", "id": "r", "work": {"type": "train", "step": step}},
        "ok": True,
        "errors": [],
        "traces": [
            {
                "id": f"tr{i}",
                "rewards": {
                    "correct": {"score": float(i % 2), "weight": 1.0},
                    "fmt": {"score": 1.0, "weight": 0.5},
                },
                "metrics": {"len": 2.0},
                "ok": True,
                "stop_condition": "completed",
                "nodes": [
                    {
                        "parent": None,
                        "message": {"role": "user", "content": f"prompt {i // 2}"},
                        "sampled": False,
                        "token_ids": [1, 2],
                        "mask": [False, False],
                        "logprobs": [],
                    },
                    {
                        "parent": 0,
                        "message": {"role": "assistant", "content": [{"type": "text", "text": f"ans {i}"}]},
                        "sampled": True,
                        "token_ids": [3, 10 + i, 11],
                        "mask": [False, True, True],
                        "logprobs": [-0.5, -0.6],
                        "advantages": [0.2, 0.2],
                    },
                ],  # fmt: skip
            }
        ],
    }


def test_prime_rl_traces_and_token_exports(tmp_path):
    run = tmp_path / "prime-run"
    for step in (0, 1):
        _jsonl(run / "rollouts" / f"step_{step}" / "train" / "effective" / "traces.jsonl",
               [_episode(i, step) for i in range(4)])  # fmt: skip
        _jsonl(run / "rollouts" / f"step_{step}" / "train" / "all" / "traces.jsonl", [_episode(9, step)])
        _jsonl(run / "rollouts" / f"step_{step}" / "eval" / "all" / "traces.jsonl", [_episode(8, step)])
    # src/prime_rl/trainer/rl/token_export.py: token_exports/step_N/rank_r.jsonl, aligned per-token arrays
    _jsonl(run / "token_exports" / "step_0" / "rank_1.jsonl", [_token_export(i) for i in range(4)])
    result = import_run("prime-rl", run, runs_dir=tmp_path / "runs", run_id="prime")
    assert (result.rows, result.steps, result.prompts) == (8, 2, 2)  # effective only, eval skipped
    rows = _rows(Path(result.run_dir)).sort_values(["step", "prompt_id", "sample_idx"])
    first = rows.iloc[0]
    assert first["prompt_id"] == "group-0" and first["prompt"] == "prompt 0" and first["response"] == "ans 0"
    assert first["reward"] == pytest.approx(0.5)  # 0 x 1 + 1 x 0.5
    assert list(first["token_ids"]) == [10, 11]
    np.testing.assert_allclose(first["logprob"], [-0.5, -0.6], rtol=1e-6)
    np.testing.assert_allclose(first["entropy"], [1.5, 2.5])  # from the token export it matched
    assert first["rank"] == 1
    assert rows["entropy"].isna().sum() == 4  # step 1 has no token export


def _token_export(i: int) -> dict:
    return {"schema_version": 1, "step": 0, "rank": 1, "token_ids": [1, 2, 3, 10 + i, 11],
            "loss_mask": [False, False, False, True, True], "advantages": [0, 0, 0, 0.2, 0.2],
            "inference_logprobs": [0, 0, 0, -0.5, -0.6], "trainer_logprobs": [0, 0, 0, -0.4, -0.7],
            "entropy": [0.0, 0.0, 0.0, 1.5 + i, 2.5]}  # fmt: skip


def test_prime_rl_partial_token_exports(tmp_path):
    run = tmp_path / "prime-run"
    _jsonl(
        run / "rollouts" / "step_0" / "train" / "effective" / "traces.jsonl",
        [_episode(i, 0) for i in range(4)],
    )
    _jsonl(run / "token_exports" / "step_0" / "rank_0.jsonl", [_token_export(0)])  # only one sequence matched
    import_run("prime-rl", run, runs_dir=tmp_path / "runs", run_id="prime")


# ---- plain tables ------------------------------------------------------------------------------


def test_csv_and_parquet_with_mapping(tmp_path):
    frame = pd.DataFrame(
        {
            "iter": [0, 0, 1, 1],
            "q": ["a", "a", "b", "b"],
            "a": ["x", "y", "z", "w"],
            "r": [1.0, 2.0, 3.0, 4.0],
            "judge_score": [0.1, 0.2, 0.3, 0.4],
        }  # fmt: skip
    )
    frame.to_csv(tmp_path / "r.csv", index=False)
    frame.to_parquet(tmp_path / "r.parquet")
    mapping = parse_mapping(["prompt=q", "response=a", "reward=r", "step=iter", "gold=judge_score"])
    for fmt in ("csv", "parquet"):
        result = import_run(
            fmt, tmp_path / f"r.{fmt}", runs_dir=tmp_path / "runs", run_id=fmt, mapping=mapping
        )
        rows = _rows(Path(result.run_dir))
        assert (result.rows, result.steps) == (4, 2)
        np.testing.assert_allclose(sorted(rows["gold"]), [0.1, 0.2, 0.3, 0.4], rtol=1e-6)
    frame_preview, used, _ = preview("csv", tmp_path / "r.csv", mapping)
    assert len(frame_preview) == 4 and used["prompt"] == ["q"]


def test_cli_json(monkeypatch, tmp_path, capsys):
    _jsonl(tmp_path / "r.jsonl", [{"prompt": "p", "response": f"r{i}", "reward": i} for i in range(3)])
    code = _cli(
        monkeypatch,
        "import",
        "jsonl",
        str(tmp_path / "r.jsonl"),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--json",
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {
        "run_id",
        "run_dir",
        "format",
        "rows",
        "steps",
        "prompts",
        "seconds",
        "rows_per_s",
        "warnings",
    } <= set(out)
    assert (out["run_id"], out["rows"], out["steps"]) == ("import-r", 3, 1)


# ---- bad input ---------------------------------------------------------------------------------


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "p", "response": "r", "reward": 1}\n{"prompt": "p", oops\n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl:2: not a JSON line"):
        import_run("jsonl", path, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs" / "import-bad").exists()


def test_missing_required_column_is_named(tmp_path):
    path = _jsonl(tmp_path / "r.jsonl", [{"prompt": "p", "text": "r", "reward": 1.0}])
    with pytest.raises(
        ConfigError, match=r"no column for 'response'; columns found: \['prompt', 'text', 'reward'\]"
    ):
        import_run("jsonl", path, runs_dir=tmp_path / "runs")
    with pytest.raises(ConfigError, match=r"column 'answer' \(for response\) is missing"):
        import_run("jsonl", path, runs_dir=tmp_path / "runs", mapping=parse_mapping(["response=answer"]))


def test_wrong_type(tmp_path):
    path = _jsonl(tmp_path / "r.jsonl", [{"prompt": "p", "response": "r", "reward": "high"}])
    with pytest.raises(ConfigError, match=r"column 'reward' \(for reward\) holds string, expected numbers"):
        import_run("jsonl", path, runs_dir=tmp_path / "runs")
    nemo = _jsonl(tmp_path / "n" / "train_data_step1.jsonl", [{**_nemo_line(0), "rewards": ["high"]}])
    with pytest.raises(ConfigError, match=r"train_data_step1\.jsonl:1: 'rewards' must be a number"):
        import_run("nemo-rl", nemo, runs_dir=tmp_path / "runs")


def test_empty_file_and_empty_directory(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        import_run("jsonl", tmp_path / "empty.jsonl", runs_dir=tmp_path / "runs")
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "notes.txt").write_text("hi")
    for fmt, words in (
        ("trl", "TRL completion logs"),
        ("verl", "verl rollout dumps"),
        ("prime-rl", "prime-rl"),
    ):
        with pytest.raises(ConfigError, match=f"holds no {words}"):
            import_run(fmt, tmp_path / "nothing", runs_dir=tmp_path / "runs")


def test_existing_run_id_needs_replace(monkeypatch, tmp_path, capsys):
    path = _jsonl(tmp_path / "r.jsonl", [{"prompt": "p", "response": "r", "reward": 1.0}])
    args = ("import", "jsonl", str(path), "--runs-dir", str(tmp_path / "runs"), "--run-id", "x")
    assert _cli(monkeypatch, *args) == 0
    capsys.readouterr()
    assert _cli(monkeypatch, *args) == 2
    err = capsys.readouterr().err
    assert "error: run 'x' already exists" in err and "--replace" in err and "Traceback" not in err
    _jsonl(path, [{"prompt": "p", "response": f"r{i}", "reward": 1.0} for i in range(2)])
    assert _cli(monkeypatch, *args, "--replace") == 0
    assert len(_rows(tmp_path / "runs" / "x")) == 2


def test_interrupted_import_leaves_no_run(monkeypatch, tmp_path):
    from engine.store.writer import RunWriter

    path = _jsonl(
        tmp_path / "r.jsonl", [{"prompt": "p", "response": "r", "reward": 1.0, "step": s} for s in range(3)]
    )
    original = RunWriter.write_rollouts

    def fail_on_second(self, step, rows):
        if step == 1:
            raise KeyboardInterrupt  # the user pressed Ctrl-C mid-way
        return original(self, step, rows)

    monkeypatch.setattr(RunWriter, "write_rollouts", fail_on_second)
    with pytest.raises(KeyboardInterrupt):
        import_run("jsonl", path, runs_dir=tmp_path / "runs", run_id="cut")
    assert list((tmp_path / "runs").iterdir()) == []  # neither the run nor its temp dir


def test_spilled_steps_are_merged(monkeypatch, tmp_path):
    import engine.importers.readers as readers
    import engine.importers.steps as steps

    monkeypatch.setattr(steps, "SPILL_ROWS", 3)
    monkeypatch.setattr(readers, "BATCH_BYTES", 64)
    objects = [{"prompt": f"p{i % 2}", "response": f"r{i}", "reward": i, "step": i % 3} for i in range(30)]
    result = import_run("jsonl", _jsonl(tmp_path / "r.jsonl", objects), runs_dir=tmp_path / "runs")
    rows = _rows(Path(result.run_dir))
    assert sorted(rows["reward"]) == list(range(30)) and result.steps == 3
    assert (
        rows.groupby(["step", "prompt_id"])["sample_idx"]
        .apply(lambda s: sorted(s) == list(range(len(s))))
        .all()
    )


def test_bad_mapping_syntax():
    with pytest.raises(ConfigError, match="FIELD=COLUMN"):
        parse_mapping(["reward"])
    with pytest.raises(ConfigError, match="unknown field 'rewrd'"):
        parse_mapping(["rewrd=score"])
