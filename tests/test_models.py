"""Model loading, LoRA + reference mode, value head, and clear errors on bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from engine.config import ConfigError, SamplingConfig, validate_prompt
from engine.models import (
    ValueHead,
    attach_lora,
    filler_token_ids,
    hidden_size,
    load_causal_lm,
    reference_mode,
)
from engine.paths import REPO_ROOT
from engine.reward import load_reward_model


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_load_by_local_path(arch, tiny_gpt2_dir, tiny_llama_dir):
    path = tiny_gpt2_dir if arch == "gpt2" else tiny_llama_dir
    loaded = load_causal_lm(str(path), device="cpu")
    assert loaded.path == path and loaded.source == str(path)
    assert not loaded.model.training
    assert loaded.tokenizer.pad_token_id is not None
    ids = torch.tensor([loaded.tokenizer("w1 w2 w3")["input_ids"]])
    logits = loaded.model(input_ids=ids).logits
    assert logits.shape == (1, 3, len(loaded.tokenizer))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_filler_tokens_are_never_sampled(arch, tiny_gpt2_dir, tiny_llama_dir):
    """[PAD], [BOS] and [UNK] get logit -inf in every forward (sampling, training, reference, LoRA
    attached or not); EOS and every other token keep the model's own logits."""
    from engine.sampling import generate

    path = tiny_gpt2_dir if arch == "gpt2" else tiny_llama_dir
    plain = load_causal_lm(str(path), device="cpu", suppress_fillers=False)
    loaded = load_causal_lm(str(path), device="cpu")
    tok = loaded.tokenizer
    fillers = filler_token_ids(loaded.model, tok)
    assert fillers == sorted([tok.pad_token_id, tok.bos_token_id, tok.unk_token_id])
    assert tok.eos_token_id not in fillers
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        raw = plain.model(input_ids=ids).logits  # (1, 4, V)
        masked = loaded.model(input_ids=ids).logits
        assert torch.isneginf(masked[..., fillers]).all()
        others = [i for i in range(raw.shape[-1]) if i not in fillers]
        assert torch.equal(masked[..., others], raw[..., others])
        model = attach_lora(loaded.model, r=4)
        assert torch.isneginf(model(input_ids=ids).logits[..., fillers]).all()
        with reference_mode(model) as ref:
            assert torch.isneginf(ref(input_ids=ids).logits[..., fillers]).all()
    gen = generate(
        model, ids.repeat(64, 1), torch.ones(64, 4, dtype=torch.bool), SamplingConfig(max_new_tokens=16),
        eos_token_id=None, pad_token_id=tok.pad_token_id, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert not set(gen.response_ids[gen.response_mask].tolist()) & set(fillers)


def test_filler_tokens_exclude_every_configured_eos(tiny_gpt2_dir):
    """A chat model whose generation config stops on its pad token too (Qwen2.5-Instruct's
    <|endoftext|>) keeps that token sampleable."""
    loaded = load_causal_lm(str(tiny_gpt2_dir), device="cpu", suppress_fillers=False)
    tok = loaded.tokenizer
    loaded.model.generation_config.eos_token_id = [tok.eos_token_id, tok.pad_token_id]
    assert filler_token_ids(loaded.model, tok) == sorted([tok.bos_token_id, tok.unk_token_id])


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_lora_reference_mode_gives_base_logits(arch, tiny_gpt2_dir, tiny_llama_dir):
    path = tiny_gpt2_dir if arch == "gpt2" else tiny_llama_dir
    loaded = load_causal_lm(str(path), device="cpu")
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        base = loaded.model(input_ids=ids).logits
        model = attach_lora(loaded.model, r=4)
        for name, param in model.named_parameters():  # LoRA's B starts at 0: move it off the base
            if "lora_B" in name:
                param.data.normal_(std=0.5)
        adapted = model(input_ids=ids).logits
        with reference_mode(model) as ref:
            reference = ref(input_ids=ids).logits
    assert not torch.allclose(adapted, base, atol=1e-4)
    assert torch.allclose(reference, base, atol=1e-6)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_adapter_dir_loads_base_plus_adapter(tiny_gpt2_dir, tmp_path):
    loaded = load_causal_lm(str(tiny_gpt2_dir), device="cpu")
    model = attach_lora(loaded.model, r=4)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(std=0.5)
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    model.save_pretrained(tmp_path / "step-3")
    reloaded = load_causal_lm(str(tmp_path / "step-3"), device="cpu")
    with torch.no_grad():
        assert torch.allclose(reloaded.model(input_ids=ids).logits, expected, atol=1e-5)


def test_value_head_shapes(tiny_llama_dir):
    loaded = load_causal_lm(str(tiny_llama_dir), device="cpu")
    head = ValueHead(hidden_size(loaded.model))
    out = loaded.model(input_ids=torch.tensor([[5, 6, 7], [8, 9, 10]]), output_hidden_states=True)
    values = head(out.hidden_states[-1])
    assert values.shape == (2, 3) and values.dtype == torch.float32


def test_missing_path_is_a_config_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="nope"):
        load_causal_lm(str(missing), device="cpu")


def test_dir_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ConfigError, match="no config.json"):
        load_causal_lm(str(tmp_path), device="cpu")


def test_hf_name_not_in_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ConfigError, match="some-org/no-such-model-xyz"):
        load_causal_lm("some-org/no-such-model-xyz", device="cpu")


def test_name_not_on_this_machine_fails_without_asking_the_hub(monkeypatch):
    """A hub name that is not cached fails at once with one message: no request leaves the machine
    (without a network each one costs retries), whatever HF_HUB_OFFLINE says."""
    import socket

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    asked: list[object] = []

    def no_network(*args, **kwargs):
        asked.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    for load in (load_causal_lm, load_reward_model):
        with pytest.raises(ConfigError, match="'some-org/no-such-model-xyz' is not on this machine"):
            load("some-org/no-such-model-xyz", device="cpu")
    assert asked == []


def test_missing_world_checkpoint_names_the_build_command(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="world build"):
        load_causal_lm("world:sft-epoch-99", device="cpu")


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"temperature": -0.5}, "-0.5"),
        ({"temperature": float("nan")}, "nan"),
        ({"top_p": 0.0}, "0.0"),
        ({"top_p": 1.5}, "1.5"),
        ({"top_k": -1}, "-1"),
        ({"top_k": 2.5}, "2.5"),
        ({"max_new_tokens": 0}, "0"),
    ],
)
def test_invalid_sampling_config_names_the_value(kwargs, bad):
    field = next(iter(kwargs))
    with pytest.raises(ConfigError, match=rf"{field}.*{bad}"):
        SamplingConfig(**kwargs)


def test_greedy_is_valid():
    assert SamplingConfig(temperature=0).greedy


def test_empty_prompt():
    with pytest.raises(ConfigError, match="empty"):
        validate_prompt("   ")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", "sample", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--top-p", "1.5"], "top_p must be in (0, 1], got 1.5"),
        (["--top-k", "-3"], "top_k must be an integer >= 0 (0 = no top-k), got -3"),
        (["--temperature", "-1"], "temperature must be a finite number >= 0"),
    ],
)
def test_cli_rejects_bad_settings_with_exit_code_2(args, message, tiny_gpt2_dir):
    result = _cli("--model", str(tiny_gpt2_dir), "--prompt", "w1 w2", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_cli_bad_model_and_empty_prompt(tiny_gpt2_dir, tmp_path):
    result = _cli("--model", str(tmp_path / "missing"), "--prompt", "w1")
    assert result.returncode == 2 and "missing" in result.stderr
    result = _cli("--model", str(tiny_gpt2_dir), "--prompt", "  ")
    assert result.returncode == 2 and "prompt is empty" in result.stderr


def test_cli_model_not_on_this_machine_is_one_error_line():
    """Without a network the hub once answered with 30 s of retry warnings before the error."""
    result = _cli("--model", "some-org/no-such-model-xyz", "--prompt", "w1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: model 'some-org/no-such-model-xyz' is not on this machine: not a local directory, and not "
        "in the Hugging Face cache (nothing is downloaded: give a local path, or put the model in the "
        "cache first)"
    ]


def test_cli_samples_json_and_greedy(tiny_gpt2_dir):
    import json

    result = _cli(
        "--model", str(tiny_gpt2_dir), "--prompt", "w1 w2", "--temperature", "0", "-n", "2", "--json"
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["settings"]["greedy"] is True
    assert len(out["samples"]) == 2 and out["samples"][0]["tokens"] == out["samples"][1]["tokens"]
    assert set(out["summary"]) == {"entropy", "sampling_entropy", "max_prob", "sampled_prob", "n_candidates"}
    assert all(n == 1 for n in out["samples"][0]["signals"]["n_candidates"])


def test_a_checkpoint_made_in_another_clone_loads_the_world_base_of_this_one(tmp_path):
    """PEFT records its base's absolute path: a shipped demo checkpoint names the world of the machine
    that built it. Moved with the clone, it loads this clone's world model of that name."""
    import json
    import shutil

    from engine.models.loading import _adapter_base
    from engine.paths import demo_runs_dir, world_dir

    shipped = demo_runs_dir() / "demo-late-epoch" / "checkpoints"
    checkpoint = tmp_path / "step"
    shutil.copytree(next(p for p in sorted(shipped.iterdir()) if p.is_dir()), checkpoint)
    config_path = checkpoint / "adapter_config.json"
    config = json.loads(config_path.read_text())
    epoch = config["base_model_name_or_path"].rsplit("/", 1)[-1]
    config["base_model_name_or_path"] = f"/a/clone/elsewhere/data/world/sft/{epoch}"
    config_path.write_text(json.dumps(config))

    assert _adapter_base(checkpoint) == world_dir() / "sft" / epoch
    assert load_causal_lm(str(checkpoint), device="cpu").model is not None

    config["base_model_name_or_path"] = "/a/clone/elsewhere/models/not-a-world-model"
    config_path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="not-a-world-model"):
        load_causal_lm(str(checkpoint), device="cpu")
