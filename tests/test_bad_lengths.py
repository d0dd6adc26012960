"""Texts and lengths past a model's context are a ConfigError naming the limit, never an IndexError.

Tiny models only (context 64: GPT-2 ``n_positions``, Llama ``max_position_embeddings``); no world.
"""

from __future__ import annotations

import pytest
import torch
from tiny_models import make_gpt2, make_tokenizer

from engine.cli import main
from engine.config import ConfigError, SamplingConfig
from engine.lab import SamplingLab
from engine.models import LoadedModel, load_causal_lm
from engine.ppo.logprob_eval import response_logprobs
from engine.reward import PooledRewardModel, score_texts
from engine.sampling import check_fits_context, context_limit, generate_from_texts, generate_text

CONTEXT = 64
FITS = " ".join(["w1"] * 40)  # 40 tokens
TOO_LONG = " ".join(["w1"] * (CONTEXT + 6))


def test_check_names_the_limit_the_prompt_and_max_new_tokens():
    config = make_gpt2(44).config
    assert context_limit(config) == (CONTEXT, "n_positions")
    check_fits_context(config, 40, 24)  # exactly the context
    with pytest.raises(ConfigError, match=r"40 tokens \+ max_new_tokens 25 = 65 .*64 \(n_positions\).*24"):
        check_fits_context(config, 40, 25)
    with pytest.raises(ConfigError, match=r"prompt of 70 tokens .*64 positions \(n_positions\)"):
        check_fits_context(config, 70, 1)
    with pytest.raises(ConfigError, match=r"text of 65 tokens exceeds .*64 positions"):
        check_fits_context(config, 65, 0)
    check_fits_context(object(), 10_000, 10_000)  # a config without a limit: nothing to check


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_generation_past_the_context(arch, tiny_gpt2_dir, tiny_llama_dir):
    loaded = load_causal_lm(str(tiny_gpt2_dir if arch == "gpt2" else tiny_llama_dir), device="cpu")
    field = "n_positions" if arch == "gpt2" else "max_position_embeddings"
    fixed = SamplingConfig(max_new_tokens=CONTEXT - 40, stop_at_eos=False)
    gen = generate_text(loaded, [FITS, "w2"], fixed)  # a left-padded batch filling the context exactly
    assert gen.response_ids.shape == (2, CONTEXT - 40)
    with pytest.raises(ConfigError, match=rf"prompt of 70 tokens .*\({field}\)"):
        generate_text(loaded, [TOO_LONG], SamplingConfig(max_new_tokens=4))
    too_many = SamplingConfig(max_new_tokens=CONTEXT - 39, stop_at_eos=False)
    with pytest.raises(ConfigError, match=rf"max_new_tokens {CONTEXT - 39} .*\({field}\)"):
        generate_from_texts(loaded, [FITS, "w2"], too_many, torch.Generator().manual_seed(0))


def test_sample_command(tiny_gpt2_dir, capsys):
    args = ["sample", "--model", str(tiny_gpt2_dir), "-n", "1"]
    assert main([*args, "--prompt", TOO_LONG]) == 2
    assert "n_positions" in capsys.readouterr().err
    assert main([*args, "--prompt", FITS, "--max-new-tokens", "60"]) == 2
    assert "max_new_tokens 60" in capsys.readouterr().err


def test_lab(tiny_gpt2_dir):
    lab = SamplingLab(world=None)
    with pytest.raises(ConfigError, match="n_positions"):
        lab.sample(str(tiny_gpt2_dir), [TOO_LONG], SamplingConfig(max_new_tokens=4), n_samples=2, seed=0)


def test_reward_model_scoring():
    tok = make_tokenizer()
    body = make_gpt2(len(tok)).transformer
    rm = LoadedModel(model=PooledRewardModel(body, 32).eval(), tokenizer=tok, source="tiny-rm", path=None)
    assert score_texts(rm, [FITS], [" ".join(["w2"] * 24)]).shape == (1,)
    with pytest.raises(ConfigError, match=r"text of 65 tokens exceeds .*64 positions \(n_positions\)"):
        score_texts(rm, [FITS], [" ".join(["w2"] * 25)])


def test_logprob_eval(tiny_gpt2_dir):
    loaded = load_causal_lm(str(tiny_gpt2_dir), device="cpu")
    fits = response_logprobs(loaded.model, loaded.tokenizer, [FITS, "w2"], ["w3 " * 24, "w3 " * 30])
    assert fits.shape == (2,)
    with pytest.raises(ConfigError, match=r"40 tokens \+ max_new_tokens 25 .*\(n_positions\)"):
        response_logprobs(loaded.model, loaded.tokenizer, [FITS, "w2"], ["w3 " * 25, "w3"])
