"""Tiny models that tests build and ``save_pretrained`` locally (no hub access)."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = [f"w{i}" for i in range(40)]
SPECIALS = ["[PAD]", "[BOS]", "[EOS]", "[UNK]"]


def make_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + WORDS)}
    core = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]", unk_token="[UNK]"
    )


def make_gpt2(vocab_size: int, seed: int = 0, n_layer: int = 2, n_embd: int = 32):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=64,
        n_layer=n_layer,
        n_head=2,
        n_embd=n_embd,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return GPT2LMHeadModel(config).eval()


def make_llama(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


def save_tiny(path: Path, arch: str = "gpt2", seed: int = 0) -> Path:
    tok = make_tokenizer()
    model = make_gpt2(len(tok), seed) if arch == "gpt2" else make_llama(len(tok), seed)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path
