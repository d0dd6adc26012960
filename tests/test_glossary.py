"""The glossary: one home for the definitions, every term the app names in it, a page that lists them,
and on every page a term's first use carries its tooltip, taken from the glossary."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import AlertBase, HeadingBase, Markdown

from workbench.glossary import BY_KEY, TERMS, terms_in, tooltip, tooltip_for
from workbench.learn import STEPS
from workbench.navigation import PAGES, PAGES_DIR

# The list: nats, sampling space, the five signals, gold, RM, reward norm, KL and k1/k3, probe
# set, ceiling, covariance driver, forking token, pass@k.
REQUIRED = (
    "nats", "sampling_space", "entropy", "max_prob", "sampled_prob", "candidates", "reward_distribution",
    "gold", "rm", "reward_norm", "kl", "k1_k3", "probe_set", "ceiling", "covariance_driver",
    "forking_token", "best_of_n",
)  # fmt: skip


def test_every_required_term_is_defined_once():
    assert set(REQUIRED) <= set(BY_KEY)
    assert len({t.key for t in TERMS}) == len(TERMS)
    assert len({t.name for t in TERMS}) == len(TERMS)
    for term in TERMS:
        assert term.definition.endswith((".", ")")), term.key
        assert term.used_in(term.name), f"{term.key}: its pattern does not match its own name"


def test_terms_are_found_as_the_pages_write_them():
    assert terms_in("the RM and gold; KL (k3) in nats") == ["nats", "gold", "rm", "kl", "k1_k3"]
    assert "rm" not in terms_in("a warm start")  # whole words only
    assert "kl" not in terms_in("tickle")
    assert tooltip_for("nothing to explain here") is None
    tip = tooltip("nats", "kl")
    assert tip.index("**nats**") < tip.index("**KL**") and "(/glossary)" in tip


def test_glossary_page_lists_every_term_and_opens_one_from_the_url():
    at = AppTest.from_file(str(PAGES_DIR / "glossary.py"), default_timeout=60).run()
    assert not at.exception
    shown = " ".join(m.value for m in at.markdown)
    assert all(f"**{t.name}**" in shown for t in TERMS)
    at = AppTest.from_file(str(PAGES_DIR / "glossary.py"), default_timeout=60)
    at.query_params["term"] = "k1_k3"
    at.run()
    assert [m.value for m in at.markdown] == [f"**{BY_KEY['k1_k3'].name}**: {BY_KEY['k1_k3'].definition}"]
    assert "glossary.py" in {p.file for p in PAGES}


def _defined_by(help_text: str) -> set[str]:
    return {t.key for t in TERMS if f"**{t.name}**:" in help_text}


def first_uses_without_tooltip(at: AppTest) -> list[tuple[str, list[str]]]:
    """(text, terms) for each text element of the page whose terms were not defined by its own tooltip
    or an earlier one on the page."""
    defined: set[str] = set()
    missing = []
    for node in at.main:
        if not isinstance(node, Markdown | HeadingBase | AlertBase):
            continue
        text = str(node.value)
        defined |= _defined_by(getattr(node.proto, "help", "") or "")
        new = [k for k in terms_in(text) if k not in defined]
        if new:
            missing.append((text[:80], new))
    return missing


@pytest.fixture(scope="module")
def data(tmp_path_factory, fake_world_data_dir, runs):
    return fake_world_data_dir, runs


@pytest.mark.parametrize("page", [p.file for p in PAGES if p.file != "glossary.py"], ids=lambda f: f[:-3])
def test_a_terms_first_use_on_a_page_carries_its_tooltip(page, data, monkeypatch):
    data_dir, runs_dir = data
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file(str(PAGES_DIR / page), default_timeout=120).run()
    assert not at.exception, at.exception
    assert first_uses_without_tooltip(at) == []


@pytest.mark.parametrize("lesson", [s.key for s in STEPS])
def test_the_learn_path_defines_a_term_where_it_first_uses_it(lesson, learn_data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(learn_data_dir))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(PAGES_DIR / "learn.py"), default_timeout=180)
    at.query_params["lesson"] = lesson
    at.run()
    assert not at.exception, at.exception
    assert at.header[0].value == {s.key: s.title for s in STEPS}[lesson]
    assert first_uses_without_tooltip(at) == []


def test_warm_up_comes_before_the_learn_path_and_is_called_so():
    """Learn step 1 sends the reader to the warm-up first: the sidebar lists it first, by that name."""
    learn = [p for p in PAGES if p.section == "Learn"]
    assert [p.file for p in learn] == ["teaching.py", "learn.py", "glossary.py"]
    assert learn[0].title.startswith("Warm-up")
    from engine.paths import REPO_ROOT

    step_one = (REPO_ROOT / "workbench" / "learn" / "sampling_space.py").read_text()
    assert 'page_link("teaching.py", "Warm-up' in step_one
