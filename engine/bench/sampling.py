"""``python -m engine bench sampling``: the sampling lab's hot path against plain ``model.generate``.

Contract: on the world's default SFT checkpoint, 16 samples x 32 new tokens for one prompt, prints
{"generate_and_signals_ms": p50 of generate() + all five signals, "plain_generate_ms": p50 of a plain
transformers generate with the same settings in the same run, "overhead_ratio": first / second,
"resignal_ms": p50 of re-scoring the cached samples under new settings}. The two generators are timed
alternately so that load from other processes on a shared machine hits both alike.

``--model smollm2`` (SmolLM2-135M-Instruct, its Q4_1 GGUF release dequantised): the same 16 samples x 32
new tokens of one prompt ("What is 7 + 5?" by default), read as a user turn of the model's chat template
as the lab reads it (38 tokens), 3 repeats by default (each one ~10 s of 2 cores); the lab's thread
policy unless ``--threads`` says otherwise. Besides wall-clock milliseconds the JSON has the process's
CPU seconds per measurement (less moved by other work on a shared machine), the CPU kind, the thread
count and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

REPEATS_SMALL, REPEATS_LARGE = 15, 3
CHAT_PROMPT = "What is 7 + 5?"  # the default prompt of a chat model (one with a chat template)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=None, help="model source (default: the world's default SFT checkpoint)"
    )
    parser.add_argument("--prompt", default=None, help="prompt (default: the world's first PPO prompt)")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"timed repetitions of each measurement (default: {REPEATS_SMALL} for a model under 30M "
        f"parameters, else {REPEATS_LARGE})",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: the lab's policy for the model)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall-clock ms, this process's CPU seconds) of one call."""
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - start) * 1000, time.process_time() - start_cpu


def _default_model() -> tuple[str, str, str | None]:
    """(model source, prompt, note): the world's default SFT checkpoint (the protocol's model)."""
    from engine.world import load_world

    world = load_world()  # ConfigError with the build command when the world is missing
    return world.policy_source(), world.prompts("ppo")[0].text, None


def main(args: argparse.Namespace) -> int:
    import torch

    from engine.bench.grpo import cpu_model
    from engine.config import ConfigError, SamplingConfig
    from engine.models import load_causal_lm, set_threads_from_env
    from engine.models.gguf_cache import describe_source
    from engine.models.precision import cpu_kind
    from engine.models.threads import SMALL_MODEL_PARAMS, threads_for
    from engine.sampling import chat_prompts, encode_prompts, generate_encoded

    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    set_threads_from_env()
    if args.model:
        source, prompt, note = args.model, args.prompt, None
    else:
        source, prompt, note = _default_model()
        prompt = args.prompt or prompt
    loaded = load_causal_lm(source)
    tok, model = loaded.tokenizer, loaded.model
    prompt = prompt or (CHAT_PROMPT if getattr(tok, "chat_template", None) else "Hello")
    small = sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS
    repeats = args.repeats or (REPEATS_SMALL if small else REPEATS_LARGE)
    config = SamplingConfig(
        temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=args.new_tokens, stop_at_eos=False
    )
    new_settings = SamplingConfig(temperature=0.7, top_k=20, top_p=0.9, max_new_tokens=args.new_tokens)
    # As the lab samples: a chat model reads the prompt as a user turn of its template.
    ids, mask = encode_prompts(tok, chat_prompts(tok, [prompt] * args.samples), loaded.device)
    generator = torch.Generator(device=loaded.device)

    def ours():
        gen = generate_encoded(loaded, ids, mask, config, generator)
        gen.signals()
        return gen

    @torch.no_grad()
    def plain():
        # Same distribution (T=1, no top-k / top-p) and length; no EOS stop, like stop_at_eos=False.
        return model.generate(
            input_ids=ids,
            attention_mask=mask.long(),
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=args.new_tokens,
            min_new_tokens=args.new_tokens,
            pad_token_id=tok.pad_token_id,
        )

    load = {"before": os.getloadavg()}
    # Both generators under the lab's thread policy (one thread for small CPU models), or --threads.
    with threads_for(model) as threads:
        if args.threads:
            torch.set_num_threads(threads := args.threads)
        for _ in range(1 if not small else 2):  # warm-up: allocator, kernels, lazy imports
            cached = ours()
            plain()
        ours_t, plain_t, resignal_t = [], [], []
        for _ in range(repeats):
            ours_t.append(_timed(ours))
            plain_t.append(_timed(plain))
            resignal_t.append(_timed(lambda: cached.signals(new_settings)))
    load["after"] = os.getloadavg()

    def p50(times: list[tuple[float, float]], which: int) -> float:
        return statistics.median(t[which] for t in times)

    result = {
        "generate_and_signals_ms": round(p50(ours_t, 0), 2),
        "plain_generate_ms": round(p50(plain_t, 0), 2),
        "overhead_ratio": round(p50(ours_t, 0) / p50(plain_t, 0), 3),
        "resignal_ms": round(p50(resignal_t, 0), 2),
        "generate_and_signals_cpu_s": round(p50(ours_t, 1), 3),
        "plain_generate_cpu_s": round(p50(plain_t, 1), 3),
        "cpu_seconds_ratio": round(p50(ours_t, 1) / p50(plain_t, 1), 3),
        "model": source,
        "model_description": describe_source(source),
        "prompt": prompt,
        "prompt_tokens": int(mask.sum(-1).max()),
        "samples": args.samples,
        "new_tokens": args.new_tokens,
        "vocab_size": int(cached.logits.shape[-1]),
        "repeats": repeats,
        "threads": threads,
        "device": str(loaded.device),
        "cpu": {"kind": cpu_kind(), "model": cpu_model(), "cpus": os.cpu_count()},
        "load_average": load,
    }
    if note:
        result["note"] = note
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0
