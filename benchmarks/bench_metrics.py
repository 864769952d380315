"""Speed of mmerbench.metrics on a MOSEI-sized test split (N = 4,659).

Two ways to run it (neither is part of the default ``pytest`` run):

    python -m pytest benchmarks/bench_metrics.py      # pytest-benchmark table
    python benchmarks/bench_metrics.py                # median ms per call (timeit)

Target: ``multilabel`` on 4,659 × 6 well under 1 ms per call.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path
from typing import Any, Callable

import numpy as np

try:
    from mmerbench import metrics
except ImportError:  # run as a script from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mmerbench import metrics

N = 4659  # CMU-MOSEI emotion test split
LABELS = ["happy", "sad", "anger", "surprise", "disgust", "fear"]
PRIORS = np.array([0.52, 0.25, 0.22, 0.10, 0.17, 0.08])  # roughly MOSEI's marginals
CLASSES = ["neutral", "happy", "sad", "angry"]


def make_data(seed: int = 0) -> dict[str, dict[str, Any]]:
    """Keyword arguments for each benchmarked call, seeded."""
    rng = np.random.default_rng(seed)
    y_ml = (rng.random((N, len(LABELS))) < PRIORS).astype(np.int64)
    logits = 1.5 * (2 * y_ml - 1) + rng.normal(0, 1.5, size=y_ml.shape)
    y_mc = rng.integers(0, len(CLASSES), size=N)
    mc_scores = rng.normal(size=(N, len(CLASSES))) + 1.2 * np.eye(len(CLASSES))[y_mc]
    senti = np.round(rng.uniform(-3, 3, size=N) * 3) / 3
    return {
        "multilabel": dict(y_true=y_ml, y_score=1 / (1 + np.exp(-logits)), labels=LABELS),
        "multiclass": dict(y_true=y_mc, y_score=mc_scores, labels=CLASSES),
        "regression": dict(y_true=senti, y_pred=np.clip(senti + rng.normal(0, 1, size=N), -3, 3)),
    }


DATA = make_data()
FUNCS: dict[str, Callable[..., dict[str, float]]] = {
    "multilabel": metrics.multilabel,
    "multiclass": metrics.multiclass,
    "regression": metrics.regression,
}


def test_multilabel(benchmark):
    out = benchmark(metrics.multilabel, **DATA["multilabel"])
    assert 0 < out["micro_f1"] < 1


def test_multiclass(benchmark):
    out = benchmark(metrics.multiclass, **DATA["multiclass"])
    assert 0 < out["wa"] < 1


def test_regression(benchmark):
    out = benchmark(metrics.regression, **DATA["regression"])
    assert 0 < out["corr"] < 1


def median_ms(fn: Callable[..., Any], kwargs: dict[str, Any], number: int = 200, repeat: int = 15) -> float:
    times = timeit.repeat(lambda: fn(**kwargs), number=number, repeat=repeat)
    return float(np.median(times)) / number * 1e3


def main() -> None:
    print(f"mmerbench.metrics, N = {N}, numpy {np.__version__}")
    for name, fn in FUNCS.items():
        shape = np.shape(DATA[name].get("y_score", DATA[name].get("y_pred")))
        print(f"  {name:<11} {str(shape):<10} {median_ms(fn, DATA[name]):7.3f} ms/call (median)")


if __name__ == "__main__":
    main()
