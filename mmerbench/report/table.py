"""The one table model every renderer reads: Markdown, HTML and JSON.

A :class:`Table` is rows of :class:`Cell` under :class:`Column` headers that
may share a group header (the papers' "Aligned | Unaligned"), optional row
sections (the papers' "Glove-based", "Classical"), footnotes and labels (such
as "synthetic"). A cell keeps the number (``value``), the text shown
(``display``), the column's direction and how it is emphasised, plus
``extra`` numbers (std, seed count, the published value, the difference)
that the JSON output carries and the HTML shows on hover. Renderers decide
nothing about the numbers; they only lay out what is here.

Emphasis follows the papers: the best value of a column in bold, the second
best underlined (:func:`mark_best`). A column's direction comes from the
metric's metadata (``mmerbench.metrics``) or the paper's header, never from
the renderer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Emphasis = Literal["", "best", "second"]


@dataclass
class Column:
    key: str  # unique within the table
    header: str  # the metric's display name, e.g. "Micro-F1"
    group: str = ""  # a group header shared by neighbouring columns
    higher_is_better: bool | None = None  # None: not a quality column (text, counts)
    numeric: bool = True
    note: str = ""  # shown on hover in HTML, kept in JSON
    emphasise: bool = True  # take part in best / second-best marking
    compact: bool = False  # a narrow column (efficiency figures): small type, header may wrap

    @property
    def arrow(self) -> str:
        if self.higher_is_better is None:
            return ""
        return "↑" if self.higher_is_better else "↓"

    @property
    def title(self) -> str:
        """The header with its direction arrow, e.g. ``HL ↓``."""
        return f"{self.header} {self.arrow}".strip()


@dataclass
class Cell:
    value: float | None = None  # what best / second and sorting use; None: no number
    display: str = ""  # the text shown (no markup; renderers escape it)
    higher_is_better: bool | None = None
    emphasis: Emphasis = ""
    marker: str = ""  # e.g. "▲" / "▼": significantly better / worse than the reference
    note: str = ""  # e.g. why a cell is empty; HTML hover text
    extra: dict[str, Any] = field(default_factory=dict)  # every number behind the cell (JSON)

    @property
    def sort_key(self) -> float | None:
        return self.value if self.value is not None and math.isfinite(self.value) else None


@dataclass
class Row:
    cells: list[Cell]
    section: str = ""  # row group, e.g. "Glove-based"
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. method, config hash (JSON)


@dataclass
class Table:
    id: str
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    caption: str = ""
    footnotes: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # e.g. ["synthetic"]
    meta: dict[str, Any] = field(default_factory=dict)
    figures: list["Figure"] = field(default_factory=list)

    def __post_init__(self) -> None:
        keys = [c.key for c in self.columns]
        if len(set(keys)) != len(keys):
            raise ValueError(f"Expected unique column keys, but got {keys}")

    def check(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row.cells) != len(self.columns):
                raise ValueError(
                    f"Expected {len(self.columns)} cells in row {i} of table {self.id!r}, but got {len(row.cells)}"
                )

    @property
    def groups(self) -> list[tuple[str, int]]:
        """Consecutive column groups as (header, span); ungrouped columns have header ""."""
        out: list[tuple[str, int]] = []
        for c in self.columns:
            if out and out[-1][0] == c.group:
                out[-1] = (c.group, out[-1][1] + 1)
            else:
                out.append((c.group, 1))
        return out

    @property
    def has_groups(self) -> bool:
        return any(c.group for c in self.columns)

    @property
    def sections(self) -> list[tuple[str, list[Row]]]:
        """Consecutive rows of one section, in order."""
        out: list[tuple[str, list[Row]]] = []
        for r in self.rows:
            if out and out[-1][0] == r.section:
                out[-1][1].append(r)
            else:
                out.append((r.section, [r]))
        return out

    def to_dict(self) -> dict[str, Any]:
        self.check()
        d = asdict(self)
        d["figures"] = [{"title": f.title, "kind": f.kind, "mime": f.mime} for f in self.figures]
        return _finite(d)


@dataclass
class Figure:
    """A plot embedded in the HTML page as a data URI (``mime`` + base64 ``data``)."""

    title: str
    kind: str  # e.g. "quality-vs-latency", "critical-difference"
    mime: str
    data: str  # base64

    @property
    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{self.data}"


def _finite(obj: Any) -> Any:
    """JSON has no NaN or inf: write them as null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def mark_best(table: Table, *, per_section: bool = False) -> None:
    """Bold the best value of every emphasised column with a direction, underline the second.

    Ties share the emphasis (two equal best values are both bold); "second"
    is the next distinct value. With ``per_section`` each row section is
    ranked on its own.
    """
    row_sets = [rows for _, rows in table.sections] if per_section else [table.rows]
    for rows in row_sets:
        for j, col in enumerate(table.columns):
            if col.higher_is_better is None or not col.emphasise:
                continue
            vals = sorted({r.cells[j].sort_key for r in rows if r.cells[j].sort_key is not None},
                          reverse=col.higher_is_better)
            if not vals:
                continue
            for r in rows:
                v = r.cells[j].sort_key
                if v is None:
                    continue
                if v == vals[0]:
                    r.cells[j].emphasis = "best"
                elif len(vals) > 1 and v == vals[1]:
                    r.cells[j].emphasis = "second"


def fmt(value: float | None, decimals: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{decimals}f}"


def mean_std(values: list[float], decimals: int = 4) -> tuple[float, float | None, str]:
    """Mean, sample std (ddof = 1; None for one value) and their display ``m ± s``."""
    import numpy as np

    arr = np.asarray(values, dtype=float)
    m = float(arr.mean())
    s = float(arr.std(ddof=1)) if arr.size > 1 else None
    text = fmt(m, decimals) if s is None else f"{fmt(m, decimals)} ± {fmt(s, decimals)}"
    return m, s, text
