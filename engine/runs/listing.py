"""The list of runs: every directory under the runs directory that holds a run record, newest first,
with its effective state (the one definition the Runs page, the analysis pages and ``jobs list`` use).

The shipped demo runs (``data/demo_runs``, :func:`engine.paths.demo_runs_dir`) are listed after the
user's own with ``with_demo=True``; they are read-only (never launched, resumed or written into).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from engine.config import GOLD_REWARD
from engine.paths import demo_runs_dir, runs_dir
from engine.runs.layout import CHECKPOINTS_DIR, ROLLOUTS_DIR, RUN_FILE, TRAINER_STATE, read_json
from engine.runs.status import effective_state, read_status


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    run_dir: Path
    kind: str
    created_at: str
    state: str  # effective: a killed job reads "interrupted"
    step: int  # the job's last finished step (0 for an import)
    steps: int | None  # the run's planned steps, when known
    message: str
    source: str
    heartbeat_age_s: float | None
    demo: bool = False  # a shipped demo run (read-only)


def run_info(run_dir: Path, *, demo: bool = False) -> RunInfo | None:
    """The run in ``run_dir``; None when it holds neither a run record nor rollout files."""
    run_dir = Path(run_dir)
    record = read_json(run_dir / RUN_FILE)
    if record is None and not any((run_dir / ROLLOUTS_DIR).glob("step-*.parquet")):
        return None
    record = record or {}
    status = read_status(run_dir)
    kind = record.get("kind", "unknown")
    heartbeat = (status or {}).get("heartbeat")
    planned = ((record.get("config") or {}).get("run") or {}).get("steps")
    return RunInfo(
        run_id=run_dir.name,
        run_dir=run_dir,
        kind=kind,
        created_at=record.get("created_at") or "",
        state=effective_state(run_dir, status, kind=kind),
        step=int((status or {}).get("step", 0)),
        steps=(status or {}).get("steps", planned),
        message=(status or {}).get("message", ""),
        source=record.get("source", ""),
        heartbeat_age_s=time.time() - heartbeat if isinstance(heartbeat, int | float) else None,
        demo=demo,
    )


def reward_is_judge(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` was rewarded by its world's gold judge itself (its record's
    ``reward_model`` is ``gold``): its ``reward`` column is then the judge's score, not an RM's."""
    record = read_json(Path(run_dir) / RUN_FILE) or {}
    model = (record.get("config") or {}).get("model") or {}
    return str(model.get("reward_model") or "").strip() == GOLD_REWARD


def list_runs(root: Path | str | None = None, *, with_demo: bool = False) -> list[RunInfo]:
    """Runs under ``root`` (default: WORKBENCH_RUNS_DIR or ./runs), newest first; then, with
    ``with_demo``, the shipped demo runs (those whose id the user's runs do not already use)."""
    own = _runs_in(Path(root) if root is not None else runs_dir(), demo=False)
    if not with_demo:
        return own
    taken = {r.run_id for r in own}
    return own + [r for r in _runs_in(demo_runs_dir(), demo=True) if r.run_id not in taken]


def _runs_in(base: Path, *, demo: bool) -> list[RunInfo]:
    if not base.is_dir():
        return []
    found = [
        info
        for d in sorted(base.iterdir())
        if d.is_dir() and not d.name.startswith(".") and (info := run_info(d, demo=demo)) is not None
    ]
    return sorted(found, key=lambda r: r.created_at, reverse=True)


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run (``checkpoints/step-N/`` holding its trainer state), (step, path)
    ascending. A checkpoint is written under a temp name and renamed, so this is the one test."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    found = []
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith("step-") and (p / TRAINER_STATE).is_file():
                try:
                    found.append((int(p.name[5:]), p))
                except ValueError:
                    continue
    return sorted(found)
