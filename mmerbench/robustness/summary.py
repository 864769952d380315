"""The stored robustness records as a tidy frame, and the per-method summaries.

Summaries per (dataset, method, config), on one metric, each the mean over the seeds that have
the record:

* ``clean`` — the run's stored test metric;
* ``<corruption>`` — the metric under each stored corruption (``noise-0.3``, ``missing-text`` …);
* ``auc_<family>`` — for noise and temporal masking: the area under the metric-vs-level curve,
  trapezoid rule over the stored levels with the clean metric at level 0, divided by the
  largest level (so it is the curve's mean height, in the metric's units);
* ``worst_missing`` — the lowest (highest, for a lower-is-better metric) metric over the stored
  missing-modality corruptions;
* ``relative_<family>`` — MultiBench's relative robustness (Liang et al., NeurIPS 2021 Datasets
  and Benchmarks): the area under the metric-vs-level curve, min-max normalised across the
  methods compared on the same dataset (1 = the largest area among them, 0 = the smallest). It
  therefore depends on which methods are compared; one method alone gets none;
* ``effective_<family>`` — MultiBench's effective robustness: the sum over the levels of
  f(l) − [r(l) + f(0) − r(0)], the method's metric above the reference method's curve shifted to
  the same clean metric (MultiBench's reference is late fusion; ours is named by the caller,
  ``br`` by default). Positive: it loses less than the reference as the corruption grows. We
  keep the raw sum in the metric's units, where MultiBench also min-max normalises it.

Both MultiBench figures need the same levels for every method; a method whose levels differ
from the reference's gets no effective robustness (rather than a sum over different levels).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mmerbench import metrics as metricslib
from mmerbench import results
from mmerbench.data import paths
from mmerbench.robustness.corruptions import LEVELLED
from mmerbench.robustness.scoring import FOLDER, read_record

COLUMNS = ["dataset", "method", "config_hash", "seed", "corruption", "family", "level", "modalities",
           "metric", "value"]


def collect(runs_dir: str | os.PathLike | None = None) -> "pandas.DataFrame":  # noqa: F821
    """Every complete run's clean test metrics and stored corruption records as a tidy frame:
    one row per (dataset, method, config_hash, seed, corruption, metric); the clean run is the
    corruption ``clean`` at level 0. Runs without any record are left out."""
    import pandas as pd

    rows = []
    for dataset, method, chash, seed, folder in results.iter_runs(paths.runs_root(runs_dir)):
        recs = [r for r in (read_record(p) for p in sorted((Path(folder) / FOLDER).glob("*.json"))) if r]
        if not recs:
            continue
        clean = results.read_metrics(folder)
        assert clean is not None
        for name, v in clean["test"].items():
            rows.append((dataset, method, chash, seed, "clean", "clean", 0.0, "", name, float(v)))
        for r in recs:
            c = r.get("corruption") or {}
            for name, v in r["test"].items():
                rows.append((dataset, method, chash, seed, str(c.get("name")), str(c.get("family")),
                             float(c.get("level") or 0.0), ".".join(c.get("modalities") or ()), name, float(v)))
    return pd.DataFrame(rows, columns=COLUMNS)


def _higher(metric: str) -> bool:
    try:
        return metricslib.direction(metric)
    except (KeyError, ValueError):
        return True


def curve(frame, metric: str, family: str) -> tuple[np.ndarray, np.ndarray]:
    """(levels, mean metric) of one config's rows for a levelled family, level 0 = clean."""
    sub = frame[(frame.metric == metric) & frame.family.isin(["clean", family])]
    g = sub.groupby("level").value.mean().sort_index()
    return g.index.to_numpy(float), g.to_numpy(float)


def area(levels: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid area under the curve divided by the largest level (the curve's mean height)."""
    if len(levels) < 2 or levels[-1] <= 0:
        return float("nan")
    return float(np.trapezoid(values, levels) / levels[-1])


def summarize(frame, metric: str, reference: str | None = "br") -> "pandas.DataFrame":  # noqa: F821
    """One row per (dataset, method, config_hash): the figures the module docstring lists."""
    import pandas as pd

    higher = _higher(metric)
    out = []
    curves: dict[tuple[str, str, str], dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for (dataset, method, chash), sub in frame[frame.metric == metric].groupby(
            ["dataset", "method", "config_hash"], sort=True):
        row = {"dataset": dataset, "method": method, "config_hash": chash, "seeds": int(sub.seed.nunique())}
        for name, v in sub.groupby("corruption", sort=False).value.mean().items():
            row[name] = float(v)
        missing = sub[sub.family == "missing"].groupby("corruption").value.mean()
        row["worst_missing"] = float(missing.min() if higher else missing.max()) if len(missing) else float("nan")
        curves[(dataset, method, chash)] = {}
        for fam in LEVELLED:
            lv, vals = curve(sub, metric, fam)
            curves[(dataset, method, chash)][fam] = (lv, vals)
            row[f"auc_{fam}"] = area(lv, vals)
        out.append(row)
    table = pd.DataFrame(out)
    if table.empty:
        return table
    for fam in LEVELLED:
        col = f"auc_{fam}"
        table[f"relative_{fam}"] = np.nan
        table[f"effective_{fam}"] = np.nan
        for dataset, idx in table.groupby("dataset").groups.items():
            a = table.loc[idx, col].to_numpy(float)
            ok = np.isfinite(a)
            if ok.sum() >= 2 and np.ptp(a[ok]) > 0:
                sign = 1.0 if higher else -1.0  # MultiBench flips the sign for lower-is-better tasks
                s = sign * a
                table.loc[idx[ok], f"relative_{fam}"] = (s[ok] - s[ok].min()) / (s[ok].max() - s[ok].min())
            refs = [k for k in curves if k[0] == dataset and k[1] == reference]
            if len(refs) != 1:
                continue  # no reference, or several of its configs: which one is ambiguous
            rl, rv = curves[refs[0]][fam]
            for i in idx:
                key = (dataset, table.at[i, "method"], table.at[i, "config_hash"])
                fl, fv = curves[key][fam]
                if len(fl) >= 2 and np.array_equal(fl, rl):
                    sign = 1.0 if higher else -1.0  # positive = loses less than the reference
                    table.at[i, f"effective_{fam}"] = sign * float(np.sum((fv - fv[0]) - (rv - rv[0]))) + 0.0
    return table

