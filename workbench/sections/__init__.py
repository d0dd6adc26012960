"""Page sections that more than one view or page may call: each renders one self-contained part of a
page with Streamlit (widgets, one engine call, a figure from ``workbench.figures``, a sentence from
``workbench.run_text`` or ``workbench.group_text``)."""
