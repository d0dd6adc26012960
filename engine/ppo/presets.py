"""Named starting configs: ``python -m engine ppo --preset NAME`` (flags given with it override it).

- ``smollm2-cpu``: PPO (a value head, GAE) on the real world (``--policy smollm2``:
  SmolLM2-135M-Instruct, its training tasks, its reward model, its checker as the gold judge) sized
  for 2 CPU cores: 8 prompts x 4 samples x 16 new tokens per step, LoRA r 16 on the attention
  projections (the model layer's targets for Llama), one epoch of 2 minibatches, learning rate 3e-4
  (the issue's group-baseline experiment moved held-out accuracy from 0.04 to 0.57 in 20 steps at 2e-4
  with twice the samples per step), probes of one task per family, no second entropy pass. Measured
  on a 2-core AMD EPYC (Zen 3, AVX2, fp32, one thread) under a load average of 8-10: 26 s for a step
  of 4 x 4 samples with a learned RM; a quiet machine runs this preset's steps in about that time.
  The shipped ``demo-smollm2`` run is this preset on the arithmetic families (:mod:`engine.demo`).
"""

from __future__ import annotations

from typing import Any

from engine.config import ConfigError
from engine.ppo.config import PPOConfig

PRESETS: dict[str, dict[str, Any]] = {
    "smollm2-cpu": {
        "policy": "smollm2",
        "prompts_per_step": 8,
        "samples_per_prompt": 4,
        "max_new_tokens": 16,
        "lora_r": 16,
        "lora_alpha": 32,
        "learning_rate": 3e-4,
        "ppo_epochs": 1,
        "num_minibatches": 2,
        "steps": 20,
        "save_every": 10,
        "probe_every": 5,
        "probes_per_family": 1,
        "probe_samples": 4,
        "measure_entropy_change": False,
    },
}


def preset_config(name: str, **overrides: Any) -> PPOConfig:
    """The config of preset ``name`` with ``overrides`` (flat leaf names, as :meth:`PPOConfig.replace`)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; the presets are {sorted(PRESETS)}")
    return PPOConfig().replace(**{**PRESETS[name], **overrides})
