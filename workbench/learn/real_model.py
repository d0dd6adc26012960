"""Step 7, the same on a real model: the shipped ``demo-smollm2`` run (PPO on SmolLM2-135M-Instruct,
its tasks with checkers, a reward model trained on its own samples) read with the same curves as the
world's runs, each sentence a function of the run's own steps."""

from __future__ import annotations

import streamlit as st

import engine.store as store
from engine.paths import demo_runs_dir
from engine.real_tools.check import CHECKER_SUFFIX, saved_check
from workbench.figures.groups import METRIC_NAMES, compare_figure
from workbench.figures.learn import agreement_figure
from workbench.navigation import page_link
from workbench.real_text import claim_sentence, held_out_sentence, rm_cost_sentence
from workbench.store_access import cached

RUN = "demo-smollm2"
CURVES = ("objective/gold", "objective/entropy", "objective/reward", "objective/kl")
BUILD = "python -m engine real build && python -m engine demo build --only demo-smollm2"
CHECKER_RUN = f"{RUN}{CHECKER_SUFFIX}"  # the same run with the checker itself as the reward


def render() -> None:
    st.markdown(
        "Everything so far ran on the workbench's own 4-layer model of a 155-token language. Here is "
        "the same PPO on a real chat model: **SmolLM2-135M-Instruct** (Hugging Face's, the Q4_1 GGUF "
        "release dequantised to fp32), asked short questions with checkable answers (arithmetic, "
        "letter counting, answering in exactly N words). Its **gold** is the checker's score (1 = right); "
        "its **reward model** was trained the practitioner's way, on the model's own answers labelled by "
        "the checker with 10 % label noise. The curves are the run's training batches, step by step."
    )
    run_dir = demo_runs_dir() / RUN
    if not (run_dir / "run.json").is_file() or not cached(store.logged_steps, run_dir):
        st.info(
            f"The demo run `{RUN}` is not in `{demo_runs_dir()}` yet, so this step has nothing to show. Make it with:"
        )
        st.code(BUILD, language="bash")
        return
    keys = st.multiselect("Try it: curves", list(CURVES), default=["objective/gold", "objective/entropy"],
                          format_func=lambda k: METRIC_NAMES.get(k, k), key="learn_real_keys")  # fmt: skip
    metrics = cached(store.metrics, run_dir, keys=CURVES)
    st.plotly_chart(compare_figure(metrics, keys, [RUN]), key="learn_real_curves")

    def series(key: str) -> list[float]:
        return metrics[metrics["key"] == key].sort_values("step")["value"].tolist()

    agreement = cached(store.rm_gold_agreement, run_dir)
    lines = [
        claim_sentence(series("objective/gold"), "Checker accuracy on the training batches", "PPO raising it", up=True),
        claim_sentence(series("objective/entropy"), "Mean token entropy of the batches (nats)", "entropy reduction",
                       up=False),
        claim_sentence(agreement["agreement"].tolist() if len(agreement) else [],
                       "The RM's agreement with the checker on what PPO samples", "the RM losing accuracy as PPO moves",
                       up=False),
    ]  # fmt: skip
    st.markdown("\n".join(f"- {line}" for line in lines))
    if len(agreement):
        st.plotly_chart(agreement_figure(agreement), key="learn_real_agreement")
    st.caption("± is twice the standard error of the change from the step-to-step noise.")
    held = cached(saved_check, run_dir)
    if held is None:
        st.info(
            f"`{RUN}` holds no held-out samples: `python -m engine real check --run {RUN} --save` takes them."
        )
    else:
        st.markdown(
            "**On held-out tasks** (the start, SmolLM2 itself, against the run's last checkpoint, the same "
            "tasks sampled at T = 1; `python -m engine real check`):\n"
            + "\n".join(
                f"- {held_out_sentence(held[key], claim)}"
                for key, claim in (("R1", "a gain of +0.20 or more"), ("R2", "entropy reduction"),
                                   ("R3", "pass@1 rising"))
            )
        )  # fmt: skip
        what_the_rm_costs(held["rm_cost"])
    page_link("rollout_browser.py", f"Rollout browser: every answer of {RUN}, token by token", {"run": RUN})
    page_link("rm_accuracy.py", f"RM accuracy on {RUN}", {"run": RUN})


def what_the_rm_costs(cost: dict) -> None:
    """The held-out checker accuracy of the run with the learned RM beside the same run rewarded by
    the checker itself (``real check``'s rm_cost), and their difference in a sentence."""
    st.markdown(
        f"**What the learned RM costs**: `{CHECKER_RUN}` is the same run (same start, tasks, settings and "
        "seed) with the checker itself as the reward, no RM; held-out checker accuracy at each run's end:"
    )
    if cost["value"] is not None:
        sides = (("the learned RM", cost["rm_run"]), ("the checker itself", cost["checker_run"]))
        for column, (label, side) in zip(st.columns(2), sides, strict=True):
            column.metric(
                f"Rewarded by {label}", f"{side['end']:.3f}", f"{side['gain']:+.3f} from {side['start']:.3f}",
                help=f"`{side['run_id']}`: held-out checker accuracy at its last checkpoint, its gain from the start",
            )  # fmt: skip
    st.markdown(rm_cost_sentence(cost))
    if cost["value"] is None:
        st.code(f"python -m engine demo build --only {CHECKER_RUN}", language="bash")
