"""The table `mmerbench run` prints: one row per seed, then mean ± std (ddof = 1)."""

from __future__ import annotations

import numpy as np

# The columns shown per task, in order; every metric is still in metrics.json.
HEADLINE = {
    "multilabel": ("acc", "hamming_loss", "micro_f1", "macro_f1", "micro_precision", "micro_recall"),
    "multiclass": ("wa", "ua", "weighted_f1", "macro_f1"),
    "regression": ("mae", "corr", "acc7", "acc2_non0", "f1_non0"),
    "binary": ("acc", "f1"),
}


def _task_of(metrics: dict) -> str:
    keys = set(metrics)
    for task in ("multilabel", "multiclass", "regression", "binary"):
        if set(HEADLINE[task]) <= keys:
            return task
    return "binary"


def run_table(results) -> str:
    from tabulate import tabulate

    if not results:
        return "(no runs)"
    task = _task_of(results[0].metrics["test"])
    cols = [c for c in HEADLINE[task] if c in results[0].metrics["test"]]
    rows = [[r.seed, r.status] + [r.metrics["test"][c] for c in cols] for r in results]
    table = [[str(row[0]), row[1]] + [f"{v:.4f}" for v in row[2:]] for row in rows]
    if len(results) > 1:
        vals = np.array([row[2:] for row in rows], dtype=float)
        mean, std = vals.mean(0), vals.std(0, ddof=1)
        table.append([f"mean ± std (n={len(results)})", ""] + [f"{m:.4f} ± {s:.4f}" for m, s in zip(mean, std)])
    d = results[0].metrics["decision"]
    rule = d.get("rule", "")
    if "threshold" in d:
        rule = rule.replace("threshold", f"{d['threshold']:g}")
    head = ["seed", "status"] + cols
    folder = results[0].folder.parent
    return (
        tabulate(table, headers=head, disable_numparse=True)
        + f"\n\ntest split; decision: {rule}\nruns: {folder}"
    )
