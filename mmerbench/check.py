"""The metric regression check: run a small fixed suite, compare with stored baseline metrics.

``ci/suite.yaml`` lists a few runs — every registered method on a tiny
synthetic twin, few epochs, fixed seeds (at least two, so that a seed std
exists), CPU-sized presets — that run on a CI machine's CPU in minutes.
``ci/baseline.json`` holds, per suite entry, the mean and the std over seeds
(ddof = 1) of each compared metric.

:func:`check` runs the suite into a temporary run store (or ``runs_dir``,
where finished runs are reused) and compares each metric's mean over seeds
with the baseline's. A metric *regresses* when it moved in the bad
direction — down, or up for a lower-is-better metric; directions come from
:mod:`mmerbench.metrics` — by more than its tolerance

    tolerance = max(floor, k × baseline seed std)

(``floor`` absolute, per metric overridable); it *improves* when it moved as
far the other way. Any regression, a run that fails, or a suite entry missing
from the baseline fails the check. ``update=True`` writes a new baseline from
this run instead (atomically; the comparison with the old one, when there is
one, is still reported).

Why a seed std and a floor: two seeds on a tiny twin move by chance, and a
deterministic baseline (BR/CC/LP: std 0) or a change of CPU kernels between
machines still moves a metric by a sample or two; the floor absorbs that.
The suite fixes the number of CPU threads (``threads``), so reductions are
summed in the same order on every CI machine.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from mmerbench import metrics as metricslib
from mmerbench import results
from mmerbench.errors import MmerbenchError, UnknownNameError

SUITE_VERSION = 1
BASELINE_VERSION = 1
DEFAULT_SUITE = Path("ci/suite.yaml")
DEFAULT_BASELINE = Path("ci/baseline.json")
UPDATE_HINT = "run `mmerbench check --update` to write it deliberately"


# ---------------------------------------------------------------------------- the suite


@dataclass(frozen=True)
class SuiteEntry:
    name: str
    method: str
    dataset: str
    seeds: tuple[int, ...]
    preset: str | None = None
    epochs: int | None = None
    overrides: tuple[str, ...] = ()
    scale: float | None = None
    data_seed: int | None = None


@dataclass(frozen=True)
class Suite:
    entries: tuple[SuiteEntry, ...]
    split: str = "test"
    metrics: tuple[str, ...] | None = None  # None: every metric the runs report
    floor: float = 0.02
    k: float = 3.0
    floors: dict[str, float] = field(default_factory=dict)
    threads: int | None = None
    device: str = "cpu"

    def tolerance(self, metric: str, std: float) -> float:
        return max(self.floors.get(metric, self.floor), self.k * std)


def _suite_error(path: Path, what: str) -> MmerbenchError:
    return MmerbenchError(f"Suite {path} is malformed: {what}.")


def _int_list(value: Any, path: Path, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise _suite_error(path, f"{where} must be a non-empty list of integers, but got {value!r}")
    return tuple(dict.fromkeys(value))


def _number(value: Any, path: Path, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
            or (positive and value == 0):
        raise _suite_error(path, f"{where} must be a {'positive' if positive else 'non-negative'} number, "
                                 f"but got {value!r}")
    return float(value)


def load_suite(path: str | Path = DEFAULT_SUITE) -> Suite:
    """Read and validate a suite file; every problem is one :class:`MmerbenchError` sentence."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise MmerbenchError(f"Suite file {path} does not exist (run from the repository root, or pass --suite).") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise _suite_error(path, f"not readable YAML ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise _suite_error(path, "expected a mapping at the top level")
    if data.get("version") != SUITE_VERSION:
        raise _suite_error(path, f"expected `version: {SUITE_VERSION}`, but got {data.get('version')!r}")
    known = {"version", "split", "metrics", "tolerance", "threads", "device", "seeds", "scale", "data_seed", "runs"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _suite_error(path, f"unknown keys {unknown} (known: {sorted(known)})")
    split = data.get("split", "test")
    if split not in results.SPLITS_SCORED:
        raise _suite_error(path, f"`split` must be one of {list(results.SPLITS_SCORED)}, but got {split!r}")
    metric_names = data.get("metrics")
    if metric_names is not None:
        if not isinstance(metric_names, list) or not all(isinstance(m, str) for m in metric_names):
            raise _suite_error(path, "`metrics` must be a list of metric names")
        for m in metric_names:
            try:
                metricslib.metric_info(m)
            except UnknownNameError as e:
                raise _suite_error(path, str(e).rstrip(".")) from None
        metric_names = tuple(metric_names)
    tol = data.get("tolerance") or {}
    if not isinstance(tol, dict) or set(tol) - {"floor", "k", "floors"}:
        raise _suite_error(path, "`tolerance` must be a mapping with `floor`, `k` and optionally `floors`")
    floors = tol.get("floors") or {}
    if not isinstance(floors, dict):
        raise _suite_error(path, "`tolerance.floors` must map metric names to numbers")
    floors = {str(k): _number(v, path, f"tolerance.floors.{k}") for k, v in floors.items()}
    threads = data.get("threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise _suite_error(path, f"`threads` must be a positive integer, but got {threads!r}")
    default_seeds = _int_list(data.get("seeds", [1, 2]), path, "`seeds`")
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs:
        raise _suite_error(path, "`runs` must be a non-empty list of {method, dataset, ...} entries")
    entries, names = [], set()
    run_keys = {"name", "method", "dataset", "seeds", "preset", "epochs", "set", "scale", "data_seed"}
    for i, r in enumerate(runs):
        where = f"runs[{i}]"
        if not isinstance(r, dict) or not isinstance(r.get("method"), str) or not isinstance(r.get("dataset"), str):
            raise _suite_error(path, f"{where} must be a mapping with `method` and `dataset`")
        bad = sorted(set(r) - run_keys)
        if bad:
            raise _suite_error(path, f"{where} has unknown keys {bad} (known: {sorted(run_keys)})")
        overrides = r.get("set") or []
        if isinstance(overrides, str):
            overrides = [overrides]
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise _suite_error(path, f"{where}.set must be a list of KEY=VALUE strings")
        epochs = r.get("epochs")
        if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1):
            raise _suite_error(path, f"{where}.epochs must be a positive integer")
        scale = r.get("scale", data.get("scale"))
        data_seed = r.get("data_seed", data.get("data_seed"))
        entry = SuiteEntry(
            name=str(r.get("name") or f"{r['method']}/{r['dataset']}"),
            method=r["method"], dataset=r["dataset"],
            seeds=_int_list(r.get("seeds", list(default_seeds)), path, f"{where}.seeds"),
            preset=r.get("preset"), epochs=epochs, overrides=tuple(overrides),
            scale=None if scale is None else _number(scale, path, "`scale`", positive=True),
            data_seed=None if data_seed is None else int(data_seed),
        )
        if entry.name in names:
            raise _suite_error(path, f"two runs are named {entry.name!r}; give one a `name`")
        names.add(entry.name)
        entries.append(entry)
    return Suite(entries=tuple(entries), split=split, metrics=metric_names,
                 floor=_number(tol.get("floor", 0.02), path, "tolerance.floor"),
                 k=_number(tol.get("k", 3.0), path, "tolerance.k"), floors=floors, threads=threads,
                 device=str(data.get("device", "cpu")))


def uncovered_methods(suite: Suite) -> list[str]:
    """Registered methods and baselines that no suite entry runs."""
    from mmerbench.registry import list_methods

    covered = {e.method for e in suite.entries}
    return [m for m in list_methods() if m not in covered]


# ---------------------------------------------------------------------------- the baseline


def load_baseline(path: str | Path = DEFAULT_BASELINE) -> dict[str, Any]:
    path = Path(path)

    def bad(what: str) -> MmerbenchError:
        return MmerbenchError(f"Baseline {path} is malformed: {what}; {UPDATE_HINT}.")

    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise MmerbenchError(f"Baseline {path} does not exist; {UPDATE_HINT}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"not readable JSON ({type(e).__name__})") from None
    if not isinstance(data, dict) or data.get("version") != BASELINE_VERSION:
        raise bad(f"expected an object with `version: {BASELINE_VERSION}`")
    entries = data.get("entries")
    if not isinstance(entries, dict):
        raise bad("`entries` must be an object")
    for name, e in entries.items():
        ms = e.get("metrics") if isinstance(e, dict) else None
        if not isinstance(ms, dict):
            raise bad(f"entry {name!r} has no `metrics` object")
        for metric, v in ms.items():
            ok = isinstance(v, dict) and all(
                isinstance(v.get(k), (int, float)) and not isinstance(v.get(k), bool) and math.isfinite(v[k])
                for k in ("mean", "std"))
            if not ok or v["std"] < 0:
                raise bad(f"{name} {metric} needs a finite `mean` and a non-negative `std`")
    return data


# ---------------------------------------------------------------------------- running and comparing


@dataclass
class EntryResult:
    entry: SuiteEntry
    config_hash: str | None = None
    values: dict[str, list[float]] = field(default_factory=dict)  # metric -> one value per seed
    error: str | None = None
    seconds: float = 0.0

    def summary(self) -> dict[str, dict[str, float]]:
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
    status: str  # "regressed", "improved", "ok", "new", "missing", "error", "removed"
    baseline: float | None = None
    current: float | None = None
    tolerance: float | None = None
    note: str = ""

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None or self.current is None else self.current - self.baseline


@dataclass
class CheckReport:
    rows: list[Row]
    results: list[EntryResult]
    uncovered: list[str]
    baseline_path: Path
    updated: bool = False
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return not self.updated and any(r.status in ("regressed", "missing", "error") for r in self.rows)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)


@dataclass
class CheckRequest:
    suite: str | Path = DEFAULT_SUITE
    baseline: str | Path = DEFAULT_BASELINE
    update: bool = False
    runs_dir: str | Path | None = None
    data_dir: str | None = None
    progress: Callable[[str], None] | None = None


def run_suite(suite: Suite, runs_dir: Path, data_dir: str | None = None,
              progress: Callable[[str], None] | None = None) -> list[EntryResult]:
    """Run every suite entry (finished runs in `runs_dir` are reused); a failing entry is recorded, not raised."""
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
    except Exception as exc:  # a crash is a finding of the check, not the end of it
        res.error = str(exc) if isinstance(exc, MmerbenchError) else f"{type(exc).__name__}: {exc}"
    res.seconds = time.perf_counter() - t
    if progress is not None:
        state = "failed" if res.error else f"{len(e.seeds)} seed(s)"
        progress(f"[{i}/{len(suite.entries)}] {e.name}: {state}, {res.seconds:.1f} s")
    return res


def compare(suite: Suite, current: list[EntryResult], baseline: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    base_entries = baseline.get("entries", {})
    for res in current:
        name = res.entry.name
        if res.error is not None:
            rows.append(Row(name, "—", "error", note=res.error))
            continue
        base = base_entries.get(name)
        if base is None:
            rows.append(Row(name, "—", "missing", note=f"not in the baseline; {UPDATE_HINT}"))
            continue
        note = ""
        if base.get("config_hash") and res.config_hash and base["config_hash"] != res.config_hash:
            note = f"config {base['config_hash']} → {res.config_hash}"
        for metric, cur in res.summary().items():
            b = base["metrics"].get(metric)
            if b is None:
                rows.append(Row(name, metric, "new", current=cur["mean"], note="metric not in the baseline"))
                continue
            tol = suite.tolerance(metric, float(b["std"]))
            better = cur["mean"] - b["mean"] if metricslib.direction(metric) else b["mean"] - cur["mean"]
            if not math.isfinite(cur["mean"]) or better < -tol:
                status = "regressed"
            elif better > tol:
                status = "improved"
            else:
                status = "ok"
            rows.append(Row(name, metric, status, float(b["mean"]), cur["mean"], tol, note))
    in_suite = {res.entry.name for res in current}
    for name in sorted(set(base_entries) - in_suite):
        rows.append(Row(name, "—", "removed", note="in the baseline, no longer in the suite"))
    return rows


def baseline_document(suite: Suite, current: list[EntryResult]) -> dict[str, Any]:
    import platform

    import torch

    import mmerbench

    return {
        "version": BASELINE_VERSION,
        "split": suite.split,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": {"mmerbench": mmerbench.__version__, "torch": torch.__version__,
                        "python": sys.version.split()[0], "platform": platform.platform(),
                        "threads": suite.threads or torch.get_num_threads()},
        "entries": {
            r.entry.name: {"method": r.entry.method, "dataset": r.entry.dataset, "config_hash": r.config_hash,
                           "seeds": list(r.entry.seeds), "metrics": r.summary()}
            for r in current
        },
    }


def check(req: CheckRequest) -> CheckReport:
    """Run the suite and compare it with the baseline (or, with ``update``, rewrite the baseline)."""
    t0 = time.perf_counter()
    suite = load_suite(req.suite)
    baseline_path = Path(req.baseline)
    old: dict[str, Any] | None
    if req.update:
        try:
            old = load_baseline(baseline_path)
        except MmerbenchError:
            old = None  # being replaced anyway
    else:
        old = load_baseline(baseline_path)  # a missing or broken baseline stops here, before any run
    if req.runs_dir is not None:
        current = run_suite(suite, Path(req.runs_dir), req.data_dir, req.progress)
    else:
        with tempfile.TemporaryDirectory(prefix="mmerbench-check-") as tmp:
            current = run_suite(suite, Path(tmp), req.data_dir, req.progress)
    rows = compare(suite, current, old) if old is not None else []
    report = CheckReport(rows, current, uncovered_methods(suite), baseline_path)
    if req.update:
        failed = [r for r in current if r.error is not None]
        if failed:
            raise MmerbenchError(
                f"Not updating {baseline_path}: {len(failed)} suite run(s) failed, first {failed[0].entry.name}: "
                f"{failed[0].error}")
        results.write_json(baseline_path, baseline_document(suite, current))
        report.updated = True
        for row in report.rows:
            if row.status == "missing":
                row.status, row.note = "new", "added to the baseline"
    report.seconds = time.perf_counter() - t0
    return report


# ---------------------------------------------------------------------------- printing


def format_report(report: CheckReport, show_all: bool = False) -> str:
    from tabulate import tabulate

    def num(v: float | None) -> str:
        return "" if v is None else f"{v:.4f}"

    shown = [r for r in report.rows if show_all or r.status != "ok"]
    order = {"error": 0, "missing": 1, "regressed": 2, "improved": 3, "new": 4, "removed": 5, "ok": 6}
    shown.sort(key=lambda r: (order[r.status], r.entry, r.metric))
    lines = []
    if shown:
        table = [[r.status, r.entry, r.metric, num(r.baseline), num(r.current),
                  "" if r.delta is None else f"{r.delta:+.4f}", num(r.tolerance), r.note] for r in shown]
        lines.append(tabulate(table, headers=["status", "run", "metric", "baseline", "now", "change", "tolerance",
                                              "note"], disable_numparse=True))
        lines.append("")
    n_metrics = sum(r.status in ("ok", "improved", "regressed") for r in report.rows)
    counts = ", ".join(f"{report.count(s)} {s}" for s in ("regressed", "improved", "error", "missing", "new",
                                                          "removed") if report.count(s))
    if report.updated:
        lines.append(f"Baseline written: {report.baseline_path} ({len(report.results)} runs, {report.seconds:.0f} s)"
                     + (f"; against the previous one: {counts or 'no change beyond tolerance'}" if report.rows else ""))
    elif report.failed:
        lines.append(f"Check FAILED: {counts} ({n_metrics} metrics compared over {len(report.results)} runs, "
                     f"{report.seconds:.0f} s). If the change is intended, {UPDATE_HINT}.")
    else:
        lines.append(f"Check passed: {n_metrics} metrics within tolerance over {len(report.results)} runs"
                     + (f" ({counts})" if counts else "") + f", {report.seconds:.0f} s.")
    if report.uncovered:
        lines.append(f"Not in the suite: {', '.join(report.uncovered)} — add them to the suite file and "
                     f"run `mmerbench check --update`.")
    return "\n".join(lines)
