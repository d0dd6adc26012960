"""The teaching page's miniature PPO and the page itself."""

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.paths import REPO_ROOT
from engine.teaching import Bandit, make_bandit, run, softmax
from workbench.navigation import PAGES_DIR


def test_converges_to_the_kl_regularised_optimum():
    # argmax_pi E_pi[r] - beta KL(pi || pi0) is pi0 * exp(r / beta), normalised
    bandit = make_bandit(8, seed=3)
    beta = 0.5
    _, final = run(bandit, kl_coef=beta, lr=5.0, steps=3000)
    optimum = softmax(bandit.sft_logits + bandit.rm / beta)
    np.testing.assert_allclose(final, optimum, atol=1e-4)


def test_accurate_rm_lowers_entropy_and_raises_gold():
    history, _ = run(make_bandit(12), kl_coef=0.05, steps=100)
    assert history.entropy.iloc[-1] < history.entropy.iloc[0] - 0.5
    assert history.expected_gold.iloc[-1] > history.expected_gold.iloc[0] + 0.1


def test_loophole_without_kl_raises_rm_while_gold_falls():
    history, _ = run(make_bandit(12, loophole=1.0), kl_coef=0.0, steps=150)
    assert history.expected_rm.iloc[-1] > history.expected_rm.iloc[0]
    assert history.expected_gold.iloc[-1] < history.expected_gold.iloc[0]


def test_small_sampling_space_leaves_little_to_gain():
    wide, _ = run(make_bandit(12, sft_temperature=1.0), steps=100)
    narrow, _ = run(make_bandit(12, sft_temperature=0.1), steps=100)
    gain = lambda h: h.expected_gold.iloc[-1] - h.expected_gold.iloc[0]  # noqa: E731
    assert gain(narrow) < gain(wide)


def test_zero_kl_does_not_divide_by_zero():
    bandit = Bandit(gold=np.array([0.0, 1.0]), rm=np.array([0.0, 1.0]), sft_logits=np.array([0.0, 0.0]))
    history, final = run(bandit, kl_coef=0.0, steps=50)
    assert np.isfinite(history.to_numpy()).all() and final[1] > 0.9


@pytest.mark.parametrize("slider, value", [(0, 0.3), (2, 1.0), (3, 0.0)])
def test_teaching_page_reruns_with_each_setting(slider, value):
    at = AppTest.from_file(str(REPO_ROOT / "workbench" / "app.py"), default_timeout=30).run()
    at.switch_page(str(PAGES_DIR / "teaching.py")).run()
    assert not at.exception
    assert at.title[0].value.startswith("PPO as entropy reduction")
    before = at.metric[0].value
    at.sidebar.slider[slider].set_value(value).run()
    assert not at.exception
    assert len(at.metric) == 4
    if slider == 0:
        assert at.metric[0].value != before


def test_teaching_page_runs_on_its_own_with_plain_links():
    # Outside st.navigation (a one-page AppTest, or the page opened as a script) st.page_link cannot
    # resolve the other pages: the links fall back to plain URLs instead of raising.
    at = AppTest.from_file(str(PAGES_DIR / "teaching.py"), default_timeout=30).run()
    assert not at.exception
    links = [m.value for m in at.markdown if "](/" in m.value]
    assert "[Sampling lab: the sampling space token by token](/sampling_lab)" in links and len(links) == 6
    assert any(link.endswith("](/learn)") for link in links)  # the Warm-up leads on to the Learn path


def test_figures_legend_matches_the_bars_and_rm_line_is_on_top():
    from workbench.figures.teaching import answer_bars, bandit_curves

    bandit = make_bandit(12)
    history, final = run(bandit, steps=20)
    bars = answer_bars(bandit, softmax(bandit.sft_logits), final, 20)
    after = bars.data[1]
    assert after.showlegend is False and after.marker.colorbar.title.text.endswith("gold")  # no red swatch
    assert list(after.marker.color) == sorted(bandit.gold)
    curves = bandit_curves(history)
    names = [t.name for t in curves.data]
    assert names.index("expected RM reward") > names.index("expected gold")  # drawn last, on top
    gold = curves.data[names.index("expected gold")]
    assert gold.line.width > curves.data[names.index("expected RM reward")].line.width  # visible around it
