"""Model layer: loading (world / local path / HF name), LoRA, value head, reference policy
(:mod:`engine.models.loading`), the speed-ups that compute the same function faster
(:mod:`engine.models.precision`), and the decoders generation runs, one lean decoder per architecture
beside the model's own forward (:mod:`engine.models.decoders`). ``from engine.models import ...`` is
the public API of loading and precision; generation takes its decoder from ``engine.models.decoders``.
"""

from engine.models.loading import (
    LORA_TARGETS,
    WORLD_PREFIX,
    LoadedModel,
    ValueHead,
    attach_lora,
    backbone_and_head,
    check_model_dir,
    default_device,
    filler_token_ids,
    hidden_size,
    load_causal_lm,
    load_config_and_tokenizer,
    load_tokenizer,
    load_value_head,
    lora_targets,
    reference_mode,
    resolve_source,
    save_value_head,
    set_threads_from_env,
    suppress_filler_tokens,
)
from engine.models.precision import (
    bf16_matmul_is_fast,
    frozen_matmuls_in_bf16,
    fuse_activations,
    merged_lora,
)

__all__ = [
    "LORA_TARGETS",
    "WORLD_PREFIX",
    "LoadedModel",
    "ValueHead",
    "attach_lora",
    "backbone_and_head",
    "bf16_matmul_is_fast",
    "check_model_dir",
    "default_device",
    "filler_token_ids",
    "frozen_matmuls_in_bf16",
    "fuse_activations",
    "hidden_size",
    "load_causal_lm",
    "load_config_and_tokenizer",
    "load_tokenizer",
    "load_value_head",
    "lora_targets",
    "merged_lora",
    "reference_mode",
    "resolve_source",
    "save_value_head",
    "set_threads_from_env",
    "suppress_filler_tokens",
]
