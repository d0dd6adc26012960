"""Figures of the app: pure functions from DataFrames (or arrays) to Plotly figures and HTML.

One module per kind: ``tokens`` (the token-box renderer and its legend, shared by the sampling lab and
the rollout browser), ``ridgeline`` (density ridgelines and their spread), ``curves`` (per-step
lines), ``prompt`` (one prompt over training), ``sft_epochs`` and ``entropy`` (entropy dynamics).
No Streamlit here: every figure is testable on its own (tests/test_figures.py).
"""

# The margins and the horizontal legend under the plot that the analysis figures share.
LAYOUT = {"margin": {"l": 10, "r": 10, "t": 50, "b": 40}, "legend": {"orientation": "h", "y": -0.25}}
