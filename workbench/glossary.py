"""The glossary: every term the pages use, each defined once, in the app's own usage (pure data, no
Streamlit). The Glossary page lists them; a page's tooltips take their text from here
(:func:`tooltip_for` finds the terms a sentence uses, :func:`tooltip` names them).

A term's ``pattern`` is how the pages write it (a regular expression over their text), so a test can
check that a term's first use on a page carries its tooltip. Definitions follow the code that computes
each quantity (``engine.lab`` for the signals, ``engine.ppo.config`` for the settings,
``engine.analysis.entropy_dynamics`` for the analyses, ``engine.world`` for the gold judge).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GLOSSARY_URL = "/glossary"


@dataclass(frozen=True)
class Term:
    key: str
    name: str
    definition: str
    pattern: str  # how the pages write the term (case-sensitive unless it starts with (?i))

    def used_in(self, text: str) -> bool:
        return re.search(self.pattern, text) is not None


TERMS = (
    # What is measured
    Term("nats", "nats",
         "The unit of entropy here (natural logarithm). 0 nats: one token is certain; ln 2 = 0.69 nats: "
         "a fair choice between two tokens; ln V: all V tokens of the vocabulary alike.",
         r"\bnats?\b"),
    Term("entropy", "Entropy (per token)",
         "H = -sum p log p of the model's next-token distribution at temperature 1, in nats, at each "
         "position of a response; a response's or a step's entropy is the mean over its tokens. Low: the "
         "model is sure of its next token. (The trainer's policy/entropy metric is at the run's sampling "
         "temperature: the same at the default 1.)",
         r"(?i)\bentropy\b"),
    Term("sampling_space", "Sampling space",
         "The responses a model can sample for a prompt, those it gives a non-negligible probability. PPO "
         "only moves probability between them: it cannot reach a response the SFT model never samples.",
         r"(?i)sampling[ -]space"),
    Term("sampling_entropy", "Sampling entropy",
         "Entropy of the distribution actually sampled from, after temperature, top-k, top-p and min-p "
         "(nats); the entropy signal itself is always at temperature 1.",
         r"(?i)sampling entropy"),
    Term("max_prob", "Max prob",
         "One of the five signals: the probability (temperature 1) of the most likely next token.",
         r"(?i)max(imum)? prob"),
    Term("sampled_prob", "Sampled-token prob",
         "One of the five signals: the probability (temperature 1) of the token that was drawn.",
         r"(?i)sampled[- ](token )?prob"),
    Term("candidates", "Number of candidates",
         "One of the five signals: how many tokens could have been drawn at a position after temperature, "
         "top-k, top-p and min-p (1: the choice was forced).",
         r"(?i)\bcandidates\b"),
    Term("reward_distribution", "Reward distribution",
         "One of the five signals: the spread of the RM scores of one prompt's (or one step's) samples. "
         "PPO learns only from differences within a prompt: where all samples score alike there is "
         "nothing to learn.",
         r"(?i)reward (distribution|densit)"),
    Term("temperature", "Temperature",
         "Divides the logits before the softmax: below 1 sharpens the distribution, above 1 flattens it; "
         "0 is greedy (always the most likely token).",
         r"(?i)\btemperature\b"),
    Term("top_p", "Top-p",
         "Keeps the smallest set of most likely tokens whose probabilities sum to at least p (1: all).",
         r"(?i)\btop-p\b"),
    Term("top_k", "Top-k", "Keeps the k most likely tokens (0: all).", r"(?i)\btop-k\b"),
    Term("min_p", "Min-p",
         "Keeps the tokens whose probability is at least min_p times the largest one (0: all).",
         r"(?i)\bmin-p\b"),
    # What is scored
    Term("gold", "Gold",
         "The built-in world's judge: a deterministic score in [0, 1] of a response (content x fluency x "
         "length x repetition x EOS), the quality a careful human would give; on the real model, its checker. "
         "PPO never sees it (but in a run rewarded by the judge itself, reward model gold); the pages use "
         "it to tell whether a rising RM reward is real.",
         r"(?i)\bgold\b"),
    Term("rm", "RM (reward model)",
         "A model that scores a response with one number; the built-in world's is trained on pairs of "
         "responses ranked by the gold judge (Bradley-Terry). PPO maximises its score, which agrees with "
         "gold only approximately.",
         r"\bRM\b|(?i:reward model)"),
    Term("reward_norm", "Reward normalisation",
         "What PPO does to the RM scores before using them (reward_norm): prompt = subtract the mean "
         "score of the prompt's samples and divide by the batch's standard deviation; batch = whiten over "
         "the batch; none = raw scores.",
         r"(?i)normalis"),
    Term("best_of_n", "Best-of-N, pass@k",
         "Best-of-N gold: per prompt, the best gold among N samples, averaged over prompts; its gap to the "
         "mean gold is the room PPO can reach by reweighting. pass@k is its yes/no form: the chance that "
         "at least one of k samples is right.",
         r"(?i)best[- ]of[- ]\w+|pass@"),
    Term("over_optimisation", "Over-optimisation, loophole",
         "The RM reward keeps rising while gold falls: PPO found responses the RM over-rates (a loophole, "
         "such as repeated good words or run-on answers).",
         r"(?i)over-?optimi|loophole"),
    # How PPO trains
    Term("sft", "SFT",
         "Supervised fine-tuning on example answers. PPO starts from an SFT checkpoint (one per epoch on "
         "the built-in world), which is also its KL reference.",
         r"\bSFT\b"),
    Term("kl", "KL",
         "Kullback-Leibler divergence of the policy from the reference (the SFT model: the same weights "
         "with the LoRA adapter off), per token, summed over a response. The KL penalty, kl_coef x KL, is "
         "subtracted from the reward so that PPO stays near the SFT model.",
         r"\bKL\b"),
    Term("k1_k3", "k1, k3 (KL estimators)",
         "Two per-token estimates of KL from the sampled token: k1 = log p - log p_ref (unbiased, can be "
         "negative); k3 = (r - 1) - log r with r = p_ref / p (never negative, less noisy).",
         r"\bk[13]\b"),
    Term("lora", "LoRA",
         "Low-rank adapter: the only weights PPO trains (with the value head); switched off, the model is "
         "the SFT reference.",
         r"\bLoRA\b"),
    Term("advantage", "Advantage",
         "How much better a token turned out than the value head expected (GAE over the KL-shaped "
         "rewards); PPO raises the probability of tokens with a positive advantage.",
         r"(?i)\badvantages?\b"),
    Term("probe_set", "Probe set",
         "A fixed set of prompts (probes_per_family per family) sampled every probe_every steps at "
         "temperature 1 with a fixed seed: the same prompts at every probe step, so their entropy follows "
         "the policy rather than the draw.",
         r"(?i)\bprobes?\b"),
    # What the analyses find
    Term("ceiling", "Ceiling",
         "The most PPO can reach by narrowing the sampling space. Two measures: pass@k of the SFT start at "
         "large k (what it can sample at all; the Ceiling page), and where the entropy-reward law "
         "R = -a exp(H) + b, fitted on a run's first steps, puts the reward at zero entropy: b - a.",
         r"(?i)\bceiling\b"),
    Term("covariance_driver", "Covariance driver",
         "Per step, the mean over response tokens of (log-prob - its mean) x (advantage - its mean) "
         "(Cui et al. 2025). The step's entropy change is about -learning rate x this covariance: a likely "
         "token with a high advantage sharpens the distribution, a rare one flattens it.",
         r"(?i)covariance"),
    Term("forking_token", "Forking token",
         "A high-entropy position in a response, where the model could go several ways (Wang et al. 2025); "
         "the pages list the positions of highest entropy.",
         r"(?i)forking"),
    # The workbench's own words
    Term("world", "Built-in world",
         "The workbench's small synthetic task: a word-level vocabulary, prompt families, a gold judge, tiny "
         "GPT-2 SFT checkpoints (one per epoch) and an RM (`python -m engine world build`).",
         r"(?i)built-in world"),
    Term("demo_run", "Demo run",
         "A real run shipped with the workbench (read-only, made by python -m engine demo build): PPO, "
         "GRPO, no KL penalty, an RM refresh and the last SFT epoch on the built-in world; PPO on SmolLM2 "
         "with its learned RM and with the checker as the reward. The Runs page lists them.",
         r"(?i)demo runs?\b"),
)  # fmt: skip
BY_KEY = {t.key: t for t in TERMS}


def tooltip(*keys: str) -> str:
    """A tooltip (Markdown) defining the terms ``keys``, with a link to the glossary page."""
    lines = [f"**{BY_KEY[k].name}**: {BY_KEY[k].definition}" for k in keys]
    return "\n\n".join([*lines, f"[All terms: the Glossary]({GLOSSARY_URL})"])


def terms_in(text: str) -> list[str]:
    """The keys of the terms ``text`` uses, in glossary order."""
    return [t.key for t in TERMS if t.used_in(text)]


def tooltip_for(text: str, *, skip: tuple[str, ...] = ()) -> str | None:
    """The tooltip for the terms ``text`` uses (less ``skip``, defined earlier on the page); None when
    it uses none."""
    keys = [k for k in terms_in(text) if k not in skip]
    return tooltip(*keys) if keys else None


PAGE_TERMS = {
    "home.py": ("nats", "entropy", "sampling_space", "reward_distribution", "gold", "rm", "reward_norm",
                "over_optimisation", "sft", "kl", "world", "demo_run"),
    "sampling_lab.py": ("nats", "entropy", "sampling_space", "sampling_entropy", "max_prob", "sampled_prob",
                        "candidates", "reward_distribution", "temperature", "top_p", "top_k", "min_p", "gold",
                        "rm", "forking_token"),
    "runs.py": ("nats", "entropy", "sampling_space", "temperature", "top_p", "top_k", "min_p", "gold", "rm",
                "sft", "kl", "k1_k3", "lora", "probe_set", "ceiling"),
    "sft_epochs.py": ("nats", "entropy", "sampling_space", "temperature", "gold", "rm", "reward_norm",
                      "best_of_n", "sft", "world"),
    "reward_densities.py": ("entropy", "sampling_space", "reward_distribution", "gold", "rm", "reward_norm",
                            "advantage"),
    "rollout_browser.py": ("nats", "entropy", "gold", "rm", "reward_norm", "kl"),
    "entropy_dynamics.py": ("nats", "entropy", "gold", "over_optimisation", "kl", "advantage", "ceiling",
                            "covariance_driver", "forking_token"),
    "failure_modes.py": ("entropy", "gold", "rm", "reward_norm", "over_optimisation", "kl", "advantage"),
    "rm_accuracy.py": ("sampling_space", "reward_distribution", "gold", "rm", "over_optimisation", "kl"),
    "teaching.py": ("nats", "entropy", "sampling_space", "reward_distribution", "temperature", "gold", "rm",
                    "reward_norm", "over_optimisation", "sft", "kl"),
    "learn.py": ("entropy", "sampling_space", "rm", "sft", "world"),
    "ceiling.py": ("nats", "entropy", "sampling_space", "gold", "best_of_n", "sft", "ceiling"),
}  # fmt: skip
"""The terms each page uses, defined by the tooltip of its title (its first line); the Learn path's
title defines those of its introduction, and each step's heading those the step adds."""
LEARN_STEP_TERMS = {
    "space": ("temperature", "gold"),
    "epochs": ("gold", "best_of_n"),
    "reduction": ("nats", "temperature", "gold", "reward_norm", "kl", "probe_set"),
    "ceiling": ("ceiling", "gold", "best_of_n", "sft"),
    "rm": ("gold", "over_optimisation", "kl"),
    "refresh": ("gold", "rm", "over_optimisation", "kl", "demo_run"),
    "range": ("nats", "sampling_entropy", "temperature", "gold", "advantage", "probe_set"),
    "methods": ("gold", "advantage", "reward_norm", "probe_set", "kl", "demo_run"),
    "real": ("gold", "nats", "kl", "demo_run"),
}


def page_tooltip(page: str) -> str:
    """The tooltip of ``pages/<page>``'s title: the definitions of the terms the page uses."""
    return tooltip(*PAGE_TERMS[page])
