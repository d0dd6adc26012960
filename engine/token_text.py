"""Generated ids back to text, as a person reads them: each token's own text (the store's ``tokens``,
the lab's chips, imported signals) and whole responses (what the judge and a reward model read)."""

from __future__ import annotations

import torch


def token_texts(tokenizer, ids: list[int]) -> list[str]:
    """Each token as the text it stands for (``tokenizer.decode`` of that token alone), what a person
    reads: a byte-level BPE piece such as SmolLM2's ``Ġthe`` is `` the``, where ``convert_ids_to_tokens``
    would give the raw piece. (A token holding part of a multi-byte character reads as U+FFFD.) The lab,
    the store's ``tokens`` and imported signals all use this one rule. Each distinct id is decoded once."""
    distinct = sorted(set(ids))
    text = dict(zip(distinct, tokenizer.batch_decode([[i] for i in distinct]), strict=True))
    return [text[i] for i in ids]


def decode_tokens(tokenizer, ids: torch.Tensor, mask: torch.Tensor) -> list[list[str]]:
    """Per-row token texts (:func:`token_texts`) of the real (masked-in) positions, (B, T) -> B lists."""
    rows = [
        [t for t, k in zip(row, keep, strict=True) if k]
        for row, keep in zip(ids.tolist(), mask.tolist(), strict=True)
    ]
    flat = token_texts(tokenizer, [t for row in rows for t in row])  # one decode per distinct id of the batch
    out, start = [], 0
    for row in rows:
        out.append(flat[start : start + len(row)])
        start += len(row)
    return out


def decode_responses(
    tokenizer, response_ids: torch.Tensor, response_mask: torch.Tensor, *, skip_special: bool = False
) -> list[str]:
    """Response texts of the real tokens, padding dropped: (B, T) -> B strings.

    By default EOS is kept: the gold judge reads it (a response that stopped itself ends with it).
    ``skip_special`` drops every special token (text for a reward model with another vocabulary).
    """
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id != tokenizer.eos_token_id else None
    rows = []
    for ids, keep in zip(response_ids.tolist(), response_mask.tolist(), strict=True):
        real = [t for t, k in zip(ids, keep, strict=True) if k and t != pad]
        rows.append(
            tokenizer.decode(real, skip_special_tokens=skip_special, clean_up_tokenization_spaces=False)
        )
    return rows
