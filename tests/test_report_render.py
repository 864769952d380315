"""The table model and its three renderers: emphasis, mean ± std, and hostile text staying text."""

from __future__ import annotations

import json
import math
import re
import statistics
from html.parser import HTMLParser

import numpy as np
import pytest

from mmerbench.report import render
from mmerbench.report.render import Document, Section, md_escape
from mmerbench.report.table import Cell, Column, Row, Table, mark_best, mean_std

HOSTILE = [
    '<script>alert("x")</script>',
    '" onmouseover="alert(1)',
    "a | b || c",
    "**bold** _it_ `code` [link](javascript:alert(1)) ![img](http://example.com/x.png)",
    "{{ 7*7 }} {% if true %}jinja{% endif %}",
    "line\nbreak\r\nand\ttab",
    "&amp; &lt;b&gt; <img src=x onerror=alert(1)>",
    "\\| escaped pipe \\",
]


def _table(values, higher=True, emphasise=True):
    cols = [Column("name", "name", numeric=False), Column("m", "M", higher_is_better=higher, emphasise=emphasise)]
    rows = [Row([Cell(display=f"r{i}"), Cell(value=v, display="—" if v is None else f"{v}")])
            for i, v in enumerate(values)]
    return Table(id="t", title="t", columns=cols, rows=rows)


def _emph(t):
    return [r.cells[1].emphasis for r in t.rows]


def test_mark_best_follows_the_direction_and_shares_ties():
    t = _table([0.5, 0.7, 0.7, 0.6, None])
    mark_best(t)
    assert _emph(t) == ["", "best", "best", "second", ""]
    t = _table([0.5, 0.7, 0.7, 0.6, None], higher=False)
    mark_best(t)
    assert _emph(t) == ["best", "", "", "second", ""]


def test_mark_best_skips_columns_without_direction_or_emphasis():
    t = _table([1.0, 2.0], higher=None)
    mark_best(t)
    assert _emph(t) == ["", ""]
    t = _table([1.0, 2.0], emphasise=False)
    mark_best(t)
    assert _emph(t) == ["", ""]


def test_mark_best_ignores_nan():
    t = _table([float("nan"), 0.2, 0.1])
    mark_best(t)
    assert _emph(t) == ["", "best", "second"]


@pytest.mark.parametrize("vals", [[0.1, 0.2, 0.4], [3.0, 3.0], [0.41, 0.43, 0.47, 0.52, 0.38]])
def test_mean_std_is_the_sample_std(vals):
    m, s, text = mean_std(vals, 4)
    assert m == pytest.approx(statistics.fmean(vals))
    assert s == pytest.approx(statistics.stdev(vals))
    assert s == pytest.approx(float(np.std(vals, ddof=1)))
    assert text == f"{m:.4f} ± {s:.4f}"


def test_mean_std_of_one_seed_has_no_std():
    assert mean_std([0.25], 3) == (0.25, None, "0.250")


def test_groups_and_sections():
    cols = [Column("a", "a", numeric=False), Column("b", "B", group="G1"), Column("c", "C", group="G1"),
            Column("d", "D", group="G2")]
    rows = [Row([Cell(), Cell(), Cell(), Cell()], section=s) for s in ("x", "x", "y", "x")]
    t = Table(id="t", title="t", columns=cols, rows=rows)
    assert t.groups == [("", 1), ("G1", 2), ("G2", 1)]
    assert [(s, len(r)) for s, r in t.sections] == [("x", 2), ("y", 1), ("x", 1)]


def test_a_row_with_too_few_cells_is_refused():
    t = _table([1.0])
    t.rows[0].cells.pop()
    with pytest.raises(ValueError, match="Expected 2 cells"):
        t.check()


def _hostile_doc() -> Document:
    cols = [Column("method", HOSTILE[0], numeric=False, note=HOSTILE[1]),
            Column("m", HOSTILE[2], group=HOSTILE[3], higher_is_better=True, note=HOSTILE[1])]
    rows = [Row([Cell(display=h, note=h), Cell(value=float(i), display=h, marker=h[:3], note=h)], section=h)
            for i, h in enumerate(HOSTILE)]
    t = Table(id="hostile", title=HOSTILE[0], columns=cols, rows=rows, caption=HOSTILE[4], footnotes=HOSTILE,
              labels=[HOSTILE[0], HOSTILE[6]])
    mark_best(t)
    # A fixed timestamp: the page prints it, and a clock reading with "49" in it would trip the
    # template-evaluation check below.
    return Document(title=HOSTILE[0], sections=[Section(title=HOSTILE[3], tables=[t], intro=[HOSTILE[5]])],
                    intro=HOSTILE, generated="2026-01-01T00:00:00+00:00")


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_hostile_strings_are_text_in_html():
    html = render.to_html(_hostile_doc())
    p = _Tags()
    p.feed(html)
    tags = [t for t, _ in p.tags]
    assert tags.count("script") == 1  # the page's own sorting script, nothing injected
    assert "img" not in tags and "a" not in tags
    for _, attrs in p.tags:
        assert not any(k.startswith("on") for k in attrs), attrs  # no event handler attribute got in
    text = "".join(p.text)
    for h in HOSTILE:
        if "\n" not in h and "\t" not in h:
            assert h in text  # shown verbatim, as text
    assert "{{ 7*7 }}" in text and "49" not in text  # data is never evaluated as a template


def _pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_hostile_strings_neither_break_nor_mark_up_markdown():
    md = render.to_markdown(_hostile_doc())
    assert "<script" not in md and "<img" not in md
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(lines) == 2 + len(HOSTILE) * 2  # header, rule, one section row + one data row per hostile string
    assert {_pipes(ln) for ln in lines} == {3}  # every row keeps its 2 cells (3 unescaped pipes)
    # emphasis added by the renderer stays; emphasis characters from the data are escaped
    assert "\\*\\*bold\\*\\*" in md and "\\[link\\](javascript:alert(1))" in md


@pytest.mark.parametrize("text", HOSTILE)
def test_md_escape_leaves_no_active_character(text):
    out = md_escape(text)
    assert "\n" not in out and "<" not in out and ">" not in out
    assert _pipes(out) == 0
    for ch in "*_`[]#!":
        assert re.search(r"(?<!\\)" + re.escape(ch), out) is None or ch not in text


def test_json_keeps_every_number_and_writes_no_nan():
    cols = [Column("name", "name", numeric=False), Column("m", "M", higher_is_better=True)]
    rows = [Row([Cell(display="a"), Cell(value=0.5, display="0.5", extra={"per_seed": {"1": 0.4, "2": 0.6}})]),
            Row([Cell(display="b"), Cell(value=math.nan, display="—", extra={"std": math.inf})])]
    doc = Document(title="x", sections=[Section("s", [Table(id="t", title="t", columns=cols, rows=rows)])])
    data = json.loads(render.to_json(doc))
    cells = data["sections"][0]["tables"][0]["rows"]
    assert cells[0]["cells"][1]["extra"]["per_seed"] == {"1": 0.4, "2": 0.6}
    assert cells[1]["cells"][1]["value"] is None and cells[1]["cells"][1]["extra"]["std"] is None


def test_write_renders_everything_before_writing(tmp_path, monkeypatch):
    doc = _hostile_doc()
    out = tmp_path / "out"
    paths = render.write(doc, out, "board", ["md", "html", "json"])
    assert sorted(p.name for p in paths) == ["board.html", "board.json", "board.md"]
    before = {p.name: p.read_bytes() for p in paths}

    def broken(_doc):
        raise RuntimeError("renderer failed")

    monkeypatch.setitem(render.RENDERERS, "json", broken)
    with pytest.raises(RuntimeError):
        render.write(doc, out, "board", ["md", "html", "json"])
    assert {p.name: p.read_bytes() for p in paths} == before  # nothing half-written


def test_unknown_format_is_one_sentence():
    from mmerbench.errors import MmerbenchError

    with pytest.raises(MmerbenchError, match="Unknown format 'pdf'"):
        render.formats("pdf")
