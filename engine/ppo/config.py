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
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.config import GOLD_REWARD, SamplingConfig
from engine.ppo.config_rules import (
    NON_NEGATIVE,
    NUMBER,
    POSITIVE,
    UNIT_INTERVAL,
    Rule,
    check,
    finite,
    int_at_least,
    one_of,
    or_none,
    validate,
)

KLEstimator = Literal["k1", "k3"]
RewardNorm = Literal["none", "batch", "prompt"]
BasePrecision = Literal["fp32", "bf16_grad", "bf16"]
EntropyControl = Literal["none", "clip_cov", "kl_cov"]
Algorithm = Literal["ppo", "grpo", "rloo"]
LossType = Literal["grpo", "dapo", "dr_grpo"]
RMLabeller = Literal["judge", "human"]
PromptSelection = Literal["uniform", "high_entropy", "high_variance", "low_entropy", "low_variance"]
# The choices of each Literal setting, from the type itself (the CLI, the form and validation share them).
KL_ESTIMATORS = typing.get_args(KLEstimator)
REWARD_NORMS = typing.get_args(RewardNorm)
BASE_PRECISIONS = typing.get_args(BasePrecision)
ENTROPY_CONTROLS = typing.get_args(EntropyControl)
ALGORITHMS = typing.get_args(Algorithm)
LOSS_TYPES = typing.get_args(LossType)
RM_LABELLERS = typing.get_args(RMLabeller)
PROMPT_SELECTIONS = typing.get_args(PromptSelection)
# The critic-free group methods (engine.ppo.group_advantages): no value head, no GAE.
GROUP_ALGORITHMS = ("grpo", "rloo")
# The settings only one kind of algorithm reads (the others ignore them): the Runs form shows a field
# only where it applies (setting_applies).
PPO_ONLY = (
    "kl_coef", "kl_target", "kl_horizon", "gamma", "lam", "cliprange_value", "vf_coef", "ppo_epochs",
    "whiten_advantages", "reward_norm",
)  # fmt: skip
GROUP_ONLY = ("scale_rewards", "kl_loss_coef", "loss_type", "num_iterations", "kl_metric_every")


def setting_applies(name: str, algorithm: str) -> bool:
    """Whether the setting ``name`` (a PPOConfig leaf) is read by a run of ``algorithm``."""
    if name in PPO_ONLY:
        return algorithm not in GROUP_ALGORITHMS
    if name in GROUP_ONLY:
        return algorithm in GROUP_ALGORITHMS
    return True


# ---------------------------------------------------------------------- validation (engine.ppo.config_rules)


MODEL_RULES = {
    "lora_r": int_at_least(1),
    "lora_alpha": int_at_least(1),
    "sft_epoch": or_none(int_at_least(0)),
    "rm_refresh_every": int_at_least(0, " (0 = off)"),
    "rm_refresh_pairs": int_at_least(1),
    "rm_labeller": one_of(RM_LABELLERS),
}


@dataclass(frozen=True)
class ModelConfig:
    """What is trained (policy = base + LoRA) and what scores it."""

    policy: str = ""
    """Policy base model: a local path or HF name; empty = the built-in world's SFT checkpoint."""
    sft_epoch: int | None = None
    """Built-in world only: which SFT epoch to start from (None = the world's default epoch)."""
    reward_model: str = ""
    """Reward model: local path or HF sequence classifier; empty = the world's RM (the built-in world's, or the real world's for policy smollm2); gold = no RM, the world's gold judge itself scores every sample (the real world's checker): what PPO gains without a learned RM's errors."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA alpha (scale = alpha / r)."""
    chat_template: bool = True
    """Wrap each prompt as a user turn in the policy tokenizer's chat template (with the generation prompt) when the tokenizer has one; the stored prompt stays the user's text."""
    rm_refresh_every: int = 0
    """Refresh the reward model every N steps (0 = off): label within-prompt pairs of the step's rollouts, train the RM on, from its current weights, on them plus its earlier data, and go on with it, so the RM stays accurate where PPO now samples (metrics rm/version, rm/agreement_before, rm/agreement_after)."""
    rm_refresh_pairs: int = 64
    """Labelled pairs per RM refresh (fewer when the rollouts or the labels hold fewer: the log says so)."""
    rm_labeller: RMLabeller = "judge"
    """Who labels the refresh pairs: judge = the world's gold judge with the world's label noise (the RM's own labeller); human = the pairs labelled in the app (runs/<id>/labels/), the ones not trained on yet."""

    def __post_init__(self) -> None:
        validate(self, MODEL_RULES)

    @property
    def reward_is_judge(self) -> bool:
        """True when the reward is the world's gold judge itself (``reward_model = "gold"``)."""
        return self.reward_model.strip() == GOLD_REWARD

    @property
    def uses_world(self) -> bool:
        """True when the policy comes from the built-in world (which also brings the gold judge)."""
        return not self.policy


PPO_RULES = {
    "algorithm": one_of(ALGORITHMS),
    "kl_loss_coef": NON_NEGATIVE,
    "loss_type": one_of(LOSS_TYPES),
    "num_iterations": int_at_least(1),
    "kl_coef": Rule(NON_NEGATIVE.ok, "a finite number >= 0"),
    "kl_estimator": one_of(KL_ESTIMATORS),
    "kl_target": or_none(POSITIVE),
    "kl_horizon": int_at_least(1),
    "gamma": UNIT_INTERVAL,
    "lam": UNIT_INTERVAL,
    "cliprange": POSITIVE,
    "cliprange_value": POSITIVE,
    "vf_coef": NON_NEGATIVE,
    "learning_rate": POSITIVE,
    "max_grad_norm": or_none(POSITIVE),
    "ppo_epochs": int_at_least(1),
    "num_minibatches": int_at_least(1),
    "missing_eos_penalty": or_none(NUMBER),
    "reward_norm": one_of(REWARD_NORMS),
    "cliprange_high": or_none(POSITIVE),
    "entropy_control": one_of(ENTROPY_CONTROLS),
    "clip_cov_share": UNIT_INTERVAL,
    "kl_cov_share": UNIT_INTERVAL,
    "kl_cov_coef": NON_NEGATIVE,
    "base_precision": one_of(BASE_PRECISIONS),
    "reward_clip": or_none(POSITIVE),
}


@dataclass(frozen=True)
class PPOHyperConfig:
    """The algorithm: PPO (KL-shaped rewards, GAE, clipped losses, epochs over shuffled minibatches) or
    a critic-free group method (GRPO, RLOO: group advantages, a KL loss term, TRL's loss types)."""

    algorithm: Algorithm = "ppo"
    """ppo = a value head and GAE; grpo = advantage (r - group mean) / (group std + eps), the group being the samples of one prompt; rloo = r - mean of the group's other samples. grpo and rloo build no value head and ignore the PPO-only settings (kl_coef, kl_target, kl_horizon, gamma, lam, cliprange_value, vf_coef, ppo_epochs, whiten_advantages, reward_norm); they use scale_rewards, kl_loss_coef, loss_type, num_iterations and kl_metric_every."""
    scale_rewards: bool = True
    """GRPO: divide the centred rewards by the group's std (off = Dr. GRPO, Liu et al. 2025: the std favours groups that are nearly all right or all wrong). A group with constant rewards gets advantage 0 either way."""
    kl_loss_coef: float = 0.0
    """GRPO / RLOO: coefficient of the per-token KL to the reference (k3 estimator) added to the loss, TRL's beta; 0 = no KL term (TRL's default)."""
    loss_type: LossType = "grpo"
    """GRPO / RLOO: how per-token losses are aggregated (TRL's loss_type): grpo = mean per sequence, then over sequences; dapo = mean over all tokens of the batch; dr_grpo = sum over the batch / (sequences x max_new_tokens)."""
    num_iterations: int = 1
    """GRPO / RLOO: optimizer steps per generation batch, each on the whole batch (num_minibatches chunks, gradients accumulated); 1 = on-policy, > 1 reuses the batch with the ratio clipped."""
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
    """PPO: RM score normalisation: none, batch (whiten over the batch) or prompt (subtract the prompt mean, divide by batch std). GRPO / RLOO skip it: their advantage is itself a per-group normalisation."""
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
        validate(self, PPO_RULES)
        check(
            finite(self.clip_cov_low)
            and finite(self.clip_cov_high)
            and self.clip_cov_low < self.clip_cov_high,
            f"the Clip-Cov band needs clip_cov_low < clip_cov_high, got {self.clip_cov_low!r}, {self.clip_cov_high!r}",
        )


RUN_RULES = {
    "steps": int_at_least(1),
    "prompts_per_step": int_at_least(1),
    "samples_per_prompt": int_at_least(1),
    "seed": int_at_least(0),
    "save_every": int_at_least(1),
    "probe_every": int_at_least(0, " (0 = no probes)"),
    "kl_metric_every": int_at_least(0, " (0 = never)"),
    "probes_per_family": int_at_least(1),
    "probe_samples": int_at_least(2, " (distinct responses need several)"),
    "processes": int_at_least(1),
    "prompt_selection": one_of(PROMPT_SELECTIONS),
    "prompt_selection_share": Rule(lambda x: finite(x) and 0 < x <= 1, "in (0, 1]"),
    "prompt_selection_samples": int_at_least(2, " (a variance needs several)"),
}


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
    kl_metric_every: int = 1
    """GRPO / RLOO with kl_loss_coef 0: the reference pass (adapter off) then feeds only the KL metrics and the logged ref_logprob and kl, so take it at step 1, every N-th step and the last step; other steps log no KL (0 = never, as TRL at beta 0). PPO and kl_loss_coef > 0 need the reference at every step and ignore this."""
    probes_per_family: int = 2
    """Probe prompts per prompt family (the first ones of the family by id, the same at every probe)."""
    probe_samples: int = 8
    """Samples per probe prompt (T = 1, a fixed seed, so the curves follow the policy, not the draw)."""
    processes: int = 1
    """Data-parallel processes (torch.distributed; > 1 launches with torchrun): each samples prompts_per_step / processes prompts, gradients are averaged before every optimizer step."""
    prompt_selection: PromptSelection = "uniform"
    """Which prompts PPO trains on: uniform = all of them; high_entropy / low_entropy / high_variance / low_variance = before step 1, measure each prompt's sampling space on the starting policy (mean token entropy and RM-score variance over prompt_selection_samples samples) and keep the prompt_selection_share with the highest or lowest (the table is kept in the run, prompt_selection.parquet)."""
    prompt_selection_share: float = 0.5
    """Share of the prompts kept by a prompt_selection other than uniform (at least one prompt)."""
    prompt_selection_samples: int = 8
    """Samples per prompt for the prompt_selection measurement (seeded from the run's seed)."""

    def __post_init__(self) -> None:
        validate(self, RUN_RULES)
        check(
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
        check(
            batch % mbs == 0,
            f"batch arithmetic: prompts_per_step x samples_per_prompt = {self.run.prompts_per_step} x "
            f"{self.run.samples_per_prompt} = {batch} sequences is not divisible by num_minibatches = {mbs}",
        )
        check(
            self.run.batch_size_per_process % mbs == 0,
            f"batch arithmetic: {batch} sequences over processes = {self.run.processes} is "
            f"{self.run.batch_size_per_process} per process, not divisible by num_minibatches = {mbs}",
        )
        check(
            self.ppo.algorithm not in GROUP_ALGORITHMS or self.run.samples_per_prompt >= 2,
            f"algorithm={self.ppo.algorithm!r} needs samples_per_prompt >= 2 (its baseline is the other "
            f"samples of the same prompt; one sample per prompt gives every advantage 0)",
        )
        check(
            self.ppo.reward_norm != "prompt" or self.run.samples_per_prompt >= 2,
            "reward_norm='prompt' needs samples_per_prompt >= 2 (one sample per prompt normalises every score to 0)",
        )
        check(
            self.model.rm_refresh_every == 0 or self.run.processes == 1,
            "rm_refresh_every needs processes = 1 (the refresh trains the RM on one process's rollouts)",
        )
        check(
            not (self.model.reward_is_judge and self.run.prompts_file),
            "reward_model='gold' needs the world's own prompts: a prompts file has no gold judge to score them",
        )
        check(
            not (self.model.reward_is_judge and self.model.rm_refresh_every),
            "rm_refresh_every needs a learned reward model; reward_model='gold' has none to refresh",
        )
        check(
            self.sampling.temperature > 0,
            "PPO needs temperature > 0 (greedy rollouts have no ratio to optimise)",
        )

    @property
    def uses_value_head(self) -> bool:
        """PPO trains a value head; the group methods have no critic."""
        return self.ppo.algorithm not in GROUP_ALGORITHMS

    def takes_reference(self, step: int) -> bool:
        """Whether 1-based ``step`` takes the reference log-probs: always where the KL is in the reward
        (PPO) or in the loss (kl_loss_coef > 0), else only at the KL metric's steps (kl_metric_every)."""
        if self.uses_value_head or self.ppo.kl_loss_coef > 0:
            return True
        every = self.run.kl_metric_every
        return every > 0 and (step == 1 or step % every == 0 or step == self.run.steps)

    @property
    def optimizer_steps_per_iteration(self) -> int:
        if not self.uses_value_head:
            return self.ppo.num_iterations  # each on the whole batch
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
            check(not unknown, f"unknown {f.name} settings {unknown}")
            sections[f.name] = section_cls(**values)
        return cls(**sections)

    def replace(self, **leaves: Any) -> PPOConfig:
        """A copy with leaf fields (by their flat name, e.g. ``kl_coef=0``) changed and re-validated."""
        data = self.to_dict()
        owner = leaf_owners()
        for name, value in leaves.items():
            check(name in owner, f"unknown PPO setting {name!r}")
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
