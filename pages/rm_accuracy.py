"""RM accuracy during PPO, three ways: reward spread, agreement with the gold judge, log-prob accuracy."""

import streamlit as st

from workbench.store_views import cached, per_step_lines, pick_runs

st.title("RM accuracy")
st.caption(
    "PPO moves probability mass towards what the RM rewards, so the RM must stay right on what PPO now "
    "samples. Three monitors, from coarse to direct."
)

run_dirs = pick_runs("rm_runs", multi=True)
if run_dirs:
    st.subheader("1. Reward distribution: variance and tail")
    st.markdown(
        "From the PPO-max paper: a reward variance that explodes or a long tail (samples beyond mean ± 3 sd) "
        "catches big failures such as RM loopholes or KL blow-up, not a slow loss of accuracy."
    )
    spread = cached("reward_spread", run_dirs)
    left, right = st.columns(2)
    left.plotly_chart(
        per_step_lines(
            spread,
            {"reward_std": "reward sd", "reward_kurtosis": "excess kurtosis"},
            title="Spread and tail weight",
        ),
        key="rm_spread",
    )
    right.plotly_chart(
        per_step_lines(
            spread, {"tail_share": "share beyond ±3 sd"}, title="Long tail", y_title="share of samples"
        ),
        key="rm_tail",
    )

    st.subheader("2. Agreement with the gold judge on the step's own samples")
    st.markdown(
        "For every pair of samples of the same prompt whose gold scores differ: does the RM order them like "
        "the judge? (An RM tie counts half.) This measures the RM on the *current* sampling space."
    )
    agreement = cached("rm_gold_agreement", run_dirs)
    if agreement.empty:
        st.info("No gold (judge) scores in these runs: pairwise agreement needs them.")
    else:
        fig = per_step_lines(
            agreement,
            {"agreement": "RM-gold pairwise agreement"},
            title="Pairwise agreement",
            y_title="agreement",
        )
        fig.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
        st.plotly_chart(fig, key="rm_agreement")

    st.subheader("3. Log-prob accuracy on the labelled preference test set")
    st.markdown(
        "Share of test pairs where the policy gives the chosen answer a higher log-probability than the "
        "rejected one, per checkpoint (computed by a background job into `evals/logprob_accuracy.parquet`)."
    )
    accuracy = cached("logprob_accuracy", run_dirs)
    if accuracy.empty:
        st.info("Log-prob accuracy: not computed yet for these runs.")
    else:
        st.plotly_chart(
            per_step_lines(
                accuracy, {"accuracy": "log-prob accuracy"}, title="Log-prob accuracy", y_title="accuracy"
            ),
            key="rm_logprob",
        )
