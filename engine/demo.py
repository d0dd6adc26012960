"""The shipped demo runs (``data/demo_runs/``): real PPO runs on the built-in world, made by the engine
itself from a recorded config and seed, so a fresh clone has runs to click through and learn from.

- ``demo-default``: the default config from the default SFT epoch: gold rises while the probe
  prompts' entropy falls (PPO as entropy reduction);
- ``demo-kl0``: no KL penalty: the RM reward keeps rising while gold peaks and falls, and the RM's
  agreement with gold drops on what PPO now samples (over-optimisation);
- ``demo-kl0-refresh``: ``demo-kl0`` with the RM retrained every 25 steps on within-prompt pairs of
  PPO's latest rollouts labelled by the judge (``engine.ppo.rm_refresh``): the note's remedy, over the
  same steps and seed as ``demo-kl0`` (rollouts of steps 1, 5, 9, ...: steps ``demo-kl0`` keeps too);
- ``demo-late-epoch``: the default config from the last, collapsed SFT epoch (the practitioner's
  "sampling space too small"): entropy starts at half the default epoch's. Measured on this world it
  still gains gold (its samples are already good), as the figures say; it shows what PPO works with;
- ``demo-grpo``: GRPO with the engine's defaults (no value head, the group baseline, on-policy: one
  optimizer step per batch) from the same start for the same steps as ``demo-default``, to put the
  two side by side;
- ``demo-smollm2``: the same on a real model: PPO on the real world (SmolLM2-135M-Instruct, its
  tasks, the reward model ``real build`` trained on its own samples, the checkers as gold), the
  ``smollm2-cpu`` preset (:mod:`engine.ppo.presets`), every step's rollouts kept; what it shows is
  measured by ``python -m engine real check``;
- ``demo-smollm2-checker``: ``demo-smollm2`` with the checker itself as the reward (``reward_model =
  "gold"``, no learned RM): the difference of the two runs' held-out checker accuracy is what the
  learned RM costs (``real check``). Its adapter ships in fp16 (3.5 MiB instead of 7: the demo runs
  must fit 45 MiB together); its held-out samples were drawn with the shipped fp16 weights.

Every step's metrics are kept; rollouts are kept for every ``keep_every``-th step (all rollouts of a
kept step, never a sample of them), probes at every probe step, and the log-prob accuracy of the
run's checkpoints (``evals/``). Checkpoints themselves are dropped but for the last adapter, which
the sampling lab can load (and, after an RM refresh, the refreshed RM). ``demo-default`` also ships
the coverage samples of its last checkpoint beside its SFT start (``evals/coverage.parquet``, made by
``analyse coverage`` as docs/world.md says; ``demo build`` does not remake them). ``python -m engine
demo build`` regenerates the runs; :func:`demo_figures`
is what the command prints and what the shipped ones are compared against.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.config import GOLD_REWARD
from engine.ppo.config import PPOConfig
from engine.ppo.presets import preset_config
from engine.real_world import PPO_FAMILIES
from engine.runs.layout import CHECKPOINTS_DIR, ROLLOUTS_DIR
from engine.store.schema import step_files

ADAPTER_WEIGHTS = "adapter_model.safetensors"  # what peft's save_pretrained names a LoRA adapter's weights
SMOLLM2_STEPS = 20  # the preset's steps: 35-45 s a step at one thread, load 2-4 (2 threads: 113 s at load 4)


@dataclass(frozen=True)
class DemoSpec:
    """One shipped demo run: a real PPO run from a recorded config and seed."""

    run_id: str
    """The run's directory name under data/demo_runs."""
    title: str
    """What the run shows, in a phrase (the run record's source and the final status message)."""
    config: PPOConfig
    keep_every: int
    """Keep the rollouts of steps 1, 1 + keep_every, ... and the last (every step's metrics are kept)."""
    logprob_eval: bool = True
    """Measure the log-prob accuracy of the checkpoints on the world's preference test set (the built-in
    world's, or the real world's checker-ordered answers to held-out tasks)."""
    real_check: bool = False
    """A run on the real world: ``demo build`` keeps the samples of ``real check`` in it (evals/)."""
    half_adapter: bool = False
    """Ship the last adapter's weights in fp16 (half the bytes; loading casts them back to the
    model's dtype), for a run whose fp32 adapter would not fit the demo runs' size budget."""


def demo_specs() -> list[DemoSpec]:
    default = PPOConfig()
    smollm2 = preset_config(
        "smollm2-cpu", families=PPO_FAMILIES, steps=SMOLLM2_STEPS, save_every=SMOLLM2_STEPS, seed=0
    )
    return [
        DemoSpec(
            "demo-default",
            "default PPO: gold rises while entropy falls",
            default.replace(steps=400, save_every=50, seed=0),
            keep_every=2,
        ),
        DemoSpec(
            "demo-kl0",
            "no KL penalty: the RM is over-optimised",
            default.replace(kl_coef=0.0, steps=300, save_every=25, seed=0),
            keep_every=2,
        ),
        DemoSpec(
            "demo-kl0-refresh",
            "no KL penalty, the RM refreshed from PPO samples every 25 steps",
            default.replace(kl_coef=0.0, steps=300, save_every=25, seed=0, rm_refresh_every=25),
            keep_every=4,  # every fourth step's rollouts (1, 5, ...: kept by demo-kl0 too): within 10 MiB
        ),
        DemoSpec(
            "demo-late-epoch",
            "from the last, collapsed SFT epoch: a small sampling space",
            default.replace(sft_epoch=8, steps=120, save_every=40, seed=0),
            keep_every=2,
        ),
        DemoSpec(
            "demo-grpo",
            "GRPO beside default PPO: group advantages, no value head",
            default.replace(algorithm="grpo", steps=400, save_every=50, seed=0),
            keep_every=4,  # every fourth step's rollouts: each demo run within 10 MiB (tests/test_demo_shipped.py)
        ),
        DemoSpec(
            "demo-smollm2",
            "the same on a real model: PPO on SmolLM2 with a learned RM",
            smollm2,
            keep_every=1,
            real_check=True,
            half_adapter=True,
        ),
        DemoSpec(
            "demo-smollm2-checker",
            "the same on a real model with the checker as the reward: what the learned RM costs",
            smollm2.replace(reward_model=GOLD_REWARD),
            keep_every=1,
            real_check=True,
            half_adapter=True,
        ),
    ]


def build_demo(spec: DemoSpec, out_dir: Path, *, progress: bool = True) -> Path:
    """Train ``spec`` into ``out_dir/<run_id>`` (written under a temp name, renamed at the end)."""
    from engine.ppo.build import build_trainer
    from engine.ppo.logprob_eval import evaluate_run
    from engine.store import RunWriter

    torch.set_num_threads(int(os.environ.get("WORKBENCH_THREADS", "1")))  # tiny model: one thread
    final = Path(out_dir) / spec.run_id
    tmp_root = Path(out_dir) / f".{spec.run_id}.tmp"
    tmp = tmp_root / spec.run_id  # the run's own name, so run.json and the run_id column are right
    shutil.rmtree(tmp_root, ignore_errors=True)
    trainer = build_trainer(spec.config)
    config = spec.config.replace(base_precision=trainer.base_precision)  # what it computed
    trainer.writer = RunWriter.create(
        tmp, kind="ppo", config=config.to_dict(), seed=config.run.seed, source=f"demo: {spec.title}"
    )
    trainer.train(progress=progress)
    if spec.logprob_eval:
        evaluate_run(tmp)  # log-prob accuracy of every checkpoint (the RM accuracy page's third view)
    _thin(tmp, spec)
    # The record says it is finished (a demo has no job): the pages list it with this state.
    from engine.runs import STATUS_FILE, atomic_write_json

    atomic_write_json(
        {"state": "finished", "step": config.run.steps, "steps": config.run.steps, "message": spec.title},
        tmp / STATUS_FILE,
    )
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    tmp_root.rmdir()
    return final


def _thin(run_dir: Path, spec: DemoSpec) -> None:
    """Drop the rollouts of steps between kept ones, and every checkpoint but the last adapter."""
    last = spec.config.run.steps
    for step, path in step_files(run_dir / ROLLOUTS_DIR):
        if (step - 1) % spec.keep_every and step != last:
            path.unlink()
    checkpoints = sorted((run_dir / CHECKPOINTS_DIR).glob("step-*"), key=lambda p: int(p.name[5:]))
    for path in checkpoints[:-1]:
        shutil.rmtree(path)
    for path in checkpoints[-1:]:
        (path / "optimizer.pt").unlink(missing_ok=True)  # only resuming needs it; a demo is read-only
        if spec.half_adapter:
            _halve_adapter(path / ADAPTER_WEIGHTS)


def _halve_adapter(path: Path) -> None:
    """An adapter's weights file, its float tensors in fp16 (in the run's temp directory: the build
    renames the whole run at the end)."""
    from safetensors.torch import load_file, save_file

    weights = load_file(str(path))
    save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, str(path))


def demo_figures(run_dir: Path) -> dict:
    """The figures a demo run is made to show, from its store: gold and probe entropy at the start and
    the end (``engine.analysis.uncertainty.first_last_tenth``: the first and last tenth of each
    series' own logged points, with ``noisy`` when the change is within the step-to-step noise), the
    gold peak (of the running mean over a tenth of the steps), RM-gold agreement."""
    import engine.store as store
    from engine.analysis.uncertainty import first_last_tenth, tenth

    metrics = store.metrics(run_dir).pivot_table(index="step", columns="key", values="value")

    def start_end(values) -> dict | None:
        ends = first_last_tenth(list(values))
        if ends is None:
            return None
        return {"first": round(ends.first, 4), "last": round(ends.last, 4), "noisy": ends.noisy}

    def series(key: str) -> dict | None:
        return start_end(metrics[key].dropna()) if key in metrics else None

    agreement = store.rm_gold_agreement(run_dir)
    gold = metrics["objective/gold"].dropna() if "objective/gold" in metrics else None
    return {
        "steps": int(metrics.index.max()),
        "gold": series("objective/gold"),
        "reward": series("objective/reward"),
        "probe_entropy": series("probe/entropy"),
        "batch_entropy": series("objective/entropy"),
        "kl": series("objective/kl"),
        "gold_peak_step": int(gold.rolling(tenth(len(gold)), min_periods=1).mean().idxmax())
        if gold is not None and len(gold)
        else None,
        "rm_gold_agreement": start_end(agreement["agreement"]) if len(agreement) else None,
    }
