"""``python -m engine sample``: sample responses and print them with their per-token signals."""

from __future__ import annotations

import argparse
import json
import sys

from engine.config import SamplingConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="sample responses with temperature / top-k / top-p and print the sampling-space signals",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="world:sft-epoch-N, smollm2 (SmolLM2-135M-Instruct, its Q4_1 GGUF release dequantised), "
        "a local dir, or an HF name (default: the world's SFT checkpoint)",
    )
    parser.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for several)")
    parser.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=0, help="0 = no top-k")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--min-p", type=float, default=0.0, help="keep p >= min_p * max p; 0 = no min-p")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("-n", "--samples", type=int, default=4, help="samples per prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reward-model",
        default=None,
        help="RM source (default: the world's RM for world models), or gold: the gold judge's score is the reward",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    # Validate everything cheap before loading a model, or torch (seconds): a bad setting is said at once.
    config = SamplingConfig(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        max_new_tokens=args.max_new_tokens,
    )
    from engine.lab import SamplingLab, clean_prompts
    from engine.models.gguf_cache import describe_source
    from engine.world import try_load_world

    prompts = clean_prompts(args.prompt)
    world, _ = try_load_world()
    source = args.model or (world.policy_source() if world else None)
    if source is None:
        from engine.config import ConfigError

        raise ConfigError(
            "no --model given and the built-in world is not built (`python -m engine world build`)"
        )
    lab = SamplingLab(world=world)  # world models get the world's RM and gold judge
    batch = lab.sample(
        source, prompts, config, n_samples=args.samples, seed=args.seed, reward_source=args.reward_model
    )
    signals = batch.signals()
    samples = []
    for row, tokens in enumerate(batch.tokens):
        sample = {
            "prompt": batch.prompts[batch.prompt_index[row]],
            "response": batch.responses[row],
            "tokens": tokens,
            "token_ids": batch.response_ids[row],
            "signals": {
                name: [round(float(v), 5) for v in values[row, : len(tokens)]]
                for name, values in signals.items()
            },
        }
        if batch.rewards is not None:
            sample["reward"] = float(batch.rewards[row])
        if batch.gold is not None:
            sample["gold"] = float(batch.gold[row])
        samples.append(sample)
    result = {
        "model": source,
        "model_description": describe_source(source),
        "settings": {
            "temperature": config.temperature,
            "top_k": config.top_k,
            "top_p": config.top_p,
            "min_p": config.min_p,
            "greedy": config.greedy,
        },
        "summary": batch.summary(),
        "samples": samples,
    }
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
        return 0
    if result["model_description"] != source:
        print(f"model: {result['model_description']}")
    if config.greedy:
        print("temperature 0: greedy decoding (always the most likely token)")
    print("mean signals: " + ", ".join(f"{k}={v:.3f}" for k, v in result["summary"].items()))
    for sample in samples:
        extra = "".join(f" {key}={sample[key]:.3f}" for key in ("reward", "gold") if key in sample)
        print(f"[{sample['prompt']}] -> {sample['response']}{extra}")
    return 0
