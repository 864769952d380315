"""Reading the run store for the tests: which runs, their per-seed values, their aligned predictions."""

from __future__ import annotations

import difflib
import math
import numbers
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmerbench import metrics as metricslib
from mmerbench.errors import DataError, MmerbenchError
from mmerbench.stats.checks import _SCORE_NDIM
from mmerbench.stats.verdicts import _plain

@dataclass(frozen=True)
class RunGroup:
    """The complete seeds of one (dataset, method, config) in the run store."""

    dataset: str
    method: str
    config_hash: str
    seeds: tuple[int, ...]
    folders: tuple[Path, ...]

    @property
    def label(self) -> str:
        return f"{self.method}@{self.config_hash}"

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))



def _scan_store(runs_dir: Path, dataset: str) -> dict[str, dict[str, list[tuple[int, Path]]]]:
    from mmerbench.results import iter_runs

    found: dict[str, dict[str, list[tuple[int, Path]]]] = {}
    datasets = set()
    for ds, method, chash, seed, folder in iter_runs(runs_dir):
        datasets.add(ds)
        if ds == dataset:
            found.setdefault(method, {}).setdefault(chash, []).append((seed, folder))
    if not found:
        there = f" (datasets there: {', '.join(sorted(datasets))})" if datasets else " (no complete runs there)"
        raise MmerbenchError(f"No complete runs of dataset {dataset!r} in {runs_dir}{there}.")
    return found


def find_runs(runs_dir: str | os.PathLike | None, dataset: str, spec: str) -> RunGroup:
    """The runs ``spec`` names on ``dataset``: ``method`` or ``method@config_hash`` (a unique prefix will do)."""
    from mmerbench.data import paths

    root = paths.runs_root(runs_dir)
    store = _scan_store(root, dataset)
    method, _, chash = str(spec).partition("@")
    if method not in store:
        close = difflib.get_close_matches(method, sorted(store), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise MmerbenchError(f"Method {method!r} has no complete runs of {dataset!r} in {root}.{hint} "
                             f"Methods there: {', '.join(sorted(store))}.")
    configs = store[method]
    if chash:
        matches = [h for h in configs if h.startswith(chash)]
        if len(matches) != 1:
            what = "matches no" if not matches else "is ambiguous among the"
            raise MmerbenchError(f"{chash!r} {what} configs of {method!r} on {dataset!r}: "
                                 f"{', '.join(sorted(configs))}.")
        chash = matches[0]
    elif len(configs) > 1:
        listing = ", ".join(f"{h} ({len(v)} seed{'s' * (len(v) != 1)})" for h, v in sorted(configs.items()))
        raise MmerbenchError(f"Method {method!r} has {len(configs)} configs on {dataset!r}: {listing}; "
                             f"name one as {method}@<hash>.")
    else:
        chash = next(iter(configs))
    runs = sorted(configs[chash])
    return RunGroup(dataset, method, chash, tuple(s for s, _ in runs), tuple(f for _, f in runs))


def _stored_values(group: RunGroup, metric: str) -> tuple[np.ndarray, list[dict]]:
    from mmerbench.results import read_metrics

    vals, decisions = [], []
    for seed, folder in zip(group.seeds, group.folders):
        m = read_metrics(folder)
        if m is None:
            raise DataError(f"{folder / 'metrics.json'} is unreadable.")
        test = m["test"]
        if metric not in test:
            known = ", ".join(sorted(test))
            raise MmerbenchError(f"Metric {metric!r} is not among the stored test metrics of {group.label} "
                                 f"seed {seed}: {known}.")
        try:
            v = float(test[metric])
        except (TypeError, ValueError):
            v = math.nan
        if not math.isfinite(v):
            raise DataError(f"{folder / 'metrics.json'} holds a non-finite {metric}: {test[metric]!r}.")
        vals.append(v)
        decisions.append(m.get("decision") or {})
    return np.array(vals), decisions


def _load_predictions(folder: Path, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``test_ids``, ``test_true``, ``test_scores`` of one run, checked; any defect is a DataError."""
    import zipfile

    path = Path(folder) / "predictions.npz"
    if not path.is_file():
        raise DataError(f"{path} is missing: the per-sample tests need the stored predictions.")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("test_ids", "test_true", "test_scores") if k not in z.files]
            if missing:
                raise DataError(f"{path} lacks {', '.join(missing)}.")
            ids, y, s = z["test_ids"], z["test_true"], z["test_scores"]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"{path} is unreadable or truncated ({type(e).__name__}: {e}).") from None
    if ids.ndim != 1 or ids.size == 0:
        raise DataError(f"{path}: `test_ids` must be a non-empty 1-D array, but has shape {ids.shape}.")
    ids = ids.astype(str)
    if len(np.unique(ids)) != len(ids):
        raise DataError(f"{path}: `test_ids` holds duplicate sample ids.")
    d = _SCORE_NDIM[task]
    if s.ndim != d or s.shape[0] != len(ids) or y.shape[0] != len(ids):
        raise DataError(f"{path}: expected {len(ids)} rows of {d}-D scores and truth for a {task} task, "
                        f"but got scores {s.shape} and truth {y.shape}.")
    if s.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise DataError(f"{path}: scores and truth must be numeric, but are {s.dtype} and {y.dtype}.")
    return ids, y, s


def _align(reference: np.ndarray, ids: np.ndarray, where: str, ref_where: str) -> np.ndarray:
    """Row order that puts ``ids`` in the order of ``reference``; the id sets must be equal."""
    if len(ids) == len(reference) and (ids == reference).all():
        return np.arange(len(ids))
    shared = np.intersect1d(reference, ids)
    if shared.size == 0:
        raise MmerbenchError(f"{where} and {ref_where} share no sample ids: they were not scored on the same "
                             f"test set.")
    if shared.size != len(reference) or shared.size != len(ids):
        raise MmerbenchError(f"{where} and {ref_where} were scored on different sample sets "
                             f"({len(ids)} and {len(reference)} ids, {shared.size} shared); the per-sample "
                             f"tests need the same samples.")
    pos = {v: i for i, v in enumerate(ids.tolist())}
    return np.array([pos[v] for v in reference.tolist()])


def _threshold_of(group: RunGroup, decisions: list[dict], task: str) -> float:
    if task not in ("multilabel", "binary"):
        return 0.5  # unused: argmax / identity
    thrs = set()
    for seed, d in zip(group.seeds, decisions):
        thr = d.get("threshold") if isinstance(d, dict) else None
        if isinstance(thr, bool) or not isinstance(thr, numbers.Real) or not math.isfinite(thr):
            raise DataError(f"The metrics.json of {group.label} seed {seed} records no usable decision "
                            f"threshold ({d!r}).")
        thrs.add(float(thr))
    if len(thrs) > 1:
        raise DataError(f"The seeds of {group.label} record different thresholds: {sorted(thrs)}.")
    return thrs.pop()


def _predictions(group: RunGroup, task: str, metric: str, labels, threshold: float, stored: np.ndarray,
                 ref_ids: np.ndarray | None, ref_where: str | None):
    """Scores per seed and the truth, rows in the order of ``ref_ids`` (the first run's when None)."""
    scores, truth = [], None
    for seed, folder, value in zip(group.seeds, group.folders, stored):
        where = f"{group.label} seed {seed}"
        ids, y, s = _load_predictions(folder, task)
        if ref_ids is None:
            ref_ids, ref_where = ids, where
        order = _align(ref_ids, ids, where, ref_where)
        y, s = y[order], s[order]
        if truth is None:
            truth = y
        elif y.shape != truth.shape or not np.array_equal(y, truth):
            raise DataError(f"{where} stores a different truth than {ref_where} for the same sample ids.")
        try:
            again = metricslib.compute(task, y_true=y, y_score=s, threshold=threshold, labels=labels)[metric]
        except (ValueError, KeyError) as e:
            raise DataError(f"{folder / 'predictions.npz'}: {e}") from None
        if abs(again - value) > 1e-9:
            raise DataError(f"{folder / 'predictions.npz'} does not reproduce its metrics.json "
                            f"({metric} {again:.6f} vs {value:.6f}): the file changed, or the decision rule "
                            f"or label order differs.")
        scores.append(s)
    return truth, scores, ref_ids, ref_where
