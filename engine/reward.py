"""Reward models: the Bradley-Terry loss and one scoring interface for sampled responses.

Three kinds load through :func:`load_reward_model`:
- the built-in world's pooled RM (a causal-LM body + a linear head whose score is the last token's
  term plus the mean of per-token terms; a last-token head alone plateaued in accuracy on the toy
  world, see WORLD_NOTES). Mean pooling rewards token spam: the over-optimisation the workbench shows.
- any Hugging Face ``AutoModelForSequenceClassification`` with one label;
- an adapter RM (:class:`AdapterRewardModel`, the real world's): a named base model's body (``smollm2``)
  with LoRA on its top layers and a scalar head on the last token, saved as the adapter and head only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import ConfigError
from engine.models import (
    LORA_TARGETS,
    LoadedModel,
    backbone_and_head,
    check_model_dir,
    default_device,
    load_causal_lm,
    load_tokenizer,
    resolve_source,
)
from engine.models.decoders import body_hidden_states
from engine.models.trunk import SharedTrunk
from engine.ops import masked_mean, position_ids_of
from engine.sampling import chat_prompts, check_fits_context, pad_right

POOLED_CONFIG = "reward_head.json"


class PooledRewardModel(nn.Module):
    """score = w·h_last + mean_t(w'·h_t) + b over real tokens (B, L) -> (B,)."""

    def __init__(self, body: nn.Module, hidden: int):
        super().__init__()
        self.body = body
        self.last_head = nn.Linear(hidden, 1)
        self.token_head = nn.Linear(hidden, 1, bias=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.bool()
        position_ids = position_ids_of(mask)
        hidden = body_hidden_states(self.body, input_ids, mask, position_ids)  # (B, L, H)
        last_index = mask.shape[1] - 1 - mask.flip(-1).long().argmax(-1)  # last real token, any padding side
        last = hidden[torch.arange(hidden.shape[0], device=hidden.device), last_index]  # (B, H)
        per_token = self.token_head(hidden).squeeze(-1)  # (B, L)
        pooled = masked_mean(per_token, mask, dim=-1)  # (B,)
        return self.last_head(last).squeeze(-1) + pooled

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        path.mkdir(parents=True, exist_ok=True)
        self.body.config.save_pretrained(path)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(path / "model.safetensors"))
        (path / POOLED_CONFIG).write_text(json.dumps({"pooling": "last+mean"}))

    @classmethod
    def load(cls, path: Path) -> PooledRewardModel:
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(path, local_files_only=True)
        body = AutoModel.from_config(config)
        model = cls(body, config.hidden_size)
        model.load_state_dict(load_file(str(path / "model.safetensors")))
        return model


class SequenceClassifierRM(nn.Module):
    """Adapter so an HF sequence classifier scores like the pooled RM: (B, L) -> (B,)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask.long()).logits[:, 0]


ADAPTER_CONFIG = "reward_adapter.json"
ADAPTER_WEIGHTS = "adapter.safetensors"


@dataclass(frozen=True)
class AdapterRMSettings:
    """What an adapter RM is, saved beside its weights (``reward_adapter.json``)."""

    base: str = "smollm2"
    """The base model's source, by name (never a path into this machine's cache)."""
    top_layers: int = 4
    """LoRA on the top this many decoder layers; the layers below stay the base's (frozen)."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scale numerator (the update is scaled by alpha / r)."""
    chat_template: bool = True
    """Texts are scored as the policy reads them: the prompt in the base's chat template."""

    def __post_init__(self) -> None:
        if self.top_layers < 1 or self.lora_r < 1:
            raise ConfigError(
                f"adapter RM: top_layers and lora_r must be >= 1, got {self.top_layers}, {self.lora_r}"
            )


class AdapterRewardModel(nn.Module):
    """score = w·h_last + b: a base causal LM's body with LoRA on its top ``top_layers`` decoder
    layers, and a scalar head on the last real token's final hidden state; (B, L) -> (B,).

    Only the top layers train, so training runs the frozen layers below once per text
    (:meth:`lower`, cached) and each step goes forward and back through the top layers only
    (:meth:`upper`): ``upper(lower(x)) == forward(x)``. Llama-architecture bodies (``layers``,
    ``rotary_emb``, ``norm``), which is what ``smollm2`` is.
    """

    def __init__(self, body: nn.Module, settings: AdapterRMSettings):
        from peft import LoraConfig, inject_adapter_in_model

        super().__init__()
        if not all(hasattr(body, name) for name in ("layers", "rotary_emb", "norm", "embed_tokens")):
            raise ConfigError(f"an adapter RM needs a Llama-architecture base; {settings.base!r} is not one")
        n_layers = len(body.layers)
        if settings.top_layers > n_layers:
            raise ConfigError(f"adapter RM: top_layers {settings.top_layers} > the base's {n_layers} layers")
        self.settings = settings
        self.first_top = n_layers - settings.top_layers
        body.requires_grad_(False)
        lora = LoraConfig(
            r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
            lora_dropout=0.0,
            # by full name: peft's layers_to_transform needs a prefix before "layers" that a bare body lacks
            target_modules=rf"layers\.({'|'.join(map(str, range(self.first_top, n_layers)))})\.self_attn\."
            rf"({'|'.join(LORA_TARGETS['llama'])})",
        )
        self.body = inject_adapter_in_model(lora, body)  # LoRA weights trainable, the base's frozen
        self.head = nn.Linear(body.config.hidden_size, 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.bool()
        hidden = self.body(
            input_ids=input_ids, attention_mask=mask.long(), position_ids=position_ids_of(mask)
        ).last_hidden_state  # (B, L, H)
        return self._score(hidden, mask)

    def lower(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The input of the first adapted layer (B, L, H): what the frozen layers make of the text."""
        mask = attention_mask.bool()
        hidden = self.body.embed_tokens(input_ids)  # (B, L, H)
        return self._layers(hidden, mask, self.body.layers[: self.first_top])

    def upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Scores (B,) from :meth:`lower`'s output (B, L, H): the adapted layers, the norm, the head."""
        mask = attention_mask.bool()
        hidden = self.body.norm(self._layers(hidden, mask, self.body.layers[self.first_top :]))
        return self._score(hidden, mask)

    def _layers(self, hidden: torch.Tensor, mask: torch.Tensor, layers: nn.ModuleList) -> torch.Tensor:
        """``layers`` over ``hidden`` (B, L, H) as the body's own forward runs them (causal mask over
        real tokens, rotary positions that skip padding)."""
        from transformers.masking_utils import create_causal_mask

        position_ids = position_ids_of(mask)
        causal = create_causal_mask(
            config=self.body.config,
            inputs_embeds=hidden,
            attention_mask=mask.long(),
            past_key_values=None,
            position_ids=position_ids,
        )
        rotary = self.body.rotary_emb(hidden, position_ids=position_ids)
        for layer in layers:
            hidden = layer(
                hidden, attention_mask=causal, position_embeddings=rotary, position_ids=position_ids
            )
        return hidden

    def _score(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        last_index = mask.shape[1] - 1 - mask.flip(-1).long().argmax(-1)  # last real token, any padding side
        last = hidden[torch.arange(hidden.shape[0], device=hidden.device), last_index]  # (B, H)
        return self.head(last).squeeze(-1)

    @property
    def chat_template(self) -> bool:
        """Whether texts are scored with the prompt in the base's chat template (:func:`score_texts`)."""
        return self.settings.chat_template

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The adapter's and the head's weights: all that differs from the base."""
        return {
            name: param.detach().cpu().contiguous()
            for name, param in self.named_parameters()
            if name.startswith("head.") or "lora_" in name
        }

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        path.mkdir(parents=True, exist_ok=True)
        save_file(self.trained_state(), str(path / ADAPTER_WEIGHTS))
        (path / ADAPTER_CONFIG).write_text(json.dumps(asdict(self.settings), indent=2))

    @classmethod
    def build(cls, settings: AdapterRMSettings, *, device: torch.device | str | None = None) -> tuple:
        """(a fresh adapter RM on ``settings.base``, the base's tokenizer); the head's init is seeded
        by the caller (``torch.manual_seed``)."""
        loaded = load_causal_lm(settings.base, device=device, suppress_fillers=False)
        body, _ = backbone_and_head(loaded.model)
        return cls(body, settings).to(loaded.device), loaded.tokenizer

    @classmethod
    def load(cls, path: Path, *, device: torch.device | str | None = None) -> tuple:
        """(the adapter RM saved at ``path``, its base's tokenizer)."""
        from safetensors.torch import load_file

        try:
            settings = AdapterRMSettings(**json.loads((path / ADAPTER_CONFIG).read_text()))
            weights = load_file(str(path / ADAPTER_WEIGHTS))
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot load the adapter reward model at {path}: {exc}") from exc
        model, tokenizer = cls.build(settings, device=device)
        expected = set(model.trained_state())
        if set(weights) != expected:
            raise ConfigError(
                f"{path / ADAPTER_WEIGHTS} does not match its config: missing {sorted(expected - set(weights))[:3]}, "
                f"unexpected {sorted(set(weights) - expected)[:3]}"
            )
        model.load_state_dict(weights, strict=False)
        return model, tokenizer


def load_reward_model(source: str, *, device: torch.device | str | None = None) -> LoadedModel:
    """Load a reward model (built-in pooled RM, adapter RM or an HF sequence classifier), eval mode,
    frozen. An adapter RM's base loads through its named source and brings its tokenizer."""
    resolved = resolve_source(source)
    device = torch.device(device) if device is not None else default_device()
    if isinstance(resolved, Path) and (resolved / ADAPTER_CONFIG).is_file():
        adapter, tokenizer = AdapterRewardModel.load(resolved, device=device)
        adapter.eval().requires_grad_(False)
        return LoadedModel(model=adapter, tokenizer=tokenizer, source=source, path=resolved)
    if isinstance(resolved, Path) and (resolved / POOLED_CONFIG).is_file():
        model: nn.Module = PooledRewardModel.load(resolved)
    else:
        from transformers import AutoModelForSequenceClassification

        if isinstance(resolved, Path):
            check_model_dir(resolved)
        try:
            hf = AutoModelForSequenceClassification.from_pretrained(
                str(resolved), local_files_only=True, use_safetensors=True, num_labels=1
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load reward model {source!r}: {exc}") from exc
        model = SequenceClassifierRM(hf)
    tokenizer = load_tokenizer(resolved)
    if getattr(model, "model", None) is not None and model.model.config.pad_token_id is None:
        model.model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device).eval().requires_grad_(False)
    return LoadedModel(
        model=model, tokenizer=tokenizer, source=source, path=resolved if isinstance(resolved, Path) else None
    )


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """-log sigma(r_chosen - r_rejected), averaged."""
    return -F.logsigmoid(chosen - rejected).mean()


def encode_texts(tokenizer, prompts: list[str], responses: list[str], device: torch.device | str = "cpu"):
    """Right-padded (ids, mask) of ``prompt + response`` texts, each (B, L)."""
    # Prompt and response are tokenised apart, as they were generated (a subword tokenizer could
    # merge across the boundary of the joined text); an empty pair keeps one pad token.
    rows = [
        tokenizer(p, add_special_tokens=False)["input_ids"]
        + tokenizer(r, add_special_tokens=False)["input_ids"]
        or [tokenizer.pad_token_id]
        for p, r in zip(prompts, responses, strict=True)
    ]
    ids, mask = pad_right(rows, tokenizer.pad_token_id)
    return ids.to(device), mask.to(device)


def _config_of(model: nn.Module):
    """The transformers config of an RM: the pooled RM's body, a classifier adapter's inner model."""
    return getattr(model, "body", getattr(model, "model", model)).config


@torch.no_grad()
def score_texts(
    reward: LoadedModel, prompts: list[str], responses: list[str], batch_size: int = 256
) -> torch.Tensor:
    """RM scores (B,) of prompt + response texts; an RM trained on chat-templated prompts
    (:attr:`AdapterRewardModel.chat_template`) reads each prompt in its tokenizer's chat template, as
    it was trained."""
    if getattr(reward.model, "chat_template", False):
        prompts = chat_prompts(reward.tokenizer, prompts)
    scores = []
    for start in range(0, len(prompts), batch_size):
        ids, mask = encode_texts(
            reward.tokenizer,
            prompts[start : start + batch_size],
            responses[start : start + batch_size],
            reward.device,
        )
        check_fits_context(_config_of(reward.model), int(mask.sum(-1).max()), 0)
        scores.append(reward.model(ids, mask).float().cpu())
    return torch.cat(scores) if scores else torch.zeros(0)


def same_vocabulary(a, b) -> bool:
    """True when two tokenizers map every token to the same id (token ids can then be shared)."""
    if a is b:
        return True
    try:
        return len(a) == len(b) and a.get_vocab() == b.get_vocab()
    except (AttributeError, TypeError):
        return False


Judge = Callable[[list[str], list[str]], Sequence[float]]
"""(prompt texts, judge-ready response texts) -> a gold score per response (the world's judge)."""


@dataclass
class Scores:
    """RM and gold scores of a batch of sampled responses."""

    reward: torch.Tensor | None  # (B,) RM score; None without an RM
    gold: torch.Tensor | None  # (B,) gold judge score; None without a judge
    judge_texts: list[str]  # responses as the judge reads them: EOS kept, padding dropped


def score_responses(
    policy_tokenizer,
    sequences: torch.Tensor,
    attention_mask: torch.Tensor,
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
    prompts: list[str],
    *,
    reward: LoadedModel | None,
    judge: Judge | None,
    trunk: tuple[SharedTrunk, torch.Tensor] | None = None,
) -> Scores:
    """Score a batch of sampled responses with the RM and the gold judge, the one way the trainer,
    the sampling lab and the world checks all do it. Shapes: (B, P + T) sequences, (B, T) responses.
    ``trunk``: the RM's shared layers and their output (B, P + T, H): it runs only the layers above."""
    from engine.token_text import decode_responses

    judge_texts = decode_responses(policy_tokenizer, response_ids, response_mask)
    rm = None
    if reward is not None and trunk is not None:
        shared, hidden = trunk
        rm = shared.score(hidden, sequences.to(hidden.device), attention_mask.to(hidden.device))
    elif reward is not None and same_vocabulary(policy_tokenizer, reward.tokenizer):
        # The sampled ids, exactly as generated.
        with torch.no_grad():
            rm = reward.model(sequences.to(reward.device), attention_mask.to(reward.device)).float()
    elif reward is not None:
        # Another vocabulary: prompt + response text (the policy's special tokens dropped) in the
        # RM's own tokenizer.
        plain = decode_responses(policy_tokenizer, response_ids, response_mask, skip_special=True)
        rm = score_texts(reward, prompts, plain).to(reward.device)
    gold = None
    if judge is not None:
        gold = torch.tensor([float(x) for x in judge(prompts, judge_texts)], dtype=torch.float32)
    return Scores(reward=rm, gold=gold, judge_texts=judge_texts)


def train_reward_model(
    model: nn.Module,
    tokenizer,
    pairs: list[tuple[str, str, str]],
    *,
    epochs: int = 2,
    batch_size: int = 64,
    lr: float = 5e-4,
    seed: int = 0,
) -> nn.Module:
    """Bradley-Terry training on (prompt, chosen, rejected) texts."""
    import random

    from tqdm.auto import tqdm

    rng = random.Random(seed)
    torch.manual_seed(seed)
    device = next(model.parameters()).device  # an RM refresh trains the RM where PPO runs it
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = (len(pairs) + batch_size - 1) // batch_size
    schedule = lr_schedule(optimizer, lr, steps * epochs)
    model.train()
    for epoch in range(epochs):
        order = list(range(len(pairs)))
        rng.shuffle(order)
        bar = tqdm(range(steps), desc=f"RM epoch {epoch + 1}/{epochs}", leave=False)
        for b in bar:
            batch = [pairs[i] for i in order[b * batch_size : (b + 1) * batch_size]]
            prompts = [p for p, _, _ in batch]
            ids, mask = encode_texts(
                tokenizer, prompts + prompts, [c for _, c, _ in batch] + [r for _, _, r in batch], device
            )
            scores = model(ids, mask)
            loss = bradley_terry_loss(scores[: len(batch)], scores[len(batch) :])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return model


@torch.no_grad()
def score_token_rows(
    model: nn.Module, rows: list[list[int]], pad_id: int, batch_size: int = 32
) -> torch.Tensor:
    """RM scores (N,) of token-id rows (prompt + response ids, as sampled), right-padded in batches."""
    device = next(model.parameters()).device
    scores = []
    for start in range(0, len(rows), batch_size):
        ids, mask = pad_right(rows[start : start + batch_size], pad_id)
        scores.append(model(ids.to(device), mask.to(device)).float().cpu())
    return torch.cat(scores) if scores else torch.zeros(0)


def lr_schedule(optimizer: torch.optim.Optimizer, lr: float, total_steps: int):
    """One-cycle (10 % warm-up, then down) over ``total_steps``. OneCycleLR divides by its warm-up
    length, 0.1 x total - 1 steps, which is 0 at 10 steps: a short run (an RM refresh: a few batches)
    trains at the constant rate instead."""
    if total_steps >= 20:
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=total_steps, pct_start=0.1
        )
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
