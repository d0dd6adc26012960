"""``python -m engine bench sampling``: the sampling lab's hot path against plain ``model.generate``.

Contract: on the world's default SFT checkpoint, 16 samples x 32 new tokens for one prompt, prints
{"generate_and_signals_ms": p50 of generate() + all five signals, "plain_generate_ms": p50 of a plain
transformers generate with the same settings in the same run, "overhead_ratio": first / second,
"resignal_ms": p50 of re-scoring the cached samples under new settings}. The two generators are timed
alternately so that load from other processes on a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=None, help="model source (default: the world's default SFT checkpoint)"
    )
    parser.add_argument("--prompt", default=None, help="prompt (default: the world's first PPO prompt)")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=15, help="timed repetitions of each measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def _default_model() -> tuple[str, str, str | None]:
    """(model source, prompt, note): the world's default SFT checkpoint (the protocol's model)."""
    from engine.world import load_world

    world = load_world()  # ConfigError with the build command when the world is missing
    return world.policy_source(), world.prompts("ppo")[0].text, None


def main(args: argparse.Namespace) -> int:
    import torch

    from engine.config import SamplingConfig
    from engine.lab import threads_for
    from engine.models import load_causal_lm, set_threads_from_env
    from engine.sampling import encode_prompts, generate_encoded

    set_threads_from_env()
    if args.model:
        source, prompt, note = args.model, args.prompt or "Hello", None
    else:
        source, prompt, note = _default_model()
        prompt = args.prompt or prompt
    loaded = load_causal_lm(source)
    tok, model = loaded.tokenizer, loaded.model
    config = SamplingConfig(
        temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=args.new_tokens, stop_at_eos=False
    )
    new_settings = SamplingConfig(temperature=0.7, top_k=20, top_p=0.9, max_new_tokens=args.new_tokens)
    ids, mask = encode_prompts(tok, [prompt] * args.samples, loaded.device)
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

    # Both generators under the lab's thread policy (one thread for small CPU models).
    with threads_for(model) as threads:
        for _ in range(2):  # warm-up: allocator, kernels, lazy imports
            cached = ours()
            plain()
        ours_ms, plain_ms, resignal_ms = [], [], []
        for _ in range(args.repeats):
            ours_ms.append(_ms(ours))
            plain_ms.append(_ms(plain))
            resignal_ms.append(_ms(lambda: cached.signals(new_settings)))
    result = {
        "generate_and_signals_ms": round(statistics.median(ours_ms), 2),
        "plain_generate_ms": round(statistics.median(plain_ms), 2),
        "overhead_ratio": round(statistics.median(ours_ms) / statistics.median(plain_ms), 3),
        "resignal_ms": round(statistics.median(resignal_ms), 2),
        "model": source,
        "samples": args.samples,
        "new_tokens": args.new_tokens,
        "vocab_size": int(cached.logits.shape[-1]),
        "repeats": args.repeats,
        "threads": threads,
        "device": str(loaded.device),
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
