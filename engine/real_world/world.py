"""The real world as PPO and the analyses use it: its task sets (those ``python -m engine real build``
shipped in ``data/real``: ``tasks_train.jsonl`` and ``tasks_held_out.jsonl``, one task a line; else
drawn from the seed, :data:`FALLBACK_COUNTS` per family), its checker as the gold judge over prompt texts,
and what counts as a correct answer.

The gold judge reads a prompt *text*: it looks the task up by its prompt (the task sets hold each
prompt once, so the text names the task) and scores the response with the family's checker. A text
that is no task of the world gets gold 0 and a warning: it cannot be checked.

Correct (pass@k, Cover@tau) is the checker's full score: a ``number-only`` answer wrapped in words
(0.5, the instruction not followed) is not correct. Accuracy (R1 of ``real check``) is the mean
checker score, partial credit included.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from engine.config import ConfigError
from engine.paths import real_dir, real_rm_dir
from engine.real_world.checkers import clean_response, final_number
from engine.real_world.tasks import FAMILIES, Task, TaskSets, make_task_sets, score
from engine.world.data import PreferencePair

log = logging.getLogger(__name__)

DEFAULT_SEED = 0
SPLITS = ("train", "held_out")
TASK_FILES = {split: f"tasks_{split}.jsonl" for split in SPLITS}  # what ``real build`` writes
HELD_OUT_SAMPLES = "samples_held_out.jsonl"  # real build's answers to held-out tasks, checker-scored
FALLBACK_COUNTS = {"train_per_family": 32, "held_out_per_family": 24}
"""Tasks per family drawn without a build (``mul-easy`` has 64 distinct prompts in all)."""
# --prompts names of the real world's sets (``analyse coverage``), -> the split
PROMPT_SETS = {"real-train": "train", "real-held-out": "held_out"}
CORRECT_SCORE = 1.0  # full credit


@dataclass(frozen=True)
class RealWorld:
    """The real world's task sets and its gold judge; ``rm_path`` is where its reward model lives."""

    tasks: TaskSets = field(repr=False)
    rm_path: Path
    source: str
    """Where the task sets came from: a file of ``data/real`` or ``make_task_sets(seed)``."""
    by_prompt: dict[str, Task] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The sets hold each prompt once (make_task_sets draws them distinct), so a text names a task.
        object.__setattr__(
            self, "by_prompt", {t.prompt: t for t in [*self.tasks.train, *self.tasks.held_out]}
        )

    def split(self, name: str) -> list[Task]:
        if name not in SPLITS:
            raise ConfigError(f"unknown real-world split {name!r}; known: {', '.join(SPLITS)}")
        return list(self.tasks.train if name == "train" else self.tasks.held_out)

    def task_of(self, prompt: str) -> Task | None:
        return self.by_prompt.get(prompt.strip())

    def gold_batch(self, prompts: list[str], responses: list[str]) -> list[float]:
        """The checker's score of each response to the task its prompt text names (0 for a text that
        is no task of the world, with a warning)."""
        scores = []
        for prompt, response in zip(prompts, responses, strict=True):
            task = self.task_of(prompt)
            if task is None:
                log.warning("prompt %r is no task of the real world: gold 0", prompt[:80])
                scores.append(0.0)
            else:
                scores.append(score(task, response))
        return scores

    def preference_test(self) -> list[PreferencePair]:
        """The real world's preference test set (the log-prob accuracy of a run's checkpoints): every
        pair of SmolLM2's answers to one held-out task (``real build``'s, at T = 1) whose checker scores
        differ, the better one chosen, without label noise (the checker is the truth). ConfigError
        when the real world is not built."""
        path = Path(self.source) / HELD_OUT_SAMPLES
        if not path.is_file():
            raise ConfigError(
                f"the real world has no preference test set ({path}): run `python -m engine real build`"
            )
        by_task: dict[str, list[dict]] = {}
        try:
            for line in path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    by_task.setdefault(row["task_id"], []).append(
                        {k: row[k] for k in ("family", "response", "score")}
                    )
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read the real world's preference test set {path}: {exc!r}") from None
        prompts = {t.task_id: t.prompt for t in self.tasks.held_out}
        unknown = sorted(set(by_task) - set(prompts))
        if unknown:
            raise ConfigError(f"{path}: answers to tasks that are not held-out tasks: {unknown[:5]}")
        pairs = []
        for task_id, rows in by_task.items():
            for i, a in enumerate(rows):
                for b in rows[i + 1 :]:
                    if a["score"] != b["score"]:
                        better, worse = (a, b) if a["score"] > b["score"] else (b, a)
                        pairs.append(
                            PreferencePair(
                                prompts[task_id], better["response"], worse["response"],
                                better["score"], worse["score"], a["family"],
                            )
                        )  # fmt: skip
        return pairs

    def require_rm(self) -> str:
        """The reward model's path; ConfigError when the real world has none built."""
        if not (self.rm_path.is_dir() and any(self.rm_path.iterdir())):
            raise ConfigError(
                f"the real world has no reward model at {self.rm_path}: run `python -m engine real build`"
            )
        return str(self.rm_path)


def is_correct(gold: float) -> bool:
    """A response is correct when its checker gives full credit."""
    return gold >= CORRECT_SCORE - 1e-9


def canonical_answer(family: str, prompt: str, response: str) -> str:
    """The answer a response gives (what answer entropy counts): the number it answers with for the
    numeric families ("" when none), the response's words, lower case, for ``exact-words``."""
    if family == "exact-words":
        return " ".join(clean_response(response).lower().split())
    number = final_number(response, prompt)
    return "" if number is None else f"{number:g}"


def load_real_world(root: Path | None = None, seed: int = DEFAULT_SEED) -> RealWorld:
    """The real world: the task sets shipped under ``root`` (``data/real``) when it has them, else
    :func:`make_task_sets` of ``seed`` with :data:`FALLBACK_COUNTS`."""
    root = Path(root) if root is not None else real_dir()
    rm_path = root / real_rm_dir().name
    if (root / TASK_FILES["train"]).is_file():
        sets = {split: read_tasks(root / name) for split, name in TASK_FILES.items()}
        tasks = TaskSets(seed=seed, train=sets["train"], held_out=sets["held_out"])
        return RealWorld(tasks=tasks, rm_path=rm_path, source=str(root))
    tasks = make_task_sets(seed, **FALLBACK_COUNTS)
    return RealWorld(tasks=tasks, rm_path=rm_path, source=f"make_task_sets({seed})")


def read_tasks(path: Path) -> list[Task]:
    """The tasks of a JSONL file, one ``{"task_id", "family", "prompt", "answer"}`` a line; ConfigError
    on anything else."""
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        tasks = [
            Task(**{k: json.loads(line)[k] for k in ("task_id", "family", "prompt", "answer")})
            for line in lines
        ]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read the real world's tasks {path}: {exc!r}") from None
    unknown = sorted({t.family for t in tasks} - set(FAMILIES))
    if unknown:
        raise ConfigError(f"{path}: unknown task families {unknown}")
    return tasks


def real_tasks() -> dict[str, Task]:
    """The real world's tasks by prompt text: its shipped task sets (``real build``'s), training and
    held-out (:func:`load_real_world`, the sets PPO and ``real check`` use)."""
    return load_real_world().by_prompt


def real_checker(prompts: list[str], responses: list[str]) -> list[float]:
    """The real world's gold judge over (prompt, response) rows: each prompt's task checker."""
    return load_real_world().gold_batch(prompts, responses)


def real_rm_source() -> str | None:
    """The real world's reward model (built by ``python -m engine real build``), or None when it is
    not built yet."""
    try:
        return load_real_world().require_rm()
    except ConfigError:
        return None
