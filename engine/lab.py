"""The sampling lab's engine: sample a batch for (model, prompts, settings, seed), re-score it under
new settings without resampling, score rewards, and sweep a sampling parameter.

Everything here is plain Python + torch; the page only reads widgets and renders what this returns.
:class:`SamplingLab` holds the loaded models and a byte-bounded LRU of sampled batches, so moving a
slider back to an earlier value returns the same samples instantly (the seed is fixed per setting).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from engine.analysis.entropy_dynamics import entropy_distribution, top_entropy_tokens
from engine.config import GOLD_REWARD, ConfigError, SamplingConfig, validate_prompt
from engine.models import LoadedModel, load_causal_lm
from engine.models.decoders import PrefillCache
from engine.models.gguf_cache import named_source
from engine.models.threads import threads_for, using_threads
from engine.models.trunk import SharedTrunk, shared_trunk
from engine.real_world.world import real_checker, real_rm_source, real_tasks
from engine.reward import Judge, load_reward_model, same_vocabulary, score_responses
from engine.runs import list_checkpoints
from engine.sampling import SIGNAL_CHUNK_BYTES, Generation, chat_prompts, generate_from_texts, sampling_logits
from engine.token_text import token_texts

SIGNALS = ("entropy", "sampling_entropy", "max_prob", "sampled_prob", "n_candidates")
SIGNAL_HELP = {
    "entropy": "entropy of the model's next-token distribution at T=1 (nats)",
    "sampling_entropy": "entropy of the distribution actually sampled from, after T / top-k / top-p (nats)",
    "max_prob": "probability of the most likely next token (T=1)",
    "sampled_prob": "probability of the token that was drawn (T=1)",
    "n_candidates": "number of tokens that could have been drawn at this position",
}
N_ALTERNATIVES = 5
TEMPERATURE_GRID = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
TOP_P_GRID = (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
MIN_P_GRID = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
SWEEP_GRIDS = {"temperature": TEMPERATURE_GRID, "top_p": TOP_P_GRID, "min_p": MIN_P_GRID}
"""The sampling parameters the lab sweeps, each with its grid."""

ProgressFn = Callable[[float, str], None]


def reference_config(config: SamplingConfig) -> SamplingConfig:
    """The same length settings with the untouched model distribution (T=1, top-p 1, top-k 0, min-p 0)."""
    return replace(config, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)


@dataclass
class Alternatives:
    """The most likely tokens at each position: ids (B, T, K), p under T=1 and q under the settings."""

    ids: torch.Tensor
    p: torch.Tensor
    q: torch.Tensor


@dataclass
class LabBatch:
    """One sampled batch: ``n_samples`` responses per prompt, rows grouped by prompt."""

    source: str
    prompts: list[str]
    prompt_index: list[int]  # (B,) row -> index into prompts
    generation: Generation
    response_ids: list[list[int]]  # per row, the ids of the real positions (EOS included)
    tokens: list[list[str]]  # per row, the token strings of the real positions
    responses: list[str]  # per row, the decoded response without special tokens
    token_strings: dict[int, str]  # id -> display string, for the alternatives
    rewards: np.ndarray | None = None  # (B,) RM scores
    gold: np.ndarray | None = None  # (B,) gold judge scores (built-in world)
    threads: int = 1  # torch threads the batch was sampled on (threads_for): its re-scoring runs on them too
    _signals: dict = field(default_factory=dict, repr=False)  # config -> signals, computed once
    _alternatives: dict = field(default_factory=dict, repr=False)  # (config, k) -> top alternatives

    @property
    def config(self) -> SamplingConfig:
        return self.generation.config

    @property
    def mask(self) -> torch.Tensor:
        return self.generation.response_mask

    def signals(self, config: SamplingConfig | None = None) -> dict[str, np.ndarray]:
        """The five signals (B, T) as float arrays, re-scored under ``config`` without resampling.

        Memoised per config: a page rerun asks for them several times (tokens, summary, distributions).
        """
        config = config or self.config
        if config not in self._signals:
            with using_threads(self.threads):
                signals = self.generation.signals(config).as_dict()
            self._signals[config] = {name: signals[name].float().cpu().numpy() for name in SIGNALS}
        return self._signals[config]

    def alternatives(self, config: SamplingConfig | None = None, k: int = N_ALTERNATIVES) -> Alternatives:
        """The top ``k`` tokens per position (memoised: the token rows of each prompt ask for them)."""
        key = (config or self.config, k)
        if key not in self._alternatives:
            with using_threads(self.threads):
                self._alternatives[key] = top_alternatives(self.generation.logits, key[0], k)
        return self._alternatives[key]

    def signal_values(self, config: SamplingConfig | None = None) -> dict[str, np.ndarray]:
        """Each signal's values over real tokens only (flat), for distributions."""
        mask = self.mask.cpu().numpy()
        return {name: values[mask] for name, values in self.signals(config).items()}

    def summary(self, config: SamplingConfig | None = None) -> dict[str, float]:
        """Mean of each signal over real tokens."""
        return {
            name: float(v.mean()) if v.size else float("nan")
            for name, v in self.signal_values(config).items()
        }


def forking_tokens(batch: LabBatch, k: int = 12) -> dict:
    """Forking tokens of a batch (Wang et al. 2025): the entropy distribution of its sampled tokens
    (share near zero, percentiles) and the ``k`` highest-entropy positions with their words.

    The same functions as a run's forking-token analysis (``engine.analysis.entropy_dynamics``).
    """
    entropy = batch.signals()["entropy"]  # (B, T)
    first_row = {i: batch.prompt_index.index(i) for i in set(batch.prompt_index)}
    rows = [
        {"row": r, "prompt_id": batch.prompts[i], "sample_idx": r - first_row[i], "position": t,
         "token": token, "entropy": float(entropy[r, t])}
        for r, (i, tokens) in enumerate(zip(batch.prompt_index, batch.tokens, strict=True))
        for t, token in enumerate(tokens)
    ]  # fmt: skip
    tokens = pd.DataFrame(rows, columns=["row", "prompt_id", "sample_idx", "position", "token", "entropy"])
    return {
        "distribution": entropy_distribution(tokens["entropy"].to_numpy()),
        "top": top_entropy_tokens(tokens, k),
        "entropy": tokens["entropy"].to_numpy(),
    }


def top_alternatives(logits: torch.Tensor, config: SamplingConfig, k: int = N_ALTERNATIVES) -> Alternatives:
    """The k most likely tokens per position (B, T, V) -> (B, T, k), with p (T=1) and q (settings).

    Temperature, top-k and top-p never reorder tokens, so the top k under p are the top k under q.
    Naive equivalent: ``softmax(z).gather(-1, ids)`` and ``softmax(sampling_logits(z)).gather(-1, ids)``;
    here p = exp(z - logsumexp z) and q alike at the k ids only, in row chunks of
    :data:`~engine.sampling.SIGNAL_CHUNK_BYTES` (no (B, T, V) softmax written out: a third of a notch's
    re-scoring on SmolLM2's 49152-token vocabulary).
    """
    batch, steps, vocab = logits.shape
    k = min(k, vocab)
    flat = logits.reshape(-1, vocab)  # (B * T, V)
    rows = max(1, SIGNAL_CHUNK_BYTES // (4 * vocab))
    ids, p, q = [], [], []
    for start in range(0, flat.shape[0], rows):
        z = flat[start : start + rows].float()  # (N, V)
        top = torch.topk(z, k, dim=-1)  # (N, k)
        s = sampling_logits(z, config)  # (N, V), -inf outside the support
        ids.append(top.indices)
        p.append((top.values - z.logsumexp(-1, keepdim=True)).exp())
        q.append((s.gather(-1, top.indices) - s.logsumexp(-1, keepdim=True)).exp())
    shape = (batch, steps, k)
    return Alternatives(
        ids=torch.cat(ids).view(shape), p=torch.cat(p).view(shape), q=torch.cat(q).view(shape)
    )


def checkpoint_choices(runs_dir: Path) -> list[tuple[str, Path]]:
    """Complete PPO checkpoints of every run under ``runs_dir``, as (label, dir), by run then step."""
    runs = sorted(d for d in Path(runs_dir).glob("*") if d.is_dir() and not d.name.startswith("."))
    return [(f"{run.name} / step {step}", path) for run in runs for step, path in list_checkpoints(run)]


def clean_prompts(prompts: Sequence[str]) -> list[str]:
    """Stripped, de-duplicated prompts in order; ConfigError when none is left."""
    seen: dict[str, None] = {}
    for prompt in prompts:
        if prompt and prompt.strip():
            seen.setdefault(validate_prompt(prompt))
    if not seen:
        raise ConfigError("prompt is empty: pick a prompt or type at least one word")
    return list(seen)


def sample_batch(
    loaded: LoadedModel,
    prompts: Sequence[str],
    config: SamplingConfig,
    *,
    n_samples: int,
    seed: int,
    on_step: Callable[[int, int], None] | None = None,
    keep_layers: int | None = None,
    prefill_cache: PrefillCache | None = None,
) -> LabBatch:
    """``n_samples`` responses for each prompt in one batched generation, with a fixed seed.

    A chat model reads each prompt as a user turn of its chat template (as PPO samples it); the batch
    keeps the user's text. ``keep_layers``: the generation keeps those layers' output for an RM that
    shares them (:attr:`engine.sampling.Generation.trunk_hidden`, used once by :func:`score_batch`).
    ``prefill_cache``: the prompt pass is reused from earlier batches of the same prompts on this model.
    """
    if n_samples < 1:
        raise ConfigError(f"number of samples must be >= 1, got {n_samples}")
    prompts = clean_prompts(prompts)
    tok = loaded.tokenizer
    rows = [i for i in range(len(prompts)) for _ in range(n_samples)]
    texts = chat_prompts(tok, [prompts[i] for i in rows])
    generator = torch.Generator(device=loaded.device).manual_seed(seed)
    with threads_for(loaded.model) as threads:
        gen = generate_from_texts(
            loaded,
            texts,
            config,
            generator,
            on_step=on_step,
            keep_layers=keep_layers,
            prefill_cache=prefill_cache,
        )
    gen.logits = gen.logits.cpu()  # the view only re-scores these; keep accelerator memory free
    response_ids = gen.response_ids.tolist()
    keep = gen.response_mask.tolist()
    real = [[t for t, k in zip(row, m, strict=True) if k] for row, m in zip(response_ids, keep, strict=True)]
    with using_threads(threads):
        alternative_ids = torch.topk(gen.logits, min(N_ALTERNATIVES, gen.logits.shape[-1]), dim=-1).indices
    vocab_ids = sorted({t for row in real for t in row} | set(alternative_ids.unique().tolist()))
    token_strings = dict(zip(vocab_ids, token_texts(tok, vocab_ids), strict=True))
    return LabBatch(
        source=loaded.source,
        prompts=prompts,
        prompt_index=rows,
        generation=gen,
        response_ids=real,
        tokens=[[token_strings[t] for t in row] for row in real],
        responses=tok.batch_decode(real, skip_special_tokens=True),
        token_strings=token_strings,
        threads=threads,
    )


@torch.no_grad()
def score_batch(
    batch: LabBatch,
    tokenizer,
    reward_model: LoadedModel | None,
    judge: Judge | None,
    trunk: SharedTrunk | None = None,
) -> LabBatch:
    """Fill in RM scores and gold scores of the batch's responses (as PPO scores them). With the RM's
    ``trunk`` and the layers' output the generation kept, the RM runs only the layers above them."""
    gen = batch.generation
    shared = (trunk, gen.trunk_hidden) if trunk is not None and gen.trunk_hidden is not None else None
    scored = score_responses(
        tokenizer, gen.sequences, gen.attention_mask, gen.response_ids, gen.response_mask,
        [batch.prompts[i] for i in batch.prompt_index], reward=reward_model, judge=judge, trunk=shared,
    )  # fmt: skip
    gen.trunk_hidden = None  # used once: not kept in the lab's cache of batches
    if scored.reward is not None:
        batch.rewards = scored.reward.cpu().numpy()
    if scored.gold is not None:
        batch.gold = scored.gold.numpy().astype(float)
    return batch


@dataclass(frozen=True)
class SweepPoint:
    """Signal means and reward means of one grid setting."""

    value: float
    summary: dict[str, float]
    reward: float | None
    gold: float | None


class SamplingLab:
    """Loaded models and recently sampled batches, shared by every session of the app.

    Thread-safe: Streamlit runs each session in its own thread. Batches are evicted least-recently
    used once their logits exceed ``cache_bytes`` (a big vocabulary makes each batch large).
    """

    def __init__(self, *, world=None, cache_bytes: int = 1 << 30):
        self.world = world  # the built-in world (engine.world.World) or None when it is not built
        self.cache_bytes = cache_bytes
        self._models: dict[str, LoadedModel] = {}
        self._reward_models: dict[str, LoadedModel] = {}
        self._trunks: dict[tuple[str, str | None], SharedTrunk | None] = {}
        self._prefills: dict[str, PrefillCache] = {}  # per model source: its prompt passes
        self._same_vocab: dict[tuple[str, str | None], bool] = {}  # (source, RM source; None: the world's)
        self._batches: OrderedDict[tuple, LabBatch] = OrderedDict()
        self._lock = threading.RLock()

    def model(self, source: str) -> LoadedModel:
        with self._lock:
            if source not in self._models:
                self._models[source] = load_causal_lm(source)
            return self._models[source]

    def reward_model(self, source: str) -> LoadedModel:
        with self._lock:
            if source not in self._reward_models:
                self._reward_models[source] = load_reward_model(source)
            return self._reward_models[source]

    def is_loaded(self, source: str) -> bool:
        return source in self._models

    def sample(
        self,
        source: str,
        prompts: Sequence[str],
        config: SamplingConfig,
        *,
        n_samples: int,
        seed: int,
        reward_source: str | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> LabBatch:
        """A scored batch, from the cache when this exact request was sampled before.

        Models of the built-in world (same vocabulary) are scored by the world's RM and gold judge by
        default; ``reward_source`` names another RM (HF sequence classifier or local dir), or ``gold``:
        the judge's score is the reward, as in a PPO run with ``--reward-model gold``.
        """
        prompts = clean_prompts(prompts)
        key = (source, tuple(prompts), config, n_samples, seed, reward_source)
        with self._lock:
            if key in self._batches:
                self._batches.move_to_end(key)
                return self._batches[key]
            loaded = self.model(source)
            judge_is_reward = (reward_source or "").strip() == GOLD_REWARD
            reward_source, judge = self.scorers(
                source, loaded, prompts, None if judge_is_reward else reward_source
            )
            if judge_is_reward:
                if judge is None:
                    raise ConfigError(
                        f"reward model {GOLD_REWARD!r} rewards with the gold judge, and {source} on these prompts "
                        "has none: the built-in world's models, or smollm2 on the real world's tasks"
                    )
                reward_source = None
            rm = self.reward_model(reward_source) if reward_source else None
            trunk = self.shared_trunk(source, loaded, reward_source, rm)
            batch = sample_batch(
                loaded, prompts, config, n_samples=n_samples, seed=seed, on_step=on_step,
                keep_layers=trunk.layers if trunk is not None else None,
                prefill_cache=self._prefills.setdefault(source, PrefillCache()),
            )  # fmt: skip
            with threads_for(loaded.model):
                score_batch(batch, loaded.tokenizer, rm, judge, trunk)
            if judge_is_reward:
                batch.rewards = batch.gold
            self._batches[key] = batch
            self._evict()
            return batch

    def shared_trunk(
        self, source: str, loaded: LoadedModel, reward_source: str | None, rm: LoadedModel | None
    ) -> SharedTrunk | None:
        """The RM's layers that are the sampled model's own (the real RM on ``smollm2``: 26 of 30), so
        that sampling keeps their output and the RM runs only the layers above; checked once per pair."""
        if rm is None or not self.same_vocabulary(source, reward_source, loaded, rm):
            return None
        key = (source, reward_source)
        if key not in self._trunks or not (self._trunks[key] is None or self._trunks[key].intact()):
            self._trunks[key] = shared_trunk(rm.model, loaded.model)
        return self._trunks[key]

    def same_vocabulary(self, source: str, other_source: str | None, loaded: LoadedModel, other) -> bool:
        """Whether ``loaded`` and ``other`` (an RM, or the world for ``other_source`` None) share token ids,
        compared once per pair: comparing two 49152-token vocabularies took ~0.1 s of every notch."""
        key = (source, other_source)
        if key not in self._same_vocab:
            self._same_vocab[key] = same_vocabulary(loaded.tokenizer, other.tokenizer)
        return self._same_vocab[key]

    def scorers(
        self, source: str, loaded: LoadedModel, prompts: list[str], reward_source: str | None
    ) -> tuple[str | None, Judge | None]:
        """(RM source, gold judge) for a batch: the world's RM and judge for a model of the world's
        vocabulary; for a real model (a named source such as ``smollm2``) the real world's RM when it is
        built and its checkers when every prompt is one of its tasks; ``reward_source`` names another RM."""
        if self.world is not None and self.same_vocabulary(source, None, loaded, self.world):
            return reward_source or self.world.rm_source, self.world.gold_batch
        if named_source(source) is None:
            return reward_source, None
        tasks = real_tasks()
        return reward_source or real_rm_source(), real_checker if all(p in tasks for p in prompts) else None

    def sweep(
        self,
        source: str,
        prompts: Sequence[str],
        config: SamplingConfig,
        *,
        parameter: str,
        values: Sequence[float],
        n_samples: int,
        seed: int,
        reward_source: str | None = None,
        progress: ProgressFn | None = None,
    ) -> list[SweepPoint]:
        """Sample at each grid value of ``parameter`` (one of :data:`SWEEP_GRIDS`), other settings fixed."""
        if parameter not in SWEEP_GRIDS:
            raise ConfigError(f"can only sweep {', '.join(SWEEP_GRIDS)}, got {parameter!r}")
        points = []
        for i, value in enumerate(values):
            if progress is not None:
                progress(i / len(values), f"{parameter} = {value:g}")
            setting = replace(config, **{parameter: value})
            batch = self.sample(
                source, prompts, setting, n_samples=n_samples, seed=seed, reward_source=reward_source
            )
            points.append(
                SweepPoint(
                    value=float(value),
                    summary=batch.summary(),
                    reward=float(batch.rewards.mean()) if batch.rewards is not None else None,
                    gold=float(batch.gold.mean()) if batch.gold is not None else None,
                )
            )
        if progress is not None:
            progress(1.0, "done")
        return points

    def _evict(self) -> None:
        def size(batch: LabBatch) -> int:
            return batch.generation.logits.numel() * batch.generation.logits.element_size()

        total = sum(size(b) for b in self._batches.values())
        while total > self.cache_bytes and len(self._batches) > 1:
            _, dropped = self._batches.popitem(last=False)
            total -= size(dropped)
