"""RM refresh from PPO samples: keep the reward model accurate where the policy now samples.

Every ``rm_refresh_every`` steps, after the step's update: take within-prompt pairs of the step's
rollouts, label them (``judge``: the world's gold judge with the world's own label noise, the labeller
that made the RM's data, :func:`engine.world.data.pairs_from_samples`; ``human``: the pairs labelled in
the app, :mod:`engine.runs.labels`), train the RM on from its current weights (Bradley-Terry,
:func:`engine.reward.train_reward_model`) on the new pairs, every earlier refresh's pairs and a replay
sample of its original data, and go on with it. The RM-gold agreement (:mod:`engine.analysis`'s one
definition, within-prompt pairs) is measured on fresh samples of the step's prompts, not trained on,
before and after.

This is the practitioner's remedy "keep sampling from the PPO policy and keep iterating the RM's
data" (the sampling-space note, issue 25). Departures from a full retrain, for CPU-sized refreshes:
the RM trains on from its weights, and the original data enters as a seeded replay sample
(:data:`REPLAY_PER_NEW_PAIR` old pairs per new one) rather than in full (90k pairs on the world).

A checkpoint holds the RM version, the refreshed weights and the refresh pairs, so a resume goes on
with exactly the RM the run had.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import torch

from engine.agreement import pairwise_agreement
from engine.config import ConfigError
from engine.models import LoadedModel
from engine.ppo.config import PPOConfig
from engine.ppo.rollout import ScoredRollout
from engine.reward import Judge, score_responses, train_reward_model
from engine.runs.labels import preference_pairs, read_labels
from engine.world import load_world
from engine.world.data import pairs_from_samples

log = logging.getLogger(__name__)

Pair = tuple[str, str, str]  # (prompt, chosen, rejected) texts, as the RM reads them

RM_WEIGHTS_FILE = "rm.safetensors"  # in a checkpoint after the first refresh
RM_PAIRS_FILE = "rm_refresh_pairs.jsonl"
REPLAY_PER_NEW_PAIR = 3  # old pairs replayed per new pair: the RM keeps what it knew off PPO's samples
REFRESH_EPOCHS = 2
REFRESH_LR = 2e-4  # a fifth of the world RM's training rate: train on, do not start over


def agreement(scores: torch.Tensor, gold: torch.Tensor | None, batch: ScoredRollout) -> float:
    """RM-gold agreement on within-prompt pairs of ``batch`` (nan without gold or ordered pairs)."""
    if gold is None:
        return float("nan")
    prompt_ids = [p.prompt_id for p in batch.prompts for _ in range(batch.samples_per_prompt)]
    return pairwise_agreement(scores.float().cpu().numpy(), gold.numpy(), prompt_ids)[0]


class RMRefresh:
    """The refresh state of a run: the RM version and every refresh's pairs; refreshes ``reward`` in place."""

    def __init__(
        self,
        config: PPOConfig,
        reward: LoadedModel,
        policy_tokenizer: Any,
        judge: Judge | None,
    ) -> None:
        m = config.model
        if m.rm_labeller == "judge" and judge is None:
            raise ConfigError("rm_labeller='judge' needs a gold judge: the built-in world's (or use 'human')")
        self.config, self.reward, self.judge = config, reward, judge
        self.policy_tokenizer = policy_tokenizer  # decodes the rollouts the RM scores
        self.version = 0
        self.pairs: list[Pair] = []  # every refresh's new pairs, in order
        self._original: list[Any] | None = None  # the world RM's own training pairs, once read

    def due(self, step: int) -> bool:
        every = self.config.model.rm_refresh_every
        return every > 0 and step % every == 0

    # ------------------------------------------------------------------ labels

    def judge_pairs(self, batch: ScoredRollout, seed: int) -> list[Pair]:
        """Within-prompt pairs of distinct responses of ``batch``, labelled by the gold judge with the
        world's label noise; all of them, shuffled (seeded)."""
        k = batch.samples_per_prompt
        texts = [p.text for p in batch.prompts for _ in range(k)]
        families = [p.family for p in batch.prompts for _ in range(k)]
        golds = batch.gold.tolist()  # type: ignore[union-attr]  # the judge scored the batch
        labelled = pairs_from_samples(families, texts, batch.responses, golds, seed, k * (k - 1) // 2)
        pairs = [(p.prompt, p.chosen, p.rejected) for p in labelled]
        random.Random(seed).shuffle(pairs)
        return pairs

    def human_pairs(self, run_dir: Path | None) -> list[Pair]:
        """The app's labels in ``run_dir`` with an order (:func:`engine.runs.labels.preference_pairs`:
        ties and skips carry none) not trained on yet, oldest first."""
        seen = set(self.pairs)
        found = preference_pairs(read_labels(run_dir)) if run_dir is not None else []
        return [tuple(pair) for pair in found if pair not in seen]  # type: ignore[misc]  # plain, as saved

    # ------------------------------------------------------------------ the refresh

    def replay(self, n: int, seed: int) -> list[Pair]:
        """A seeded sample of ``n`` of the RM's original pairs (the built-in world's RM only)."""
        if self.config.model.reward_model:
            return []
        if self._original is None:  # read once: 90k pairs
            self._original = load_world().rm_training_pairs
        original = self._original
        chosen = random.Random(seed).sample(range(len(original)), min(n, len(original)))
        return [(original[i].prompt, original[i].chosen, original[i].rejected) for i in chosen]

    def rm_scores(self, batch: ScoredRollout) -> torch.Tensor:
        """The current RM's scores (B,) of a scored batch's samples."""
        ro = batch.rollout
        texts = [p.text for p in batch.prompts for _ in range(batch.samples_per_prompt)]
        return score_responses(
            self.policy_tokenizer, ro.sequences, ro.attention_mask,
            ro.response_ids, ro.response_mask, texts, reward=self.reward, judge=None,
        ).reward  # type: ignore[return-value]  # fmt: skip

    def refresh(
        self, step: int, batch: ScoredRollout, fresh: ScoredRollout, seed: int, run_dir: Path | None
    ) -> dict[str, float]:
        """Label pairs of ``batch`` (the step's rollouts; the ``human`` labeller reads ``run_dir``'s
        labels), train the RM on, and measure its agreement with gold on ``fresh`` before and after. Returns the ``rm/`` metrics; keeps the RM (and says
        why in the log) when there is nothing to train on."""
        cfg = self.config.model
        before = agreement(fresh.scores, fresh.gold, fresh)
        found = self.judge_pairs(batch, seed) if cfg.rm_labeller == "judge" else self.human_pairs(run_dir)
        if not found:
            where = "the step's rollouts" if cfg.rm_labeller == "judge" else "runs/<id>/labels/"
            log.warning(
                "step %d: RM refresh skipped: no new labelled pairs in %s; the RM is kept (version %d)",
                step, where, self.version,
            )  # fmt: skip
            return {"rm/agreement_before": before}
        new = found[: cfg.rm_refresh_pairs]
        if len(new) < cfg.rm_refresh_pairs:
            log.info(
                "step %d: RM refresh on %d labelled pairs, fewer than rm_refresh_pairs = %d (all there were)",
                step, len(new), cfg.rm_refresh_pairs,
            )  # fmt: skip
        data = new + self.pairs + self.replay(REPLAY_PER_NEW_PAIR * len(new), seed)
        model = self.reward.model
        model.requires_grad_(True)
        train_reward_model(
            model, self.reward.tokenizer, data, epochs=REFRESH_EPOCHS, lr=REFRESH_LR, seed=seed
        )
        model.requires_grad_(False).eval()
        self.pairs += new
        self.version += 1
        after = agreement(self.rm_scores(fresh), fresh.gold, fresh)
        log.info(
            "step %d: RM refreshed to version %d on %d new pairs (%d in all); RM-gold agreement on fresh "
            "samples %.3f -> %.3f", step, self.version, len(new), len(data), before, after,
        )  # fmt: skip
        return {"rm/agreement_before": before, "rm/agreement_after": after, "rm/refresh_pairs": len(new)}

    # ------------------------------------------------------------------ checkpoints

    def save(self, folder: Path) -> dict[str, Any]:
        """Write the refreshed RM into a checkpoint folder; returns the entries of its trainer state."""
        from safetensors.torch import save_file

        if self.version > 0:
            weights = {k: v.detach().cpu().contiguous() for k, v in self.reward.model.state_dict().items()}
            save_file(weights, str(folder / RM_WEIGHTS_FILE))
            with open(folder / RM_PAIRS_FILE, "w") as fh:
                fh.writelines(json.dumps(pair) + "\n" for pair in self.pairs)
        return {"rm_version": self.version}

    def load(self, folder: Path, state: dict[str, Any]) -> None:
        """Restore the RM of a checkpoint (the run's starting RM stays for version 0)."""
        from safetensors.torch import load_file

        self.version = int(state.get("rm_version", 0))
        if self.version == 0:
            return
        device = next(self.reward.model.parameters()).device
        self.reward.model.load_state_dict(load_file(str(folder / RM_WEIGHTS_FILE), device=str(device)))
        lines = (folder / RM_PAIRS_FILE).read_text().splitlines()
        self.pairs = [tuple(json.loads(line)) for line in lines if line]  # type: ignore[misc]
