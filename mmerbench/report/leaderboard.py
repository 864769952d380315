"""Leaderboards from the run store: one table per dataset (and data setting), rows = configs of methods.

Reads only the run folders (HELM's run → summarize → serve): the test-split
metrics of every complete run (:func:`mmerbench.results.collect`), each
config's ``config.yaml`` and each run's ``decision``, and the speed/memory
profiles beside the configs (:func:`mmerbench.results.collect_profiles`).

Per table:

* rows: a method, or a method's config when it has several in the table
  (named by its preset, the settings that differ, a `run --dtype` and its hash);
* columns: the chosen metrics with direction arrows (from
  :mod:`mmerbench.metrics`), each cell mean ± std over seeds (sample std,
  ddof = 1; a single seed shows its value) with the seed count; the best
  mean of a column in bold, the second underlined;
* optional significance markers against a reference row after Holm's
  correction (:mod:`mmerbench.report.significance`);
* the decision rule, and efficiency columns (parameters, train samples/s,
  batch-1 latency p50 per device and dtype) where profiles exist.

Synthetic twins (``synth-*``) get their own tables, always labelled, and are
never mixed with real data; a twin's tables are also split by the twin's
generation setting (scale, data seed), since those are different data.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml

from mmerbench import results
from mmerbench.config import format_override
from mmerbench.errors import MmerbenchError, UnknownNameError
from mmerbench.report.render import Document, Section
from mmerbench.report.synthetic_label import SYNTHETIC_LABEL, SYNTHETIC_NOTE
from mmerbench.report.table import Cell, Column, Row, Table, fmt, mark_best, mean_std

DataKind = Literal["real", "synthetic", "all"]
DECIMALS = 4

# Efficiency columns read from profile records: metric key → (header, higher is better).
PROFILE_COLUMNS: dict[str, tuple[str, bool]] = {
    "train_samples_per_s": ("train samples/s", True),
    "latency_ms_p50": ("latency p50 (ms, batch 1)", False),
}
# Their short headers: efficiency columns are compact so that a table fits a laptop screen.
PROFILE_SHORT = {"train_samples_per_s": "train/s", "latency_ms_p50": "p50 ms"}


@dataclass
class ConfigRuns:
    """The complete seeds of one config of one method on one dataset."""

    dataset: str
    method: str
    config_hash: str
    folder: Path
    config: dict[str, Any] = field(default_factory=dict)
    test: dict[str, dict[int, float]] = field(default_factory=dict)  # metric → seed → value
    decisions: dict[int, dict[str, Any]] = field(default_factory=dict)  # seed → metrics.json "decision"
    config_error: str = ""

    @property
    def seeds(self) -> list[int]:
        return sorted({s for per_seed in self.test.values() for s in per_seed} | set(self.decisions))

    def values(self, metric: str) -> list[float]:
        per_seed = self.test.get(metric, {})
        return [per_seed[s] for s in sorted(per_seed)]

    @property
    def preset(self) -> str | None:
        p = self.config.get("preset")
        return None if p is None else str(p)

    @property
    def params(self) -> dict[str, Any]:
        p = self.config.get("params")
        return p if isinstance(p, dict) else {}

    @property
    def data_setting(self) -> str:
        """A twin's generation setting (scale, data seed); "" for real data."""
        d = self.config.get("data")
        if not isinstance(d, dict):
            return ""
        return ", ".join(f"{k} {d[k]}" for k in sorted(d))

    @property
    def imported(self) -> str | None:
        """Where the weights came from when this config scored given weights (`mmerbench evaluate`)."""
        w = self.config.get("imported_weights")
        return str(w.get("from", "?")) if isinstance(w, dict) else None

    def decision_text(self) -> str:
        texts = sorted({decision_text(d) for d in self.decisions.values()})
        return "; ".join(texts)

    def seed_folder(self, seed: int) -> Path:
        return self.folder / f"seed-{seed}"


def decision_text(d: dict[str, Any]) -> str:
    """``{"rule": "sigmoid > threshold", "threshold": 0.5}`` → ``sigmoid > 0.5``."""
    if not isinstance(d, dict):
        return "?"
    rule = str(d.get("rule", "?"))
    thr = d.get("threshold")
    if isinstance(thr, (int, float)) and "threshold" in rule:
        rule = rule.replace("threshold", f"{thr:g}")
    return rule


def _read_config(folder: Path) -> tuple[dict[str, Any], str]:
    try:
        data = yaml.safe_load((folder / "config.yaml").read_text())
    except (OSError, UnicodeDecodeError) as e:
        return {}, f"config.yaml unreadable ({type(e).__name__})"
    except yaml.YAMLError:
        return {}, "config.yaml is not valid YAML"
    if not isinstance(data, dict):
        return {}, "config.yaml is not a mapping"
    return data, ""


def load_runs(runs_dir: str | os.PathLike) -> list[ConfigRuns]:
    """Every config with at least one complete run, with its test metrics, config and decisions."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise MmerbenchError(f"No run store at {root}: run `mmerbench run …` first or pass --runs-dir.")
    frame = results.collect(root)
    frame = frame[frame["split"] == "test"]
    configs: dict[tuple[str, str, str], ConfigRuns] = {}
    for (dataset, method, chash, seed, metric), value in zip(
        zip(frame["dataset"], frame["method"], frame["config_hash"], frame["seed"], frame["metric"]), frame["value"]
    ):
        key = (dataset, method, chash)
        if key not in configs:
            configs[key] = ConfigRuns(dataset, method, chash, root / dataset / method / chash)
        configs[key].test.setdefault(metric, {})[int(seed)] = float(value)
    for cr in configs.values():
        for seed in cr.seeds:
            m = results.read_metrics(cr.seed_folder(seed))
            if m is not None:
                cr.decisions[seed] = m["decision"] if isinstance(m.get("decision"), dict) else {}
        if cr.seeds:
            cr.config, cr.config_error = _read_config(cr.seed_folder(cr.seeds[0]))
    return [configs[k] for k in sorted(configs)]


def is_synthetic(dataset: str, config: dict[str, Any] | None = None) -> bool:
    """A twin by registry entry, by the ``synth-`` name, or by a stored twin setting."""
    from mmerbench.data.registry import get_entry

    try:
        if get_entry(dataset).synthetic:
            return True
    except UnknownNameError:
        pass
    return dataset.startswith("synth-") or bool(config and isinstance(config.get("data"), dict))


def dataset_task(dataset: str, metric_keys: Sequence[str]) -> str:
    from mmerbench.data.registry import get_entry
    from mmerbench.report.console import _task_of

    try:
        return get_entry(dataset).spec.task
    except UnknownNameError:
        return _task_of({k: 0 for k in metric_keys})


def select_metrics(task: str, available: Sequence[str], wanted: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(metric keys to show, keys left out because they have no direction metadata).

    ``wanted`` None → the task's headline metrics (``report.console.HEADLINE``)
    that the runs have; ``["all"]`` → every metric the runs have, headline
    first; otherwise the keys asked for (unknown keys are an error).
    """
    from mmerbench.metrics import metric_info
    from mmerbench.report.console import HEADLINE

    avail = list(dict.fromkeys(available))
    if not wanted:
        keys = [k for k in HEADLINE.get(task, ()) if k in avail]
        return keys or sorted(avail), []
    if list(wanted) == ["all"]:
        head = [k for k in HEADLINE.get(task, ()) if k in avail]
        keys = head + sorted(k for k in avail if k not in head)
        skipped = []
        for k in list(keys):
            try:
                metric_info(k)
            except UnknownNameError:
                keys.remove(k)
                skipped.append(k)
        return keys, skipped
    for k in wanted:
        metric_info(k)  # an unknown name is a one-sentence error with a suggestion
    return list(dict.fromkeys(wanted)), []


@dataclass
class LeaderboardRequest:
    runs_dir: str | os.PathLike
    metrics: tuple[str, ...] = ()
    data: DataKind = "real"
    reference: str | None = None
    test: str = "two-level"
    alpha: float = 0.05
    interval: Literal["std", "ci"] = "std"  # cells: mean ± std over seeds, or mean [two-level 1 − α interval]
    plots: bool = True
    ranks: bool = True  # average ranks, Friedman, Nemenyi CD diagram across datasets (needs mmerbench.stats)
    robustness: bool = True  # the robustness section, where runs have `mmerbench robustness` records


def _distinguishing(configs: list[ConfigRuns]) -> dict[str, str]:
    """Per config hash, what tells it apart from the method's other configs: preset and differing settings."""
    out = {}
    keys = sorted({k for c in configs for k in c.params})
    differ = [k for k in keys if len({repr(c.params.get(k)) for c in configs}) > 1]
    presets_differ = len({c.preset for c in configs}) > 1
    for c in configs:
        bits = []
        if presets_differ or c.preset:
            bits.append(f"preset {c.preset}" if c.preset else "no preset")
        bits += [f"{k}={_short(c.params.get(k))}" for k in differ]
        if c.config.get("dtype"):  # `run --dtype`: outside params, but it changes the numbers
            bits.append(f"dtype {c.config['dtype']}")
        bits.append(c.config_hash)
        out[c.config_hash] = " · ".join(bits)
    return out


def _short(v: Any, limit: int = 40) -> str:
    s = format_override(v)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _human_count(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f} B"
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    if n >= 1e3:
        return f"{n / 1e3:.1f} k"
    return f"{n:.0f}"


@dataclass
class Profile:
    """One config's profile records: (device, dtype) → flat metrics, and the device names."""

    metrics: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    device_names: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def params(self) -> float | None:
        return next((d["params"] for d in self.metrics.values() if "params" in d), None)

    def get(self, pair: tuple[str, str] | None, key: str) -> float | None:
        return self.metrics.get(pair, {}).get(key) if pair is not None else None


def _profiles(runs_dir) -> dict[tuple[str, str, str], Profile]:
    """(dataset, method, config hash) → its :class:`Profile`."""
    frame = results.collect_profiles(runs_dir)
    out: dict[tuple[str, str, str], Profile] = defaultdict(Profile)
    for ds, m, h, dev, name, dtype, metric, value in frame.itertuples(index=False):
        prof = out[(ds, m, h)]
        prof.metrics.setdefault((str(dev), str(dtype)), {})[metric] = float(value)
        prof.device_names[(str(dev), str(dtype))] = str(name)
    return out


def _resolve_reference(reference: str, configs: list[ConfigRuns]) -> ConfigRuns | None:
    """``METHOD`` or ``METHOD@HASH`` (a hash prefix will do) among one table's configs; None when that method is
    not in the table."""
    name, _, chash = reference.partition("@")
    cands = [c for c in configs if c.method == name and (not chash or c.config_hash.startswith(chash))]
    if not cands:
        return None
    if len(cands) > 1:
        raise MmerbenchError(
            f"Reference {reference!r} has {len(cands)} configs on {cands[0].dataset}: name one as "
            f"METHOD@HASH ({', '.join(name + '@' + c.config_hash for c in cands)})."
        )
    return cands[0]


def build_table(
    dataset: str,
    setting: str,
    configs: list[ConfigRuns],
    profiles: dict,
    req: LeaderboardRequest,
) -> Table:
    from mmerbench.metrics import metric_info

    synthetic = any(is_synthetic(dataset, c.config) for c in configs)
    available = [k for c in configs for k in c.test]
    task = dataset_task(dataset, available)
    keys, skipped = select_metrics(task, available, list(req.metrics) or None)
    infos = {k: metric_info(k) for k in keys}
    primary = keys[0] if keys else None

    def primary_key(c: ConfigRuns):
        vals = c.values(primary) if primary else []
        if not vals:
            return (1, 0.0, c.method, c.config_hash)
        m = sum(vals) / len(vals)
        return (0, -m if infos[primary].higher_is_better else m, c.method, c.config_hash)

    configs = sorted(configs, key=primary_key)
    by_method: dict[str, list[ConfigRuns]] = defaultdict(list)
    for c in configs:
        by_method[c.method].append(c)
    # A `run --dtype` config is named even alone: nothing else in its row says it is not the default precision.
    several = {m for m, cs in by_method.items() if len(cs) > 1 or any(c.config.get("dtype") for c in cs)}
    labels = {}
    for m in several:
        labels.update(_distinguishing(by_method[m]))

    reference = _resolve_reference(req.reference, configs) if req.reference else None
    if req.interval == "ci":
        cell_note = (f"Test split. Each cell: mean over the seeds [its {100 * (1 - req.alpha):g}% interval], from a "
                     f"two-level bootstrap of the stored predictions over seeds and test samples together (a "
                     f"deterministic method still gets the test set's width; ± std where predictions are missing)")
    else:
        cell_note = ("Test split. Each cell: mean ± sample std (ddof = 1) over the seeds; a single seed shows its "
                     "value")
    footnotes = [cell_note + "; n = number of seeds. Best mean per column in bold, second underlined."]
    outcomes: dict = {}
    if req.reference and reference is None:
        footnotes.append(f"The reference {req.reference!r} has no runs here: no significance markers.")
    elif reference is not None:
        from mmerbench.report import significance

        others = [c for c in configs if c is not reference]
        outcomes, note = significance.compare(reference, others, keys, test=req.test, alpha=req.alpha, task=task,
                                              dataset=dataset, runs_dir=req.runs_dir)
        footnotes.append(note)

    # Efficiency columns: parameters once, speed per (device, dtype) found for these configs.
    prof = {c.config_hash: profiles.get((c.dataset, c.method, c.config_hash), Profile()) for c in configs}
    pairs = sorted({p for pr in prof.values() for p in pr.metrics})
    has_params = any(pr.params is not None for pr in prof.values())
    speed_cols = [(p, k) for p in pairs for k in PROFILE_COLUMNS
                  if any(pr.get(p, k) is not None for pr in prof.values())]

    columns = [Column("method", "method", numeric=False)]
    if several:
        columns.append(Column("config", "config", numeric=False, note="preset, the settings that differ, config hash"))
    columns.append(Column("n", "n", note="seeds", emphasise=False))
    columns += [Column(f"metric:{k}", infos[k].display, higher_is_better=infos[k].higher_is_better,
                       note=f"{k} ({'higher' if infos[k].higher_is_better else 'lower'} is better)") for k in keys]
    # One decision rule for every row: a footnote instead of a column repeating it.
    rules = {c.decision_text() for c in configs}
    rule_column = len(rules) > 1
    if rule_column:
        columns.append(Column("decision", "decision", numeric=False, note="decision rule stored in metrics.json"))
    if has_params:
        columns.append(Column("params", "params", note="trainable parameters (profile)", emphasise=False,
                              compact=True))
    columns += [Column(f"{k}:{dev}-{dtype}", f"{PROFILE_SHORT[k]} [{dev} {dtype}]",
                       higher_is_better=PROFILE_COLUMNS[k][1], emphasise=False, compact=True,
                       note=f"{PROFILE_COLUMNS[k][0]} on {dev}, {dtype} (profile)") for (dev, dtype), k in speed_cols]

    rows = []
    for c in configs:
        name = c.method + (f" (imported: {c.imported})" if c.imported else "") + \
            (" (reference)" if c is reference else "")
        cells = [Cell(display=name)]
        if several:
            cells.append(Cell(display=labels.get(c.config_hash, c.config_hash) if c.method in several else ""))
        seeds = c.seeds
        cells.append(Cell(value=float(len(seeds)), display=str(len(seeds)), extra={"seeds": seeds}))
        for k in keys:
            vals = c.values(k)
            if not vals:
                cells.append(Cell(display="—", higher_is_better=infos[k].higher_is_better, note="not in these runs"))
                continue
            m, s, text = mean_std(vals, DECIMALS)
            per_seed = c.test.get(k, {})
            extra: dict[str, Any] = {"mean": m, "std": s, "n": len(vals),
                                     "per_seed": {str(sd): per_seed[sd] for sd in sorted(per_seed)}}
            marker, note = "", ""
            if req.interval == "ci":
                text, extra["interval"], note = _interval_text(c, k, req, text)
            o = outcomes.get((c.config_hash, c.method, k))
            if o is not None:
                extra["significance"] = o.to_dict()
                note = o.summary
                if o.significant:
                    marker = "▲" if o.better else "▼"
            if len(vals) != len(seeds):
                text += f" (n={len(vals)})"
            cells.append(Cell(value=m, display=text, higher_is_better=infos[k].higher_is_better, marker=marker,
                              note=note, extra=extra))
        if rule_column:
            cells.append(Cell(display=c.decision_text()))
        p = prof[c.config_hash]
        if has_params:
            n_params = p.params
            cells.append(Cell(value=n_params, display="—" if n_params is None else _human_count(n_params),
                              extra={"params": n_params}))
        for pair, k in speed_cols:
            v = p.get(pair, k)
            cells.append(Cell(value=v, display=fmt(v, 2 if v is None or v >= 1 else 4),
                              higher_is_better=PROFILE_COLUMNS[k][1], extra={k: v}))
        meta = {"dataset": c.dataset, "method": c.method, "config_hash": c.config_hash, "preset": c.preset,
                "params": c.params, "seeds": seeds, "synthetic": synthetic}
        if c.config_error:
            meta["config_error"] = c.config_error
        rows.append(Row(cells=cells, meta=meta))

    if outcomes:
        from mmerbench.report.significance import TESTS

        footnotes.append(f"▲ / ▼: significantly better / worse than the reference on that metric by the "
                         f"{TESTS[req.test]} ({req.test}), Holm-adjusted at α = {req.alpha:g}"
                         + (" (ASO: ε_min < τ)." if req.test == "aso" else "."))
    if rule_column:
        footnotes.append("decision: the rule stored with each run (metrics.json), e.g. sigmoid > 0.5.")
    else:
        footnotes.append(f"Decision rule of every row (stored with each run, metrics.json): {rules.pop() or '—'}.")
    if speed_cols or has_params:
        names = sorted({f"{dev} {dtype}: {name}" for pr in prof.values()
                        for (dev, dtype), name in pr.device_names.items() if name})
        footnotes.append("Efficiency from `mmerbench profile` records" + (f" ({'; '.join(names)})" if names else "")
                         + "; timings depend on the machine and its load.")
    if skipped:
        footnotes.append(f"Left out (no direction metadata in mmerbench.metrics): {', '.join(sorted(skipped))}.")
    bad = sorted({c.method for c in configs if c.config_error})
    if bad:
        footnotes.append(f"Unreadable config.yaml for: {', '.join(bad)} (shown without config details).")
    if synthetic:
        footnotes.insert(0, SYNTHETIC_NOTE)

    title = dataset + (f" ({setting})" if setting else "")
    table = Table(
        id=_slug(f"{'synthetic' if synthetic else 'real'}-{dataset}-{setting}"),
        title=title,
        columns=columns,
        rows=rows,
        caption=f"{task} task; metrics: {', '.join(keys)}.",
        footnotes=footnotes,
        labels=[SYNTHETIC_LABEL] if synthetic else [],
        meta={"dataset": dataset, "setting": setting, "task": task, "synthetic": synthetic, "metrics": keys,
              "reference": None if reference is None else {"method": reference.method,
                                                           "config_hash": reference.config_hash},
              "test": req.test if reference is not None else None, "alpha": req.alpha if reference is not None else None},
    )
    mark_best(table)
    if req.plots and primary is not None:
        table.figures += _cost_plots(table, configs, prof, primary, infos[primary], pairs)
    return table


def _interval_text(c: ConfigRuns, metric: str, req: LeaderboardRequest, fallback: str):
    """``mean [lo, hi]`` from the two-level bootstrap, its numbers, and a note; ± std when it cannot be had."""
    from mmerbench import stats

    try:
        m, lo, hi = stats.interval_of_runs(req.runs_dir, c.dataset, f"{c.method}@{c.config_hash}", metric=metric,
                                           alpha=req.alpha)
    except (MmerbenchError, ValueError) as e:
        return fallback, None, f"no interval: {e}"
    return f"{fmt(m, DECIMALS)} [{fmt(lo, DECIMALS)}, {fmt(hi, DECIMALS)}]", [lo, hi], ""


def _cost_plots(table: Table, configs: list[ConfigRuns], prof: dict[str, Profile], primary: str, info,
                pairs: list[tuple[str, str]]) -> list:
    """Primary metric against latency (first device/dtype profiled) and against parameters."""
    from mmerbench.report.plots import quality_vs_cost

    names = {r.meta["config_hash"]: r.cells[0].display for r in table.rows}
    if table.columns[1].key == "config":  # several configs of a method: add the short hash
        names = {r.meta["config_hash"]: f"{r.cells[0].display} {r.meta['config_hash'][:6]}" for r in table.rows}
    pair = pairs[0] if pairs else None
    figs = []
    for cost_key, cost_name, kind in (("latency_ms_p50", "latency p50 (ms)", "quality-vs-latency"),
                                      ("params", "parameters", "quality-vs-parameters")):
        pts = []
        for c in configs:
            p = prof[c.config_hash]
            cost = p.params if cost_key == "params" else p.get(pair, cost_key)
            vals = c.values(primary)
            if cost is not None and vals and math.isfinite(cost) and cost > 0:
                pts.append((names[c.config_hash], sum(vals) / len(vals), cost))
        if len(pts) >= 2:
            label = cost_name if cost_key == "params" else f"{cost_name}, {pair[0]} {pair[1]}"
            figs.append(quality_vs_cost([p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts],
                                        quality_name=info.display, cost_name=label,
                                        higher_is_better=info.higher_is_better, kind=kind))
    return figs


def _ranks(tables: list[Table], req: LeaderboardRequest, synthetic: bool) -> list[Table]:
    try:
        import mmerbench.stats  # noqa: F401
    except ImportError:
        return []
    from mmerbench.report.significance import rank_summary

    return rank_summary(tables, alpha=req.alpha, synthetic=synthetic)


def _slug(s: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-").lower() or "table"


def build(req: LeaderboardRequest) -> Document:
    """The leaderboard document: a section of real-data tables and/or one of synthetic-twin tables."""
    if req.data not in ("real", "synthetic", "all"):
        raise MmerbenchError(f"Unknown --data {req.data!r}: use real, synthetic or all.")
    if not (0.0 < req.alpha < 1.0):
        raise MmerbenchError(f"Expected --alpha between 0 and 1, but got {req.alpha}.")
    if req.reference:
        from mmerbench.report import significance

        significance.check_test(req.test)
    configs = load_runs(req.runs_dir)
    if not configs:
        raise MmerbenchError(f"No complete runs under {req.runs_dir}: run `mmerbench run …` first.")
    profiles = _profiles(req.runs_dir)
    groups: dict[tuple[bool, str, str], list[ConfigRuns]] = defaultdict(list)
    for c in configs:
        groups[(is_synthetic(c.dataset, c.config), c.dataset, c.data_setting)].append(c)
    sections = []
    for synthetic, title, intro in (
        (False, "Real data", []),
        (True, "Synthetic twins", [SYNTHETIC_NOTE + " Never mixed with real data."]),
    ):
        if req.data == ("synthetic" if not synthetic else "real"):
            continue
        tables = [build_table(ds, setting, cs, profiles, req)
                  for (syn, ds, setting), cs in sorted(groups.items()) if syn == synthetic]
        if req.data == "all" and not tables:
            continue
        sections.append(Section(title=title, tables=tables, intro=intro))
        if req.ranks and len(tables) >= 2:
            sections[-1].tables += _ranks(tables, req, synthetic)
    if req.robustness:
        from mmerbench.report import robustness as rob

        def task_and_metric(dataset: str, available: list[str]) -> tuple[str, str | None]:
            task = dataset_task(dataset, available)
            keys, _ = select_metrics(task, available, list(req.metrics) or None)
            return task, keys[0] if keys else None

        rules = rob.BoardRules(is_synthetic, task_and_metric, _resolve_reference)
        kinds = {"real": (False,), "synthetic": (True,), "all": (False, True)}[req.data]
        sections += rob.sections(configs, req, kinds, rules)
    if req.data != "all" and not any(s.tables for s in sections):
        raise MmerbenchError(f"No complete runs on {req.data} data under {req.runs_dir}"
                             + (" (twins are shown with --data synthetic or all)." if req.data == "real" else "."))
    return Document(
        title="mmerbench leaderboard",
        sections=sections,
        intro=[f"Run store: {req.runs_dir}."],
        meta={"runs_dir": str(req.runs_dir), "data": req.data, "metrics": list(req.metrics),
              "reference": req.reference, "test": req.test, "alpha": req.alpha, "interval": req.interval,
              "plots_note": _no_plots_note(sections, profiles, req)},
    )


def _no_plots_note(sections: list[Section], profiles: dict, req: LeaderboardRequest) -> str:
    """Why a page has no plots and what makes them appear ("" when it has some); the HTML page shows it."""
    if any(t.figures for s in sections for t in s.tables):
        return ""
    if not req.plots:
        return "No plots: they were left out (--no-plots)."
    profiled = sum(1 for p in profiles.values() if p.metrics)
    cost = ("no run is profiled yet" if not profiled else "no dataset has two profiled configs")
    n_max = max((len(s.tables) for s in sections), default=0)
    return (f"No plots: the quality-against-cost plots need at least two profiled configs on one dataset "
            f"({cost}; `mmerbench profile METHOD DATASET` writes a profile), and the critical-difference diagram "
            f"needs at least two datasets with three or more methods in common "
            f"({'only one dataset here' if n_max < 2 else 'not met here'}).")
