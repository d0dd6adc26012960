#!/usr/bin/env python3
"""Protocol "smollm2-cpu": TRL's PPOTrainer on SmolLM2-135M-Instruct, the baseline `python -m engine bench
ppo --protocol smollm2-cpu` runs back to back with the engine (engine/bench/ppo.py writes the settings).

The policy is the converted cache directory (the Q4_1 GGUF release dequantised) with a LoRA adapter; the
reward and the value models are sequence classifiers built from the same weights, their score heads
drawn under torch.manual_seed(rm_head_seed) (the reward model frozen, the value model trained in full,
as TRL's PPO does). Prompts are user turns of the chat template; every response is exactly new_tokens
long (min_new_tokens, no stop token). Each iteration is timed; the first is a warm-up.

Usage:  python trl_ppo_smollm2.py --settings SETTINGS.json --out RESULT.json
"""

import argparse
import json
import os
import sys
import time

import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--settings", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    s = json.load(open(args.settings))
    if s["threads"]:
        torch.set_num_threads(s["threads"])

    import peft
    import transformers
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        TrainerCallback,
        set_seed,
    )
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    tok = AutoTokenizer.from_pretrained(s["policy_dir"], local_files_only=True)
    tok.padding_side = "left"
    texts = [
        tok.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True)
        for t in s["prompts"]
    ]
    dataset = Dataset.from_dict({"input_ids": [tok(t, add_special_tokens=False)["input_ids"] for t in texts]})
    set_seed(s["seed"])
    policy = AutoModelForCausalLM.from_pretrained(s["policy_dir"], local_files_only=True)
    torch.manual_seed(s["rm_head_seed"])
    reward_model = AutoModelForSequenceClassification.from_pretrained(
        s["policy_dir"], num_labels=1, local_files_only=True
    )
    torch.manual_seed(s["rm_head_seed"])
    value_model = AutoModelForSequenceClassification.from_pretrained(
        s["policy_dir"], num_labels=1, local_files_only=True
    )
    for m in (policy, reward_model, value_model):
        m.config.pad_token_id = tok.pad_token_id
    policy.generation_config.pad_token_id = tok.pad_token_id
    policy.generation_config.min_new_tokens = s["new_tokens"]  # every response new_tokens long

    iters, t_last = [], [None]

    class IterTimer(TrainerCallback):
        def on_train_begin(self, *a, **k):
            t_last[0] = (time.perf_counter(), time.process_time())

        def on_step_end(self, *a, **k):
            now = (time.perf_counter(), time.process_time())
            iters.append(
                {
                    "iteration": len(iters) + 1,
                    "total_s": now[0] - t_last[0][0],
                    "cpu_s": now[1] - t_last[0][1],
                }
            )
            print(f"[bench] iteration {len(iters)}: {iters[-1]['total_s']:.2f} s", flush=True)
            t_last[0] = now

    n = s["prompts_per_iteration"]
    config = PPOConfig(
        output_dir=os.path.join(os.path.dirname(args.out), "trl-out"),
        seed=s["seed"], data_seed=s["seed"], use_cpu=True, bf16=False, fp16=False, report_to="none",
        save_strategy="no", eval_strategy="no", logging_steps=1, disable_tqdm=True,
        per_device_train_batch_size=n, gradient_accumulation_steps=1,
        num_mini_batches=s["num_minibatches"], local_rollout_forward_batch_size=n,
        total_episodes=s["iterations"] * n, num_ppo_epochs=s["ppo_epochs"],
        response_length=s["new_tokens"], temperature=1.0, stop_token=None, missing_eos_penalty=None,
        learning_rate=s["learning_rate"], lr_scheduler_type="constant", num_sample_generations=0,
        kl_coef=s["kl_coef"], dataloader_num_workers=0,
    )  # fmt: skip
    lora = LoraConfig(r=s["lora_r"], lora_alpha=s["lora_alpha"], lora_dropout=0.0,
                      target_modules=s["lora_targets"], task_type="CAUSAL_LM")  # fmt: skip
    trainer = PPOTrainer(
        args=config, processing_class=tok, model=policy, ref_model=None, reward_model=reward_model,
        train_dataset=dataset, value_model=value_model, peft_config=lora,
    )  # fmt: skip
    trainer.add_callback(IterTimer())
    trainer.train()
    result = {
        "engine": "trl.experimental.ppo.PPOTrainer",
        "per_iteration": iters,
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "threads": torch.get_num_threads(),
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__, "trl": trl.__version__, "peft": peft.__version__},
    }  # fmt: skip
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
