"""Which pages the app lists, grouped in sections. Pure data; every listed page must exist."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"


@dataclass(frozen=True)
class PageSpec:
    section: str
    file: str
    title: str
    icon: str
    blurb: str

    @property
    def path(self) -> Path:
        return PAGES_DIR / self.file


PAGES = (
    PageSpec(
        "Explore",
        "home.py",
        "Home",
        ":material/home:",
        "what the workbench is, the state of the world and the runs, where to start",
    ),
    PageSpec(
        "Explore",
        "sampling_lab.py",
        "Sampling lab",
        ":material/science:",
        "temperature, top-p, top-k, token by token",
    ),
    PageSpec("Train", "runs.py", "Runs", ":material/play_circle:", "launch, watch, stop and resume PPO jobs"),
    PageSpec(
        "Train", "sft_epochs.py", "SFT epochs", ":material/layers:", "which SFT epoch to start PPO from"
    ),
    PageSpec(
        "Analyse",
        "reward_densities.py",
        "Reward densities",
        ":material/area_chart:",
        "raw and per-prompt normalised rewards, step by step",
    ),
    PageSpec(
        "Analyse",
        "rollout_browser.py",
        "Rollout browser",
        ":material/list_alt:",
        "logged rollouts, most-varying prompts first",
    ),
    PageSpec(
        "Analyse",
        "entropy_dynamics.py",
        "Entropy dynamics",
        ":material/insights:",
        "what drives the entropy change, which tokens, how much room is left",
    ),
    PageSpec(
        "Analyse",
        "failure_modes.py",
        "Failure modes",
        ":material/warning:",
        "RM loopholes, KL blow-up, length, repetition, collapse",
    ),
    PageSpec(
        "Analyse",
        "rm_accuracy.py",
        "RM accuracy",
        ":material/fact_check:",
        "is the RM still right on what PPO samples?",
    ),
    PageSpec(
        "Analyse", "import_run.py", "Import", ":material/upload_file:", "bring rollouts of a TRL/verl/... run"
    ),
    PageSpec("Learn", "learn.py", "Learn path", ":material/route:", "the note's argument in five live steps"),
    PageSpec(
        "Learn", "teaching.py", "Teaching", ":material/school:", "the practitioner's note, step by step"
    ),
)


def available_pages() -> list[PageSpec]:
    """Every listed page, in navigation order; a listed page whose script is missing is an error."""
    missing = [str(spec.path) for spec in PAGES if not spec.path.is_file()]
    if missing:
        raise FileNotFoundError(f"pages listed in workbench/navigation.py but missing: {missing}")
    return list(PAGES)


def sections() -> dict[str, list[PageSpec]]:
    """The pages by section, in navigation order."""
    grouped: dict[str, list[PageSpec]] = {}
    for spec in available_pages():
        grouped.setdefault(spec.section, []).append(spec)
    return grouped


def icon_of(file: str) -> str:
    """The navigation icon of the page ``pages/<file>``, so that links to it show the same one."""
    return next(spec.icon for spec in PAGES if spec.file == file)
