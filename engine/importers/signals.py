"""Recompute the per-token signals of a stored run with a local causal LM (``import signals``).

Every stored (prompt, response) is teacher-forced through the model, batched, and
``engine.sampling.token_signals`` (the sampling lab's one definition) gives entropy,
sampling_entropy, max_prob, sampled_prob, n_candidates and logprob under the run's recorded
sampling settings (or the given ones). Prompt and response are tokenised apart, as they were
generated (like ``engine.reward.encode_texts``); a row that already carries the source's response
``token_ids`` (NeMo-RL, prime-rl) is forced with those ids, so its other per-token lists stay
aligned, and keeps the source's ``logprob`` (the sampling policy's own).

Resumable: ``<run>/signals.json`` records the model, the sampling settings and the finished
steps; each step file is replaced atomically (the store stays readable meanwhile).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from engine.config import ConfigError, SamplingConfig, to_dict
from engine.models import LoadedModel, backbone_and_head, load_causal_lm, load_tokenizer, resolve_source
from engine.ops import position_ids_of
from engine.runs.layout import ROLLOUTS_DIR, RUN_FILE
from engine.sampling import pad_right, token_signals
from engine.store.schema import step_files
from engine.store.writer import RunWriter, atomic_write_json
from engine.token_text import token_texts

log = logging.getLogger(__name__)

MARKER = "signals.json"
SIGNAL_COLUMNS = ("entropy", "sampling_entropy", "max_prob", "sampled_prob", "n_candidates")
# Recomputed from the new lists by the writer.
DERIVED = ("length", "mean_entropy", "repeat_share")


def run_dir_of(run: str, runs_dir: Path | None) -> Path:
    """A run id in ``runs_dir`` (default: the runs directory) or a run directory path."""
    from engine.paths import runs_dir as default_runs_dir

    candidate = Path(run).expanduser()
    run_dir = candidate if (candidate / RUN_FILE).is_file() else Path(runs_dir or default_runs_dir()) / run
    if not (run_dir / RUN_FILE).is_file():
        raise ConfigError(
            f"no run {run!r} (looked for {run_dir / RUN_FILE}); `python -m engine store ls` lists them"
        )
    return run_dir


def load_model(source: str, *, device: str | None, allow_pickle: bool) -> LoadedModel:
    """``load_causal_lm``, except that a local model with only pickle ``.bin`` weights is refused
    unless ``allow_pickle`` (then loaded from the pickle files)."""
    resolved = resolve_source(source)
    if isinstance(resolved, Path) and not any(resolved.glob("*.safetensors")) and any(resolved.glob("*.bin")):
        if not allow_pickle:
            raise ConfigError(
                f"{resolved} has only pickle .bin weights; unpickling can run arbitrary code from the file, "
                "so they are not loaded. Convert them to safetensors, or pass --allow-pickle if you trust the model"
            )
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(
            str(resolved), local_files_only=True, use_safetensors=False
        )
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
        return LoadedModel(model=model, tokenizer=load_tokenizer(resolved), source=source, path=resolved)
    # The run's tokens were sampled by another engine: score them under the model as it is.
    return load_causal_lm(source, device=device, suppress_fillers=False)


def run_sampling(
    first_step: pa.Table, temperature: float | None, top_k: int | None, top_p: float | None
) -> SamplingConfig:
    """The given settings, else the run's recorded ones (first row with a value), else the defaults."""

    def recorded(name: str) -> Any:
        values = pc.drop_null(first_step.column(name)) if name in first_step.column_names else []
        return values[0].as_py() if len(values) else None

    base = SamplingConfig()
    return SamplingConfig(
        temperature=float(
            next(v for v in (temperature, recorded("temperature"), base.temperature) if v is not None)
        ),
        top_k=int(next(v for v in (top_k, recorded("top_k"), base.top_k) if v is not None)),
        top_p=float(next(v for v in (top_p, recorded("top_p"), base.top_p) if v is not None)),
    )


@torch.no_grad()
def texts_signals(
    loaded: LoadedModel,
    prompts: list[str],
    responses: list[str],
    config: SamplingConfig,
    response_ids: list[list[int] | None] | None = None,
) -> tuple[list[list[int]], dict[str, list[np.ndarray]]]:
    """Per-row response token ids and the signal arrays (each (T_i,)) of one batch of texts."""
    tok, model = loaded.tokenizer, loaded.model
    device = loaded.device
    start_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    # An empty prompt gets the BOS token, so the first response token has a prediction.
    prompt_rows = [tok(p, add_special_tokens=False)["input_ids"] or [start_id] for p in prompts]
    given = response_ids or [None] * len(responses)
    response_rows = [
        list(ids) if ids is not None else tok(r, add_special_tokens=False)["input_ids"]
        for r, ids in zip(responses, given, strict=True)
    ]
    # Prompts left-padded (every response starts at column P), responses right-padded.
    flipped, flipped_mask = pad_right([row[::-1] for row in prompt_rows], tok.pad_token_id)
    prompt_ids, prompt_mask = flipped.flip(-1), flipped_mask.flip(-1)  # (B, P)
    ids, mask = pad_right([r or [tok.pad_token_id] for r in response_rows], tok.pad_token_id)  # (B, T)
    mask &= torch.tensor([bool(r) for r in response_rows])[:, None]
    sequences = torch.cat([prompt_ids, ids], 1).to(device)  # (B, P + T)
    attention = torch.cat([prompt_mask, mask], 1).to(device)
    body, head = backbone_and_head(model)
    inputs, att = sequences[:, :-1], attention[:, :-1]
    hidden = body(
        input_ids=inputs, attention_mask=att.long(), position_ids=position_ids_of(att)
    ).last_hidden_state
    h = hidden[:, prompt_ids.shape[1] - 1 :]  # (B, T, H): the state that predicts each response token
    signals = token_signals(head(h).float(), ids.to(device), mask.to(device), config).as_dict()
    lengths = [len(r) for r in response_rows]
    out = {name: [v[i, :n].cpu().numpy() for i, n in enumerate(lengths)] for name, v in signals.items()}
    return response_rows, out


def step_with_signals(
    table: pa.Table,
    loaded: LoadedModel,
    config: SamplingConfig,
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    """The columns of ``table`` with its per-token signals (and tokens / token_ids) filled; the
    derived columns are left out for the writer to recompute."""
    prompts = table.column("prompt").fill_null("").to_pylist()
    responses = table.column("response").fill_null("").to_pylist()
    source_ids = table.column("token_ids").to_pylist()
    token_ids: list[list[int]] = []
    columns: dict[str, list[np.ndarray]] = {}
    for start in range(0, table.num_rows, batch_size):
        end = start + batch_size
        rows, signals = texts_signals(
            loaded, prompts[start:end], responses[start:end], config, source_ids[start:end]
        )
        token_ids += rows
        for name, values in signals.items():
            columns.setdefault(name, []).extend(values)
        if progress is not None:
            progress(len(rows))
    tok = loaded.tokenizer
    kept_logprob = table.column("logprob")
    computed = pa.array([v.astype(np.float32) for v in columns["logprob"]], pa.list_(pa.float32()))
    kept = {name: table.column(name) for name in table.column_names if name not in DERIVED}
    return {
        **kept,
        "token_ids": [np.asarray(r, np.int32) for r in token_ids],
        "tokens": pa.array([token_texts(tok, r) for r in token_ids], pa.list_(pa.string())),
        **{name: columns[name] for name in SIGNAL_COLUMNS},
        "logprob": pc.if_else(pc.is_null(kept_logprob), computed, kept_logprob.cast(computed.type)),
    }


def recompute_signals(
    run_dir: Path,
    model: str,
    *,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    batch_size: int = 16,
    device: str | None = None,
    allow_pickle: bool = False,
    progress_factory: Callable[[int], Callable[[int], None]] | None = None,
) -> dict[str, Any]:
    """Fill the per-token signals of every step of ``run_dir``; resumes from ``signals.json``."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    files = step_files(Path(run_dir) / ROLLOUTS_DIR)
    if not files:
        raise ConfigError(f"{run_dir} has no rollout files to recompute signals for")
    config = run_sampling(pq.read_table(files[0][1]), temperature, top_k, top_p)
    settings = {"model": model, "sampling": to_dict(config)}
    marker_path = Path(run_dir) / MARKER
    marker = _read_marker(marker_path)
    done = set(marker.get("done_steps", [])) if {k: marker.get(k) for k in settings} == settings else set()
    todo = [(s, p) for s, p in files if s not in done]
    total = sum(pq.ParquetFile(p).metadata.num_rows for _, p in todo)
    loaded = load_model(model, device=device, allow_pickle=allow_pickle) if todo else None
    progress = progress_factory(total) if progress_factory and todo else None
    writer = RunWriter.open(Path(run_dir))
    for step, path in todo:
        table = pq.read_table(path)
        writer.write_rollouts(step, step_with_signals(table, loaded, config, batch_size, progress))
        done.add(step)
        atomic_write_json({**settings, "done_steps": sorted(done)}, marker_path)
        log.info("signals: step %d done (%d rows)", step, table.num_rows)
    rows = sum(pq.ParquetFile(p).metadata.num_rows for _, p in files)
    return {
        "run_dir": str(run_dir),
        "rows": rows,
        "steps": len(files),
        "recomputed_steps": len(todo),
        **settings,
    }


def _read_marker(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
