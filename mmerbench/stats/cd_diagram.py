"""The critical-difference diagram (Demšar 2006) as a matplotlib figure."""

from __future__ import annotations

import io
import math
import numbers
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from mmerbench.stats.checks import _expected, _values
from mmerbench.stats.ranks import _cliques

def cd_diagram(
    avg_ranks: Mapping[str, float],
    cd: float,
    *,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    width: float = 6.0,
):
    """A critical-difference diagram (Demšar 2006, Fig. 1 style) as a matplotlib Figure.

    The axis shows average ranks from 1 (best, left) to k; each method hangs
    from its rank, the better half labelled on the left and the rest on the
    right; thick bars join cliques of methods whose ranks differ by less
    than ``cd``; the CD interval is drawn above the axis. Uses matplotlib's
    object API on the Agg canvas (no pyplot state, no display needed).
    Method names are drawn as plain text (no mathtext).

    With ``path`` (``.svg`` or ``.png``) the figure is also written there,
    atomically; SVG keeps text as text and is byte-stable across runs.
    Returns the Figure.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(avg_ranks, Mapping) or len(avg_ranks) < 2:
        raise _expected("avg_ranks", "a mapping of at least 2 method names to average ranks", repr(avg_ranks))
    names = [str(k) for k in avg_ranks]
    ranks = _values(list(avg_ranks.values()), "avg_ranks", 2, "ranks")
    k = len(names)
    if (ranks < 1).any() or (ranks > k).any():
        raise _expected("avg_ranks", f"average ranks in [1, {k}]", ranks.tolist())
    if isinstance(cd, (bool, np.bool_)) or not isinstance(cd, numbers.Real) or not (math.isfinite(cd) and cd > 0):
        raise _expected("cd", "a positive finite number", repr(cd))
    suffix = None
    if path is not None:
        suffix = Path(path).suffix.lower()
        if suffix not in (".svg", ".png"):
            raise _expected("path", "a file name ending in .svg or .png", repr(str(path)))

    order = list(np.argsort(ranks, kind="stable"))
    n_left = (k + 1) // 2
    left, right = order[:n_left], order[n_left:][::-1]  # right side: worst at the top
    cliques = _cliques(names, ranks.tolist(), float(cd))
    step = 0.32
    top = 0.9
    clique_y0 = -0.25
    label_y0 = clique_y0 - step * max(len(cliques), 1) - 0.15
    rows = max(len(left), len(right))
    bottom = label_y0 - step * rows
    height = 0.55 * (top - bottom) + 0.4

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
    ax.set_axis_off()
    span = max(k - 1, 1)
    pad = 0.08 * span
    ax.set_xlim(1 - 0.45 * span, k + 0.45 * span)
    ax.set_ylim(bottom - 0.1, top + 0.1)
    ink = "#222222"

    ax.plot([1, k], [0, 0], color=ink, lw=1.2)
    for r in range(1, k + 1):
        ax.plot([r, r], [0, 0.08], color=ink, lw=1)
        ax.text(r, 0.14, str(r), ha="center", va="bottom", fontsize=9, color=ink, parse_math=False)
    ax.text((1 + k) / 2, 0.42, "average rank (1 = best)", ha="center", va="bottom", fontsize=8,
            color="#555555", parse_math=False)
    # The CD interval, from rank 1.
    cd_end = 1 + float(cd)
    ax.plot([1, cd_end], [top - 0.1, top - 0.1], color=ink, lw=1.5)
    for xx in (1, cd_end):
        ax.plot([xx, xx], [top - 0.16, top - 0.04], color=ink, lw=1.2)
    ax.text(cd_end + 0.04 * span, top - 0.1, f"CD = {cd:.2f}", ha="left", va="center", fontsize=9,
            color=ink, parse_math=False)

    for side, idxs in (("left", left), ("right", right)):
        for row, i in enumerate(idxs):
            y = label_y0 - step * row
            x_end = 1 - pad if side == "left" else k + pad
            ax.plot([ranks[i], ranks[i], x_end], [0, y, y], color=ink, lw=0.9)
            ax.text(x_end + (-0.02 if side == "left" else 0.02) * span, y,
                    f"{names[i]} ({ranks[i]:.2f})" if side == "left" else f"({ranks[i]:.2f}) {names[i]}",
                    ha="right" if side == "left" else "left", va="center", fontsize=9, color=ink,
                    parse_math=False)
    for j, group in enumerate(cliques):
        rs = [ranks[names.index(g)] for g in group]
        y = clique_y0 - step * j
        ax.plot([min(rs) - 0.03 * span, max(rs) + 0.03 * span], [y, y], color="#c0392b", lw=3.5,
                solid_capstyle="round")
    if title:
        ax.set_title(title, fontsize=10, loc="center")

    if path is not None:
        from mmerbench.results import _atomic_write_bytes

        buf = io.BytesIO()
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "mmerbench"}):
            meta = {"Date": None} if suffix == ".svg" else {"Software": None}
            fig.savefig(buf, format=suffix[1:], bbox_inches="tight", dpi=150, metadata=meta)
        _atomic_write_bytes(Path(path), buf.getvalue())
    return fig
