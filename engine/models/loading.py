"""Model layer: load a causal LM + tokenizer (built-in world, local path or Hugging Face name),
attach a LoRA adapter, add a scalar value head.

The reference policy is the same base with the LoRA adapter disabled (``reference_mode``), so there
is never a second copy of the weights. Loading is offline and safetensors-only; ``trust_remote_code``
stays off unless the caller asks for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engine.config import ConfigError
from engine.models.gguf_cache import ensure_cached, named_source
from engine.paths import world_dir

log = logging.getLogger(__name__)

WORLD_PREFIX = "world:"
# LoRA targets per architecture; anything else falls back to every linear layer.
LORA_TARGETS = {
    "gpt2": ["c_attn", "c_proj"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gpt_neox": ["query_key_value", "dense"],
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj"],
}


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class LoadedModel:
    """A causal LM ready for sampling or training, with what it was loaded from."""

    model: nn.Module
    tokenizer: object  # a transformers PreTrainedTokenizerBase
    source: str
    path: Path | None  # local directory, when there is one

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def resolve_source(source: str) -> Path | str:
    """Map a model source to a local directory, or return a hub name to look up in the local cache.

    ``world:sft-epoch-3`` / ``world:rm`` name the built-in world's artifacts; a named source
    (``smollm2``, :mod:`engine.models.gguf_cache`) is its local cache, converted on first use (``./smollm2``
    names a directory of that name); anything else is a local path (if it exists) or a Hugging Face
    model name.
    """
    source = (source or "").strip()
    if not source:
        raise ConfigError("model source is empty: give a world checkpoint, a local path or a model name")
    if named_source(source) is not None:
        return ensure_cached(source)
    if source.startswith(WORLD_PREFIX):
        name = source[len(WORLD_PREFIX) :]
        path = world_dir() / name.replace("-epoch-", "/epoch-")
        if not path.is_dir():
            raise ConfigError(
                f"built-in world model {source!r} not found at {path}; run `python -m engine world build`"
            )
        return path
    path = Path(source).expanduser()
    if path.exists() or source.startswith((".", "/", "~")):
        if not path.is_dir():
            raise ConfigError(f"model path {source!r} does not exist or is not a directory")
        return path
    if not _in_hub_cache(source):
        raise ConfigError(
            f"model {source!r} is not on this machine: not a local directory, and not in the Hugging Face "
            "cache (nothing is downloaded: give a local path, or put the model in the cache first)"
        )
    return source


def _in_hub_cache(name: str) -> bool:
    """Whether the Hugging Face cache holds a config for the hub name ``name`` (a malformed name is not)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid repo id ("a b", "x//y")
        return False
    return isinstance(found, str)


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """The Hugging Face hub in offline mode while models load: ``local_files_only`` alone still lets
    transformers ask the hub for optional files (``adapter_config.json``), which without a network
    costs about 30 s of retries before the error. Restored afterwards, so other callers keep their
    own setting."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def check_model_dir(path: Path) -> None:
    if (path / "adapter_config.json").is_file():
        return
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path} is not a model directory: it has no config.json")
    if not any(path.glob("*.safetensors")):
        raise ConfigError(f"{path} has no .safetensors weights (only safetensors are loaded, for safety)")


def load_tokenizer(path_or_name: Path | str, *, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        with hub_offline():
            tok = AutoTokenizer.from_pretrained(
                str(path_or_name), local_files_only=True, trust_remote_code=trust_remote_code
            )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load a tokenizer from {str(path_or_name)!r}: {exc}") from exc
    if tok.pad_token_id is None:
        # Responses are masked explicitly, so reusing EOS as pad is safe for the policy.
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(
    source: str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    trust_remote_code: bool = False,
    suppress_fillers: bool = True,
) -> LoadedModel:
    """Load a causal LM and its tokenizer, in eval mode (dropout off) on ``device``.

    ``suppress_fillers``: the pad/bos/unk tokens get probability 0 (:func:`suppress_filler_tokens`);
    off to score text some other engine sampled, which may contain them.

    A directory holding a PEFT adapter (``adapter_config.json``) loads its base model and attaches
    the adapter, so PPO checkpoints load like any model.
    """
    from transformers import AutoModelForCausalLM

    resolved, adapter_dir, base, tokenizer_from = _model_files(source)
    local = isinstance(resolved, Path)
    device = torch.device(device) if device is not None else default_device()
    try:
        with hub_offline():
            model = AutoModelForCausalLM.from_pretrained(
                str(base),
                local_files_only=True,
                use_safetensors=True,
                trust_remote_code=trust_remote_code,
                dtype=dtype or torch.float32,
            )
    except (OSError, ValueError) as exc:
        hint = "" if local else " (no internet here: it must be a local directory or already in the HF cache)"
        raise ConfigError(f"cannot load model {source!r}{hint}: {exc}") from exc
    tokenizer = load_tokenizer(tokenizer_from, trust_remote_code=trust_remote_code)
    if adapter_dir is not None:
        from peft import PeftModel

        with _peft_deprecation_quiet():
            model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    model.to(device).eval()
    if suppress_fillers:
        suppress_filler_tokens(model, tokenizer)
    return LoadedModel(model=model, tokenizer=tokenizer, source=source, path=resolved if local else None)


def load_config_and_tokenizer(source: str, *, trust_remote_code: bool = False) -> tuple[object, object]:
    """(model config, tokenizer) of ``source`` as :func:`load_causal_lm` would load them, without the
    weights: what a check of the inputs needs (the context length, the prompts' token counts) at once."""
    from transformers import AutoConfig

    _, _, base, tokenizer_from = _model_files(source)
    try:
        with hub_offline():
            config = AutoConfig.from_pretrained(
                str(base), local_files_only=True, trust_remote_code=trust_remote_code
            )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load model {source!r}: {exc}") from exc
    return config, load_tokenizer(tokenizer_from, trust_remote_code=trust_remote_code)


def _model_files(source: str) -> tuple[Path | str, Path | None, Path | str, Path | str]:
    """(resolved source, adapter directory or None, base model, where the tokenizer is) of ``source``:
    a PEFT adapter directory loads its base model, and its own tokenizer when it saved one."""
    resolved = resolve_source(source)
    local = isinstance(resolved, Path)
    if local:
        check_model_dir(resolved)
    adapter_dir = resolved if local and (resolved / "adapter_config.json").is_file() else None
    base = _adapter_base(adapter_dir) if adapter_dir else resolved
    return resolved, adapter_dir, base, adapter_dir if adapter_dir and _has_tokenizer(adapter_dir) else base


def filler_token_ids(model: nn.Module, tokenizer) -> list[int]:
    """The tokenizer's pad, bos and unk ids, less every id that ends a response (the tokenizer's EOS
    and the generation config's, which for some chat models include the pad token)."""
    ends = {tokenizer.eos_token_id}
    generation = getattr(model, "generation_config", None)
    configured = getattr(generation, "eos_token_id", None)
    ends.update(configured if isinstance(configured, (list, tuple)) else [configured])
    fillers = {tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id}
    return sorted(i for i in fillers - ends if i is not None)


def suppress_filler_tokens(model: nn.Module, tokenizer) -> list[int]:
    """Give the filler tokens (:func:`filler_token_ids`) probability 0 in every forward, returning them.

    A small model trained with them in its vocabulary still puts ~1e-3 on [PAD] or [UNK], so a
    response of 24 tokens contains one now and then, and a [PAD] inside a response reads as a bug. A
    hook on the LM head sets their logits to -inf, so sampling, the lab's signals, training and the
    reference all see the same distribution and log-probs stay consistent. GPT-2-style tokenizers
    (pad = bos = unk = EOS) have none.
    """
    ids = filler_token_ids(model, tokenizer)
    if not ids:
        return ids
    _, head = backbone_and_head(model)
    index = torch.tensor(ids, device=head.weight.device)  # .to() below is a no-op unless the model moved

    def mask_fillers(_module: nn.Module, _inputs, logits: torch.Tensor) -> torch.Tensor:
        return logits.index_fill(-1, index.to(logits.device), float("-inf"))  # (..., V)

    head.register_forward_hook(mask_fillers)
    return ids


def _has_tokenizer(path: Path) -> bool:
    return (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file()


def _adapter_base(adapter_dir: Path) -> Path | str:
    """The base model an adapter was trained on, resolved like any source."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{adapter_dir}/adapter_config.json names no base_model_name_or_path")
    resolved = resolve_source(_world_source_of(base) or base)
    if isinstance(resolved, Path):
        check_model_dir(resolved)
    return resolved


def _world_source_of(recorded: str) -> str | None:
    """The world source (``world:sft-epoch-3``) of a base recorded as a path into a world directory.

    PEFT records the absolute path its base was loaded from: an adapter trained here (the shipped demo
    runs' checkpoints, say) names ``/somewhere/data/world/sft/epoch-3``, which does not exist in a
    clone elsewhere. The world's models are named by their place in the world, so that place is what
    is looked up, under this machine's world. None for anything that is not such a path (a hub name, a
    path outside a world) or that exists as recorded.
    """
    path = Path(recorded)
    if not path.is_absolute() or path.exists() or "world" not in path.parts[:-1]:
        return None
    inside = path.parts[len(path.parts) - path.parts[::-1].index("world") :]  # after the last "world"
    if len(inside) == 2 and inside[0] == "sft" and inside[1].startswith("epoch-"):
        return f"{WORLD_PREFIX}sft-{inside[1]}"
    if inside == ("rm",):
        return f"{WORLD_PREFIX}rm"
    return None


def lora_targets(model: nn.Module) -> list[str] | str:
    model_type = getattr(getattr(model, "config", None), "model_type", "")
    return LORA_TARGETS.get(model_type, "all-linear")


def attach_lora(
    model: nn.Module,
    *,
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.0,
    target_modules: list[str] | None = None,
) -> nn.Module:
    """Wrap ``model`` in a PEFT LoRA adapter; only the adapter's weights stay trainable."""
    from peft import LoraConfig, get_peft_model

    if r < 1:
        raise ConfigError(f"LoRA rank must be >= 1, got {r}")
    targets = target_modules or lora_targets(model)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
        fan_in_fan_out=getattr(model.config, "model_type", "") == "gpt2",  # GPT-2 uses Conv1D
    )
    with _peft_deprecation_quiet():
        return get_peft_model(model, config)


@contextlib.contextmanager
def _peft_deprecation_quiet() -> Iterator[None]:
    """peft reads ``model.is_gradient_checkpointing``, which transformers 5 deprecates with a
    FutureWarning on every adapter attach; the warning is about peft's code, not the caller's, so this
    one message (and only it) is silenced where peft is called."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


@contextlib.contextmanager
def reference_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The reference policy: the same weights with the LoRA adapter switched off."""
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            yield model
    else:  # no adapter attached: the model is its own reference
        yield model


def hidden_size(model: nn.Module) -> int:
    config = model.config
    for name in ("hidden_size", "n_embd", "d_model"):
        if getattr(config, name, None):
            return int(getattr(config, name))
    raise ConfigError(f"cannot tell the hidden size of a {type(model).__name__}")


class ValueHead(nn.Module):
    """Scalar value per position from the policy's last hidden state: (B, L, H) -> (B, L)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.summary = nn.Linear(hidden, 1)
        nn.init.normal_(self.summary.weight, std=1.0 / (hidden + 1) ** 0.5)
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.summary(hidden_states.to(self.summary.weight.dtype)).squeeze(-1)


def backbone_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(transformer body, LM head) of a causal LM, looking through a PEFT wrapper.

    Lets callers run the body once and apply the (vocabulary-sized) head only where logits are
    needed, e.g. on response positions. LoRA layers live inside the body's modules, so they apply.
    """
    inner = model
    if hasattr(inner, "get_base_model"):  # PeftModel
        inner = inner.get_base_model()
    body = getattr(inner, inner.base_model_prefix)
    head = inner.get_output_embeddings()
    return body, head


def save_value_head(head: ValueHead, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(path))


def load_value_head(path: Path, hidden: int, device: torch.device | str = "cpu") -> ValueHead:
    from safetensors.torch import load_file

    head = ValueHead(hidden)
    head.load_state_dict(load_file(str(path), device=str(device)))
    return head.to(device)


def set_threads_from_env() -> None:
    """Honour WORKBENCH_THREADS (tiny models can be slower with more threads on a busy machine)."""
    threads = os.environ.get("WORKBENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
