"""``python -m engine bench ppo --json`` (contract): PPO iterations on the protocol "tiny-ppo-cpu"
(the default) or "small-gpu" (``--protocol small-gpu``, :func:`build_small_gpu`).

Same work as the TRL anchor (``/work/shared/anchors/trl_ppo_tiny.py``): a word-level tokenizer of
2000 words (vocab 2004); a random-init GPT-2 policy (n_layer=4, n_head=4, n_embd=256,
n_positions=128) with LoRA r=16 / alpha=32 on c_attn and c_proj; a random GPT-2 sequence-classifier
RM (n_layer=2, n_head=4, n_embd=128); 64 prompts of 16 tokens per iteration, exactly 32 sampled
tokens (no early stop), temperature 1; 4 PPO epochs x 4 minibatches (16 AdamW steps, lr 1e-4); seed 0.
Rollout logging with every per-token signal stays on (Parquet into a temporary run directory).
The median is over the iterations after the first (warm-up).

"small-gpu": a random-init policy of Qwen2.5-0.5B's architecture (:func:`qwen25_05b_config`, written
here: nothing is downloaded) with LoRA r=16 on q/k/v/o, and a 0.5B-class RM (a Qwen2 sequence
classifier of the same architecture); the tiny protocol's batch of 64 prompts x 128 new tokens; on
the default device (CUDA when present, the frozen base in bf16 there). It reports seconds per
iteration, tokens/s and peak memory (``torch.cuda.max_memory_allocated`` on CUDA, RSS on CPU).
``--scale`` < 1 shrinks layers, width, vocabulary and batch (the tests run it on CPU at 0.05).

"smollm2-cpu": SmolLM2 against TRL's PPOTrainer, :mod:`engine.bench.ppo_smollm2`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from engine.bench.ppo_smollm2 import SMOLLM2, SMOLLM2_ITERATIONS, main_smollm2
from engine.ppo.config import BASE_PRECISIONS

PROTOCOL = "tiny-ppo-cpu"
N_WORDS = 2000
N_PROMPTS = 640
PROMPT_LEN = 16
RESPONSE_LEN = 32
PROMPTS_PER_ITERATION = 64
SEED = 0
PROTOCOLS = ("tiny-ppo-cpu", "small-gpu", "smollm2-cpu")

SMALL_GPU_RESPONSE_LEN = 128

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--protocol", choices=PROTOCOLS, default=PROTOCOL, help="what to measure (default: %(default)s)"
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="small-gpu only: shrink layers, width, vocabulary and batch by this factor in (0, 1] (CPU tests)",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=None,
        help=f"PPO iterations, the first is a warm-up (>= 2; default 6, smollm2-cpu {SMOLLM2_ITERATIONS})",
    )
    parser.add_argument(
        "--trl-venv", default="/tmp/trlvenv", help="smollm2-cpu: the TRL environment, made on first use"
    )
    parser.add_argument("--skip-trl", action="store_true", help="smollm2-cpu: the engine side only")
    parser.add_argument(
        "--prompts-per-iteration",
        type=int,
        default=SMOLLM2["prompts_per_iteration"],
        help="smollm2-cpu: %(default)s (smaller for smoke tests)",
    )
    parser.add_argument(
        "--new-tokens", type=int, default=SMOLLM2["new_tokens"], help="smollm2-cpu: %(default)s"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--base-precision",
        choices=BASE_PRECISIONS,
        default="bf16",
        help="matmuls of the frozen base (bf16 only where bf16 matmuls are fast; default bf16)",
    )
    parser.add_argument(
        "--profile", default=None, help="write a torch profiler table of one iteration to this file"
    )


def build_tokenizer(n_words: int = N_WORDS):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[BOS]", "[EOS]", "[UNK]"]
    words = [f"w{i:04d}" for i in range(n_words)]
    core = Tokenizer(WordLevel(vocab={t: i for i, t in enumerate(specials + words)}, unk_token="[UNK]"))
    core.pre_tokenizer = Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]", unk_token="[UNK]"
    )
    return tok, words


def _bench_trainer(
    run_dir: Path,
    policy: tuple,
    reward: tuple,
    tok,
    words: list[str],
    n_prompts: int,
    response_len: int,
    *,
    ppo: dict,
    run: dict,
):
    """The PPO trainer both protocols measure, given their (model, name) ``policy`` and ``reward``:
    ``n_prompts`` random prompts of PROMPT_LEN ``words``, exactly ``response_len`` tokens sampled at
    temperature 1, 4 epochs x 4 minibatches at lr 1e-4 on raw RM scores (as TRL), one sample per
    prompt, a run writer at ``run_dir``; ``ppo`` / ``run`` set the protocol's other fields of
    PPOHyperConfig / RunConfig. Returns (trainer, config)."""
    import numpy as np

    from engine.config import SamplingConfig
    from engine.models import LoadedModel
    from engine.ppo.build import PromptItem
    from engine.ppo.config import ModelConfig, PPOConfig, PPOHyperConfig, RunConfig
    from engine.ppo.trainer import PPOTrainer
    from engine.store import RunWriter

    rng = np.random.RandomState(SEED)
    prompts = [
        PromptItem(f"p{i:04d}", "random", " ".join(rng.choice(words, size=PROMPT_LEN)))
        for i in range(n_prompts)
    ]
    config = PPOConfig(
        model=ModelConfig(policy="bench", reward_model="bench", lora_r=16, lora_alpha=32),
        sampling=SamplingConfig(temperature=1.0, max_new_tokens=response_len, stop_at_eos=False),
        ppo=PPOHyperConfig(ppo_epochs=4, num_minibatches=4, learning_rate=1e-4, reward_norm="none", **ppo),
        # The work TRL's iteration does, plus our per-token logging: no probes, no extra entropy pass.
        run=RunConfig(
            steps=10_000, samples_per_prompt=1, seed=SEED, probe_every=0, measure_entropy_change=False, **run
        ),
    )
    writer = RunWriter.create(run_dir, kind="ppo", config=config.to_dict(), seed=SEED)
    models = [LoadedModel(model, tok, name, None) for model, name in (policy, reward)]
    return PPOTrainer(config, *models, prompts, writer=writer), config


def build_trainer(run_dir: Path, base_precision: str = "bf16"):
    """The protocol's models, prompts and PPO config, wired into an :class:`engine.ppo.trainer.PPOTrainer`."""
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    from engine.models import attach_lora
    from engine.reward import SequenceClassifierRM

    tok, words = build_tokenizer()
    torch.manual_seed(SEED)
    common = dict(vocab_size=len(tok), n_positions=128, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    policy = GPT2LMHeadModel(GPT2Config(n_layer=4, n_head=4, n_embd=256, **common))
    rm = GPT2ForSequenceClassification(GPT2Config(n_layer=2, n_head=4, n_embd=128, num_labels=1, **common))
    policy = attach_lora(policy, r=16, alpha=32, target_modules=["c_attn", "c_proj"]).eval()
    reward = SequenceClassifierRM(rm).eval().requires_grad_(False)

    trainer, config = _bench_trainer(
        run_dir,
        (policy, "bench:policy"),
        (reward, "bench:rm"),
        tok,
        words,
        N_PROMPTS,
        RESPONSE_LEN,
        ppo={"kl_coef": 0.05, "gamma": 1.0, "lam": 0.95, "base_precision": base_precision},
        run={"prompts_per_step": PROMPTS_PER_ITERATION},
    )
    return trainer, config, torch.device("cpu")


def qwen25_05b_config(scale: float = 1.0):
    """Qwen2.5-0.5B's architecture as a ``Qwen2Config`` (hidden 896, 24 layers, 14 heads of 64, 2 KV
    heads, MLP 4864, vocabulary 151936, RoPE theta 1e6, tied embeddings); ``scale`` < 1 shrinks the
    layers, heads (head size kept), MLP and vocabulary."""
    from transformers import Qwen2Config

    heads = max(2, 2 * round(14 * scale / 2))  # a multiple of the 2 KV heads
    return Qwen2Config(
        vocab_size=max(1000, round(151936 * scale)),
        hidden_size=64 * heads,
        intermediate_size=max(64, round(4864 * scale)),
        num_hidden_layers=max(1, round(24 * scale)),
        num_attention_heads=heads,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def build_small_gpu(run_dir: Path, base_precision: str = "bf16", scale: float = 1.0):
    """The small-gpu protocol's trainer: a Qwen2.5-0.5B-shaped policy + RM, random init, default device."""
    import torch
    from transformers import Qwen2ForCausalLM, Qwen2ForSequenceClassification

    from engine.config import ConfigError
    from engine.models import attach_lora, default_device
    from engine.reward import SequenceClassifierRM

    if not 0 < scale <= 1:
        raise ConfigError(f"--scale must be in (0, 1], got {scale}")
    device = default_device()
    model_config = qwen25_05b_config(scale)
    tok, words = build_tokenizer(model_config.vocab_size - 4)  # every id decodes to a word
    torch.manual_seed(SEED)
    policy = Qwen2ForCausalLM(model_config)
    rm_config = qwen25_05b_config(scale)
    rm_config.num_labels = 1
    rm = Qwen2ForSequenceClassification(rm_config)
    policy = attach_lora(policy, r=16, alpha=32).to(device).eval()
    reward = SequenceClassifierRM(rm).to(device).eval().requires_grad_(False)
    n_prompts = max(4, 4 * round(PROMPTS_PER_ITERATION * scale / 4))
    response_len = max(8, round(SMALL_GPU_RESPONSE_LEN * scale))
    trainer, config = _bench_trainer(
        run_dir,
        (policy, "bench:qwen2.5-0.5b-arch"),
        (reward, "bench:qwen2.5-0.5b-arch-rm"),
        tok,
        words[:N_WORDS],
        10 * n_prompts,
        response_len,
        ppo={"base_precision": base_precision},
        run={"prompts_per_step": n_prompts},
    )
    return trainer, config, model_config, device


def main_small_gpu(args: argparse.Namespace) -> int:
    """The small-gpu protocol: seconds per iteration, tokens/s, peak memory."""
    import torch

    logging.getLogger("engine").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-ppo-") as tmp:
        trainer, config, model_config, device = build_small_gpu(
            Path(tmp) / "run", args.base_precision, args.scale
        )
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        per_iteration = []
        for step in range(1, args.iterations + 1):
            t0 = time.perf_counter()
            result = trainer.iteration(step)
            trainer.log_step(result)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            m = result.metrics
            per_iteration.append(
                {
                    "iteration": step,
                    "total_s": time.perf_counter() - t0,
                    "generation_s": m["time/rollout"],
                    "ref_and_score_s": m["time/score"],
                    "train_s": m["time/update"],
                }
            )
    seconds = statistics.median(it["total_s"] for it in per_iteration[1:])
    tokens = config.run.batch_size * config.sampling.max_new_tokens
    peak_gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    result = {
        "protocol": "small-gpu",
        "engine": "engine.ppo.trainer.PPOTrainer",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "scale": args.scale,
        "model": {
            "architecture": "Qwen2ForCausalLM (Qwen2.5-0.5B shape, random init)",
            "parameters": sum(p.numel() for p in trainer.model.get_base_model().parameters()),
            "hidden_size": model_config.hidden_size,
            "num_hidden_layers": model_config.num_hidden_layers,
            "num_attention_heads": model_config.num_attention_heads,
            "num_key_value_heads": model_config.num_key_value_heads,
            "intermediate_size": model_config.intermediate_size,
            "vocab_size": model_config.vocab_size,
        },
        "base_precision": trainer.base_precision,
        "prompts_per_iteration": config.run.batch_size,
        "new_tokens_per_prompt": config.sampling.max_new_tokens,
        "tokens_per_iteration": tokens,
        "seconds_per_iteration": seconds,
        "tokens_per_second": tokens / seconds,
        "generation_tokens_per_second": tokens
        / statistics.median(it["generation_s"] for it in per_iteration[1:]),
        "peak_gpu_memory_mb": peak_gpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "optimizer_steps_per_iteration": config.optimizer_steps_per_iteration,
        "iterations": args.iterations,
        "warmup_iterations_discarded": 1,
        "per_iteration": per_iteration,
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        memory = (
            f"peak GPU {peak_gpu:.0f} MiB"
            if peak_gpu is not None
            else f"peak RSS {result['peak_rss_mb']:.0f} MiB"
        )
        print(
            f"small-gpu on {device}: {seconds:.3f} s/iteration, {result['tokens_per_second']:.0f} tokens/s, {memory}"
        )
    return 0


def update_flops(config) -> float:
    """Matmul FLOPs of one iteration's PPO update (forward + input-gradient backward + LoRA grads).

    Frozen base weights need no weight gradient, so backward through them costs one more forward
    (dX = dY W^T); the LM head runs on the T response positions only.
    """
    d, layers, vocab, r = 256, 4, N_WORDS + 4, 16
    seq_tokens = config.run.batch_size * (PROMPT_LEN + RESPONSE_LEN)
    resp_tokens = config.run.batch_size * RESPONSE_LEN
    block = 2 * seq_tokens * (12 * d * d)  # qkv 3d^2, proj d^2, mlp 8d^2
    attn = 2 * 2 * config.run.batch_size * (PROMPT_LEN + RESPONSE_LEN) ** 2 * d  # QK^T and AV
    lora = 2 * seq_tokens * r * ((d + 3 * d) + (d + d) + (4 * d + d))
    head = 2 * resp_tokens * d * vocab
    forward = layers * (block + attn + lora) + head
    backward = forward + layers * (
        attn + lora
    )  # dX everywhere; weight grads only for LoRA (and attention's two operands)
    return config.ppo.ppo_epochs * (forward + backward)


def matmul_gflops_per_s(config, repeats: int = 30) -> float:
    """The machine's fp32 matmul rate on the update's own shapes, in this process and thread setting:
    one minibatch's tokens x d times d x 4d (the MLP's first matmul), forward and both backward shapes;
    the best of ``repeats`` (what the update could reach if it were nothing but these matmuls)."""
    import torch

    d = 256
    tokens = config.run.batch_size // config.ppo.num_minibatches * (PROMPT_LEN + RESPONSE_LEN)
    x, w, g = torch.randn(tokens, d), torch.randn(d, 4 * d), torch.randn(tokens, 4 * d)
    flops = 3 * 2 * tokens * d * 4 * d

    def once() -> float:
        start = time.perf_counter()
        x @ w, g @ w.T, x.T @ g  # noqa: B018 (timed for their cost)
        return time.perf_counter() - start

    once()
    return flops / 1e9 / min(once() for _ in range(repeats))


def main(args: argparse.Namespace) -> int:
    import torch

    if args.protocol == "smollm2-cpu":
        return main_smollm2(args)
    args.iterations = args.iterations or 6
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.iterations < 2:
        from engine.config import ConfigError

        raise ConfigError("--iterations must be >= 2 (the first is a warm-up)")
    if args.protocol == "small-gpu":
        return main_small_gpu(args)
    logging.getLogger("engine").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-ppo-") as tmp:
        trainer, config, _ = build_trainer(Path(tmp) / "run", args.base_precision)
        per_iteration = []
        for step in range(1, args.iterations + 1):
            t0 = time.perf_counter()
            result = trainer.iteration(step)
            trainer.log_step(result)
            total = time.perf_counter() - t0
            m = result.metrics
            per_iteration.append(
                {
                    "iteration": step,
                    "total_s": total,
                    "generation_s": m["time/rollout"],
                    "ref_and_score_s": m["time/score"],
                    "train_s": m["time/update"],
                    "rows_s": m["time/rows"],
                    "store_write_s": total - m["time/step"],
                }
            )
            log.info("iteration %d: %.3f s", step, total)
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                trainer.log_step(trainer.iteration(args.iterations + 1))
            Path(args.profile).write_text(
                prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)
            )

    measured = per_iteration[1:]

    def med(key: str) -> float:
        return statistics.median(it[key] for it in measured)

    flops = update_flops(config)
    result = {
        "protocol": PROTOCOL,
        "engine": "engine.ppo.trainer.PPOTrainer",
        "base_precision": trainer.base_precision,
        "seconds_per_iteration": med("total_s"),
        "generation_seconds": med("generation_s"),
        "ref_and_score_seconds": med("ref_and_score_s"),
        "train_seconds": med("train_s"),
        "logging_seconds": med("rows_s") + med("store_write_s"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "optimizer_steps_per_iteration": config.optimizer_steps_per_iteration,
        "tokens_per_iteration": config.run.batch_size * RESPONSE_LEN,
        "ppo_epochs": config.ppo.ppo_epochs,
        "num_minibatches": config.ppo.num_minibatches,
        "update_gflop": flops / 1e9,
        "update_gflops_per_s": flops / 1e9 / med("train_s"),
        "matmul_gflops_per_s": matmul_gflops_per_s(config),
        "iterations": args.iterations,
        "warmup_iterations_discarded": 1,
        "per_iteration": per_iteration,
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "versions": {"torch": torch.__version__},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{PROTOCOL}: {result['seconds_per_iteration']:.3f} s/iteration (generation {result['generation_seconds']:.3f} s, "
            f"update {result['train_seconds']:.3f} s), peak RSS {result['peak_rss_mb']:.0f} MiB"
        )
    return 0
