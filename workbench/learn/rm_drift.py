"""Step 5, the RM on a moving sampling space: RM reward vs gold over the steps of the KL-0 run, both
against sqrt(KL to the SFT model), and the samples that exploit the RM where they part."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import engine.store as store
from engine.analysis.entropy_dynamics import fit_gold_sqrt_kl
from workbench.figures.learn import agreement_figure, rm_gold_figure
from workbench.learn.common import pick_demo_run
from workbench.navigation import browser_link, page_link
from workbench.run_text import agreement_sentence, gold_kl_sentence
from workbench.store_access import cached

RUNS = ("demo-kl0", "demo-default")
KEYS = {"objective/reward": "reward", "objective/gold": "gold", "objective/kl": "kl"}


def _curves(run_dir) -> pd.DataFrame:
    """step, reward, gold, kl: the run's per-step means (the metrics as logged, one column each)."""
    long = cached(store.metrics, run_dir, keys=tuple(KEYS))
    wide = long.pivot_table(index="step", columns="key", values="value").rename(columns=KEYS)
    return wide.reindex(columns=list(KEYS.values())).reset_index()


def render() -> None:
    st.markdown(
        "The RM is a model too, trained on samples of the SFT model. As PPO moves, it samples answers "
        "the RM has seen less and less of, and there the RM can be wrong. PPO follows the RM, not the "
        "truth: if an answer the judge dislikes scores high, PPO will find it and produce more of it. "
        "Gao et al. (2022) measured this over-optimisation: against the distance from the start, "
        "`d = sqrt(KL)`, the RM reward keeps rising while the gold score rises, **peaks and falls** "
        "(`gold ≈ d (α − β log d)`). The KL penalty is what keeps PPO near where the RM is still right; "
        "`demo-kl0` trains without it."
    )
    picked = pick_demo_run(RUNS, "Try it: run", "learn_rm_run")
    if picked is None:
        return
    run, run_dir = picked
    curves = _curves(run_dir).dropna(subset=["reward", "gold"])
    steps = curves["step"].astype(int).tolist()
    if len(steps) < 3:
        st.info(f"`{run}` has fewer than 3 steps with RM and gold scores.")
        return
    lo, hi = st.select_slider("Try it: steps", steps, value=(steps[0], steps[-1]), key="learn_rm_steps")
    part = curves[(curves["step"] >= lo) & (curves["step"] <= hi)]
    fit = fit_gold_sqrt_kl(part["kl"].tolist(), part["gold"].tolist()) if len(part) >= 3 else None
    window = max(1, min(9, len(part) // 10))  # a running mean: one step's gold is noisy
    title = f"{run}: RM reward and gold"
    st.plotly_chart(rm_gold_figure(part, fit, title, window), key="learn_rm_curves")
    smooth = part.set_index("step")[["reward", "gold"]].rolling(window, center=True, min_periods=1).mean()
    peak = int(smooth["gold"].idxmax())
    st.markdown(
        f"From step {lo} to {hi} the RM reward went {smooth['reward'].iloc[0]:.2f} → "
        f"{smooth['reward'].iloc[-1]:.2f}; gold {smooth['gold'].iloc[0]:.2f} → peak "
        f"{smooth['gold'].max():.2f} at step {peak} → {smooth['gold'].iloc[-1]:.2f} ({window}-step running means). "
        + gold_kl_sentence(fit)
    )
    agreement = cached(store.rm_gold_agreement, run_dir, steps=(lo, hi))
    if not agreement.empty:
        st.plotly_chart(agreement_figure(agreement), key="learn_rm_agreement")
        st.caption(
            "Of two samples of the same prompt, how often the RM prefers the one gold prefers: the RM's "
            "accuracy *on what PPO samples now*. " + agreement_sentence(agreement["agreement"].tolist())
        )
    late = (lo + 2 * (hi - lo) // 3, hi)
    exploits = cached(store.exploit_rollouts, run_dir, steps=late, limit=5)
    st.markdown(
        f"**Samples that exploit the RM** (steps {late[0]}–{late[1]}: reward well above the step's mean, gold below it)"
    )
    if exploits.empty:
        st.caption(
            "None in this range: no sample scored well above its step's mean reward and below its mean gold."
        )
        return
    columns = ["step", "prompt", "response", "reward", "gold", "exploit"]
    st.dataframe(exploits[columns], hide_index=True, key="learn_rm_exploits",
                 column_config={"response": st.column_config.TextColumn(width="large")})  # fmt: skip
    for row in exploits.head(3).itertuples():
        browser_link(run, row.prompt_id, f"{row.prompt_id}, step {row.step}, sample {row.sample_idx}",
                     step=row.step, sample=row.sample_idx)  # fmt: skip
    page_link(
        "rm_accuracy.py",
        "RM accuracy: three ways to watch the RM during PPO",
        {"run": run},
    )
