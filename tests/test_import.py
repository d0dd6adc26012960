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
    result = import_run("prime-rl", run, runs_dir=tmp_path / "runs", run_id="prime")
    assert result.rows == 4  # every branch is imported, matched or not
    rows = _rows(Path(result.run_dir)).set_index("response")
    np.testing.assert_allclose(rows.loc["ans 0", "entropy"], [1.5, 2.5])  # the one matched sequence
    assert rows.loc["ans 0", "rank"] == 1  # the rank its export names
    assert rows.drop(index="ans 0")["entropy"].isna().all()  # the others have no per-token entropy
    assert rows.drop(index="ans 0")["rank"].isna().all()


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
    spills = []
    original_spill = steps.StepBuffer.spill
    monkeypatch.setattr(steps.StepBuffer, "spill", lambda self: spills.append(1) or original_spill(self))
    objects = [{"prompt": f"p{i % 2}", "response": f"r{i}", "reward": i, "step": i % 3} for i in range(30)]
    result = import_run("jsonl", _jsonl(tmp_path / "r.jsonl", objects), runs_dir=tmp_path / "runs")
    rows = _rows(Path(result.run_dir))
    assert sorted(rows["reward"]) == list(range(30)) and result.steps == 3
    assert (
        rows.groupby(["step", "prompt_id"])["sample_idx"]
        .apply(lambda s: sorted(s) == list(range(len(s))))
        .all()
    )
    assert spills  # the rows really went through the spilled chunks


def test_bad_mapping_syntax():
    with pytest.raises(ConfigError, match="FIELD=COLUMN"):
        parse_mapping(["reward"])
    with pytest.raises(ConfigError, match="unknown field 'rewrd'"):
        parse_mapping(["rewrd=score"])


# ---- the formats' one home ---------------------------------------------------------------------


def test_formats_have_one_light_home():
    """The CLI's format sub-commands and their help come from engine.importers.formats, which (with
    the CLI's import command) loads no pyarrow, pandas or torch."""
    import subprocess
    import sys

    from engine.importers.formats import FORMAT_HELP, FORMATS

    parser = cli.build_parser()
    import_action = next(a for a in parser._subparsers._group_actions[0].choices["import"]._actions
                         if a.dest == "import_format")  # fmt: skip
    assert {n: p.description for n, p in import_action.choices.items() if n != "signals"} == FORMAT_HELP
    assert list(FORMATS) == list(FORMAT_HELP)
    code = (
        "import sys, engine.cli.import_run, engine.importers.formats; "
        "print(sorted(m for m in ('pyarrow', 'pandas', 'torch', 'duckdb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- faults of issue 22 ------------------------------------------------------------------------


def _trl_0291_run(out: Path, generations: int = 4, per_generation: int = 8) -> Path:
    """huggingface/trl v0.29.1 (54257ff) trl/trainer/grpo_trainer.py, with log_completions=True,
    logging_steps=1, steps_per_generation=2: ``_generate_and_score_completions`` extends the
    ``self._logs`` deques (``maxlen=generation_batch_size``) once per generation, every other step;
    ``log`` writes the whole deques at every step as completions_{global_step:05d}.parquet
    {step, prompt, completion, *rewards, advantage}; the Trainer's final log (train_runtime ...)
    at the last step writes the last file once more."""
    from collections import deque

    (out / "completions").mkdir(parents=True)
    logs = {k: deque(maxlen=per_generation) for k in ("prompt", "completion", "accuracy_reward", "advantage")}

    def log(step: int) -> None:
        table = {"step": [step] * len(logs["prompt"]), **{k: list(v) for k, v in logs.items()}}
        pd.DataFrame(table).to_parquet(out / "completions" / f"completions_{step:05d}.parquet")

    steps_per_generation = 2
    for step in range(1, generations * steps_per_generation + 1):
        if (step - 1) % steps_per_generation == 0:  # a new generation batch
            g = (step - 1) // steps_per_generation
            logs["prompt"].extend(f"question {g}-{i // 4}" for i in range(per_generation))
            logs["completion"].extend(f"answer {g}-{i}" for i in range(per_generation))
            logs["accuracy_reward"].extend(float(i % 2) for i in range(per_generation))
            logs["advantage"].extend(float(i % 2) - 0.5 for i in range(per_generation))
        log(step)
    log(generations * steps_per_generation)  # on_train_end's log: the same file again
    return out


def test_trl_repeated_generations_are_imported_once(tmp_path, capsys):
    out = _trl_0291_run(tmp_path / "trl-out")
    assert len(list((out / "completions").glob("*.parquet"))) == 8
    result = import_run("trl", out, runs_dir=tmp_path / "runs", run_id="trl")
    assert (result.rows, result.steps, result.prompts, result.repeated_files) == (32, 4, 8, 4)
    rows = _rows(Path(result.run_dir))
    assert sorted(rows["response"]) == sorted(
        f"answer {g}-{i}" for g in range(4) for i in range(8)
    )  # each generated completion once
    assert sorted(set(rows["step"])) == [1, 3, 5, 7]  # each generation at the step it was made
    assert any("4 of 8 files repeat" in w for w in result.warnings)

    args = ["import", "trl", str(out), "--runs-dir", str(tmp_path / "runs"), "--run-id", "trl-cli"]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert "imported 32 rows" in captured.out and "left out 4 repeated files" in captured.out
    assert "warning: 4 of 8 files repeat" in captured.err


def test_jsonl_fallback_reads_on_after_the_records_taken(tmp_path):
    """A 20 MB verl dump of 200 lines whose integer score turns into 0.5 after the first 16 MB:
    pyarrow's reader yields the first block, then fails; the rest is read line by line, once."""
    filler = "x" * 100_000  # ~100 kB per line: the first 16 MB block ends near line 167
    lines = [
        {"input": f"q{i % 4}", "output": f"{i} {filler}", "score": i % 2 if i < 180 else 0.5, "step": 1}
        for i in range(200)
    ]
    path = _jsonl(tmp_path / "dump" / "1.jsonl", lines)
    assert path.stat().st_size > 20e6
    result = import_run("verl", path, runs_dir=tmp_path / "runs", run_id="verl-big")
    assert result.rows == 200
    rows = _rows(Path(result.run_dir))
    index = rows["response"].str.split(" ", n=1).str[0].astype(int)
    assert sorted(index) == list(range(200))  # every line once
    expected = [i % 2 if i < 180 else 0.5 for i in index]
    np.testing.assert_array_equal(rows["reward"], expected)


def test_a_row_without_a_required_field_is_an_error_or_skipped(tmp_path, capsys):
    lines = [
        {"input": "q", "output": "a0", "score": 1.0, "step": 1},
        {"input": "q", "score": 0.0, "step": 1},  # no output: line 3 (line 2 is blank)
        {"input": "q", "output": "a2", "score": 1.0, "step": 1},
    ]
    path = tmp_path / "dump" / "1.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps(lines[0]) + "\n\n" + "".join(json.dumps(o) + "\n" for o in lines[1:]))
    with pytest.raises(ConfigError, match=r"1\.jsonl:3: no 'output' \(the response\).*--skip-bad-rows"):
        import_run("verl", path, runs_dir=tmp_path / "runs")
    result = import_run("verl", path, runs_dir=tmp_path / "runs", run_id="skipped", skip_bad_rows=True)
    assert (result.rows, result.skipped_rows) == (2, 1)
    assert sorted(_rows(Path(result.run_dir))["response"]) == ["a0", "a2"]
    assert any("left out 1 rows with no prompt or no response" in w for w in result.warnings)
    # the line-by-line reader (a field that changes type) names the line the same way
    mixed = _jsonl(tmp_path / "mixed" / "2.jsonl", [{**lines[0], "gts": "3"}, {**lines[1], "gts": ["3"]}])
    with pytest.raises(ConfigError, match=r"2\.jsonl:2: no 'output'"):
        import_run("verl", mixed, runs_dir=tmp_path / "runs")

    args = ["import", "verl", str(path), "--runs-dir", str(tmp_path / "runs")]
    assert cli.main([*args, "--run-id", "a"]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "1.jsonl:3: no 'output'" in err and "Traceback" not in err
    assert cli.main([*args, "--run-id", "b", "--skip-bad-rows"]) == 0
    assert "left out 1 bad rows" in capsys.readouterr().out


def test_non_finite_rewards_become_empty(tmp_path):
    rewards = [1.0, float("-inf"), float("inf"), float("nan"), 0.5]
    path = _jsonl(tmp_path / "r.jsonl", [{"prompt": "p", "response": f"r{i}", "reward": r}
                                         for i, r in enumerate(rewards)])  # fmt: skip
    assert "-Infinity" in path.read_text() and "NaN" in path.read_text()
    result = import_run("jsonl", path, runs_dir=tmp_path / "runs", run_id="nonfinite")
    assert result.non_finite_rewards == 3
    assert any("3 rewards were NaN or infinite" in w for w in result.warnings)
    reward = _rows(Path(result.run_dir)).set_index("response")["reward"]
    assert reward[["r0", "r4"]].tolist() == [1.0, 0.5]
    assert reward[["r1", "r2", "r3"]].isna().all()
    csv = tmp_path / "r.csv"
    csv.write_text("prompt,response,reward\np,a,inf\np,b,2\n")
    result = import_run("csv", csv, runs_dir=tmp_path / "runs", run_id="csv-inf")
    assert result.non_finite_rewards == 1
    assert _rows(Path(result.run_dir))["reward"].isna().tolist() == [True, False]


def test_lone_surrogate_becomes_a_replacement_character(tmp_path):
    """Half of a UTF-16 pair (an emoji cut at a token boundary) is valid JSON, not valid UTF-8."""
    objects = [{"prompt": "p", "response": "cut \ud83d here", "reward": 1.0, "note": "\udc00"},
               {"prompt": "p", "response": "whole \U0001f600", "reward": 0.0}]  # fmt: skip
    path = _jsonl(tmp_path / "r.jsonl", objects)
    assert "\\ud83d" in path.read_text()
    result = import_run("jsonl", path, runs_dir=tmp_path / "runs", run_id="surrogate")
    assert (result.rows, result.replaced_characters) == (2, 2)
    rows = _rows(Path(result.run_dir)).sort_values("reward", ascending=False)
    assert rows["response"].tolist() == ["cut \ufffd here", "whole \U0001f600"]
    assert json.loads(rows["extras"].iloc[0])["note"] == "\ufffd"
    assert any("2 lone surrogates" in w for w in result.warnings)
    table = tmp_path / "media" / "completions_3_abc123.table.json"
    table.parent.mkdir()
    table.write_text(
        json.dumps({"columns": ["query", "model response", "score"], "data": [["q", "a \ud800", 1.0]]})
    )
    result = import_run("wandb-table", table, runs_dir=tmp_path / "runs", run_id="surrogate-table")
    assert result.replaced_characters == 1
    assert _rows(Path(result.run_dir))["response"].tolist() == ["a \ufffd"]


def test_run_id_and_path_too_long_are_clear_errors(tmp_path, capsys):
    from engine.runs import check_run_id

    path = _jsonl(tmp_path / "r.jsonl", [{"prompt": "p", "response": "r", "reward": 1.0}])
    with pytest.raises(
        ConfigError, match=r"run id must be 1-100 characters, each a letter .*\(300 characters\)"
    ):
        import_run("jsonl", path, runs_dir=tmp_path / "runs", run_id="r" * 300)
    for bad in ("", "a b", ".hidden", "..", "x/y", "x\\y", "é", "r" * 101):
        with pytest.raises(ConfigError, match="run id must be"):
            check_run_id(bad)
    assert check_run_id("ppo-2026_v1.5") == "ppo-2026_v1.5"

    long_path = tmp_path / ("a" * 5000)
    with pytest.raises(ConfigError, match=r"cannot read .*\.\.\..*\(\d+ characters\): File name too long"):
        import_run("jsonl", long_path, runs_dir=tmp_path / "runs")
    with pytest.raises(ConfigError, match="a\x00b does not exist"):
        preview("jsonl", "a\x00b")  # the Import page's path field
    for argv in (["import", "jsonl", str(long_path)], ["import", "jsonl", str(path), "--run-id", "r" * 300]):
        assert cli.main([*argv, "--runs-dir", str(tmp_path / "runs")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err and len(err) < 400

    # a long source name gives a default run id within the limit
    long_name = _jsonl(tmp_path / f"{'n' * 200}.jsonl", [{"prompt": "p", "response": "r", "reward": 1.0}])
    result = import_run("jsonl", long_name, runs_dir=tmp_path / "runs")
    assert result.run_id == ("import-" + "n" * 200)[:100]
