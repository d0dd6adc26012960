"""Glossary: every term the pages use, defined once (workbench.glossary), searchable; ``?term=`` opens one."""

import streamlit as st

from workbench.glossary import BY_KEY, TERMS
from workbench.navigation import apply_query_param, set_link

st.title("Glossary")
st.caption(
    "Every term the pages use, as the workbench computes it. On the other pages the (?) beside the title "
    "(and beside each Learn step's heading, and on a link that names a term) gives these definitions."
)

keys = ["", *BY_KEY]
apply_query_param("term", "glossary_term", keys)
picked = st.selectbox(
    "Term", keys, key="glossary_term", format_func=lambda k: BY_KEY[k].name if k else "All terms"
)
if picked:
    set_link("term", picked, "glossary_term")
elif "term" in st.query_params:
    del st.query_params["term"]
found = st.text_input("Find in the definitions", key="glossary_find").strip().lower()

shown = [t for t in TERMS if (not picked or t.key == picked)]
shown = [t for t in shown if not found or found in f"{t.name} {t.definition}".lower()]
if not shown:
    st.info(f"No term mentions {found!r}.")
for term in shown:
    st.markdown(f"**{term.name}**: {term.definition}")
