"""The papers' tables: published numbers (``leaderboards/papers/*.yaml``) beside ours from the run store.

Each YAML file holds the tables of one paper (or its slides or poster), transcribed
by hand: caption, setting, column groups (each with its dataset and metrics),
the published values row by row as the paper prints them, notes on anything
the source leaves ambiguous, and for every row either the run that reproduces
it (``ours``: method, ``--set`` switches, ``--preset``, dataset) or
``not_implemented: <reason>``. A column group or a row may add switches or
override a cell (``groups: {<group>: {...}}``), so one row can map to
different runs per group (e.g. modality subsets, datasets).

Every column names our metric key and its ``definition``: how the published
number was computed (which function, which argument order, which average,
threshold and sample subset, read from the authors' code where it is public)
and why our key is the like-for-like one. Where a column's published name
misleads (TAILOR's "P" is a recall), the key follows the computation, not the
name. A row whose numbers come from other code may map single cells to
another key (``keys: {<column>: <metric key>}``, reason in its ``note``).

The layout is checked by :func:`validate` against :data:`SCHEMA` (a small
JSON-schema-like description, checked in code) plus rules a schema cannot say
(one value per metric column, ``ours`` xor ``not_implemented``, directions that
agree with :mod:`mmerbench.metrics`, unique ids). Whether the mapped methods,
switches and datasets exist is a separate check (:func:`check_registry`),
because some methods and datasets are written on other branches.

A cell's run is identified exactly: the mapping is resolved into the config
``mmerbench run`` would build (:func:`mmerbench.runner.prepare`), and its hash
names the run folder; every complete seed there counts. ``--data synthetic``
looks the same configs up on the ``synth-*`` twins and says so.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml

from mmerbench.config import format_override
from mmerbench.errors import MmerbenchError
from mmerbench.report.paper_schema import check_schema, validate  # noqa: F401 (check_schema: re-exported)
from mmerbench.report.render import Document, Section
from mmerbench.report.synthetic_label import SYNTHETIC_LABEL, SYNTHETIC_NOTE
from mmerbench.report.table import Cell, Column, Row, Table, mark_best

PAPERS_ENV = "MMERBENCH_PAPERS"
DEFAULT_SEEDS = (1, 2, 3)

# ---------------------------------------------------------------- model


@dataclass(frozen=True)
class PaperMetric:
    name: str
    key: str | None
    higher_is_better: bool
    unit: str
    definition: str = ""
    note: str = ""


@dataclass(frozen=True)
class PaperGroup:
    name: str
    metrics: tuple[PaperMetric, ...]
    dataset: str | None = None
    set: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSpec:
    """What fills a cell: the arguments of one ``mmerbench run``."""

    method: str
    dataset: str
    preset: str | None = None
    set: tuple[tuple[str, Any], ...] = ()

    def overrides(self) -> list[str]:
        return [f"{k}={format_override(v)}" for k, v in self.set]

    def command(self, seeds: Sequence[int] = DEFAULT_SEEDS, *, scale: float | None = None,
                data_seed: int | None = None) -> str:
        parts = ["mmerbench", "run", "--method", self.method, "--dataset", self.dataset]
        if self.preset:
            parts += ["--preset", self.preset]
        if self.set:
            parts += ["--set", *self.overrides()]
        parts += ["--seeds", *[str(s) for s in seeds]]
        if scale is not None:
            parts += ["--scale", f"{scale:g}"]
        if data_seed is not None:
            parts += ["--data-seed", str(data_seed)]
        return shlex.join(parts)

    def on_twin(self) -> "RunSpec":
        ds = self.dataset if self.dataset.startswith("synth-") else f"synth-{self.dataset}"
        return RunSpec(self.method, ds, self.preset, self.set)


@dataclass(frozen=True)
class NotImplemented_:
    reason: str


@dataclass
class PaperRow:
    name: str
    values: list[float | None]
    section: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    ambiguous: dict[str, str] = field(default_factory=dict)
    note: str = ""
    ours: dict[str, Any] | None = None
    not_implemented: str | None = None
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # column id → metric key, overriding the column's


@dataclass
class PaperTable:
    id: str
    paper: str
    source: str
    table: str
    caption: str
    setting: str
    groups: list[PaperGroup]
    rows: list[PaperRow]
    notes: list[str] = field(default_factory=list)
    dataset: str | None = None
    set: dict[str, Any] = field(default_factory=dict)
    row_attributes: list[str] = field(default_factory=list)
    file: str = ""

    @property
    def columns(self) -> list[tuple[PaperGroup, PaperMetric]]:
        return [(g, m) for g in self.groups for m in g.metrics]

    @staticmethod
    def column_id(group: PaperGroup, metric: PaperMetric) -> str:
        return f"{group.name}/{metric.name}" if group.name else metric.name

    def target(self, row: PaperRow, group: PaperGroup) -> RunSpec | NotImplemented_:
        """The run that fills ``row``'s cells under ``group`` (or why none does).

        Switches merge in the order table ← group ← row ← the row's override for
        that group; the dataset is the most specific one named.
        """
        over = row.groups.get(group.name, {})
        if "not_implemented" in over:
            return NotImplemented_(over["not_implemented"])
        if row.ours is None:
            return NotImplemented_(row.not_implemented or "not mapped")
        method = over.get("method", row.ours["method"])
        dataset = over.get("dataset") or row.ours.get("dataset") or group.dataset or self.dataset
        if not dataset:
            return NotImplemented_("no dataset named for this cell")
        preset = over.get("preset", row.ours.get("preset"))
        merged: dict[str, Any] = {}
        for part in (self.set, group.set, row.ours.get("set") or {}, over.get("set") or {}):
            merged.update(part)
        return RunSpec(method, dataset, preset, tuple(sorted((k, _freeze(v)) for k, v in merged.items())))

    def targets(self) -> list[tuple[PaperRow, PaperGroup, RunSpec | NotImplemented_]]:
        return [(r, g, self.target(r, g)) for r in self.rows for g in self.groups]


def _freeze(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def default_papers_dir() -> Path:
    """``$MMERBENCH_PAPERS``, else ``leaderboards/papers`` of this checkout."""
    env = os.environ.get(PAPERS_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "leaderboards" / "papers"


def _parse_table(t: dict[str, Any], doc: dict[str, Any], file: str) -> PaperTable:
    groups = [
        PaperGroup(
            name=g["name"],
            metrics=tuple(PaperMetric(m["name"], m.get("key"), m["higher_is_better"], m["unit"],
                                      m.get("definition", ""), m.get("note", ""))
                          for m in g["metrics"]),
            dataset=g.get("dataset"),
            set=dict(g.get("set") or {}),
        )
        for g in t["groups"]
    ]
    rows = [
        PaperRow(
            name=r["name"], values=[None if v is None else float(v) for v in r["values"]],
            section=r.get("section", ""), attributes=dict(r.get("attributes") or {}),
            ambiguous=dict(r.get("ambiguous") or {}), note=r.get("note", ""), ours=r.get("ours"),
            not_implemented=r.get("not_implemented"), groups=dict(r.get("groups") or {}),
            keys=dict(r.get("keys") or {}),
        )
        for r in t["rows"]
    ]
    return PaperTable(
        id=t["id"], paper=doc["paper"], source=doc["source"], table=t["table"], caption=t["caption"],
        setting=t["setting"], groups=groups, rows=rows, notes=list(t.get("notes") or []),
        dataset=t.get("dataset"), set=dict(t.get("set") or {}), row_attributes=list(t.get("row_attributes") or []),
        file=file,
    )


def load_file(path: str | os.PathLike) -> list[PaperTable]:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise MmerbenchError(f"Cannot read paper tables file {p}: {e.strerror or e}.") from None
    except UnicodeDecodeError:
        raise MmerbenchError(f"Paper tables file {p} is not UTF-8 text.") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise MmerbenchError(f"Paper tables file {p} is not valid YAML{at}.") from None
    errors = validate(data)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise MmerbenchError(f"Paper tables file {p} is invalid: {errors[0]}{more}.")
    return [_parse_table(t, data, p.name) for t in data["tables"]]


def load_papers(papers_dir: str | os.PathLike | None = None) -> list[PaperTable]:
    """Every table of every ``*.yaml`` under the papers folder, validated; ids must be unique."""
    folder = Path(papers_dir) if papers_dir is not None else default_papers_dir()
    if not folder.is_dir():
        raise MmerbenchError(f"No paper tables folder at {folder} (set --papers-dir or ${PAPERS_ENV}).")
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise MmerbenchError(f"No paper tables (*.yaml) in {folder}.")
    tables: list[PaperTable] = []
    seen: dict[str, str] = {}
    for f in files:
        for t in load_file(f):
            if t.id in seen:
                raise MmerbenchError(f"Table id {t.id!r} appears in both {seen[t.id]} and {f.name}.")
            seen[t.id] = f.name
            tables.append(t)
    return tables


def select(tables: list[PaperTable], ids: Sequence[str]) -> list[PaperTable]:
    """The tables named (all when none); an unknown id is an error with the known ones."""
    if not ids:
        return tables
    import difflib

    by_id = {t.id: t for t in tables}
    for i in ids:
        if i not in by_id:
            close = difflib.get_close_matches(i, list(by_id), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise MmerbenchError(f"Unknown table {i!r}.{hint} Known: {', '.join(by_id)}.")
    return [by_id[i] for i in dict.fromkeys(ids)]


# ---------------------------------------------------------------- registry check


def check_registry(spec: RunSpec) -> str | None:
    """None when ``mmerbench run`` accepts this mapping (method, dataset, task, preset, switch names and
    modality names all known); otherwise the sentence it would fail with."""
    from mmerbench.runner import RunRequest, prepare

    try:
        prepare(RunRequest(method=spec.method, dataset=spec.dataset, overrides=tuple(spec.overrides()),
                           preset=spec.preset))
    except MmerbenchError as e:
        return str(e)
    return None


# ---------------------------------------------------------------- our numbers


@dataclass
class Ours:
    status: Literal["ran", "not_run", "not_available", "not_implemented"]
    reason: str = ""
    per_seed: dict[int, dict[str, float]] = field(default_factory=dict)  # seed → test metrics
    config_hash: str = ""
    spec: RunSpec | None = None
    elsewhere: str = ""  # not_run: the method's nearest other config with runs, and what differs

    def values(self, key: str) -> list[float]:
        return [m[key] for _, m in sorted(self.per_seed.items()) if key in m]


def lookup(spec: RunSpec, runs_dir: str | os.PathLike | None, *, scale: float | None = None,
           data_seed: int | None = None) -> Ours:
    """Resolve ``spec`` to its config hash as ``mmerbench run`` would and read every complete seed."""
    from mmerbench import results
    from mmerbench.data import paths
    from mmerbench.runner import RunRequest, prepare

    try:
        prep = prepare(RunRequest(method=spec.method, dataset=spec.dataset, overrides=tuple(spec.overrides()),
                                  preset=spec.preset, runs_dir=None if runs_dir is None else str(runs_dir),
                                  scale=scale if spec.dataset.startswith("synth-") else None,
                                  data_seed=data_seed if spec.dataset.startswith("synth-") else None))
    except MmerbenchError as e:
        return Ours("not_available", str(e), spec=spec)
    folder = results.config_dir(paths.runs_root(None if runs_dir is None else str(runs_dir)), spec.dataset,
                                spec.method, prep.config_hash)
    per_seed = {}
    for sd in sorted(folder.glob("seed-*")):
        try:
            seed = int(sd.name.split("-", 1)[1])
        except ValueError:
            continue
        m = results.read_metrics(sd)
        if m is not None and isinstance(m.get("test"), dict):
            per_seed[seed] = {k: float(v) for k, v in m["test"].items() if isinstance(v, (int, float))}
    if not per_seed:
        from mmerbench.report.config_diff import other_configs

        elsewhere = other_configs(folder.parent, prep.config, prep.config_hash)
        reason = f"no complete run in {folder}" + (f"; {elsewhere}" if elsewhere else "")
        return Ours("not_run", reason, config_hash=prep.config_hash, spec=spec, elsewhere=elsewhere)
    return Ours("ran", per_seed=per_seed, config_hash=prep.config_hash, spec=spec)


# ---------------------------------------------------------------- rendering


def _decimals(values: Sequence[float | None], unit: str) -> int:
    ds = []
    for v in values:
        if v is None:
            continue
        s = repr(float(v))
        ds.append(len(s.split(".", 1)[1]) if "." in s and "e" not in s else 0)
    return min(max(ds), 4) if ds else (2 if unit == "percent" else 3)


@dataclass
class TableRequest:
    ids: tuple[str, ...] = ()
    data: Literal["real", "synthetic"] = "real"
    runs_dir: str | os.PathLike | None = None
    papers_dir: str | os.PathLike | None = None
    scale: float | None = None  # twins only
    data_seed: int | None = None  # twins only
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    preset: str | None = None  # for rows that name none, e.g. `small` for CPU runs on the twins


def _spec_for(target, req: "TableRequest"):
    if isinstance(target, NotImplemented_):
        return target
    if req.preset and not target.preset:
        target = RunSpec(target.method, target.dataset, req.preset, target.set)
    return target.on_twin() if req.data == "synthetic" else target


def build_table(pt: PaperTable, req: TableRequest) -> Table:
    """One paper table in the paper's layout: per cell published → ours mean ± std (n), and Δ."""
    synthetic = req.data == "synthetic"
    cols = pt.columns
    decimals = [_decimals([r.values[j] for r in pt.rows], m.unit) for j, (_, m) in enumerate(cols)]
    columns = [Column("row", "", numeric=False)]
    columns += [Column(f"attr:{a}", a, numeric=False) for a in pt.row_attributes]
    for j, (g, m) in enumerate(cols):
        note = "; ".join(x for x in (_ours_text(m.key, m.unit), m.definition, m.note) if x)
        columns.append(Column(f"col:{pt.column_id(g, m)}", m.name, group=g.name, higher_is_better=m.higher_is_better,
                              note=note, emphasise=True))
    columns.append(Column("ours", "mmerbench run", numeric=False, note="the run that fills the row's cells"))

    cols_by_id = {pt.column_id(g, m): m for g, m in cols}
    cache: dict[RunSpec, Ours] = {}
    rows: list[Row] = []
    counts = {"ran": 0, "not_run": 0, "not_available": 0, "not_implemented": 0}
    footnotes = [f"{pt.paper}, {pt.table}; transcribed in leaderboards/papers/{pt.file}.", f"Setting: {pt.setting}"]
    footnotes += pt.notes
    footnotes += _column_footnotes(pt)
    for r in pt.rows:
        cells = [Cell(display=r.name, note=r.ambiguous.get("row", ""))]
        cells += [Cell(display=r.attributes.get(a, "")) for a in pt.row_attributes]
        mapping_text = set()
        for j, (g, m) in enumerate(cols):
            published = r.values[j]
            target = _spec_for(pt.target(r, g), req)
            if isinstance(target, NotImplemented_):
                ours = Ours("not_implemented", target.reason)
                mapping_text.add(f"not implemented: {target.reason}")
            else:
                if target not in cache:
                    cache[target] = lookup(target, req.runs_dir, scale=req.scale, data_seed=req.data_seed)
                ours = cache[target]
                mapping_text.add(_mapping_label(target))
            counts[ours.status] += 1
            cell_metric = replace(m, key=r.keys.get(pt.column_id(g, m), m.key))
            cells.append(_paper_cell(published, cell_metric, ours, decimals[j],
                                     r.ambiguous.get(pt.column_id(g, m), ""), synthetic))
        cells.append(Cell(display=" | ".join(sorted(mapping_text))))
        meta = {"name": r.name, "section": r.section}
        if r.note:
            meta["note"] = r.note
            footnotes.append(f"{r.name}: {r.note}")
        for col, key in r.keys.items():
            footnotes.append(f"{r.name}, {col}: {_ours_text(key, cols_by_id[col].unit)} for this row.")
        for elsewhere in sorted({c.extra.get("elsewhere", "") for c in cells if c.extra} - {""}):
            footnotes.append(f"{r.name}: not run as mapped ({' | '.join(sorted(mapping_text))}); {elsewhere}.")
        for col, why in r.ambiguous.items():
            footnotes.append(f"{r.name}, {'row name' if col == 'row' else col}: {why} (marked ?).")
        rows.append(Row(cells=cells, section=r.section, meta=meta))
    footnotes.append(
        "Each cell: published → ours, mean ± sample std (ddof = 1) over n seeds"
        + ("" if synthetic else ", and Δ = ours − published")
        + "; ours in the paper's unit. Bold / underline: best / second published value of the column (of each section when sections are datasets). "
        "'not run': mapped, but no complete run in the store (see --runs); "
        "'n/a': the mapped method, dataset or switch is not available in this installation; "
        "'—': not implemented (reason in the last column)."
    )
    if synthetic:
        footnotes.insert(0, SYNTHETIC_NOTE + " Ours are on the synth-* twins, so no Δ is shown.")
    table = Table(
        id=pt.id + ("-synthetic" if synthetic else ""),
        title=f"{pt.id}: {pt.table}",
        columns=columns,
        rows=rows,
        caption=pt.caption,
        footnotes=footnotes,
        labels=[SYNTHETIC_LABEL] if synthetic else [],
        meta={"id": pt.id, "paper": pt.paper, "source": pt.source, "table": pt.table, "setting": pt.setting,
              "data": req.data, "cells": counts, "synthetic": synthetic},
    )
    # Rank within each row section when the rows name their own datasets (sections are then datasets).
    mark_best(table, per_section=any(r.ours and r.ours.get("dataset") for r in pt.rows))
    return table


def _ours_text(key: str | None, unit: str) -> str:
    if not key:
        return "no matching mmerbench metric"
    return f"ours: mmerbench metric {key!r}" + (" × 100" if unit == "percent" else "")


def _column_footnotes(pt: PaperTable) -> list[str]:
    """One line per distinct column (groups often repeat the same metrics): what the published number is
    and which of our metrics it is compared with."""
    lines = []
    for m in dict.fromkeys(m for _, m in pt.columns):
        lines.append(f"{m.name}: {_ours_text(m.key, m.unit)}. Published: {m.definition}")
    return lines


def _mapping_label(spec: RunSpec) -> str:
    bits = [spec.method, spec.dataset]
    if spec.preset:
        bits.append(f"--preset {spec.preset}")
    bits += spec.overrides()
    return " ".join(bits)


def _paper_cell(published: float | None, m: PaperMetric, ours: Ours, decimals: int, ambiguous: str,
                synthetic: bool) -> Cell:
    pub_text = "–" if published is None else f"{published:.{decimals}f}"
    if ambiguous:
        pub_text += "?"
    extra: dict[str, Any] = {"published": published, "status": ours.status, "metric_key": m.key, "unit": m.unit}
    if ours.spec is not None:
        extra["run"] = {"method": ours.spec.method, "dataset": ours.spec.dataset, "preset": ours.spec.preset,
                        "set": dict(ours.spec.set), "config_hash": ours.config_hash or None}
    note = ambiguous
    if ours.status == "not_implemented":
        text = f"{pub_text} · —"
        note = "; ".join(x for x in (note, f"not implemented: {ours.reason}") if x)
    elif ours.status == "not_available":
        text = f"{pub_text} · n/a"
        note = "; ".join(x for x in (note, ours.reason) if x)
    elif ours.status == "not_run":
        text = f"{pub_text} · not run" + (" (other config ran)" if ours.elsewhere else "")
        if ours.elsewhere:
            extra["elsewhere"] = ours.elsewhere
        note = "; ".join(x for x in (note, ours.reason) if x)
    elif not m.key:
        text = f"{pub_text} · no metric"
        note = "; ".join(x for x in (note, "no mmerbench metric matches this column") if x)
    else:
        vals = ours.values(m.key)
        if not vals:
            text = f"{pub_text} · no {m.key}"
            note = "; ".join(x for x in (note, f"the runs have no metric {m.key!r}") if x)
        else:
            import numpy as np

            scale = 100.0 if m.unit == "percent" else 1.0
            arr = np.asarray(vals, dtype=float) * scale
            mean = float(arr.mean())
            std = float(arr.std(ddof=1)) if arr.size > 1 else None
            ours_text = f"{mean:.{decimals}f}" + ("" if std is None else f" ± {std:.{decimals}f}")
            text = f"{pub_text} → {ours_text} (n={arr.size})"
            extra.update({"ours_mean": mean, "ours_std": std, "ours_n": int(arr.size),
                          "ours_per_seed": {str(s): v * scale for s, v in
                                            zip(sorted(k for k, mm in ours.per_seed.items() if m.key in mm), vals)}})
            if published is not None and not synthetic:
                diff = mean - published
                extra["diff"] = diff
                text += f" Δ {diff:+.{decimals}f}"
    return Cell(value=published, display=text, higher_is_better=m.higher_is_better, note=note, extra=extra)


def build(req: TableRequest) -> Document:
    if req.data not in ("real", "synthetic"):
        raise MmerbenchError(f"Unknown --data {req.data!r}: use real or synthetic.")
    tables = select(load_papers(req.papers_dir), req.ids)
    sections: list[Section] = []
    for pt in tables:
        if sections and sections[-1].title == pt.paper:
            sections[-1].tables.append(build_table(pt, req))
        else:
            sections.append(Section(title=pt.paper, tables=[build_table(pt, req)]))
    intro = ["Published values beside ours from the run store."]
    if req.data == "synthetic":
        intro.append("Ours are on the synthetic twins (synth-*): for testing the pipeline, not for comparison.")
    return Document(title="The papers' tables" + (" [synthetic twins]" if req.data == "synthetic" else ""),
                    sections=sections, intro=intro,
                    meta={"data": req.data, "ids": [t.id for t in tables],
                          "runs_dir": None if req.runs_dir is None else str(req.runs_dir)})


def run_commands(req: TableRequest) -> list[str]:
    """The ``mmerbench run`` commands (one per distinct config) that fill the chosen tables; unavailable
    ones are comments saying why."""
    tables = select(load_papers(req.papers_dir), req.ids)
    lines: list[str] = []
    seen: set[RunSpec] = set()
    for pt in tables:
        block = []
        for _, _, target in pt.targets():
            spec = _spec_for(target, req)
            if isinstance(spec, NotImplemented_) or spec in seen:
                continue
            seen.add(spec)
            twin = spec.dataset.startswith("synth-")
            cmd = spec.command(req.seeds, scale=req.scale if twin else None, data_seed=req.data_seed if twin else None)
            problem = check_registry(spec)
            if problem is not None:
                problem = problem.split(" Known:", 1)[0].split(" Settings:", 1)[0]
            block.append(cmd if problem is None else f"# n/a here ({problem}): {cmd}")
        lines.append(f"# {pt.id}: {pt.table} of {pt.paper}")
        lines += block or ["# (every row is not implemented)"]
    return lines
