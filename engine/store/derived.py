"""Per-row values derived from the per-token lists when rollouts are written (vectorised numpy).

They are stored as columns so that queries over millions of rows never unnest the lists:
``mean_entropy`` (density of the sampling space) and ``repeat_share`` (the repetition detector).
``prompt_collapsed`` spares the entropy-collapse detector a group-by over every response text.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REPEAT_NGRAM = 3
# Bound the padded (rows, positions) matrix of one chunk so a few very long responses cannot blow memory.
_MAX_CELLS = 1 << 22


def list_means(lists: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Mean of each list as float32 (null for an empty or null list)."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    flat = pc.fill_null(pc.list_flatten(lists), 0).to_numpy(zero_copy_only=False).astype(np.float64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    # reduceat needs every start < len(flat): trailing empty lists start at len(flat), so pad one 0
    # (their sums are masked below anyway).
    sums = np.add.reduceat(np.append(flat, 0.0), starts) if len(flat) else np.zeros(len(lengths))
    sums = np.where(lengths > 0, sums, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (sums / lengths).astype(np.float32)
    return pa.array(means, type=pa.float32(), mask=lengths == 0)


def _token_codes(lists: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(flat non-negative int64 codes, offsets) of a list<int> or list<string> array; strings get
    their index in a dictionary of the batch's tokens, so equal tokens get equal codes."""
    flat = pc.list_flatten(lists)
    if pa.types.is_string(flat.type) or pa.types.is_large_string(flat.type):
        codes = pc.fill_null(pc.dictionary_encode(flat).indices, -1).to_numpy(zero_copy_only=False)
    else:
        codes = pc.fill_null(flat, -1).to_numpy(zero_copy_only=False)
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return codes.astype(np.int64) + 1, offsets  # +1: codes start at 0, nulls at 0


def _repeat_share_chunk(codes: np.ndarray, starts: np.ndarray, lengths: np.ndarray, n: int) -> np.ndarray:
    total = np.maximum(lengths - n + 1, 0)  # n-grams per row
    width = int(total.max(initial=0))
    if width == 0:
        return np.zeros(len(lengths), np.float32)
    col = np.arange(width)
    valid = col[None, :] < total[:, None]  # (B, W)
    pos = np.where(valid, starts[:, None] + col[None, :], 0)
    bits = 63 // n
    exact = codes.max(initial=0) < (1 << bits)
    gram = np.zeros(valid.shape, np.uint64)
    for k in range(n):
        part = codes[np.minimum(pos + k, len(codes) - 1)].astype(np.uint64)
        # exact bit packing when the codes fit, else a polynomial hash (collisions vanishingly rare)
        gram = (gram << np.uint64(bits)) | part if exact else gram * np.uint64(1_000_003) + part
    # Padding gets distinct sentinels above every real n-gram, so it never counts as a repeat.
    sentinel = np.iinfo(np.uint64).max - col.astype(np.uint64)
    gram = np.where(valid, gram, sentinel[None, :])
    gram.sort(axis=1)
    distinct = 1 + np.count_nonzero(gram[:, 1:] != gram[:, :-1], axis=1) - (width - total)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 1.0 - distinct / total, 0.0).astype(np.float32)


def repeat_shares(lists: pa.Array | pa.ChunkedArray, n: int = REPEAT_NGRAM) -> pa.Array:
    """Share of each response's token n-grams that repeat an n-gram seen earlier in it
    (1 - distinct / total; 0 when shorter than n; null for a null list).

    Naive equivalent: ``g = [tuple(t[i:i+n]) for i in range(len(t)-n+1)]; 1 - len(set(g)) / len(g)``.
    """
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    codes, offsets = _token_codes(lists)
    lengths = np.diff(offsets)
    out = np.zeros(len(lengths), np.float32)
    rows_per_chunk = max(1, _MAX_CELLS // max(int(lengths.max(initial=1)), 1))
    for lo in range(0, len(lengths), rows_per_chunk):
        hi = lo + rows_per_chunk
        out[lo:hi] = _repeat_share_chunk(codes, offsets[:-1][lo:hi], lengths[lo:hi], n)
    return pa.array(out, type=pa.float32(), mask=lists.is_null().to_numpy(zero_copy_only=False))


def _codes(values: pa.Array | pa.ChunkedArray, nulls_too: bool) -> np.ndarray:
    """Dense int64 codes, equal for equal values; nulls get their own code or -1."""
    encoded = pc.dictionary_encode(values, null_encoding="encode" if nulls_too else "mask")
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def prompt_collapsed(run_ids: pa.Array, prompt_ids: pa.Array, responses: pa.Array) -> pa.Array:
    """Per row: do all samples of its (run_id, prompt_id) in this batch (at least 2) share one response?

    Null responses are ignored like SQL's min/max ignore them (a group of only nulls is not collapsed).
    The writer gets one step at a time, so the batch's groups are the (run, step, prompt) groups.
    """
    run_codes, prompt_codes = _codes(run_ids, True), _codes(prompt_ids, True)
    _, group = np.unique(
        run_codes * (int(prompt_codes.max(initial=0)) + 1) + prompt_codes, return_inverse=True
    )
    group = group.reshape(-1)
    response = _codes(responses, False)
    n_groups = int(group.max(initial=-1)) + 1
    present = response >= 0
    lo = np.full(n_groups, np.iinfo(np.int64).max)
    hi = np.full(n_groups, -1, np.int64)
    np.minimum.at(lo, group[present], response[present])
    np.maximum.at(hi, group[present], response[present])
    collapsed = (np.bincount(group, minlength=n_groups) >= 2) & (lo == hi)
    return pa.array(collapsed[group], type=pa.bool_())
