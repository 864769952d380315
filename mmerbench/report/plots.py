"""Plots for the HTML page, returned as :class:`~mmerbench.report.table.Figure` (base64 SVG).

Quality against cost (latency, parameters) per leaderboard table, and the
critical-difference diagram across datasets when the statistics module draws
one. matplotlib runs headless (Agg); labels are drawn as plain text (no
mathtext), so a ``$`` in a method name is just a character. SVG output is made
deterministic (fixed hash salt, no date) so the same runs give the same page.
"""

from __future__ import annotations

import base64
import io
from typing import Sequence

from mmerbench.report.table import Figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def figure_to_svg(fig, title: str, kind: str) -> Figure:
    """Serialise a matplotlib figure into an embeddable :class:`Figure` and close it."""
    import matplotlib

    plt = _pyplot()
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "mmerbench", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return Figure(title=title, kind=kind, mime="image/svg+xml", data=base64.b64encode(buf.getvalue()).decode("ascii"))


def _log_ticks(ax, values: Sequence[float]) -> None:
    """Labelled ticks on a log axis that do not collide: major ticks at 1, 2, 5 × 10^k over a span of up to
    three decades, at 10^k beyond that; minor ticks unlabelled (matplotlib labels them when the span is under
    a decade, which is what made neighbouring labels overlap); labels in plain numbers, slanted."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    decades = math.log10(max(values) / min(values)) if len(values) and min(values) > 0 else 0.0
    subs = (1.0,) if decades > 3 else (1.0, 2.0, 5.0)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")


def quality_vs_cost_figure(
    labels: Sequence[str],
    quality: Sequence[float],
    cost: Sequence[float],
    *,
    quality_name: str,
    cost_name: str,
    higher_is_better: bool,
    log_x: bool = True,
):
    """The matplotlib figure behind :func:`quality_vs_cost` (the caller closes it)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.scatter(cost, quality, color="#2563eb", zorder=3)
    for name, x, y in zip(labels, cost, quality):
        ax.annotate(str(name), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8, parse_math=False)
    log_x = log_x and all(c > 0 for c in cost)
    if log_x:
        ax.set_xscale("log")
        _log_ticks(ax, cost)
    arrow = "↑" if higher_is_better else "↓"
    ax.set_xlabel(f"{cost_name} ↓ (log scale)" if log_x else f"{cost_name} ↓", parse_math=False)
    ax.set_ylabel(f"{quality_name} {arrow}", parse_math=False)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{quality_name} against {cost_name}", fontsize=10, parse_math=False)
    fig.tight_layout()
    return fig


def quality_vs_cost(
    labels: Sequence[str],
    quality: Sequence[float],
    cost: Sequence[float],
    *,
    quality_name: str,
    cost_name: str,
    higher_is_better: bool,
    log_x: bool = True,
    kind: str = "quality-vs-cost",
) -> Figure:
    """A scatter of one quality metric against one cost (log scale), each point named."""
    fig = quality_vs_cost_figure(labels, quality, cost, quality_name=quality_name, cost_name=cost_name,
                                 higher_is_better=higher_is_better, log_x=log_x)
    return figure_to_svg(fig, f"{quality_name} against {cost_name}", kind)


def metric_vs_level(
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    metric_name: str,
    level_name: str,
    higher_is_better: bool,
    title: str,
    kind: str = "metric-vs-level",
) -> Figure:
    """One line per method: the metric at each corruption level (level 0 = clean)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for name, (levels, values) in curves.items():
        ax.plot(list(levels), list(values), marker="o", label=str(name))
    arrow = "↑" if higher_is_better else "↓"
    ax.set_xlabel(level_name, parse_math=False)
    ax.set_ylabel(f"{metric_name} {arrow}", parse_math=False)
    ax.grid(True, alpha=0.3)
    if curves:
        legend = ax.legend(fontsize=8)
        for text in legend.get_texts():
            text.set_parse_math(False)  # a method name is text, never mathtext
    ax.set_title(title, fontsize=10, parse_math=False)
    return figure_to_svg(fig, title, kind)
