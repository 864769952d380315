"""Renderers of the table model: Markdown (tabulate), one self-contained HTML page (jinja2), JSON.

All three read the same :class:`~mmerbench.report.table.Table` objects, so a
number is formatted once. Text from the run store (method names, configs,
labels) is data, never markup: Markdown escapes it (and the table's pipes),
HTML is rendered with jinja2's autoescaping, plots are embedded as base64
data URIs (no network needed to view the page, and nothing inside a plot is
parsed as markup by the page).

A :class:`Document` is what one output file holds: a title, intro lines and
sections of tables (e.g. "Real data" and "Synthetic twins").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from mmerbench.report.table import Table

Format = Literal["md", "html", "json"]
FORMATS: tuple[str, ...] = ("md", "html", "json")


@dataclass
class Section:
    title: str
    tables: list[Table]
    intro: list[str] = field(default_factory=list)


@dataclass
class Document:
    title: str
    sections: list[Section]
    intro: list[str] = field(default_factory=list)
    generated: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def tables(self) -> list[Table]:
        return [t for s in self.sections for t in s.tables]


# ---------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}#~|!])")


def md_escape(text: Any) -> str:
    """Text that Markdown (GitHub's, tables included) shows literally: no markup, no HTML, no cell breaks."""
    s = " ".join(str(text).split())  # newlines would end a table row
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def _md_cell(cell) -> str:
    text = md_escape(cell.display + cell.marker)
    if not text:
        return ""
    if cell.emphasis == "best":
        return f"**{text}**"
    if cell.emphasis == "second":
        return f"<u>{text}</u>"
    return text


def table_markdown(table: Table) -> str:
    from tabulate import tabulate

    table.check()
    headers = [md_escape(f"{c.group}: {c.title}" if c.group else c.title) for c in table.columns]
    body: list[list[str]] = []
    for section, rows in table.sections:
        if section:
            body.append([f"*{md_escape(section)}*"] + [""] * (len(table.columns) - 1))
        body.extend([_md_cell(c) for c in r.cells] for r in rows)
    if not body:
        body = [["(no rows)"] + [""] * (len(table.columns) - 1)]
    title = md_escape(table.title) + "".join(f" \\[{md_escape(label)}\\]" for label in table.labels)
    parts = [f"### {title}", ""]
    if table.caption:
        parts += [md_escape(table.caption), ""]
    parts.append(tabulate(body, headers=headers, tablefmt="github", disable_numparse=True))
    if table.footnotes:
        parts.append("")
        parts += [f"{i}. {md_escape(n)}" for i, n in enumerate(table.footnotes, 1)]
    return "\n".join(parts) + "\n"


def to_markdown(doc: Document) -> str:
    parts = [f"# {md_escape(doc.title)}", ""]
    parts += [md_escape(line) + "  " for line in doc.intro]
    parts += [f"Generated {doc.generated}.", ""]
    for sec in doc.sections:
        parts += [f"## {md_escape(sec.title)}", ""]
        parts += [md_escape(line) for line in sec.intro]
        if sec.intro:
            parts.append("")
        if not sec.tables:
            parts += ["(nothing to show)", ""]
        for t in sec.tables:
            parts += [table_markdown(t)]
    return "\n".join(parts).rstrip() + "\n"


# ---------------------------------------------------------------- HTML


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("mmerbench.report", "templates"),
        autoescape=True,  # every {{ value }} is escaped; nothing is marked safe
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _sort_attr(cell) -> str:
    v = cell.sort_key
    return "" if v is None else repr(float(v))


def to_html(doc: Document) -> str:
    for t in doc.tables:
        t.check()
    template = _environment().get_template("report.html.j2")
    return template.render(doc=doc, sort_attr=_sort_attr)


# ---------------------------------------------------------------- JSON


def to_json_obj(doc: Document) -> dict[str, Any]:
    return {
        "title": doc.title,
        "generated": doc.generated,
        "intro": doc.intro,
        "meta": doc.meta,
        "sections": [
            {"title": s.title, "intro": s.intro, "tables": [t.to_dict() for t in s.tables]} for s in doc.sections
        ],
    }


def to_json(doc: Document) -> str:
    return json.dumps(to_json_obj(doc), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# ---------------------------------------------------------------- files

RENDERERS = {"md": to_markdown, "html": to_html, "json": to_json}


def render(doc: Document, fmt: str) -> str:
    if fmt not in RENDERERS:
        from mmerbench.errors import MmerbenchError

        raise MmerbenchError(f"Unknown format {fmt!r}: use one of {', '.join(FORMATS)} (or all).")
    return RENDERERS[fmt](doc)


def formats(fmt: str) -> list[str]:
    """``all`` → every format; otherwise the one asked for (checked)."""
    if fmt == "all":
        return list(FORMATS)
    if fmt not in FORMATS:
        from mmerbench.errors import MmerbenchError

        raise MmerbenchError(f"Unknown format {fmt!r}: use one of {', '.join(FORMATS)} or all.")
    return [fmt]


def write(doc: Document, out_dir: str | Path, stem: str, fmts: list[str]) -> list[Path]:
    """Write ``<out_dir>/<stem>.<fmt>`` for each format, each file atomically; returns the paths."""
    from mmerbench.errors import MmerbenchError
    from mmerbench.results import _atomic_write_bytes

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise MmerbenchError(f"Output folder {out} exists and is not a folder.")
    texts = {fmt: render(doc, fmt) for fmt in fmts}  # render everything before writing anything
    paths = []
    for fmt, text in texts.items():
        path = out / f"{stem}.{fmt}"
        try:
            _atomic_write_bytes(path, text.encode("utf-8"))  # the mode the umask allows, as any written file
        except OSError as e:
            raise MmerbenchError(f"Could not write {path}: {e.strerror or e}.") from None
        paths.append(path)
    return paths
