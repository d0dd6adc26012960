#!/usr/bin/env python3
"""Protocol "tiny-grpo-cpu": the baseline of `python -m engine bench grpo`, TRL's GRPOTrainer on the same work.

Run by the bench in the TRL environment (setup_trl_venv.sh), never imported by the project. The bench
writes the settings both sides share to a JSON file (``--settings``): the world's SFT checkpoint (a plain
HF GPT-2 directory with its word-level tokenizer), the world's RM, the prompt texts, and the sizes.

The work of one optimizer step: ``prompts_per_step`` prompts x ``samples_per_prompt`` completions of
exactly ``new_tokens`` tokens (``min_new_tokens`` = ``max_completion_length``: EOS is never sampled, so
every completion is ``new_tokens`` long in the generation, the reward and the loss, as on the engine side,
which samples with ``stop_at_eos`` off; a generation config without EOS does not do it, transformers puts
the tokenizer's EOS back), temperature 1, fp32 on the CPU, no vLLM; ``num_iterations`` 1, ``beta`` 0 (no
reference pass), ``loss_type`` "dapo", rewards scaled by the group std; LoRA on c_attn and c_proj; the
batch in ``chunks`` gradient-accumulation steps (per_device_train_batch_size x gradient_accumulation_steps
= the step's completions, and one generation per optimizer step); AdamW, constant learning rate, gradient
norm clipped at 1; no gradient checkpointing (TRL's default is on: the engine does not recompute
activations, so neither does the baseline); logging and saving off.

The reward is the engine's own: the world's RM loaded with ``engine.reward.load_reward_model`` (the
repository is put on ``sys.path``; the engine's reward code needs only torch and transformers), scoring
the prompt's token ids followed by the completion's ids, right-padded, as the engine scores sampled ids.

Timing: each optimizer step from one ``on_step_end`` to the next (the first, with the dataloader's start,
is the bench's warm-up), in wall-clock and in this process's CPU seconds (all its threads); inside it ``model.generate`` (generation), ``_calculate_rewards`` (the RM) and
``_generate_and_score_completions`` (the whole rollout: generation, decoding, rewards, advantages); the
rest of the step is the update (the forward and backward passes of the chunks and the optimizer step).
Peak RSS is taken at the end of the timed steps; one more step follows, recorded by torch's profiler for
its matrix products, which are then timed alone (``engine.bench.matmul_floor``, as on the engine side).

Usage:  python trl_grpo_tiny.py --settings SETTINGS.json --out OUT.json
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--settings", required=True, help="the bench's settings JSON")
    p.add_argument("--out", required=True, help="where to write the result JSON")
    return p.parse_args()


class PhaseTimes:
    """Seconds spent in wrapped callables since the last :meth:`take`."""

    def __init__(self):
        self.seconds = {}

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

        return timed

    def take(self):
        out, self.seconds = self.seconds, {}
        return out


def world_rm_reward(rm, tokenizer):
    """A TRL reward function: the engine's RM on prompt ids + completion ids (right-padded)."""
    import torch

    from engine.sampling import pad_right

    def world_rm(prompts, completions, completion_ids, **kwargs):
        rows = [
            tokenizer(p, add_special_tokens=False)["input_ids"] + list(c)
            for p, c in zip(prompts, completion_ids, strict=True)
        ]
        ids, mask = pad_right(rows, tokenizer.pad_token_id)  # (B, L)
        with torch.no_grad():
            return rm.model(ids, mask).float().tolist()

    return world_rm


def main():
    args = parse_args()
    s = json.loads(Path(args.settings).read_text())
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    sys.path.insert(0, str(REPO))

    import torch

    if s["threads"]:
        torch.set_num_threads(s["threads"])

    import accelerate
    import datasets
    import peft
    import transformers
    import trl
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from engine.bench.matmul_floor import matmul_floor, products_of, recording
    from engine.reward import load_reward_model

    batch = s["prompts_per_step"] * s["samples_per_prompt"]
    tokenizer = AutoTokenizer.from_pretrained(s["policy_dir"])
    policy = AutoModelForCausalLM.from_pretrained(s["policy_dir"], dtype=torch.float32)
    rm = load_reward_model(s["reward_model_dir"], device="cpu")
    dataset = datasets.Dataset.from_dict({"prompt": s["prompts"]})

    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-grpo-"),
        seed=s["seed"],
        use_cpu=True,
        bf16=False,  # GRPOConfig defaults to bf16 autocast; the protocol is fp32
        fp16=False,
        report_to="none",
        logging_strategy="no",
        save_strategy="no",
        disable_tqdm=True,
        log_completions=False,
        gradient_checkpointing=False,  # TRL's default is on; the engine keeps activations (no recompute)
        max_steps=s["steps"] + 1,  # the last one recorded for its matrix products, not timed
        per_device_train_batch_size=batch // s["chunks"],
        gradient_accumulation_steps=s["chunks"],  # one optimizer step = the whole batch, generated at once
        num_generations=s["samples_per_prompt"],
        max_completion_length=s["new_tokens"],
        generation_kwargs={"min_new_tokens": s["new_tokens"]},  # exactly new_tokens, as the engine side
        temperature=s["temperature"],
        top_p=1.0,
        top_k=0,
        beta=s["kl_loss_coef"],
        loss_type=s["loss_type"],
        num_iterations=s["num_iterations"],
        epsilon=s["cliprange"],
        scale_rewards=s["scale_rewards"],
        learning_rate=s["learning_rate"],
        lr_scheduler_type="constant",
        max_grad_norm=s["max_grad_norm"],
        dataloader_num_workers=0,
    )
    peft_config = LoraConfig(
        r=s["lora_r"],
        lora_alpha=s["lora_alpha"],
        lora_dropout=0.0,
        target_modules=s["lora_targets"],
        task_type="CAUSAL_LM",
        fan_in_fan_out=True,  # GPT-2's Conv1D
    )
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=world_rm_reward(rm, tokenizer),
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )

    phases = PhaseTimes()
    generated_widths = []

    def generate(*a, _generate=trainer.model.generate, **k):
        out = _generate(*a, **k)
        generated_widths.append(out.shape[1] - k["input_ids"].shape[1])
        return out

    trainer.model.generate = phases.wrap("generation_s", generate)
    trainer._calculate_rewards = phases.wrap("reward_s", trainer._calculate_rewards)
    trainer._generate_and_score_completions = phases.wrap(
        "rollout_s", trainer._generate_and_score_completions
    )

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.last = self.last_cpu = None
            self.steps = []
            self.peak_rss_mb = None  # at the end of the timed steps
            self.recorder = self.products = None

        def on_train_begin(self, args_, state, control, **kw):
            self.last, self.last_cpu = time.perf_counter(), time.process_time()
            phases.take()

        def on_step_end(self, args_, state, control, **kw):
            now, now_cpu = time.perf_counter(), time.process_time()
            seen = phases.take()
            if self.recorder is not None:  # the step after the timed ones: its matrix products
                self.recorder.stop()
                self.products = products_of(self.recorder.events())
                return
            total = now - self.last
            rollout = seen.get("rollout_s", 0.0)
            self.steps.append(
                {
                    "step": len(self.steps) + 1,
                    "total_s": total,
                    "cpu_s": now_cpu - self.last_cpu,
                    "generation_s": seen.get("generation_s", 0.0),
                    "reward_s": seen.get("reward_s", 0.0),
                    "rollout_other_s": rollout - seen.get("generation_s", 0.0) - seen.get("reward_s", 0.0),
                    "update_s": total - rollout,
                }
            )
            if len(self.steps) == s["steps"]:
                self.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
                self.recorder = recording()
                self.recorder.start()
            self.last, self.last_cpu = now, now_cpu

    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()

    result = {
        "engine": "trl.GRPOTrainer",
        "per_step": timer.steps,
        "peak_rss_mb": timer.peak_rss_mb,
        "matmul": matmul_floor(timer.products),
        "generated_tokens_per_completion": generated_widths,
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "trl_config": {
            "per_device_train_batch_size": config.per_device_train_batch_size,
            "gradient_accumulation_steps": config.gradient_accumulation_steps,
            "generation_batch_size": config.generation_batch_size,
            "steps_per_generation": config.steps_per_generation,
            "num_generations": config.num_generations,
            "max_completion_length": config.max_completion_length,
            "beta": config.beta,
            "loss_type": config.loss_type,
            "num_iterations": config.num_iterations,
            "scale_rewards": config.scale_rewards,
            "bf16": config.bf16,
            "gradient_checkpointing": config.gradient_checkpointing,
            "use_vllm": config.use_vllm,
            "optim": str(config.optim),
        },
        "threads": torch.get_num_threads(),
        "versions": {
            "python": sys.version.split()[0],
            "trl": trl.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "accelerate": accelerate.__version__,
            "datasets": datasets.__version__,
        },
    }
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
