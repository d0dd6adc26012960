"""The sampling lab's views: colours, scales, token HTML and the temperature verdict."""

from __future__ import annotations

import numpy as np

from engine.lab import SweepPoint
from workbench.lab_tables import colour, colour_range, legend_html, quality_verdict, token_rows_html


def test_colour_ends_and_legible_text():
    assert colour(0) == ("rgb(255, 255, 204)", "#111")
    assert colour(1) == ("rgb(128, 0, 38)", "#fff")
    assert colour(-3) == colour(0) and colour(7) == colour(1)


def test_colour_range():
    assert colour_range("max_prob", [np.array([0.2])]) == (0.0, 1.0)
    assert colour_range("n_candidates", [np.array([1.0, 9.0]), np.array([30.0])]) == (1.0, 30.0)
    low, high = colour_range("entropy", [np.zeros(3)])
    assert low == 0 and high > low


def test_token_html_escapes_and_carries_every_signal():
    signals = {
        n: np.array([[0.5, 1.0]])
        for n in ("entropy", "sampling_entropy", "max_prob", "sampled_prob", "n_candidates")
    }
    alternatives = (np.array([[[3, 4], [4, 3]]]), np.full((1, 2, 2), 0.5), np.full((1, 2, 2), 0.5))
    out = token_rows_html([["<b>", "ok"]], signals, "entropy", (0, 1), alternatives, {3: "x", 4: "y"}, ["#0"])
    assert "&lt;b&gt;" in out and "<b>" not in out
    assert out.count("title=") == 2 and "n candidates: 1" in out and "&#x27;y&#x27;  p=0.500" in out
    assert "linear-gradient" in legend_html("entropy", 0, 1)


def _points(pairs, gold=True):
    return [SweepPoint(t, {}, None if gold else v, v if gold else None) for t, v in pairs]


def test_quality_verdict():
    sharp = quality_verdict(_points([(0.5, 0.83), (1.0, 0.49), (1.5, 0.12), (2.0, 0.0)]))
    assert "76% lower" in sharp and "falls off sharply" in sharp
    flat = quality_verdict(_points([(0.5, 1.0), (1.0, 1.0), (1.5, 0.99)], gold=False))
    assert "RM score" in flat and "not much sharper" in flat
    assert quality_verdict(_points([(1.0, 0.5), (2.0, 0.1)])) is None  # nothing below 1


def test_change_column_keeps_its_minus_sign():
    from workbench.lab_tables import signed, summary_frame

    assert signed(-152.5) == "\u2212152.5" and signed(0.03) == "+0.030" and signed(0.0) == "0"
    means = dict.fromkeys(("entropy", "sampling_entropy", "max_prob", "sampled_prob", "n_candidates"), 1.0)
    frame = summary_frame({**means, "n_candidates": 2.0}, {**means, "n_candidates": 154.5})
    assert frame.set_index("signal").loc["n candidates", "change"] == "\u2212152.5"


def test_sweep_figure_puts_rm_and_gold_on_separate_axes():
    from workbench.figures.lab import sweep_figure

    summary = dict.fromkeys(("entropy", "sampling_entropy", "max_prob", "sampled_prob", "n_candidates"), 1.0)
    points = [SweepPoint(t, summary, -1 - 10 * t, 1 - t) for t in (0.0, 0.5, 1.0)]
    fig = sweep_figure(points, "min_p", 0.5)
    rm = next(t for t in fig.data if t.name == "mean RM score")
    gold = next(t for t in fig.data if t.name.startswith("mean gold score"))
    assert rm.yaxis != gold.yaxis and list(rm.y) == [-1, -6, -11]


def test_signal_boxes_put_candidates_on_a_log_axis_when_all_positive():
    from workbench.figures.lab import signal_distributions_figure

    names = ("entropy", "sampling_entropy", "max_prob", "sampled_prob", "n_candidates")
    current = {n: np.array([0.2, 0.8]) for n in names} | {"n_candidates": np.array([1.0, 3.0, 40.0])}
    reference = {n: np.array([0.5, 1.0]) for n in names} | {"n_candidates": np.full(3, 49152.0)}
    fig = signal_distributions_figure(current, reference)
    axes = [fig.layout[f"yaxis{'' if i == 1 else i}"].type for i in range(1, len(names) + 1)]
    assert axes[names.index("n_candidates")] == "log"
    assert all(t != "log" for i, t in enumerate(axes) if names[i] != "n_candidates")
    assert any(a.text == "n candidates (log axis)" for a in fig.layout.annotations)
    # an empty selection (no real token) keeps the linear axis: a log axis has nothing to show
    empty = {n: np.array([]) for n in names}
    fig = signal_distributions_figure(empty, empty)
    assert fig.layout[f"yaxis{len(names)}"].type != "log"
