#!/usr/bin/env python3
"""Protocol "tiny-ppo-cpu": the baseline for `python -m engine bench ppo`: TRL's PPO trainer on the same work.

Everything is built locally (no hub downloads): a word-level tokenizer over 2000
synthetic words, a random-init 4-layer GPT-2 policy with LoRA adapters, and
random-init 2-layer GPT-2 reward and value models. One PPO iteration = 64 prompts
of 16 tokens, 32 sampled response tokens each, then 4 PPO epochs x 4 minibatches
of 16 (16 optimizer steps). Each iteration is wall-clock timed; the first is
discarded as warm-up.

Usage:  python trl_ppo_tiny.py [--iterations 6] [--threads N] [--out PATH]
"""

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

T_PROCESS_START = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402

PROTOCOL = "tiny-ppo-cpu"
N_WORDS = 2000
N_PROMPTS = 640
PROMPT_LEN = 16
RESPONSE_LEN = 32
ROLLOUT_BATCH = 64      # prompts per PPO iteration
NUM_MINI_BATCHES = 4    # -> minibatch of 16 sequences
NUM_PPO_EPOCHS = 4
SEED = 0


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--iterations", type=int, default=6, help="PPO iterations to run (first is warm-up)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's default)")
    p.add_argument("--out", default="/tmp/trl_ppo_tiny.json")
    p.add_argument("--output-dir", default="/tmp/trl_ppo_tiny_out", help="TRL output_dir (nothing is saved)")
    return p.parse_args()


def build_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[BOS]", "[EOS]", "[UNK]"]
    words = [f"w{i:04d}" for i in range(N_WORDS)]
    vocab = {t: i for i, t in enumerate(specials + words)}
    tk = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]", unk_token="[UNK]"
    )
    tok.padding_side = "left"  # irrelevant here (all prompts have exactly 16 tokens)
    return tok, words


def build_dataset(tok, words):
    from datasets import Dataset

    rng = np.random.RandomState(SEED)
    texts = [" ".join(rng.choice(words, size=PROMPT_LEN)) for _ in range(N_PROMPTS)]
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    assert all(len(x) == PROMPT_LEN for x in ids), "every prompt must be exactly 16 tokens"
    assert all(tok.unk_token_id not in x for x in ids)
    return Dataset.from_dict({"input_ids": ids})


def build_models(tok):
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel, set_seed

    set_seed(SEED)
    common = dict(
        vocab_size=len(tok),
        n_positions=128,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    policy = GPT2LMHeadModel(GPT2Config(n_layer=4, n_head=4, n_embd=256, **common))
    small = GPT2Config(n_layer=2, n_head=4, n_embd=128, num_labels=1, **common)
    reward_model = GPT2ForSequenceClassification(small)
    value_model = GPT2ForSequenceClassification(small)
    for m in (policy, reward_model, value_model):
        m.config.pad_token_id = tok.pad_token_id
    policy.generation_config.pad_token_id = tok.pad_token_id
    return policy, reward_model, value_model


def nparams(m, trainable=False):
    return sum(p.numel() for p in m.parameters() if (p.requires_grad or not trainable))


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import accelerate
    import datasets
    import peft
    import tokenizers
    import transformers
    import trl
    import trl.experimental.ppo.ppo_trainer as ppo_mod
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    # ---- phase timers: wrap module-level helpers the PPO loop looks up at call time ----
    phase = {"gen": 0.0, "score": 0.0}
    resp_shapes = []
    special_counts = []  # per iteration: special tokens sampled inside the 32-token responses
    special_ids = {}
    orig_batch_generation = ppo_mod.batch_generation
    orig_forward = ppo_mod.forward
    orig_get_reward = ppo_mod.get_reward

    def timed_batch_generation(*a, **k):
        t = time.perf_counter()
        out = orig_batch_generation(*a, **k)
        phase["gen"] += time.perf_counter() - t
        resp_shapes.append(list(out[0].shape))
        resp = out[0][:, PROMPT_LEN:]
        special_counts.append({
            "pad_tokens": int((resp == special_ids["pad"]).sum()),
            "seqs_with_pad": int((resp == special_ids["pad"]).any(1).sum()),
            "eos_tokens": int((resp == special_ids["eos"]).sum()),
        })
        return out

    def timed_forward(*a, **k):
        if torch.is_grad_enabled():  # PPO-update forward: not a rollout phase
            return orig_forward(*a, **k)
        t = time.perf_counter()
        out = orig_forward(*a, **k)  # reference-policy logprobs (adapter disabled)
        phase["score"] += time.perf_counter() - t
        return out

    def timed_get_reward(*a, **k):
        t = time.perf_counter()
        out = orig_get_reward(*a, **k)  # value model + reward model passes
        phase["score"] += time.perf_counter() - t
        return out

    ppo_mod.batch_generation = timed_batch_generation
    ppo_mod.forward = timed_forward
    ppo_mod.get_reward = timed_get_reward

    class IterTimer(TrainerCallback):
        def __init__(self):
            self.t_last = None
            self.iters = []
            self.logs = []

        def on_train_begin(self, args_, state, control, **kw):
            self.t_last = time.perf_counter()
            phase["gen"] = phase["score"] = 0.0

        def on_step_end(self, args_, state, control, **kw):
            now = time.perf_counter()
            total = now - self.t_last
            self.iters.append(
                {
                    "iteration": len(self.iters) + 1,
                    "total_s": total,
                    "generation_s": phase["gen"],
                    "ref_value_reward_fwd_s": phase["score"],
                    "rest_s": total - phase["gen"] - phase["score"],
                }
            )
            print(f"[bench] iteration {len(self.iters)}: {total:.3f}s (gen {phase['gen']:.3f}s, "
                  f"ref/value/reward fwd {phase['score']:.3f}s)", flush=True)
            phase["gen"] = phase["score"] = 0.0
            self.t_last = now

        def on_log(self, args_, state, control, logs=None, **kw):
            if logs:
                self.logs.append(dict(logs))

    t_setup0 = time.perf_counter()
    tok, words = build_tokenizer()
    special_ids.update(pad=tok.pad_token_id, eos=tok.eos_token_id)
    train_dataset = build_dataset(tok, words)
    policy, reward_model, value_model = build_models(tok)
    policy_params = nparams(policy)

    peft_config = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["c_attn", "c_proj"],
        task_type="CAUSAL_LM", fan_in_fan_out=True,  # GPT-2 uses Conv1D
    )

    config = PPOConfig(
        output_dir=args.output_dir,
        seed=SEED,
        data_seed=SEED,
        use_cpu=True,
        bf16=False,
        fp16=False,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        gradient_checkpointing=False,
        # One PPO iteration ("update" in TRL) consumes local_batch_size =
        # per_device_train_batch_size * gradient_accumulation_steps prompts.
        per_device_train_batch_size=ROLLOUT_BATCH,
        gradient_accumulation_steps=1,
        num_mini_batches=NUM_MINI_BATCHES,          # -> local_mini_batch_size = 16
        local_rollout_forward_batch_size=ROLLOUT_BATCH,  # generate/score all 64 at once
        total_episodes=args.iterations * ROLLOUT_BATCH,
        num_ppo_epochs=NUM_PPO_EPOCHS,
        response_length=RESPONSE_LEN,
        temperature=1.0,
        stop_token=None,                            # no truncation: always 32 tokens
        missing_eos_penalty=None,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        num_sample_generations=0,
        dataloader_num_workers=0,
    )

    trainer = PPOTrainer(
        args=config,
        processing_class=tok,
        model=policy,
        ref_model=None,            # with peft: reference = policy with adapter disabled
        reward_model=reward_model,
        train_dataset=train_dataset,
        value_model=value_model,
        peft_config=peft_config,
    )
    timer = IterTimer()
    trainer.add_callback(timer)
    setup_s = time.perf_counter() - t_setup0

    trainable = nparams(trainer.model, trainable=True)
    lora_trainable = nparams(trainer.model.policy, trainable=True)
    value_trainable = nparams(trainer.model.value_model, trainable=True)

    print(f"[bench] setup {setup_s:.2f}s; torch threads={torch.get_num_threads()}; "
          f"trainable={trainable} (LoRA {lora_trainable}, value {value_trainable})", flush=True)
    t_train0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t_train0

    iters = timer.iters
    assert len(iters) == args.iterations, (len(iters), args.iterations)
    measured = iters[1:] if len(iters) > 1 else iters
    med = lambda key: statistics.median(it[key] for it in measured)  # noqa: E731
    rollout_tokens = ROLLOUT_BATCH * RESPONSE_LEN
    med_total, med_gen = med("total_s"), med("generation_s")

    def cpu_model():
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor()

    result = {
        "protocol": PROTOCOL,
        "engine": "trl.experimental.ppo.PPOTrainer",
        "protocol_spec": {
            "tokenizer": f"tokenizers WordLevel + Whitespace, {N_WORDS} words w0000..w{N_WORDS-1:04d} "
                         "+ [PAD]=0,[BOS]=1,[EOS]=2,[UNK]=3",
            "vocab_size": len(tok),
            "policy": "GPT2LMHeadModel n_layer=4 n_head=4 n_embd=256 n_positions=128, random init seed 0",
            "policy_params": policy_params,
            "reward_model": "GPT2ForSequenceClassification n_layer=2 n_head=4 n_embd=128 num_labels=1, frozen",
            "value_model": "GPT2ForSequenceClassification n_layer=2 n_head=4 n_embd=128 num_labels=1, "
                            "fully trained (separate from policy)",
            "reward_params": nparams(reward_model),
            "value_params": nparams(value_model),
            "lora": "r=16 alpha=32 dropout=0 target=[c_attn,c_proj] (attn.c_proj and mlp.c_proj), "
                    "reference policy = base with adapter disabled",
            "trainable_params_total": trainable,
            "trainable_params_lora": lora_trainable,
            "trainable_params_value": value_trainable,
            "dataset": f"{N_PROMPTS} prompts x {PROMPT_LEN} uniformly random words (np.random.RandomState(0))",
            "prompts_per_iteration": ROLLOUT_BATCH,
            "prompt_len": PROMPT_LEN,
            "response_len": RESPONSE_LEN,
            "stop_token": None,
            "sampling": "temperature=1.0 (TRL adds 1e-7), top_k=0, top_p=1.0, do_sample=True",
            "num_ppo_epochs": NUM_PPO_EPOCHS,
            "num_mini_batches": NUM_MINI_BATCHES,
            "mini_batch_size": ROLLOUT_BATCH // NUM_MINI_BATCHES,
            "optimizer_steps_per_iteration": NUM_PPO_EPOCHS * NUM_MINI_BATCHES,
            "optimizer": type(trainer.optimizer.optimizer).__name__ if hasattr(trainer.optimizer, "optimizer")
                         else type(trainer.optimizer).__name__,
            "optim_arg": str(config.optim),
            "learning_rate": 1e-4,
            "lr_scheduler": "constant",
            "grad_clipping": "none (TRL PPO loop does not clip)",
            "kl_coef": config.kl_coef, "kl_estimator": config.kl_estimator,
            "cliprange": config.cliprange, "cliprange_value": config.cliprange_value,
            "vf_coef": config.vf_coef, "gamma": config.gamma, "lam": config.lam,
            "whiten_rewards": config.whiten_rewards,
            "dtype": "float32", "device": "cpu",
            "trl_config": {
                "per_device_train_batch_size": config.per_device_train_batch_size,
                "gradient_accumulation_steps": config.gradient_accumulation_steps,
                "num_mini_batches": config.num_mini_batches,
                "local_rollout_forward_batch_size": config.local_rollout_forward_batch_size,
                "local_batch_size": config.local_batch_size,
                "local_mini_batch_size": config.local_mini_batch_size,
                "total_episodes": config.total_episodes,
                "num_total_batches": config.num_total_batches,
                "gradient_checkpointing": config.gradient_checkpointing,
            },
        },
        "iterations": args.iterations,
        "warmup_iterations_discarded": 1 if len(iters) > 1 else 0,
        "median_s_per_iteration": med_total,
        "median_generation_s": med_gen,
        "median_ref_value_reward_fwd_s": med("ref_value_reward_fwd_s"),
        "median_rest_s": med("rest_s"),
        "rollout_tokens_per_iteration": rollout_tokens,
        "rollout_tokens_per_s_generation": rollout_tokens / med_gen,
        "rollout_tokens_per_s_end_to_end": rollout_tokens / med_total,
        "per_iteration": iters,
        "generated_query_response_shapes": resp_shapes,
        "sampled_special_tokens_per_iteration": special_counts,
        "setup_s": setup_s,
        "train_s": train_s,
        "process_wall_s_until_report": time.perf_counter() - T_PROCESS_START,
        "peak_rss_mib_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "threads": {
            "torch_num_threads": torch.get_num_threads(),
            "torch_num_interop_threads": torch.get_num_interop_threads(),
            "os_cpu_count": os.cpu_count(),
            "sched_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
        },
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
            "peft": peft.__version__,
            "accelerate": accelerate.__version__,
            "tokenizers": tokenizers.__version__,
            "datasets": datasets.__version__,
            "numpy": np.__version__,
        },
        "machine": {"cpu": cpu_model(), "platform": platform.platform()},
        "trl_logs": timer.logs,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2, default=str)
    print(f"[bench] median {med_total:.3f} s/iteration; generation {med_gen:.3f}s -> "
          f"{rollout_tokens / med_gen:.0f} tok/s; end-to-end {rollout_tokens / med_total:.0f} tok/s; "
          f"peak RSS {result['peak_rss_mib_self']:.0f} MiB; wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
