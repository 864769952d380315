"""The leaderboard plots: tick labels of the cost axis never overlap."""

from __future__ import annotations

import itertools

import pytest

from mmerbench.report.plots import quality_vs_cost_figure

pytest.importorskip("matplotlib")


@pytest.mark.parametrize("cost", [
    [12.0, 15.0, 19.0],            # under a decade: matplotlib's default labels minor ticks here, and they collide
    [3.1, 3.2],
    [0.8, 0.9, 1.3, 2.5],
    [0.4, 2.0, 9.0, 40.0, 300.0],  # a few decades: 1-2-5 ticks
    [0.01, 5.0, 3000.0, 2e5],      # many decades
    [1e3, 1.2e6, 3.5e8],           # parameters
])
def test_cost_axis_tick_labels_do_not_overlap(cost):
    import matplotlib.pyplot as plt

    fig = quality_vs_cost_figure([f"m{i}" for i in range(len(cost))], [0.5] * len(cost), cost,
                                 quality_name="Micro-F1", cost_name="latency p50 (ms), cpu fp32",
                                 higher_is_better=True)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        lo, hi = ax.get_xlim()
        labels = [lb for lb in [*ax.get_xticklabels(), *ax.xaxis.get_minorticklabels()]
                  if lb.get_text() and lo <= lb.get_position()[0] <= hi]
        assert len(labels) >= 2, "the axis needs at least two labelled ticks to be read"
        boxes = [(lb.get_text(), lb.get_window_extent(renderer)) for lb in labels]
        overlapping = [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]
        assert not overlapping
    finally:
        plt.close(fig)
