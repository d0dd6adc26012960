"""Min-p at high temperature on the world: a measurement for ``world check``, not a pass/fail.

Nguyen et al. 2024 (arXiv 2407.01082) claim min-p keeps quality at high temperature, where the seed
saw quality collapse above T = 1; arXiv 2506.13681 disputes it. This measures it on the world: mean
gold of the default SFT epoch's samples on the PPO prompt set at T = 1.5 with min_p 0.1, with top_p
0.9, and with neither, and at T = 1 for reference, with the samples and the judge of the other checks
(``engine.world.check.Checker``: every prompt x ``SAMPLES_PER_PROMPT`` samples, the same seed).
"""

from __future__ import annotations

from dataclasses import replace

from engine.config import SamplingConfig
from engine.world import World
from engine.world.check import T1, Checker

HOT = replace(T1, temperature=1.5)
MIN_P_SETTINGS: dict[str, SamplingConfig] = {
    "T=1": T1,
    "T=1.5": HOT,
    "T=1.5, min_p 0.1": replace(HOT, min_p=0.1),
    "T=1.5, top_p 0.9": replace(HOT, top_p=0.9),
}


def measure_min_p(world: World, seed: int = 0, checker: Checker | None = None) -> dict:
    """Gold (and mean per-token entropy at T = 1) of each setting of :data:`MIN_P_SETTINGS`.

    ``checker``: the world check's own, to share loaded models and cached samples (T = 1 is W6's).
    Returns ``{"ok": None, "value", "detail", "gold", "drop_vs_t1", "entropy", "n_samples"}``: ``value``
    is the share of the T = 1.5 gold drop that min-p 0.1 recovers,
    ``(gold(min_p) - gold(T=1.5)) / (gold(T=1) - gold(T=1.5))`` (1 = as good as T = 1, 0 = no help).
    """
    checker = checker or Checker(world, seed)
    gold, entropy, n_samples = {}, {}, 0
    for name, config in MIN_P_SETTINGS.items():
        samples = checker.samples(world.default_epoch, "ppo", config)
        gold[name] = float(samples.gold.mean())
        entropy[name] = float(samples.token_mean_entropy)
        n_samples = len(samples.gold)
    base, hot, min_p = gold["T=1"], gold["T=1.5"], gold["T=1.5, min_p 0.1"]
    drop = {name: (base - g) / base if base else None for name, g in gold.items()}
    recovered = (min_p - hot) / (base - hot) if base != hot else None
    detail = ", ".join(f"{name} {g:.3f}" for name, g in gold.items())
    detail = f"gold on the PPO prompts (epoch {world.default_epoch}, {n_samples} samples each): {detail}"
    if recovered is not None:
        detail += f"; min-p recovers {recovered:.0%} of the T = 1.5 drop"
    return {
        "ok": None,
        "value": None if recovered is None else round(recovered, 4),
        "detail": detail,
        "gold": gold,
        "drop_vs_t1": drop,
        "entropy": entropy,
        "n_samples": n_samples,
    }
