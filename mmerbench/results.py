"""The run store: one folder per run, written so that a complete run is unmistakable.

``<runs>/<dataset>/<method>/<config-hash>/seed-<n>/`` holds

* ``config.yaml``      the resolved config (its hash names the parent folder)
* ``env.json``         package versions, device, git commit, date
* ``history.json``     per-epoch losses (named parts) and validation metrics
* ``.lock``            an OS file lock held by the process running this seed (see ``runner.seed_lock``)
* ``checkpoint.pt``    torch methods, while training: model/optimizer state after the last epoch and
                       the selected weights (removed once ``model.pt`` and ``metrics.json`` are written)
* ``predictions.npz``  ids, truth and scores for valid and test (for significance tests)
* ``metrics.json``     ``{"valid": {...}, "test": {...}, "decision": {...}}``

Beside the seed folders, ``<config-hash>/profile/<device>-<dtype>.json`` holds
speed/memory profiles of that config (``mmerbench profile``): the record's
``metrics`` are flat numbers, the rest says where and how they were measured.

A run is complete when ``metrics.json`` exists and holds numbers for each
scored split: it is written last and atomically (temporary name, then rename),
so a killed run never looks complete; a malformed one (:func:`malformed_runs`)
counts as incomplete.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import yaml

from mmerbench.safepath import join

METRICS_FILE = "metrics.json"
SPLITS_SCORED = ("valid", "test")


class Decision(TypedDict, total=False):
    rule: str  # e.g. "probability > threshold"
    threshold: float
    score: str  # what was thresholded: "sigmoid", "softmax", "argmax", "regression"


class RunMetrics(TypedDict):
    valid: dict[str, float]
    test: dict[str, float]
    decision: Decision


def config_dir(runs_root: Path, dataset: str, method: str, config_hash: str) -> Path:
    """The folder of one config's runs; every store path is built here, refused if it would leave the store."""
    return join(runs_root, dataset, method, config_hash)


def run_dir(runs_root: Path, dataset: str, method: str, config_hash: str, seed: int) -> Path:
    return join(config_dir(runs_root, dataset, method, config_hash), f"seed-{seed}")


def profile_path(runs_root: Path, dataset: str, method: str, config_hash: str, device: str, dtype: str) -> Path:
    """Where the profile of one config on one device kind ("cpu", "cuda") and dtype ("fp32", "bf16") lives."""
    return join(config_dir(runs_root, dataset, method, config_hash), "profile", f"{device}-{dtype}.json")


class ProfileRecord(TypedDict, total=False):
    device: str  # "cpu" or "cuda"
    device_name: str
    dtype: str  # "fp32" or "bf16"
    batch_size: int  # the training batch size timed
    tf32: bool
    versions: dict[str, str]  # torch, cuda, driver, python, mmerbench
    date: str
    # Flat numbers, e.g. params, train_samples_per_s, latency_ms_p50/p90/p99,
    # infer_samples_per_s_bs<N>, peak_memory_mb_train, flops_per_sample, tflops_per_s.
    metrics: dict[str, float]


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, so no thread sees it changed)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file 0600; a shared or group run store needs the mode a plain
        # open() would give, i.e. the one the umask allows.
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    _atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_yaml(path: Path, obj: Any) -> None:
    _atomic_write_bytes(Path(path), yaml.safe_dump(obj, sort_keys=True).encode())


def write_predictions(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _atomic_write_bytes(Path(path), buf.getvalue())


def metrics_problem(data: Any) -> str | None:
    """Why parsed metrics.json content is not a usable result (None when it is): each scored
    split must map metric names to numbers."""
    if not isinstance(data, dict):
        return f"it holds {_json_type(data)}, not an object"
    missing = [k for k in ("valid", "test", "decision") if k not in data]
    if missing:
        return f"it has no {', '.join(repr(k) for k in missing)}"
    for split in SPLITS_SCORED:
        values = data[split]
        if not isinstance(values, dict):
            return f"its {split!r} is {_json_type(values)}, not metric values"
        for name, v in values.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return f"its {split} metric {name!r} is {_json_type(v)}, not a number"
    return None


def _json_type(v: Any) -> str:
    return {type(None): "null", str: "a string", list: "a list", dict: "an object", bool: "a boolean"}.get(
        type(v), type(v).__name__)


def _read_metrics_file(folder: Path) -> tuple[RunMetrics | None, str | None]:
    """(metrics, None) for a usable file; (None, why) for one that exists but is not; (None, None) when absent."""
    path = Path(folder) / METRICS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as e:
        return None, f"it is unreadable ({type(e).__name__})"
    except json.JSONDecodeError:
        return None, "it is not valid JSON"
    why = metrics_problem(data)
    return (None, why) if why else (data, None)


def read_metrics(folder: Path) -> RunMetrics | None:
    """The run's metrics, or None while the run is incomplete (or its file is unreadable or malformed)."""
    return _read_metrics_file(folder)[0]


def malformed_runs(runs_root: Path) -> list[tuple[Path, str]]:
    """Seed folders whose metrics.json exists but is not a usable result, with the reason (for a one-line note)."""
    out = []
    for mfile in sorted(Path(runs_root).glob(f"*/*/*/seed-*/{METRICS_FILE}")):
        _, why = _read_metrics_file(mfile.parent)
        if why:
            out.append((mfile.parent, why))
    return out


def is_complete(folder: Path) -> bool:
    return read_metrics(folder) is not None


def iter_runs(runs_root: Path):
    """Complete run folders under the store: (dataset, method, config_hash, seed, folder)."""
    root = Path(runs_root)
    for mfile in sorted(root.glob(f"*/*/*/seed-*/{METRICS_FILE}")):
        folder = mfile.parent
        try:
            seed = int(folder.name.split("-", 1)[1])
        except ValueError:
            continue
        if is_complete(folder):
            chash, method, dataset = folder.parent.name, folder.parent.parent.name, folder.parent.parent.parent.name
            yield dataset, method, chash, seed, folder


def collect(runs_dir: str | os.PathLike) -> "pandas.DataFrame":  # noqa: F821
    """Every complete run as a tidy frame: dataset, method, config_hash, seed, split, metric, value."""
    import pandas as pd

    rows = []
    for dataset, method, chash, seed, folder in iter_runs(Path(runs_dir)):
        metrics = read_metrics(folder)
        assert metrics is not None
        for split in SPLITS_SCORED:
            for name, value in metrics[split].items():
                rows.append((dataset, method, chash, seed, split, name, float(value)))
    cols = ["dataset", "method", "config_hash", "seed", "split", "metric", "value"]
    return pd.DataFrame(rows, columns=cols)


def read_profile(path: Path) -> ProfileRecord | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        return None
    return data  # type: ignore[return-value]


def collect_profiles(runs_dir: str | os.PathLike) -> "pandas.DataFrame":  # noqa: F821
    """Every stored profile as a tidy frame: dataset, method, config_hash, device, device_name, dtype, metric, value."""
    import pandas as pd

    rows = []
    for path in sorted(Path(runs_dir).glob("*/*/*/profile/*.json")):
        rec = read_profile(path)
        if rec is None:
            continue
        chash, method, dataset = path.parent.parent.name, path.parent.parent.parent.name, path.parent.parent.parent.parent.name
        for name, value in rec["metrics"].items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            rows.append((dataset, method, chash, rec.get("device", ""), rec.get("device_name", ""),
                         rec.get("dtype", ""), name, value))
    cols = ["dataset", "method", "config_hash", "device", "device_name", "dtype", "metric", "value"]
    return pd.DataFrame(rows, columns=cols)
