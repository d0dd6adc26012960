"""The app's pages and the links between them.

``PAGES`` lists the pages in sections, each with its title and its icon (the one home of a page's
icon: the sidebar, :func:`page_link` and every link to a page take it from here); every listed page
must exist. The icons are Material Symbols, whose font Streamlit serves itself; the tab's icon is
:data:`FAVICON` on every page. The links: :func:`page_link` to a page, and deep links, the query
parameters (``?run=...&prompt=...``) that open a page on a run, a prompt or a step (read with
:func:`query_param` / :func:`int_param` / :func:`apply_query_param`, written with :func:`set_link`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from workbench.glossary import tooltip_for

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
FAVICON = "🧪"
"""The tab's icon (``st.set_page_config(page_icon=...)`` before the navigation): an emoji is drawn by the
browser, whereas a page's ``:material/...:`` icon as the tab's icon is an image from fonts.gstatic.com,
and the workbench asks nothing of any host but its own."""


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
        "ceiling.py",
        "Ceiling",
        ":material/vertical_align_top:",
        "pass@k of a run against its SFT start: where the sampling space caps PPO",
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
    PageSpec(
        "Learn",
        "teaching.py",
        "Warm-up: one toy prompt",
        ":material/school:",
        "PPO on one prompt with a dozen answers, computed exactly: the idea before the real models",
    ),
    PageSpec(
        "Learn",
        "learn.py",
        "Learn path",
        ":material/route:",
        "the argument step by step on the real models and demo runs",
    ),
    PageSpec(
        "Learn", "glossary.py", "Glossary", ":material/menu_book:", "every term the pages use, defined once"
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


def page_link(page: str, label: str, query_params: dict[str, str] | None = None) -> None:
    """``st.page_link`` to ``pages/<page>`` with the page's navigation icon; a page run on its own
    (no ``st.navigation``, as in a one-page AppTest) cannot resolve other pages, so it gets the same
    link as a plain URL."""
    help_text = tooltip_for(label)  # the terms a link's label names, defined on hover
    try:
        st.page_link(
            str(PAGES_DIR / page), label=label, icon=icon_of(page), query_params=query_params, help=help_text
        )
    except StreamlitPageNotFoundError:
        query = f"?{urlencode(query_params)}" if query_params else ""
        st.markdown(f"[{label}](/{Path(page).stem}{query})", help=help_text)


def entropy_link(run_id: str) -> None:
    """One click from a run to its entropy dynamics."""
    page_link("entropy_dynamics.py", f"Entropy dynamics of {run_id}", {"run": run_id})


def browser_link(run_id: str, prompt_id: str, label: str, **extra: Any) -> None:
    """A link that opens the rollout browser on one prompt (and step, sample, token position)."""
    params = {"run": run_id, "prompt": prompt_id, **{k: str(v) for k, v in extra.items() if v is not None}}
    page_link("rollout_browser.py", label, params)


def query_param(name: str) -> str | None:
    """The deep link's ``?name=value`` (None when absent or empty)."""
    value = st.query_params.get(name)
    return value or None


def int_param(name: str) -> int | None:
    """The deep link's ``?name=`` as a non-negative integer; None when absent or not one (a hand-edited
    link such as ``?token=²``, where ``"²".isdigit()`` holds but ``int`` refuses it, is ignored)."""
    try:
        value = int(query_param(name) or "")
    except ValueError:  # not a number, or over Python's 4,300-digit limit
        return None
    return value if value >= 0 else None


def apply_query_param(name: str, key: str, options: Sequence, cast: Callable = str) -> None:
    """Put ``?name=`` into the widget state ``key`` once per distinct link (so a later pick by the user
    wins until another link arrives); ignored when the value is not one of ``options``."""
    raw = query_param(name)
    marker = f"_linked_{key}"
    if raw is None or st.session_state.get(marker) == raw:
        return
    st.session_state[marker] = raw
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        return
    if value in options:
        st.session_state[key] = value


def set_link(name: str, value: Any, key: str) -> None:
    """Write the current choice into the URL (``?name=value``: a reload or a shared link reopens it)
    without it counting as a new deep link for :func:`apply_query_param`."""
    text = str(value)
    st.session_state[f"_linked_{key}"] = text
    if st.query_params.get(name) != text:
        st.query_params[name] = text


def unknown_link(value: str | None, options: Sequence, key: str, message: str) -> None:
    """Say so (``message`` with the value in place of ``{}``) when a deep link names something that is
    not among ``options``, instead of silently opening another; once per distinct link."""
    marker = f"_unknown_{key}"
    if value is None or value in options or st.session_state.get(marker) == value:
        return
    st.session_state[marker] = value
    shown = value if len(value) <= 60 else value[:57] + "..."
    st.warning(message.format(f"`{shown}`"))


def follow_link(name: str, key: str, options: Sequence, unknown: str) -> None:
    """:func:`apply_query_param` for a picker, saying so (:func:`unknown_link`) when the link names
    no option."""
    unknown_link(query_param(name), options, key, unknown)
    apply_query_param(name, key, options)
