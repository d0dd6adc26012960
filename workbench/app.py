"""Entry point: ``streamlit run workbench/app.py``. Only builds the navigation over ``pages/``."""

import sys
from pathlib import Path

# Streamlit puts this file's directory on sys.path, not the repo root: make `import engine` work
# whether or not the project was installed with `pip install -e .`.
REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import streamlit as st  # noqa: E402

from workbench.navigation import FAVICON, sections  # noqa: E402
from workbench.resources import warm_up_lab  # noqa: E402

# The tab's icon is set before the navigation, which then leaves it: a page's Material icon there
# would be an image fetched from fonts.gstatic.com.
st.set_page_config(layout="wide", page_title="PPO Entropy Workbench", page_icon=FAVICON)
navigation = {
    section: [
        st.Page(spec.path, title=spec.title, icon=spec.icon, default=spec.file == "home.py") for spec in specs
    ]
    for section, specs in sections().items()
}
st.navigation(navigation, expanded=True).run()  # every page in the sidebar: no "View more" hiding Learn
warm_up_lab()  # after the page's run, so that the page does not wait for torch
