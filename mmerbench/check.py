"""The metric regression check: run a small fixed suite into a fresh run store, then two checks.

``ci/suite.yaml`` lists a few runs — every registered method on a small
synthetic twin, fixed seeds, CPU-sized presets; ``ci/baseline.json`` holds
each run's metrics per seed (files read by :mod:`mmerbench.suite`).

* **Exactness.** On the CI machine class (CPU, fixed threads, deterministic
  kernels) the suite's numbers reproduce to the last bit, so every per-seed
  value must equal the baseline's within ``exact`` (1e-6). Any change — a
  value that moved, a metric that vanished or appeared — fails, with a table
  of what moved, until ``mmerbench check --update --reason "..."`` records it;
  the reason goes into the baseline's ``history``.
* **Quality floors.** A suite entry with a ``floor`` must, on every seed, beat
  the label-prior score (:mod:`mmerbench.prior`) of its metric by its margin:
  the run learned something from the inputs. This check does not need the
  baseline, so it still protects where numbers differ bitwise (another CPU, a
  GPU): ``--floors-only``.

The suite always trains into a fresh store (a temporary folder, or an empty
``runs_dir``): a finished run reused by its config hash would hide a change
of code.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mmerbench import metrics as metricslib
from mmerbench import results
from mmerbench.errors import MmerbenchError
from mmerbench.suite import (DEFAULT_BASELINE, DEFAULT_SUITE, UPDATE_HINT, Suite, SuiteEntry, load_baseline,
                             load_suite, uncovered_methods)

__all__ = ["CheckReport", "CheckRequest", "EntryResult", "Row", "check", "compare", "format_report",
           "load_baseline", "load_suite", "run_suite", "uncovered_methods"]

FAILING = ("error", "missing", "changed", "vanished", "new", "below floor")


@dataclass
class EntryResult:
    entry: SuiteEntry
    config_hash: str | None = None
    values: dict[str, list[float]] = field(default_factory=dict)  # metric -> one value per seed
    prior: dict[str, float] = field(default_factory=dict)  # metric -> label-prior score on the split
    error: str | None = None
    seconds: float = 0.0

    def summary(self) -> dict[str, dict[str, Any]]:
        out = {}
        for m, vals in sorted(self.values.items()):
            a = np.asarray(vals, dtype=float)
            out[m] = {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
                      "values": [float(v) for v in a]}
        return out


@dataclass
class Row:
    entry: str
    metric: str
    status: str  # "ok", "changed", "vanished", "new", "below floor", "floor ok", "error", "missing", "removed"
    reference: float | None = None  # the baseline's mean, or the floor
    current: float | None = None  # the mean now, or the worst seed against a floor
    note: str = ""

    @property
    def delta(self) -> float | None:
        return None if self.reference is None or self.current is None else self.current - self.reference


@dataclass
class CheckReport:
    rows: list[Row]
    results: list[EntryResult]
    uncovered: list[str]
    baseline_path: Path
    exact: bool = True
    updated: bool = False
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return not self.updated and any(r.status in FAILING for r in self.rows)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)


@dataclass
class CheckRequest:
    suite: str | Path = DEFAULT_SUITE
    baseline: str | Path = DEFAULT_BASELINE
    update: bool = False
    reason: str | None = None  # why the numbers moved; required with update
    exact: bool = True  # False: the floors only (a machine whose numbers differ bitwise)
    runs_dir: str | Path | None = None  # must be new or empty
    data_dir: str | None = None
    device: str | None = None  # None: the suite's (another device goes with exact=False)
    progress: Callable[[str], None] | None = None


# ---------------------------------------------------------------------------- running


def run_suite(suite: Suite, runs_dir: Path, data_dir: str | None = None,
              progress: Callable[[str], None] | None = None) -> list[EntryResult]:
    """Run every suite entry into `runs_dir`; a failing entry is recorded, not raised."""
    from contextlib import nullcontext

    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    # torch's intra-op threads and the BLAS/OpenMP pools that scikit-learn uses, both fixed.
    limits = threadpool_limits(limits=suite.threads) if suite.threads else nullcontext()
    try:
        if suite.threads:
            torch.set_num_threads(suite.threads)
        with limits:
            return [_run_entry(suite, e, i, runs_dir, data_dir, progress) for i, e in enumerate(suite.entries, 1)]
    finally:
        torch.set_num_threads(threads)


def _run_entry(suite: Suite, e: SuiteEntry, i: int, runs_dir: Path, data_dir: str | None,
               progress: Callable[[str], None] | None) -> EntryResult:
    from mmerbench.data.registry import load_dataset
    from mmerbench.prior import prior_scores
    from mmerbench.runner import RunRequest, run

    res = EntryResult(e)
    t = time.perf_counter()
    req = RunRequest(method=e.method, dataset=e.dataset, seeds=e.seeds, epochs=e.epochs, overrides=e.overrides,
                     preset=e.preset, device=suite.device, data_dir=data_dir, runs_dir=str(runs_dir), scale=e.scale,
                     data_seed=e.data_seed, progress=False)
    try:
        for seed_res in run(req):
            res.config_hash = seed_res.folder.parent.name
            for metric, value in seed_res.metrics[suite.split].items():
                if suite.metrics is None or metric in suite.metrics:
                    res.values.setdefault(metric, []).append(float(value))
        if e.floor is not None:
            dataset = load_dataset(e.dataset, data_dir=data_dir, scale=e.scale, seed=e.data_seed)
            res.prior = prior_scores(dataset, suite.split)
    except Exception as exc:  # a crash is a finding of the check, not the end of it
        res.error = str(exc) if isinstance(exc, MmerbenchError) else f"{type(exc).__name__}: {exc}"
    res.seconds = time.perf_counter() - t
    if progress is not None:
        state = "failed" if res.error else f"{len(e.seeds)} seed(s)"
        progress(f"[{i}/{len(suite.entries)}] {e.name}: {state}, {res.seconds:.1f} s")
    return res


# ---------------------------------------------------------------------------- comparing


def _floor_rows(res: EntryResult) -> list[Row]:
    f = res.entry.floor
    if f is None:
        return []
    name = res.entry.name
    vals = res.values.get(f.metric)
    if not vals or f.metric not in res.prior:
        return [Row(name, f.metric, "error", note="the floor's metric is not reported by this run")]
    prior = res.prior[f.metric]
    floor = f.value(prior)
    higher = metricslib.direction(f.metric)
    worst = math.nan if any(not math.isfinite(v) for v in vals) else (min(vals) if higher else max(vals))
    ok = all(f.cleared(v, prior) for v in vals)
    return [Row(name, f.metric, "floor ok" if ok else "below floor", floor, worst,
                f"worst of {len(vals)} seeds vs floor = label prior {prior:.4f} {'+' if floor > prior else '-'} "
                f"margin {f.margin:g}")]


def _exact_rows(suite: Suite, res: EntryResult, base: dict[str, Any]) -> list[Row]:
    name, rows = res.entry.name, []
    note = ""
    if base.get("config_hash") and res.config_hash and base["config_hash"] != res.config_hash:
        note = f"config {base['config_hash']} → {res.config_hash}"
    if list(base["seeds"]) != list(res.entry.seeds):
        return [Row(name, "—", "changed", note=f"seeds {base['seeds']} → {list(res.entry.seeds)}")]
    current = res.summary()
    for metric in sorted(set(current) | set(base["metrics"])):
        b, cur = base["metrics"].get(metric), current.get(metric)
        if cur is None:
            rows.append(Row(name, metric, "vanished", float(np.mean(b["values"])), None,
                            "in the baseline, no longer reported by this run"))
        elif b is None:
            rows.append(Row(name, metric, "new", None, cur["mean"], "not in the baseline"))
        else:
            moved = max(abs(x - y) if math.isfinite(x) else math.inf for x, y in zip(cur["values"], b["values"]))
            status = "ok" if moved <= suite.exact else "changed"
            extra = "" if status == "ok" else f"largest change of one seed {moved:.2e}"
            rows.append(Row(name, metric, status, float(np.mean(b["values"])), cur["mean"],
                            "; ".join(x for x in (extra, note) if x)))
    return rows


def compare(suite: Suite, current: list[EntryResult], baseline: dict[str, Any] | None) -> list[Row]:
    """The rows of both checks; `baseline` None compares the floors only."""
    rows: list[Row] = []
    base_entries = (baseline or {}).get("entries", {})
    for res in current:
        name = res.entry.name
        if res.error is not None:
            rows.append(Row(name, "—", "error", note=res.error))
            continue
        if not res.values:  # a `metrics:` list that matches nothing would compare nothing and pass
            rows.append(Row(name, "—", "error", note="none of the suite's metrics is reported by this run"))
            continue
        rows += _floor_rows(res)
        if baseline is None:
            continue
        base = base_entries.get(name)
        if base is None:
            rows.append(Row(name, "—", "missing", note="not in the baseline"))
            continue
        rows += _exact_rows(suite, res, base)
    if baseline is not None:
        in_suite = {res.entry.name for res in current}
        for name in sorted(set(base_entries) - in_suite):
            rows.append(Row(name, "—", "removed", note="in the baseline, no longer in the suite"))
    return rows


# ---------------------------------------------------------------------------- the baseline document


def baseline_document(suite: Suite, current: list[EntryResult], reason: str, rows: list[Row],
                      old: dict[str, Any] | None) -> dict[str, Any]:
    import platform
    import sys

    import torch

    import mmerbench
    from mmerbench.runner import _git_commit

    moved = [f"{r.entry} {r.metric}" for r in rows if r.status in ("changed", "vanished", "new", "missing")]
    history = list((old or {}).get("history") or [])
    history.append({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "reason": reason,
                    "git_commit": _git_commit(), "moved": len(moved), "first_moved": moved[:10]})
    entries = {}
    for r in current:
        entry: dict[str, Any] = {"method": r.entry.method, "dataset": r.entry.dataset, "config_hash": r.config_hash,
                                 "seeds": list(r.entry.seeds), "metrics": r.summary()}
        f = r.entry.floor
        if f is not None:
            prior = r.prior[f.metric]
            entry["floor"] = {"metric": f.metric, "label_prior": prior, "margin": f.margin, "floor": f.value(prior)}
        entries[r.entry.name] = entry
    return {
        "version": 2,
        "split": suite.split,
        "environment": {"mmerbench": mmerbench.__version__, "torch": torch.__version__,
                        "python": sys.version.split()[0], "platform": platform.platform(),
                        "threads": suite.threads or torch.get_num_threads()},
        "entries": entries,
        "history": history,
    }


# ---------------------------------------------------------------------------- the check


def _fresh_store(runs_dir: str | Path) -> Path:
    path = Path(runs_dir)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise MmerbenchError(
            f"--runs-dir {path} is not a new or empty folder: the check trains into a fresh store, since a finished "
            f"run reused by its config hash would hide a change of code.")
    return path


def _refuse_update(baseline_path: Path, current: list[EntryResult], rows: list[Row]) -> None:
    failed = [r for r in current if r.error is not None]
    if failed:
        raise MmerbenchError(
            f"Not updating {baseline_path}: {len(failed)} suite run(s) failed, first {failed[0].entry.name}: "
            f"{failed[0].error}")
    bad = [r for r in rows if r.status in ("below floor", "error")]
    if bad:
        raise MmerbenchError(
            f"Not updating {baseline_path}: {bad[0].entry} {bad[0].metric} does not clear its floor "
            f"({bad[0].note}); a baseline records runs that learned.")
    nonfinite = [(r.entry.name, m) for r in current for m, v in r.values.items() if not all(map(math.isfinite, v))]
    if nonfinite:
        raise MmerbenchError(f"Not updating {baseline_path}: {nonfinite[0][0]} {nonfinite[0][1]} is not finite.")


def check(req: CheckRequest) -> CheckReport:
    """Run the suite and compare it with the baseline (or, with ``update``, rewrite the baseline)."""
    t0, c0 = time.perf_counter(), time.process_time()
    suite = load_suite(req.suite)
    if req.device is not None and req.device != suite.device:
        if req.exact or req.update:
            raise MmerbenchError(f"--device {req.device} differs from the suite's {suite.device}, where the baseline's "
                                 f"numbers hold: add --floors-only.")
        suite = replace(suite, device=req.device)
    baseline_path = Path(req.baseline)
    if req.update and not (req.reason or "").strip():
        raise MmerbenchError('--update needs --reason "...": the baseline\'s history records why the numbers moved.')
    old: dict[str, Any] | None = None
    if req.update:
        try:
            old = load_baseline(baseline_path)
        except MmerbenchError:
            old = None  # being replaced anyway
    elif req.exact:
        old = load_baseline(baseline_path)  # a missing or broken baseline stops here, before any run
    if req.runs_dir is not None:
        current = run_suite(suite, _fresh_store(req.runs_dir), req.data_dir, req.progress)
    else:
        with tempfile.TemporaryDirectory(prefix="mmerbench-check-") as tmp:
            current = run_suite(suite, Path(tmp), req.data_dir, req.progress)
    rows = compare(suite, current, old if (req.exact or req.update) else None)
    report = CheckReport(rows, current, uncovered_methods(suite), baseline_path, exact=req.exact)
    if req.update:
        _refuse_update(baseline_path, current, rows)
        results.write_json(baseline_path, baseline_document(suite, current, req.reason.strip(), rows, old))
        report.updated = True
    report.seconds, report.cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    return report


# ---------------------------------------------------------------------------- printing


def format_report(report: CheckReport, show_all: bool = False) -> str:
    from tabulate import tabulate

    def num(v: float | None) -> str:
        return "" if v is None else f"{v:.4f}"

    quiet = ("ok", "floor ok")
    shown = [r for r in report.rows if show_all or r.status not in quiet]
    order = {s: i for i, s in enumerate(FAILING + ("removed", "floor ok", "ok"))}
    shown.sort(key=lambda r: (order[r.status], r.entry, r.metric))
    lines = []
    if shown:
        table = [[r.status, r.entry, r.metric, num(r.reference), num(r.current),
                  "" if r.delta is None else f"{r.delta:+.4f}", r.note] for r in shown]
        lines.append(tabulate(table, headers=["status", "run", "metric", "baseline/floor", "now", "change", "note"],
                              disable_numparse=True))
        lines.append("")
    n_exact = report.count("ok") + report.count("changed")
    n_floor = report.count("floor ok") + report.count("below floor")
    counts = ", ".join(f"{report.count(s)} {s}" for s in FAILING + ("removed",) if report.count(s))
    took = f"{report.seconds:.0f} s wall, {report.cpu_seconds:.0f} s CPU"
    what = (f"{n_exact} metrics compared exactly and " if report.exact else "") + \
        f"{n_floor} floors over {len(report.results)} runs"
    if report.updated:
        lines.append(f"Baseline written: {report.baseline_path} ({len(report.results)} runs, {n_floor} floors "
                     f"cleared; {took})" + (f"; against the previous one: {counts}" if counts else ""))
    elif report.failed:
        hint = (f"If the change is intended, {UPDATE_HINT}." if not report.count("below floor") else
                "A run below its floor did not learn: fix the method (or resize its suite entry).")
        lines.append(f"Check FAILED: {counts} ({what}; {took}). {hint}")
    else:
        lines.append(f"Check passed: {what}"
                     + (" reproduced the baseline and cleared their floors" if report.exact else " cleared")
                     + (f" ({counts})" if counts else "") + f"; {took}.")
    if report.uncovered:
        lines.append(f"Not in the suite: {', '.join(report.uncovered)} — add them to the suite file and "
                     f'run `mmerbench check --update --reason "..."`.')
    return "\n".join(lines)
