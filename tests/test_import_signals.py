"""``import signals``: teacher-forced per-token signals of an imported run equal the sampling lab's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from engine.config import ConfigError, SamplingConfig
from engine.importers import import_run
from engine.importers.signals import MARKER, recompute_signals
from engine.models import load_causal_lm
from engine.sampling import token_signals

SIGNALS = ("entropy", "sampling_entropy", "max_prob", "sampled_prob", "n_candidates", "logprob")


def _imported_run(tmp_path: Path) -> Path:
    lines = [
        {"prompt": "w1 w2 w3", "response": "w4 w5", "reward": 1.0, "step": 0},
        {"prompt": "w1 w2 w3", "response": "w6 w7 w8 w9", "reward": 0.0, "step": 0},
        {"prompt": "w9", "response": "w10", "reward": 0.5, "step": 1},
        {"prompt": "", "response": "w11 w12", "reward": 0.2, "step": 1},
    ]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in lines))
    return Path(import_run("jsonl", path, runs_dir=tmp_path / "runs", run_id="r").run_dir)


def _reference(loaded, prompt: str, response: str, config: SamplingConfig) -> dict[str, np.ndarray]:
    """The sampling lab's signals for one unpadded text: one forward, logits at the response positions."""
    tok = loaded.tokenizer
    p = tok(prompt, add_special_tokens=False)["input_ids"] or [tok.bos_token_id]
    r = tok(response, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + r])
    logits = loaded.model(input_ids=ids).logits[:, len(p) - 1 : -1]  # (1, T, V)
    tokens = torch.tensor([r])
    signals = token_signals(logits, tokens, torch.ones_like(tokens, dtype=torch.bool), config)
    return {k: v[0].detach().numpy() for k, v in signals.as_dict().items()}


@pytest.mark.parametrize("sampling", [{}, {"temperature": 0.7, "top_k": 5, "top_p": 0.9}])
def test_signals_fill_every_list_and_match_the_lab(tmp_path, tiny_gpt2_dir, sampling):
    run_dir = _imported_run(tmp_path)
    result = recompute_signals(run_dir, str(tiny_gpt2_dir), batch_size=3, **sampling)
    assert result["rows"] == 4 and result["recomputed_steps"] == 2
    config = SamplingConfig(**sampling)
    # Imported text was sampled elsewhere and may hold [UNK]: it is scored with the fillers unmasked.
    loaded = load_causal_lm(str(tiny_gpt2_dir), device="cpu", suppress_fillers=False)
    for path in sorted((run_dir / "rollouts").glob("step-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            expected = _reference(loaded, row["prompt"], row["response"], config)
            assert len(row["tokens"]) == len(row["token_ids"]) == len(expected["entropy"]) > 0
            for name in SIGNALS:
                assert row[name] is not None and len(row[name]) == len(row["tokens"])
                np.testing.assert_allclose(row[name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name)
            assert row["mean_entropy"] == pytest.approx(float(np.mean(expected["entropy"])), rel=1e-4)


def test_signals_resume_from_the_marker(tmp_path, tiny_gpt2_dir, monkeypatch):
    import engine.importers.signals as signals

    run_dir = _imported_run(tmp_path)
    original = signals.step_with_signals
    calls = []

    def stop_after_first(table, *args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return original(table, *args, **kwargs)

    monkeypatch.setattr(signals, "step_with_signals", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        recompute_signals(run_dir, str(tiny_gpt2_dir))
    assert json.loads((run_dir / MARKER).read_text())["done_steps"] == [0]
    monkeypatch.setattr(signals, "step_with_signals", original)
    assert recompute_signals(run_dir, str(tiny_gpt2_dir))["recomputed_steps"] == 1  # only step 1 left
    assert not list((run_dir / "rollouts").glob(".*"))  # no temp files left


def test_pickle_only_model_is_refused(tmp_path, tiny_gpt2_dir):
    run_dir = _imported_run(tmp_path)
    model = tmp_path / "pickle-model"
    shutil.copytree(tiny_gpt2_dir, model)
    loaded = load_causal_lm(str(tiny_gpt2_dir), device="cpu")
    for f in model.glob("*.safetensors"):
        f.unlink()
    torch.save(loaded.model.state_dict(), model / "pytorch_model.bin")
    with pytest.raises(
        ConfigError, match=r"only pickle \.bin weights; unpickling can run arbitrary code.*--allow-pickle"
    ):
        recompute_signals(run_dir, str(model))
    assert recompute_signals(run_dir, str(model), allow_pickle=True)["rows"] == 4


def test_signals_cli_errors(tmp_path, monkeypatch, capsys):
    import engine.cli as cli

    assert cli.main(["import", "signals", "nope", "--model", "x", "--runs-dir", str(tmp_path)]) == 2
    assert "error: no run 'nope'" in capsys.readouterr().err
