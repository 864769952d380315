"""The regression check's two files: the suite (``ci/suite.yaml``) and the baseline (``ci/baseline.json``).

Both are read and validated here; every problem is one :class:`MmerbenchError`
sentence. :mod:`mmerbench.check` runs the suite and compares.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmerbench import metrics as metricslib
from mmerbench import results
from mmerbench.errors import MmerbenchError, UnknownNameError

SUITE_VERSION = 2
BASELINE_VERSION = 2
DEFAULT_SUITE = Path("ci/suite.yaml")
DEFAULT_BASELINE = Path("ci/baseline.json")
UPDATE_HINT = 'run `mmerbench check --update --reason "why"` to write it deliberately'
DEFAULT_EXACT = 1e-6
DEFAULT_MARGIN = 0.05


@dataclass(frozen=True)
class Floor:
    """Every seed's `metric` must beat the label-prior score by more than `margin`."""

    metric: str
    margin: float

    def value(self, prior: float) -> float:
        return prior + self.margin if metricslib.direction(self.metric) else prior - self.margin

    def cleared(self, value: float, prior: float) -> bool:
        if not math.isfinite(value):
            return False
        return value > self.value(prior) if metricslib.direction(self.metric) else value < self.value(prior)


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
    floor: Floor | None = None


@dataclass(frozen=True)
class Suite:
    entries: tuple[SuiteEntry, ...]
    split: str = "test"
    metrics: tuple[str, ...] | None = None  # None: every metric the runs report
    exact: float = DEFAULT_EXACT  # largest |now - baseline| per seed value that counts as "the same"
    threads: int | None = None
    device: str = "cpu"


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


def _metric(name: Any, path: Path, where: str) -> str:
    if not isinstance(name, str):
        raise _suite_error(path, f"{where} must be a metric name, but got {name!r}")
    try:
        metricslib.metric_info(name)
    except UnknownNameError as e:
        raise _suite_error(path, f"{where}: {str(e).rstrip('.')}") from None
    return name


def _floor(value: Any, margin: float, path: Path, where: str) -> Floor | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = {"metric": value}
    if not isinstance(value, dict) or set(value) - {"metric", "margin"} or "metric" not in value:
        raise _suite_error(path, f"{where}.floor must be a metric name or {{metric: NAME, margin: NUMBER}}")
    return Floor(_metric(value["metric"], path, f"{where}.floor"),
                 _number(value.get("margin", margin), path, f"{where}.floor.margin", positive=True))


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
    known = {"version", "split", "metrics", "exact", "floor_margin", "threads", "device", "seeds", "scale",
             "data_seed", "runs"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _suite_error(path, f"unknown keys {unknown} (known: {sorted(known)})")
    split = data.get("split", "test")
    if split not in results.SPLITS_SCORED:
        raise _suite_error(path, f"`split` must be one of {list(results.SPLITS_SCORED)}, but got {split!r}")
    metric_names = data.get("metrics")
    if metric_names is not None:
        if not isinstance(metric_names, list) or not metric_names:
            raise _suite_error(path, "`metrics` must be a non-empty list of metric names")
        metric_names = tuple(_metric(m, path, "`metrics`") for m in metric_names)
    exact = _number(data.get("exact", DEFAULT_EXACT), path, "`exact`")
    margin = _number(data.get("floor_margin", DEFAULT_MARGIN), path, "`floor_margin`", positive=True)
    threads = data.get("threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise _suite_error(path, f"`threads` must be a positive integer, but got {threads!r}")
    default_seeds = _int_list(data.get("seeds", [1, 2]), path, "`seeds`")
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs:
        raise _suite_error(path, "`runs` must be a non-empty list of {method, dataset, ...} entries")
    entries, names = [], set()
    run_keys = {"name", "method", "dataset", "seeds", "preset", "epochs", "set", "scale", "data_seed", "floor"}
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
        floor = _floor(r.get("floor"), margin, path, where)
        if floor is not None and metric_names is not None and floor.metric not in metric_names:
            raise _suite_error(path, f"{where}.floor's metric {floor.metric!r} is not among `metrics`")
        entry = SuiteEntry(
            name=str(r.get("name") or f"{r['method']}/{r['dataset']}"),
            method=r["method"], dataset=r["dataset"],
            seeds=_int_list(r.get("seeds", list(default_seeds)), path, f"{where}.seeds"),
            preset=r.get("preset"), epochs=epochs, overrides=tuple(overrides),
            scale=None if scale is None else _number(scale, path, "`scale`", positive=True),
            data_seed=None if data_seed is None else int(data_seed), floor=floor,
        )
        if entry.name in names:
            raise _suite_error(path, f"two runs are named {entry.name!r}; give one a `name`")
        names.add(entry.name)
        entries.append(entry)
    return Suite(entries=tuple(entries), split=split, metrics=metric_names, exact=exact, threads=threads,
                 device=str(data.get("device", "cpu")))


def uncovered_methods(suite: Suite) -> list[str]:
    """Registered methods and baselines that no suite entry runs."""
    from mmerbench.registry import list_methods

    covered = {e.method for e in suite.entries}
    return [m for m in list_methods() if m not in covered]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def load_baseline(path: str | Path = DEFAULT_BASELINE) -> dict[str, Any]:
    """Read and validate a baseline: per entry its seeds and, per metric, one finite value per seed."""
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
    if not isinstance(entries, dict) or not entries:
        raise bad("`entries` must be a non-empty object")
    for name, e in entries.items():
        ms = e.get("metrics") if isinstance(e, dict) else None
        seeds = e.get("seeds") if isinstance(e, dict) else None
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
            raise bad(f"entry {name!r} needs a non-empty list of `seeds`")
        # An empty object would make every metric of the run look new, so nothing would be compared.
        if not isinstance(ms, dict) or not ms:
            raise bad(f"entry {name!r} has no metrics")
        for metric, v in ms.items():
            vals = v.get("values") if isinstance(v, dict) else None
            if not isinstance(vals, list) or len(vals) != len(seeds) or not all(_finite(x) for x in vals):
                raise bad(f"{name} {metric} needs one finite value per seed in `values`")
    return data
