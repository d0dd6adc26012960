"""PPO run configuration: nested frozen dataclasses, validated once, driving the CLI, the Runs page
form and the ``config`` column of the run record.

Sections: ``model`` (what is trained and what scores it), ``sampling`` (how rollouts are drawn, the
shared :class:`~engine.config.SamplingConfig`), ``ppo`` (the algorithm's knobs) and ``run`` (batch
sizes, steps, seed, checkpoints). Batch arithmetic is checked here, once, with a clear message.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.config import ConfigError, SamplingConfig

KLEstimator = Literal["k1", "k3"]
RewardNorm = Literal["none", "batch", "prompt"]
BasePrecision = Literal["fp32", "bf16_grad", "bf16"]
EntropyControl = Literal["none", "clip_cov", "kl_cov"]
# The choices of each Literal setting, from the type itself (the CLI, the form and validation share them).
KL_ESTIMATORS = typing.get_args(KLEstimator)
REWARD_NORMS = typing.get_args(RewardNorm)
BASE_PRECISIONS = typing.get_args(BasePrecision)
ENTROPY_CONTROLS = typing.get_args(EntropyControl)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _positive_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


@dataclass(frozen=True)
class ModelConfig:
    """What is trained (policy = base + LoRA) and what scores it."""

    policy: str = ""
    """Policy base model: a local path or HF name; empty = the built-in world's SFT checkpoint."""
    sft_epoch: int | None = None
    """Built-in world only: which SFT epoch to start from (None = the world's default epoch)."""
    reward_model: str = ""
    """Reward model: local path or HF sequence classifier; empty = the built-in world's RM."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA alpha (scale = alpha / r)."""
    chat_template: bool = True
    """Wrap each prompt as a user turn in the policy tokenizer's chat template (with the generation prompt) when the tokenizer has one; the stored prompt stays the user's text."""

    def __post_init__(self) -> None:
        _check(_positive_int(self.lora_r), f"lora_r must be an integer >= 1, got {self.lora_r!r}")
        _check(_positive_int(self.lora_alpha), f"lora_alpha must be an integer >= 1, got {self.lora_alpha!r}")
        _check(
            self.sft_epoch is None or (isinstance(self.sft_epoch, int) and self.sft_epoch >= 0),
            f"sft_epoch must be an integer >= 0 or None, got {self.sft_epoch!r}",
        )

    @property
    def uses_world(self) -> bool:
        """True when the policy comes from the built-in world (which also brings the gold judge)."""
        return not self.policy


@dataclass(frozen=True)
class PPOHyperConfig:
    """The algorithm: KL-shaped rewards, GAE, clipped losses, epochs over shuffled minibatches."""

    kl_coef: float = 0.05
    """Initial coefficient of the per-token KL penalty in the reward (>= 0; 0 = no penalty). TRL's default; on the built-in world 0.2 held the policy too close to the SFT model to gain, 0.02 let it find the RM's loopholes."""
    kl_estimator: KLEstimator = "k1"
    """Per-token KL estimator: k1 = log p - log p_ref; k3 = (r - 1) - log r with r = p_ref / p."""
    kl_target: float | None = None
    """Adaptive KL controller target (sum of KL over a response); None = fixed coefficient."""
    kl_horizon: int = 10000
    """Adaptive KL controller horizon in samples (Ziegler et al. 2019)."""
    gamma: float = 1.0
    """GAE discount."""
    lam: float = 0.95
    """GAE lambda."""
    cliprange: float = 0.2
    """Policy ratio clip epsilon (the lower side when cliprange_high is set)."""
    cliprange_high: float | None = None
    """Upper side of the ratio clip (DAPO's clip-higher, e.g. 0.28 with cliprange 0.2: unlikely tokens can gain probability faster, which keeps entropy up); None = cliprange."""
    cliprange_value: float = 0.2
    """Value clip around the rollout's values."""
    vf_coef: float = 0.1
    """Weight of the value loss in the combined loss."""
    learning_rate: float = 3e-4
    """AdamW learning rate (LoRA and value head)."""
    max_grad_norm: float | None = 1.0
    """Gradient clipping by global norm; None = no clipping."""
    ppo_epochs: int = 2
    """Passes over the rollout batch per iteration. Small models sample cheaply, so fresh rollouts beat reuse: on the built-in world 2 epochs gained as much per iteration as 4 at 0.6x the time (OpenRLHF and verl default to 1)."""
    num_minibatches: int = 4
    """Minibatches per epoch (batch_size must be divisible by it)."""
    whiten_advantages: bool = True
    """Whiten advantages over real tokens of the batch."""
    missing_eos_penalty: float | None = None
    """Subtracted from the RM score of a response that ends without EOS; None = off."""
    reward_norm: RewardNorm = "prompt"
    """RM score normalisation: none, batch (whiten over the batch) or prompt (subtract the prompt mean, divide by batch std)."""
    reward_clip: float | None = None
    """Clip the (normalised) score to [-reward_clip, reward_clip]; None = off."""
    entropy_control: EntropyControl = "none"
    """Covariance-based entropy control (Cui et al. 2025, arXiv 2505.22617): clip_cov detaches the gradient of a few random tokens whose log-prob/advantage covariance term is in a high band; kl_cov adds a |log ratio| penalty on the top tokens by covariance (and drops the ratio clip, as the authors do); none = plain PPO."""
    clip_cov_share: float = 2e-4
    """Clip-Cov: share of response tokens whose gradient is detached (the authors' 2e-4)."""
    clip_cov_low: float = 1.0
    """Clip-Cov: lower bound of the covariance band of candidate tokens."""
    clip_cov_high: float = 5.0
    """Clip-Cov: upper bound of the covariance band of candidate tokens."""
    kl_cov_share: float = 2e-3
    """KL-Cov: share of response tokens, the top ones by covariance, that get the penalty (the authors' k_percent 0.2 %)."""
    kl_cov_coef: float = 1.0
    """KL-Cov: coefficient of the |log ratio| penalty."""
    base_precision: BasePrecision = "bf16"
    """Matmuls of the frozen base where bf16 matmuls are fast (CUDA, avx512_bf16/AMX CPUs; fp32 elsewhere): bf16 = forward and input gradient in bf16 in every phase, bf16_grad = only the input gradient, fp32 = none."""

    def __post_init__(self) -> None:
        _check(
            _finite(self.kl_coef) and self.kl_coef >= 0,
            f"kl_coef must be a finite number >= 0, got {self.kl_coef!r}",
        )
        _check(
            self.kl_estimator in KL_ESTIMATORS,
            f"kl_estimator must be one of {KL_ESTIMATORS}, got {self.kl_estimator!r}",
        )
        _check(
            self.kl_target is None or (_finite(self.kl_target) and self.kl_target > 0),
            f"kl_target must be > 0 or None, got {self.kl_target!r}",
        )
        _check(_positive_int(self.kl_horizon), f"kl_horizon must be an integer >= 1, got {self.kl_horizon!r}")
        _check(_finite(self.gamma) and 0 <= self.gamma <= 1, f"gamma must be in [0, 1], got {self.gamma!r}")
        _check(_finite(self.lam) and 0 <= self.lam <= 1, f"lam must be in [0, 1], got {self.lam!r}")
        _check(
            _finite(self.cliprange) and self.cliprange > 0, f"cliprange must be > 0, got {self.cliprange!r}"
        )
        _check(
            _finite(self.cliprange_value) and self.cliprange_value > 0,
            f"cliprange_value must be > 0, got {self.cliprange_value!r}",
        )
        _check(_finite(self.vf_coef) and self.vf_coef >= 0, f"vf_coef must be >= 0, got {self.vf_coef!r}")
        _check(
            _finite(self.learning_rate) and self.learning_rate > 0,
            f"learning_rate must be > 0, got {self.learning_rate!r}",
        )
        _check(
            self.max_grad_norm is None or (_finite(self.max_grad_norm) and self.max_grad_norm > 0),
            f"max_grad_norm must be > 0 or None, got {self.max_grad_norm!r}",
        )
        _check(_positive_int(self.ppo_epochs), f"ppo_epochs must be an integer >= 1, got {self.ppo_epochs!r}")
        _check(
            _positive_int(self.num_minibatches),
            f"num_minibatches must be an integer >= 1, got {self.num_minibatches!r}",
        )
        _check(
            self.missing_eos_penalty is None or _finite(self.missing_eos_penalty),
            f"missing_eos_penalty must be a number or None, got {self.missing_eos_penalty!r}",
        )
        _check(
            self.reward_norm in REWARD_NORMS,
            f"reward_norm must be one of {REWARD_NORMS}, got {self.reward_norm!r}",
        )
        _check(
            self.cliprange_high is None or (_finite(self.cliprange_high) and self.cliprange_high > 0),
            f"cliprange_high must be > 0 or None, got {self.cliprange_high!r}",
        )
        _check(
            self.entropy_control in ENTROPY_CONTROLS,
            f"entropy_control must be one of {ENTROPY_CONTROLS}, got {self.entropy_control!r}",
        )
        for name in ("clip_cov_share", "kl_cov_share"):
            value = getattr(self, name)
            _check(_finite(value) and 0 <= value <= 1, f"{name} must be in [0, 1], got {value!r}")
        _check(
            _finite(self.clip_cov_low)
            and _finite(self.clip_cov_high)
            and self.clip_cov_low < self.clip_cov_high,
            f"the Clip-Cov band needs clip_cov_low < clip_cov_high, got {self.clip_cov_low!r}, {self.clip_cov_high!r}",
        )
        _check(
            _finite(self.kl_cov_coef) and self.kl_cov_coef >= 0,
            f"kl_cov_coef must be >= 0, got {self.kl_cov_coef!r}",
        )
        _check(
            self.base_precision in BASE_PRECISIONS,
            f"base_precision must be one of {BASE_PRECISIONS}, got {self.base_precision!r}",
        )
        _check(
            self.reward_clip is None or (_finite(self.reward_clip) and self.reward_clip > 0),
            f"reward_clip must be > 0 or None, got {self.reward_clip!r}",
        )


@dataclass(frozen=True)
class RunConfig:
    """Batch sizes, length of the run, prompts, seed and checkpoint cadence."""

    steps: int = 20
    """PPO iterations (each: rollout, score, update)."""
    prompts_per_step: int = 16
    """Distinct prompts per iteration."""
    samples_per_prompt: int = 4
    """Responses sampled per prompt (>= 2 makes per-prompt normalisation and variance meaningful)."""
    families: tuple[str, ...] = ()
    """Built-in world prompt families to train on; empty = all PPO families."""
    prompts_file: str = ""
    """Prompts instead of the world's PPO prompts: a text file (one prompt per line), or JSONL / Parquet with a prompt column (prompt, text or query) and optional family (or tag) and id columns."""
    seed: int = 0
    """Seeds prompt order, sampling and minibatch shuffles (each step derives its own generator)."""
    save_every: int = 5
    """Save a checkpoint (adapter, value head, optimizer) every N steps, and at the end."""
    log_rollouts: bool = True
    """Log every rollout with its per-token signals to the store."""
    measure_entropy_change: bool = True
    """After each update, measure the entropy of the same tokens again (metrics entropy/before_update and entropy/after_update: the Entropy dynamics page's measured change); one extra forward pass, about 15 % of a step on the built-in world."""
    probe_every: int = 5
    """Sample a fixed set of probe prompts every N steps (and at the last step), logged as probe rows: per family, entropy, distinct responses and the mass of the most likely response against step; 0 = off."""
    probes_per_family: int = 2
    """Probe prompts per prompt family (the first ones of the family by id, the same at every probe)."""
    probe_samples: int = 8
    """Samples per probe prompt (T = 1, a fixed seed, so the curves follow the policy, not the draw)."""
    processes: int = 1
    """Data-parallel processes (torch.distributed; > 1 launches with torchrun): each samples prompts_per_step / processes prompts, gradients are averaged before every optimizer step."""

    def __post_init__(self) -> None:
        _check(_positive_int(self.steps), f"steps must be an integer >= 1, got {self.steps!r}")
        _check(
            _positive_int(self.prompts_per_step),
            f"prompts_per_step must be an integer >= 1, got {self.prompts_per_step!r}",
        )
        _check(
            _positive_int(self.samples_per_prompt),
            f"samples_per_prompt must be an integer >= 1, got {self.samples_per_prompt!r}",
        )
        _check(
            isinstance(self.seed, int) and self.seed >= 0, f"seed must be an integer >= 0, got {self.seed!r}"
        )
        _check(_positive_int(self.save_every), f"save_every must be an integer >= 1, got {self.save_every!r}")
        _check(
            isinstance(self.probe_every, int) and self.probe_every >= 0,
            f"probe_every must be an integer >= 0 (0 = no probes), got {self.probe_every!r}",
        )
        _check(
            _positive_int(self.probes_per_family),
            f"probes_per_family must be an integer >= 1, got {self.probes_per_family!r}",
        )
        _check(
            _positive_int(self.probe_samples) and self.probe_samples >= 2,
            f"probe_samples must be an integer >= 2 (distinct responses need several), got {self.probe_samples!r}",
        )
        _check(_positive_int(self.processes), f"processes must be an integer >= 1, got {self.processes!r}")
        _check(
            self.prompts_per_step % self.processes == 0,
            f"prompts_per_step = {self.prompts_per_step} cannot be split evenly over processes = {self.processes}",
        )
        if not isinstance(self.families, tuple):  # lists arrive from JSON and forms
            object.__setattr__(self, "families", tuple(self.families))

    @property
    def batch_size(self) -> int:
        """Sequences per iteration."""
        return self.prompts_per_step * self.samples_per_prompt

    @property
    def batch_size_per_process(self) -> int:
        """Sequences each data-parallel process samples and trains on per iteration."""
        return self.batch_size // self.processes


@dataclass(frozen=True)
class PPOConfig:
    """A whole PPO run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """Policy, reward model and LoRA."""
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(max_new_tokens=24))
    """Rollout sampling: temperature, top-k, top-p, response length (24 fits the world's responses), stop at EOS."""
    ppo: PPOHyperConfig = field(default_factory=PPOHyperConfig)
    """Algorithm hyper-parameters."""
    run: RunConfig = field(default_factory=RunConfig)
    """Batch sizes, steps, seed, checkpoints."""

    def __post_init__(self) -> None:
        batch, mbs = self.run.batch_size, self.ppo.num_minibatches
        _check(
            batch % mbs == 0,
            f"batch arithmetic: prompts_per_step x samples_per_prompt = {self.run.prompts_per_step} x "
            f"{self.run.samples_per_prompt} = {batch} sequences is not divisible by num_minibatches = {mbs}",
        )
        _check(
            self.run.batch_size_per_process % mbs == 0,
            f"batch arithmetic: {batch} sequences over processes = {self.run.processes} is "
            f"{self.run.batch_size_per_process} per process, not divisible by num_minibatches = {mbs}",
        )
        _check(
            self.ppo.reward_norm != "prompt" or self.run.samples_per_prompt >= 2,
            "reward_norm='prompt' needs samples_per_prompt >= 2 (one sample per prompt normalises every score to 0)",
        )
        _check(
            self.sampling.temperature > 0,
            "PPO needs temperature > 0 (greedy rollouts have no ratio to optimise)",
        )

    @property
    def optimizer_steps_per_iteration(self) -> int:
        return self.ppo.ppo_epochs * self.ppo.num_minibatches

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PPOConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (they are typos or a newer format)."""
        sections = {}
        for f in dataclasses.fields(cls):
            section_cls = SECTION_TYPES[f.name]
            values = dict(data.get(f.name, {}))
            if f.name == "ppo" and "bf16_backward" in values:  # runs saved before base_precision
                values.setdefault("base_precision", "bf16_grad" if values.pop("bf16_backward") else "fp32")
            known = {g.name for g in dataclasses.fields(section_cls)}
            unknown = sorted(set(values) - known)
            _check(not unknown, f"unknown {f.name} settings {unknown}")
            sections[f.name] = section_cls(**values)
        return cls(**sections)

    def replace(self, **leaves: Any) -> PPOConfig:
        """A copy with leaf fields (by their flat name, e.g. ``kl_coef=0``) changed and re-validated."""
        data = self.to_dict()
        owner = leaf_owners()
        for name, value in leaves.items():
            _check(name in owner, f"unknown PPO setting {name!r}")
            data[owner[name]][name] = value
        return PPOConfig.from_dict(data)


SECTION_TYPES: dict[str, type] = {
    "model": ModelConfig,
    "sampling": SamplingConfig,
    "ppo": PPOHyperConfig,
    "run": RunConfig,
}


@functools.cache
def leaf_owners() -> dict[str, str]:
    """Flat leaf name -> section name; leaf names are unique across sections (the CLI relies on it)."""
    owners: dict[str, str] = {}
    for section, section_cls in SECTION_TYPES.items():
        for f in dataclasses.fields(section_cls):
            assert f.name not in owners, f"duplicate PPO setting name {f.name}"
            owners[f.name] = section
    return owners


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string literal right after each field)."""
    try:
        tree = ast.parse(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


@functools.cache
def field_choices(cls: type) -> dict[str, tuple]:
    """Field name -> allowed values, for the fields of ``cls`` typed with a ``Literal``."""
    hints = typing.get_type_hints(cls)
    return {name: typing.get_args(hint) for name, hint in hints.items() if typing.get_origin(hint) is Literal}
