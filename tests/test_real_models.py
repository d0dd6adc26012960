"""Real Hugging Face models end to end (no built-in world): a tiny GPT-2 and a tiny Llama policy saved
locally, a sequence-classifier RM of another vocabulary (decoded and re-tokenised), prompts from JSONL
with a family column, the Llama tokenizer with a chat template; no judge, so no gold."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import torch

from engine.config import ConfigError
from engine.ppo.build import read_prompts_file
from engine.ppo.config import ModelConfig, PPOConfig, PPOHyperConfig, RunConfig
from engine.ppo.job import run_job
from tests.ppo_fixtures import one_thread  # noqa: F401 (fixture)
from tests.tiny_models import SPECIALS, save_tiny

CHAT_TEMPLATE = "{% for m in messages %}[BOS] {{ m['content'] }} [EOS] {% endfor %}{% if add_generation_prompt %}w39{% endif %}"


def save_other_vocab_rm(path: Path) -> Path:
    """A GPT-2 sequence classifier whose tokenizer maps the same words to other ids (and has more)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast

    words = [f"w{i}" for i in reversed(range(60))]
    core = Tokenizer(WordLevel(vocab={t: i for i, t in enumerate(SPECIALS + words)}, unk_token="[UNK]"))
    core.pre_tokenizer = WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]", unk_token="[UNK]"
    )
    torch.manual_seed(3)
    config = GPT2Config(
        vocab_size=len(tok), n_positions=64, n_layer=1, n_head=2, n_embd=16, num_labels=1, pad_token_id=0
    )
    GPT2ForSequenceClassification(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("real")
    llama = save_tiny(root / "llama", "llama")
    tok_config = json.loads((llama / "tokenizer_config.json").read_text())
    (llama / "tokenizer_config.json").write_text(json.dumps({**tok_config, "chat_template": CHAT_TEMPLATE}))
    prompts = root / "prompts.jsonl"
    records = [{"prompt": f"w{i} w{i + 1}", "family": ["math", "code", "chat"][i % 3]} for i in range(6)]
    prompts.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return {
        "gpt2": save_tiny(root / "gpt2", "gpt2"),
        "llama": llama,
        "rm": save_other_vocab_rm(root / "rm"),
        "prompts": prompts,
    }


def config_for(files: dict[str, Path], arch: str) -> PPOConfig:
    return PPOConfig(
        model=ModelConfig(policy=str(files[arch]), reward_model=str(files["rm"]), lora_r=4, lora_alpha=8),
        ppo=PPOHyperConfig(ppo_epochs=1, num_minibatches=2, learning_rate=1e-3),
        run=RunConfig(steps=2, prompts_per_step=3, samples_per_prompt=2, prompts_file=str(files["prompts"])),
    ).replace(max_new_tokens=6)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_real_model_run_end_to_end(tmp_path, files, arch):
    run_dir = tmp_path / "run"
    assert run_job(config_for(files, arch), run_dir, progress=False) == 0
    con = duckdb.connect()
    rows = con.sql(f"select * from read_parquet('{run_dir}/rollouts/*.parquet')").df()
    assert len(rows) == 2 * 6 and set(rows.prompt_family) <= {"math", "code", "chat"}
    assert rows.gold.isna().all() and rows.reward.notna().all() and (rows["rank"] == 0).all()
    assert set(rows.prompt) <= {f"w{i} w{i + 1}" for i in range(6)}  # the user's text, not the template
    keys = {
        k
        for (k,) in con.sql(
            f"select distinct key from read_parquet('{run_dir}/metrics/*.parquet')"
        ).fetchall()
    }
    assert "objective/reward" in keys and "objective/kl" in keys and "objective/gold" not in keys
    probes = con.sql(
        f"select distinct prompt_family from read_parquet('{run_dir}/probes/*.parquet')"
    ).fetchall()
    assert {f for (f,) in probes} == {"math", "code", "chat"}


def test_chat_template_wraps_prompts(files):
    from engine.models import load_tokenizer
    from engine.sampling import chat_prompts

    tok = load_tokenizer(files["llama"])
    assert chat_prompts(tok, ["w1 w2"]) == ["[BOS] w1 w2 [EOS] w39"]
    assert chat_prompts(tok, ["w1 w2"], enabled=False) == ["w1 w2"]
    assert chat_prompts(load_tokenizer(files["gpt2"]), ["w1 w2"]) == ["w1 w2"]  # no template


def test_the_lab_samples_a_chat_model_inside_its_chat_template(files):
    from engine.config import SamplingConfig
    from engine.lab import sample_batch
    from engine.models import load_causal_lm

    loaded = load_causal_lm(str(files["llama"]), device="cpu")
    batch = sample_batch(loaded, ["w1 w2"], SamplingConfig(max_new_tokens=3), n_samples=2, seed=0)
    gen = batch.generation
    read = loaded.tokenizer.batch_decode(
        gen.prompt_ids.masked_fill(~gen.prompt_mask, 0), skip_special_tokens=False
    )
    assert [text.replace("[PAD]", "").strip() for text in read] == ["[BOS] w1 w2 [EOS] w39"] * 2
    assert batch.prompts == ["w1 w2"]  # the batch keeps the user's text


def test_rm_of_another_vocabulary_scores_the_decoded_text(files):
    from engine.models import load_causal_lm
    from engine.reward import load_reward_model, same_vocabulary, score_responses, score_texts
    from engine.sampling import encode_prompts

    policy = load_causal_lm(str(files["gpt2"]), device="cpu")
    rm = load_reward_model(str(files["rm"]), device="cpu")
    assert not same_vocabulary(policy.tokenizer, rm.tokenizer)
    prompts, responses = ["w1 w2", "w3"], [["w5", "w6", "[EOS]"], ["w7"]]
    ids, mask = encode_prompts(policy.tokenizer, prompts, torch.device("cpu"))
    rows = [policy.tokenizer.convert_tokens_to_ids(r) for r in responses]
    response_ids = torch.tensor([rows[0], rows[1] + [0, 0]])
    response_mask = torch.tensor([[True] * 3, [True, False, False]])
    sequences = torch.cat([ids, response_ids], 1)
    scores = score_responses(
        policy.tokenizer, sequences, torch.cat([mask, response_mask], 1), response_ids, response_mask, prompts,
        reward=rm, judge=None,
    )  # fmt: skip
    expected = score_texts(rm, prompts, ["w5 w6", "w7"])  # EOS dropped, the RM's own ids
    assert torch.allclose(scores.reward, expected) and scores.gold is None


def test_prompts_files(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["a b", "c"], "tag": ["x", None], "id": [7, 8]}), tmp_path / "p.parquet")
    items = read_prompts_file(tmp_path / "p.parquet")
    assert [(p.prompt_id, p.family, p.text) for p in items] == [("7", "x", "a b"), ("8", "file", "c")]
    (tmp_path / "p.txt").write_text("one\n\ntwo\n")
    assert [p.text for p in read_prompts_file(tmp_path / "p.txt")] == ["one", "two"]
    for name, content, message in [
        ("bad.jsonl", '{"prompt": "a"}\nnot json\n', "line 2 is not JSON"),
        ("nocol.jsonl", '{"question": "a"}\n', "no prompt column"),
        ("dup.jsonl", '{"prompt": "a", "id": 1}\n{"prompt": "b", "id": 1}\n', "more than once"),
        ("empty.jsonl", "\n", "holds no prompts"),
        ("blank.jsonl", '{"prompt": " "}\n', "non-empty string"),
        ("broken.parquet", "not parquet", "cannot read"),
    ]:
        (tmp_path / name).write_text(content)
        with pytest.raises(ConfigError, match=message):
            read_prompts_file(tmp_path / name)
