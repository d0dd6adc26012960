"""The built-in toy world: the embedded default of the workbench.

A small synthetic language task with a hidden gold judge, word-level tokenizer, tiny GPT-2 models
(SFT checkpoints per epoch, a pooled reward model) and the data they were trained on, all shipped
in ``data/world/`` and rebuilt reproducibly by ``python -m engine world build``.

This package is the world itself: its vocabulary, prompt families, gold judge, data generation and
the loading of a built world. It imports no model training or sampling, so PPO (``engine.ppo``) reads
it from below; the tools that build the world and measure it by running the engine on it stand above
PPO, in :mod:`engine.world_tools`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from engine.config import ConfigError
from engine.paths import world_dir
from engine.world.data import PreferencePair, Prompt, read_jsonl
from engine.world.judge import gold_batch, gold_score

__all__ = ["FamilyInfo", "PreferencePair", "Prompt", "World", "load_world", "try_load_world"]
SPLITS = ("sft_train", "eval", "ppo_only")


@dataclass(frozen=True)
class FamilyInfo:
    name: str
    description: str
    in_sft: bool


class World:
    """Read access to a built world directory."""

    def __init__(self, path: Path):
        self.path = path
        self.manifest = json.loads((path / "world.json").read_text())

    @property
    def families(self) -> list[FamilyInfo]:
        return [FamilyInfo(**f) for f in self.manifest["families"]]

    @property
    def sft_epochs(self) -> list[int]:
        return list(self.manifest["sft_epochs"])

    @property
    def default_epoch(self) -> int:
        return int(self.manifest["default_epoch"])

    def policy_source(self, epoch: int | None = None) -> str:
        epoch = self.default_epoch if epoch is None else epoch
        if epoch not in self.sft_epochs:
            raise ConfigError(f"SFT epoch {epoch} does not exist; the world has epochs {self.sft_epochs}")
        return f"world:sft-epoch-{epoch}"

    rm_source = "world:rm"

    @cached_property
    def tokenizer(self):
        from engine.models import load_tokenizer

        return load_tokenizer(self.path / "tokenizer")

    @cached_property
    def vocab_size(self) -> int:
        """len(tokenizer), read from its ``tokenizer.json``: a page that only shows the number must not
        wait for transformers (importing it with torch took 2.8 s of the home page's first run)."""
        spec = json.loads((self.path / "tokenizer" / "tokenizer.json").read_text())
        ids = set(spec["model"]["vocab"].values()) | {t["id"] for t in spec.get("added_tokens", [])}
        return len(ids)

    @cached_property
    def all_prompts(self) -> list[Prompt]:
        return [Prompt(**row) for row in read_jsonl(self.path / "prompts.jsonl")]

    def prompts(self, split: str | None = None, families: list[str] | None = None) -> list[Prompt]:
        """Prompts of a split. ``"ppo"`` is the PPO prompt set: every prompt of every family.

        Splits: ``sft_train`` (in SFT data), ``eval`` (SFT families, held out of SFT data),
        ``ppo_only`` (families SFT never saw).
        """
        if split not in (None, "ppo", *SPLITS):
            raise ConfigError(f"unknown prompt split {split!r}; use one of ppo, {', '.join(SPLITS)}")
        known = {f.name for f in self.families}
        if families is not None and (unknown := set(families) - known):
            raise ConfigError(f"unknown prompt families {sorted(unknown)}; known: {sorted(known)}")
        return [
            p
            for p in self.all_prompts
            if (split in (None, "ppo") or p.split == split) and (families is None or p.family in families)
        ]

    @cached_property
    def preference_test(self) -> list[PreferencePair]:
        return [PreferencePair(**row) for row in read_jsonl(self.path / "preferences_test.jsonl")]

    @cached_property
    def rm_training_pairs(self) -> list[PreferencePair]:
        """The pairs the world's RM was trained on (``world build``): the generator's pairs, then the
        labelled pairs of SFT samples; what an RM refresh keeps training on beside its new pairs."""
        files = ("preferences_train.jsonl", "preferences_sft_samples.jsonl")
        return [PreferencePair(**row) for name in files for row in read_jsonl(self.path / name)]

    @cached_property
    def sft_data(self) -> list[dict]:
        return read_jsonl(self.path / "sft_data.jsonl")

    @staticmethod
    def gold(prompt: str, response: str) -> float:
        """Gold judge score in [0, 1]; ``response`` ends with [EOS] when the model stopped itself."""
        return gold_score(prompt, response)

    @staticmethod
    def gold_batch(prompts: list[str], responses: list[str]) -> list[float]:
        return gold_batch(prompts, responses)

    def summary(self) -> dict:
        """What the home page shows."""
        from collections import Counter

        counts = Counter((p.family, p.split) for p in self.all_prompts)
        return {
            "path": str(self.path),
            "families": [
                {
                    "family": f.name,
                    "description": f.description,
                    "in_sft": f.in_sft,
                    "sft_train_prompts": counts[(f.name, "sft_train")],
                    "eval_prompts": counts[(f.name, "eval")],
                    "ppo_only_prompts": counts[(f.name, "ppo_only")],
                }
                for f in self.families
            ],
            "n_prompts": len(self.all_prompts),
            "sft_epochs": self.sft_epochs,
            "default_epoch": self.default_epoch,
            "policy_params": self.manifest["policy_params"],
            "rm_params": self.manifest["rm_params"],
            "vocab_size": self.vocab_size,
            "seed": self.manifest["config"]["seed"],
        }


def load_world(path: Path | None = None) -> World:
    path = Path(path) if path else world_dir()
    if not (path / "world.json").is_file():
        raise ConfigError(f"the built-in world is not built at {path}: run `python -m engine world build`")
    return World(path)


def try_load_world(path: Path | None = None) -> tuple[World | None, str | None]:
    """(the world, None) when it is built at ``path`` (the shipped ``data/world/`` by default), else
    (None, why not: :func:`load_world`'s one-line error, with the build command).

    For what works without the world (the sampling lab, the app's pages); what needs it calls
    :func:`load_world` and lets the error stop it.
    """
    try:
        return load_world(path), None
    except ConfigError as exc:
        return None, str(exc)
