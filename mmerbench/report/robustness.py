"""The leaderboard's robustness section: one table per dataset (and data setting) whose runs have
stored corruption records (``mmerbench robustness``), with metric-vs-level curves.

Rows are configs of methods; columns are the primary metric on the clean test split, under each
stored corruption (mean ± std over the seeds that have it) and the summaries of
:mod:`mmerbench.robustness.summary` (area under the curve, worst missing modality, MultiBench's
relative and effective robustness). With a reference (``--reference``), each corruption cell is
compared with the reference's cell under the same corruption by the leaderboard's default test,
the two-level bootstrap over seeds and test samples of the stored corrupted predictions, and the
p-values are Holm-adjusted over the table's comparisons (rows × corruptions), as in the main table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mmerbench.errors import MmerbenchError
from mmerbench.report.render import Section
from mmerbench.report.table import Cell, Column, Row, Table, fmt, mark_best, mean_std
from mmerbench.robustness.corruptions import LEVELLED
from mmerbench.robustness.scoring import record_path

GROUPS = {"clean": "", "missing": "missing modality", "noise": "Gaussian noise (σ / train std)",
          "tmask": "temporal masking (fraction)", "misalign": "misalignment"}
LEVEL_NAMES = {"noise": "noise σ (in training-split stds)", "tmask": "fraction of real time steps masked"}
DECIMALS = 4


@dataclass
class BoardRules:
    """What the leaderboard decides for every table, handed in so this module never imports it:
    which runs are synthetic, the (task, primary metric) of a dataset, and the reference row."""

    is_synthetic: Callable[[str, dict], bool]
    task_and_metric: Callable[[str, list[str]], tuple[str, str | None]]
    resolve_reference: Callable[[str, list], Any]


def sections(configs, req, synthetic_kinds: tuple[bool, ...], rules: BoardRules) -> list[Section]:
    """The robustness section(s) for the leaderboard document ([] when no run has a record)."""
    from mmerbench.robustness.summary import collect

    is_synthetic = rules.is_synthetic

    frame = collect(req.runs_dir)
    if frame.empty:
        return []
    by_hash = {(c.dataset, c.method, c.config_hash): c for c in configs}
    groups: dict[tuple[bool, str, str], list] = {}
    for key in frame[["dataset", "method", "config_hash"]].drop_duplicates().itertuples(index=False):
        c = by_hash.get(tuple(key))
        if c is not None and is_synthetic(c.dataset, c.config) in synthetic_kinds:
            groups.setdefault((is_synthetic(c.dataset, c.config), c.dataset, c.data_setting), []).append(c)
    tables = []
    for (synthetic, dataset, setting), cs in sorted(groups.items()):
        sub = frame[(frame.dataset == dataset) & frame.config_hash.isin([c.config_hash for c in cs])]
        task, metric = rules.task_and_metric(dataset, list(sub.metric.unique()))
        if metric:
            reference = rules.resolve_reference(req.reference, cs) if req.reference else None
            tables.append(table(dataset, setting, synthetic, cs, sub, metric, task, req, reference))
    return [Section(title="Robustness", tables=tables, intro=[
        "Stored models scored on corrupted test splits (mmerbench robustness); nothing is retrained. "
        "Synthetic twins are labelled and never mixed with real data."])] if tables else []


def _label(c, several: set[str]) -> str:
    name = c.method + (f" ({c.preset})" if c.preset else "")
    return f"{name} {c.config_hash[:6]}" if c.method in several else name


def table(dataset: str, setting: str, synthetic: bool, configs, frame, metric: str, task: str, req,
          reference=None) -> Table:
    from mmerbench.metrics import metric_info
    from mmerbench.robustness.summary import summarize

    info = metric_info(metric)
    higher = info.higher_is_better
    summary = summarize(frame, metric, reference=reference.method if reference else "br")
    summary = summary.set_index("config_hash")
    names = _corruption_order(frame)
    counts: dict[str, int] = {}
    for c in configs:
        counts[c.method] = counts.get(c.method, 0) + 1
    several = {m for m, n in counts.items() if n > 1}
    configs = sorted(configs, key=lambda c: (-summary.at[c.config_hash, "clean"] if higher
                                             else summary.at[c.config_hash, "clean"], c.method))
    fam_of = dict(frame[["corruption", "family"]].drop_duplicates().itertuples(index=False))
    columns = [Column("method", "method", higher_is_better=None, numeric=False)]
    columns.append(Column("clean", "clean", higher_is_better=higher, note="the run's stored test metric"))
    for n in names:
        fam = fam_of[n]
        columns.append(Column(n, n.split("-", 1)[1], group=GROUPS[fam], higher_is_better=higher))
    extra_cols = [("worst_missing", "worst missing", higher, "the lowest metric over the missing-modality cells")]
    for fam in LEVELLED:
        extra_cols += [(f"auc_{fam}", f"AUC {fam}", higher, "trapezoid area under metric-vs-level (level 0 = clean) "
                        "divided by the largest level"),
                       (f"relative_{fam}", f"rel. {fam}", True, "MultiBench relative robustness: the area, min-max "
                        "normalised across this table's methods"),
                       (f"effective_{fam}", f"eff. {fam}", True, "MultiBench effective robustness: sum over levels of "
                        "the metric above the reference's curve shifted to the same clean metric")]
    extra_cols = [e for e in extra_cols if e[0] in summary.columns and summary[e[0]].notna().any()]
    columns += [Column(k, h, group="summary", higher_is_better=hb, note=note) for k, h, hb, note in extra_cols]

    outcomes, sig_note = ({}, "")
    if reference is not None:
        outcomes, sig_note = significance(reference, [c for c in configs if c.config_hash != reference.config_hash],
                                          names, metric, task, req)
    rows = []
    for c in configs:
        sub = frame[(frame.config_hash == c.config_hash) & (frame.metric == metric)]
        cells = [Cell(display=_label(c, several))]
        for n in ["clean", *names]:
            vals = sub[sub.corruption == n].sort_values("seed").value.tolist()
            if not vals:
                cells.append(Cell(display="—", higher_is_better=higher, note="not scored"))
                continue
            m, s, text = mean_std(vals, DECIMALS)
            cell = Cell(value=m, display=text, higher_is_better=higher, extra={"std": s, "seeds": len(vals)})
            o = outcomes.get((c.config_hash, n))
            if o is not None:
                cell.extra["significance"] = o
                if o.get("significant"):
                    cell.marker = "▲" if o["better"] else "▼"
                cell.note = o.get("summary", "")
            cells.append(cell)
        for key, _, hb, _ in extra_cols:
            v = summary.at[c.config_hash, key]
            v = None if v is None or not math.isfinite(float(v)) else float(v)
            cells.append(Cell(value=v, display=fmt(v, DECIMALS), higher_is_better=hb))
        rows.append(Row(cells=cells, meta={"method": c.method, "config_hash": c.config_hash, "preset": c.preset}))
    title = f"{dataset} — robustness" + (f" ({setting})" if setting else "")
    foot = [f"{info.display} on the test split; each cell mean ± sample std over the seeds that have the record.",
            "Effective robustness is against " + (f"{reference.method}" if reference else "br") + " (MultiBench "
            "uses late fusion); relative robustness depends on which methods are in the table."]
    if sig_note:
        foot.append(sig_note)
    t = Table(id=f"robustness-{_slug(dataset)}-{_slug(setting)}", title=title, columns=columns, rows=rows,
              caption=f"{info.display} under missing and corrupted modalities.", footnotes=foot,
              labels=["synthetic"] if synthetic else [],
              meta={"dataset": dataset, "metric": metric, "reference": reference.method if reference else None})
    t.check()
    mark_best(t)
    if req.plots:
        t.figures += _curves(frame, configs, several, metric, info, dataset)
    return t


def _slug(s: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-").lower() or "default"


def _corruption_order(frame) -> list[str]:
    order = {f: i for i, f in enumerate(("missing", "noise", "tmask", "misalign"))}
    pairs = frame[frame.family != "clean"][["corruption", "family", "level"]].drop_duplicates("corruption")
    pairs = sorted(pairs.itertuples(index=False), key=lambda r: (order.get(r.family, 9), r.level,
                                                                r.corruption.count("."), r.corruption))
    return [r.corruption for r in pairs]


def _curves(frame, configs, several, metric, info, dataset) -> list:
    from mmerbench.report.plots import metric_vs_level
    from mmerbench.robustness.summary import curve

    figs = []
    for fam in LEVELLED:
        lines = {}
        for c in configs:
            lv, vals = curve(frame[frame.config_hash == c.config_hash], metric, fam)
            if len(lv) >= 2:
                lines[_label(c, several)] = (lv, vals)
        if lines:
            figs.append(metric_vs_level(lines, metric_name=info.display, level_name=LEVEL_NAMES[fam],
                                        higher_is_better=info.higher_is_better,
                                        title=f"{dataset}: {info.display} against {LEVEL_NAMES[fam]}",
                                        kind=f"robustness-{fam}"))
    return figs


def _predictions(c, name: str, task: str):
    """Per seed that has the record: ids, truth, scores and threshold of one corruption."""
    import json

    out = []
    for seed in c.seeds:
        base = record_path(Path(c.seed_folder(seed)), name)  # refuses a name that would leave the folder
        try:
            rec = json.loads(base.read_text())
            with np.load(base.with_suffix(".npz"), allow_pickle=False) as z:
                out.append((z["test_ids"].astype(str), z["test_true"], z["test_scores"],
                            float((rec.get("decision") or {}).get("threshold", 0.5))))
        except (OSError, ValueError, KeyError):
            continue
    return out


def significance(reference, others, names: list[str], metric: str, task: str, req) -> tuple[dict, str]:
    """Outcomes keyed by (config hash, corruption) as plain dicts, and the footnote."""
    from mmerbench import stats
    from mmerbench.data.registry import get_entry

    try:
        labels = list(get_entry(reference.dataset).spec.labels)
    except MmerbenchError:
        labels = None
    raw: dict[tuple[str, str], Any] = {}
    out: dict[tuple[str, str], dict] = {}
    for name in names:
        ref = _predictions(reference, name, task)
        for c in others:
            key = (c.config_hash, name)
            mine = _predictions(c, name, task)
            if not ref or not mine:
                continue
            try:
                y, sa, sb, thr = _aligned(mine, ref)
                r = stats.two_level_bootstrap(y, sa, sb, task=task, metric=metric, threshold=thr, labels=labels,
                                              alpha=req.alpha)
            except (MmerbenchError, ValueError) as e:
                out[key] = {"significant": False, "better": None, "summary": f"not tested: {e}"}
                continue
            if not r.applicable or r.p_value is None:
                out[key] = {"significant": False, "better": None, "summary": r.note or "not applicable"}
            else:
                raw[key] = r
    keys = list(raw)
    if keys:
        holm = stats.holm([raw[k].p_value for k in keys], alpha=req.alpha)
        for i, k in enumerate(keys):
            r = raw[k]
            better = (r.statistic > 0) == bool(r.higher_is_better) if r.statistic != 0 else None
            out[k] = {"significant": bool(holm.reject[i]) and better is not None, "better": better,
                      "statistic": float(r.statistic), "p_value": float(r.p_value),
                      "p_adjusted": float(holm.adjusted[i]),
                      "summary": f"two-level: Δ {r.statistic:.4g}, p = {r.p_value:.3g}, "
                                 f"Holm-adjusted p = {holm.adjusted[i]:.3g}"}
    note = (f"▲/▼: significantly better/worse than {reference.method} under the same corruption, two-level "
            f"bootstrap over seeds and test samples of the stored corrupted predictions, α = {req.alpha:g}, "
            f"Holm-adjusted over the table's {len(keys)} comparisons (rows × corruptions).")
    return out, note


def _aligned(mine, ref):
    """Truth and stacked per-seed scores of both sides, rows in the reference's first seed's id order."""
    ids = ref[0][0]
    pos = {k: i for i, k in enumerate(ids)}

    def stack(side):
        rows = []
        for sid, _, s, _ in side:
            if len(sid) != len(ids) or set(sid) != set(ids):
                raise MmerbenchError("the two sides scored different test samples")
            order = np.empty(len(ids), dtype=np.int64)
            order[[pos[k] for k in sid]] = np.arange(len(sid))
            rows.append(s[order])
        return np.stack(rows)

    return ref[0][1], stack(mine), stack(ref), (mine[0][3], ref[0][3])
