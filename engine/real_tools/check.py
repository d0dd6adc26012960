"""``python -m engine real check [--run RUN] --json`` (contract): what a PPO run on the real world
(SmolLM2, default the shipped ``demo-smollm2``) shows, measured from its start to its end.

The start is the run's base policy (``smollm2``), the end its last checkpoint; both sample the same
held-out tasks (``real-held-out``, spread evenly over the families the run trained on) ``samples`` times each at T = 1,
with the run's own response length and chat template, through the coverage code
(:mod:`engine.world_tools.coverage`), so every figure can be recomputed from the kept samples.

- **R1** held-out checker accuracy (mean checker score, partial credit included), start vs end;
  ``ok`` when it gains :data:`R1_GOAL` (absolute) or more.
- **R2** mean token entropy (nats, over all response tokens) on the held-out tasks, start vs end;
  ``ok`` when it falls beyond its interval (PPO as entropy reduction).
- **R3** pass@1 and pass@k (k = ``samples``, the largest the samples give), start vs end; ``ok`` when
  pass@1 rises beyond its interval.
- **R4** RM-checker agreement on the run's own rollouts (within-prompt pairs, :mod:`engine.agreement`'s
  tie rule): its first logged step (the start's samples) vs its last (the latest samples); measured,
  ``ok`` None.

- **rm_cost** what the learned RM costs: the R1 gain of the same run with the checker itself as the
  reward (``reward_model = "gold"``; the run ``--checker-run`` names, by default ``<run>-checker``
  when it exists, e.g. ``demo-smollm2-checker``) minus this run's, on the same held-out tasks; its
  last checkpoint is sampled with the same seed, so the two runs share the start's samples and the
  difference is paired per task; measured, ``ok`` None. A run without such a twin, or one rewarded
  by the checker itself, says "this run does not show it".

With ``save`` the samples are kept in the run (``evals/real_check.parquet``, one row per sample), and
:func:`saved_check` recomputes R1-R4 from them alone (the Learn step's held-out figures), and
rm_cost from them and the saved samples of the checker twin beside the run (``<run>-checker``).

Uncertainty: R1-R3 pair the two policies on the same tasks and bootstrap over tasks
(:func:`engine.analysis.uncertainty.bootstrap_interval`, 90 %); R4 gives each share's Wilson interval
and the change's Newcombe interval (90 %; a share of 0 of a few pairs still has a width; pairs of one
prompt share samples, so the intervals are, if anything, too narrow).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from engine.analysis.coverage import pass_at_k
from engine.analysis.uncertainty import (
    bootstrap_interval,
    interval_text,
    share_difference_interval,
    wilson_interval,
)
from engine.config import ConfigError, SamplingConfig
from engine.ppo.checkpoints import CheckpointRef, find_checkpoint
from engine.ppo.config import PPOConfig
from engine.real_world.world import load_real_world
from engine.runs import RUN_FILE, read_json, reward_is_judge
from engine.store.writer import write_eval
from engine.world_tools.check import cpu_model_name
from engine.world_tools.coverage import Policy, real_gold_set, resolve_policy, sample_policies, spread

log = logging.getLogger(__name__)

DEMO_RUN = "demo-smollm2"
HELD_OUT = "real-held-out"
R1_GOAL = 0.20
N_PROMPTS = 36  # four held-out tasks of each of the nine families
N_SAMPLES = 8
DEMO_PROMPTS, DEMO_SAMPLES = 24, 4  # what demo build affords after training (a few minutes on 2 cores)
EVAL_NAME = "real_check"  # evals/real_check.parquet: the samples of a saved check
START, END = "start", "end"
CHECKER = "checker"  # the checker twin's last checkpoint among the samples (never saved under this label)
CHECKER_SUFFIX = "-checker"  # run X's twin rewarded by the checker itself: X-checker (demo-smollm2-checker)


def real_check(
    run: str = DEMO_RUN,
    *,
    runs_root: Path | str | None = None,
    checker_run: str | None = None,
    prompts: int = N_PROMPTS,
    samples: int = N_SAMPLES,
    seed: int = 0,
    save: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """R1-R4 of ``run`` (the module docstring), with ``run`` (its id, directory, steps), ``settings``
    and ``cpu``; ``save`` keeps the samples in the run. Inputs are checked before any model is loaded."""
    if prompts < 1 or samples < 1:
        raise ConfigError(f"--prompts and --samples must be >= 1, got {prompts} and {samples}")
    checkpoint = find_checkpoint(run, None, runs_root=runs_root)
    record = read_json(checkpoint.run_dir / RUN_FILE) or {}
    config = record.get("config") or {}
    base = (config.get("model") or {}).get("policy") or ""
    if not base:
        raise ConfigError(f"run {run!r} is not a run on the real world: its record names no policy")
    end = resolve_policy(f"{run}@step-{checkpoint.step}", runs_root)
    start = Policy(label=START, source=base, chat_template=end.chat_template)
    end = Policy(label=END, source=end.source, checkpoint=end.checkpoint, chat_template=end.chat_template)
    twin = checker_twin(run, checkpoint.run_dir, checker_run, runs_root)
    policies = [start, end]
    if twin is not None:
        policy = resolve_policy(f"{twin.run_dir.name}@step-{twin.step}", runs_root)
        policies.append(Policy(CHECKER, policy.source, policy.checkpoint, policy.chat_template))
    gold = real_gold_set(load_real_world(), HELD_OUT)
    families = set((config.get("run") or {}).get("families") or ())  # a run on some families: those
    items = spread([p for p in gold.items if not families or p.family in families], prompts)
    max_new = int((config.get("sampling") or {}).get("max_new_tokens") or 24)
    total, done = len(policies) * len(items) * samples, 0

    def advance(rows: int) -> None:
        nonlocal done
        done += rows
        if progress is not None:
            progress(done, total)

    frame = sample_policies(
        gold,
        policies,
        items,
        samples=samples,
        config=SamplingConfig(temperature=1.0, max_new_tokens=max_new),
        seed=seed,
        progress=advance,
    )
    # The checker run's end beside the shared start: its own (start, end) samples.
    twin_frame = None
    if twin is not None:
        twin_frame = frame[frame["policy"] != END].replace({"policy": {CHECKER: END}})
    frame = frame[frame["policy"] != CHECKER]
    if save:
        write_eval(checkpoint.run_dir, EVAL_NAME, pa.Table.from_pandas(frame, preserve_index=False))
    return {
        "run": {
            "run_id": checkpoint.run_dir.name,
            "run_dir": str(checkpoint.run_dir),
            "step": checkpoint.step,
        },
        "settings": {
            "prompts": HELD_OUT,
            "n_prompts": len(items),
            "families": sorted({p.family for p in items}),
            "samples_per_prompt": samples,
            "temperature": 1.0,
            "max_new_tokens": max_new,
            "seed": seed,
            "start": base,
            "end": f"{run}@step-{checkpoint.step}",
            "checker_run": None if twin is None else f"{twin.run_dir.name}@step-{twin.step}",
        },
        "cpu": cpu_entry(),
        **measure(frame, samples),
        "R4": r4_agreement(checkpoint.run_dir),
        "rm_cost": rm_cost(checkpoint.run_dir, None if twin is None else twin.run_dir, frame, twin_frame),
    }


def saved_check(run_dir: Path) -> dict | None:
    """R1-R4 recomputed from the samples a saved check kept in ``run_dir`` (None without them)."""
    import engine.store as store

    frame = store.read_eval(run_dir, EVAL_NAME)
    if frame.empty:
        return None
    k = int(frame.groupby(["policy", "prompt_id"]).size().min())
    twin = Path(run_dir).parent / f"{Path(run_dir).name}{CHECKER_SUFFIX}"  # the checker twin beside it
    twin_frame = store.read_eval(twin, EVAL_NAME) if reward_is_judge(twin) else None
    twin_frame = None if twin_frame is None or twin_frame.empty else twin_frame
    return {
        **measure(frame, k),
        "R4": r4_agreement(run_dir),
        "rm_cost": rm_cost(run_dir, twin if twin_frame is not None else None, frame, twin_frame),
    }


def checker_twin(
    run: str, run_dir: Path, checker_run: str | None, runs_root: Path | str | None
) -> CheckpointRef | None:
    """The last checkpoint of the run rewarded by the checker to set beside ``run``: ``checker_run``
    when given (ConfigError unless it exists and is rewarded by the checker), else ``<run>-checker``
    when that exists and is; None for a run rewarded by the checker itself, or without a twin."""
    if reward_is_judge(run_dir):
        if checker_run:
            raise ConfigError(
                f"run {run!r} is rewarded by the checker itself: --checker-run is for an RM run"
            )
        return None
    name = checker_run or f"{run}{CHECKER_SUFFIX}"
    try:
        twin = find_checkpoint(name, None, runs_root=runs_root)
    except ConfigError:
        if checker_run:
            raise
        return None
    if reward_is_judge(twin.run_dir):
        return twin
    if checker_run:
        raise ConfigError(f"run {name!r} is not rewarded by the checker (its reward_model is not 'gold')")
    return None


def _task_scores(frame: pd.DataFrame, policy: str) -> pd.Series:
    return frame[frame["policy"] == policy].groupby("prompt_id", sort=False)["gold"].mean()


def rm_cost(
    run_dir: Path, twin_dir: Path | None, frame: pd.DataFrame, twin_frame: pd.DataFrame | None
) -> dict:
    """What the learned RM costs (the module docstring): the checker run's R1 gain minus this run's,
    over the held-out tasks both samples cover, each run's end against its own start's samples; a
    90 % bootstrap over tasks (paired: the two gains of a task are drawn together)."""
    if twin_dir is None or twin_frame is None:
        why = (
            "this run is rewarded by the checker itself"
            if reward_is_judge(run_dir)
            else f"no run rewarded by the checker beside it ({run_dir.name}{CHECKER_SUFFIX}; --checker-run names one)"
        )
        return {"ok": None, "value": None, "detail": f"this run does not show it: {why}"}
    tables = [(_task_scores(f, START), _task_scores(f, END)) for f in (frame, twin_frame)]
    tasks = [t for t in tables[0][1].index if all(t in s.index and t in e.index for s, e in tables)]
    if not tasks:
        return {
            "ok": None,
            "value": None,
            "detail": "this run does not show it: the two checks share no held-out task",
        }
    (s_rm, e_rm), (s_ck, e_ck) = ((s.loc[tasks].to_numpy(), e.loc[tasks].to_numpy()) for s, e in tables)
    gain_rm, gain_ck = e_rm - s_rm, e_ck - s_ck  # (n,) per task
    cost = float(gain_ck.mean() - gain_rm.mean())
    interval = bootstrap_interval(len(tasks), lambda idx: float(gain_ck[idx].mean() - gain_rm[idx].mean()))

    def side(start: np.ndarray, end: np.ndarray) -> dict:
        return {"start": round(float(start.mean()), 4), "end": round(float(end.mean()), 4),
                "gain": round(float(end.mean() - start.mean()), 4)}  # fmt: skip

    rm, ck = side(s_rm, e_rm), side(s_ck, e_ck)
    differ = other_differences(run_dir, twin_dir)
    detail = (
        f"held-out checker accuracy gain with the learned RM {rm['gain']:+.3f} ({rm['start']:.3f} -> "
        f"{rm['end']:.3f}), with the checker as the reward {ck['gain']:+.3f} ({ck['start']:.3f} -> "
        f"{ck['end']:.3f}, {twin_dir.name}): the RM costs {cost:+.3f} ({interval_text(interval)}; "
        f"{len(tasks)} held-out tasks, paired)"
        + (f"; the runs differ in more than the reward: {', '.join(differ)}" if differ else "")
    )
    return {
        "ok": None,
        "value": round(cost, 4),
        "interval": None if interval is None else [round(x, 4) for x in interval],
        "rm_run": {"run_id": run_dir.name, **rm},
        "checker_run": {"run_id": twin_dir.name, **ck},
        "n_prompts": len(tasks),
        "settings_differ": differ,
        "detail": detail,
    }


def other_differences(run_dir: Path, twin_dir: Path) -> list[str]:
    """The settings (flat names) where two runs' configs differ, besides the reward model and the
    precision each computed in: what else than the reward the comparison compares."""
    a, b = (_settings(d) for d in (run_dir, twin_dir))
    return sorted(
        k for k in a.keys() | b.keys() if k not in ("reward_model", "base_precision") and a.get(k) != b.get(k)
    )


def per_prompt(frame: pd.DataFrame, policy: str, k: int) -> pd.DataFrame:
    """One row per prompt of ``policy``'s samples (in the prompts' order): mean score, pass@1, pass@k,
    entropy x tokens and tokens (so a resample's token-weighted entropy is a ratio of sums)."""
    rows = frame[frame["policy"] == policy]
    grouped = rows.assign(weighted=rows["token_entropy"] * rows["n_tokens"]).groupby("prompt_id", sort=False)
    out = grouped.agg(
        score=("gold", "mean"),
        n=("correct", "size"),
        c=("correct", "sum"),
        ent=("weighted", "sum"),
        tok=("n_tokens", "sum"),
    )
    out["pass1"] = [pass_at_k(int(n), int(c), 1) for n, c in zip(out["n"], out["c"], strict=True)]
    out["passk"] = [
        pass_at_k(int(n), int(c), min(k, int(n))) for n, c in zip(out["n"], out["c"], strict=True)
    ]
    return out


def change(
    start: pd.DataFrame, end: pd.DataFrame, value: Callable[[pd.DataFrame, np.ndarray], float]
) -> tuple[float, float, tuple[float, float] | None]:
    """(start value, end value, 90 % bootstrap interval of end - start) of ``value(table, rows)``, the
    two policies paired on the same prompts (rows drawn with replacement)."""
    every = np.arange(len(start))
    a, b = value(start, every), value(end, every)
    interval = bootstrap_interval(len(start), lambda idx: value(end, idx) - value(start, idx))
    return a, b, interval


def _mean(column: str) -> Callable[[pd.DataFrame, np.ndarray], float]:
    return lambda table, idx: float(table[column].to_numpy()[idx].mean())


def _token_entropy(table: pd.DataFrame, idx: np.ndarray) -> float:
    return float(table["ent"].to_numpy()[idx].sum() / max(table["tok"].to_numpy()[idx].sum(), 1))


def measure(frame: pd.DataFrame, k: int) -> dict:
    """R1-R3 from the samples of the two policies (``start``, ``end``; same prompts, same counts)."""
    start, end = per_prompt(frame, START, k), per_prompt(frame, END, k)
    if list(start.index) != list(end.index):
        raise ValueError("the two policies' samples must cover the same prompts")
    n = len(start)

    def entry(ok: bool | None, a: float, b: float, interval, what: str, unit: str = "") -> dict:
        detail = f"{what}: {a:.3f}{unit} -> {b:.3f}{unit} ({b - a:+.3f}, {interval_text(interval)}; {n} held-out tasks x {k} samples)"
        return {
            "ok": ok,
            "value": round(b - a, 4),
            "start": round(a, 4),
            "end": round(b, 4),
            "interval": None if interval is None else [round(x, 4) for x in interval],
            "detail": detail,
        }

    a, b, iv = change(start, end, _mean("score"))
    r1 = entry(b - a >= R1_GOAL, a, b, iv, f"checker accuracy (goal +{R1_GOAL:.2f})")
    a, b, iv = change(start, end, _token_entropy)
    r2 = entry(iv is not None and iv[1] < 0, a, b, iv, "mean token entropy", " nats")
    a, b, iv = change(start, end, _mean("pass1"))
    r3 = entry(iv is not None and iv[0] > 0, a, b, iv, "pass@1")
    ka, kb, kiv = change(start, end, _mean("passk"))
    r3["pass_at_k"] = {
        "k": k,
        "start": round(ka, 4),
        "end": round(kb, 4),
        "interval": None if kiv is None else [round(x, 4) for x in kiv],
    }
    r3["detail"] += f"; pass@{k}: {ka:.3f} -> {kb:.3f} ({kb - ka:+.3f}, {interval_text(kiv)})"
    return {"R1": r1, "R2": r2, "R3": r3}


def r4_agreement(run_dir: Path) -> dict:
    """RM-checker agreement on the run's first logged step's rollouts vs its last's (measured)."""
    import engine.store as store

    if reward_is_judge(run_dir):
        return {
            "ok": None,
            "value": None,
            "detail": "the reward is the checker itself: there is no RM to agree with it",
        }
    table = store.rm_gold_agreement(run_dir)
    if len(table) < 2:
        return {
            "ok": None,
            "value": None,
            "detail": f"this run does not show it: {len(table)} logged step(s) with RM and checker scores",
        }
    first, last = table.iloc[0], table.iloc[-1]
    a, b = float(first["agreement"]), float(last["agreement"])
    n_a, n_b = int(first["n_pairs"]), int(last["n_pairs"])
    diff = share_difference_interval(a, n_a, b, n_b)
    detail = (
        f"RM-checker agreement on the run's rollouts: step {int(first['step'])} {a:.3f} "
        f"({interval_text(wilson_interval(a, n_a))}, {n_a} pairs) -> step {int(last['step'])} {b:.3f} "
        f"({interval_text(wilson_interval(b, n_b))}, {n_b} pairs): {b - a:+.3f} "
        f"({interval_text(diff)}, Wilson / Newcombe)"
    )
    return {
        "ok": None,
        "value": round(b - a, 4),
        "start": round(a, 4),
        "end": round(b, 4),
        "interval": None if diff is None else [round(x, 4) for x in diff],
        "steps": [int(first["step"]), int(last["step"])],
        "n_pairs": [int(first["n_pairs"]), int(last["n_pairs"])],
        "detail": detail,
    }


def _settings(run_dir: Path) -> dict:
    """A run's recorded config as flat settings, the defaults filled in where the record is older than
    a setting (a record that does not parse as a PPOConfig is taken as it is)."""
    config = (read_json(run_dir / RUN_FILE) or {}).get("config") or {}
    try:
        config = PPOConfig.from_dict(config).to_dict()
    except (ConfigError, TypeError):
        pass
    return {k: v for part in config.values() if isinstance(part, dict) for k, v in part.items()}


def cpu_entry() -> dict:
    """What the check ran on: CPU kind and model, threads, the load average when it started."""
    from engine.models import default_device
    from engine.models.precision import cpu_kind

    kind, load = cpu_kind(), os.getloadavg()[0]
    detail = (
        f"{cpu_model_name()} ({kind}, {os.cpu_count()} CPUs); device {default_device().type}; "
        f"{os.environ.get('WORKBENCH_THREADS') or torch_threads()} thread(s); load average {load:.1f}"
    )
    return {"ok": None, "value": kind, "detail": detail, "kind": kind, "load": round(load, 2)}


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()
