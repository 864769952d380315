"""The label-prior score: what a model that learned nothing from the inputs scores.

A predictor that ignores the inputs can only use the train split's label
marginals. Per task it predicts the same thing for every test sample:

* multi-label: the k most frequent train labels, for each k from 0 (no label)
  to all; the score is the best of these constant predictions on the test
  split (so "predict nothing", "predict the majority labels" and "predict
  everything" are all covered);
* multi-class and binary: the most frequent train class;
* regression: the train mean.

Each is scored on the test split with the same metric code the runs use, so a
floor set above it means "the model learned something from the inputs".
"""

from __future__ import annotations

import math

import numpy as np

from mmerbench import metrics as metricslib
from mmerbench.data.dataset import Dataset
from mmerbench.data.spec import DatasetSpec


def constant_predictions(spec: DatasetSpec, train_labels: np.ndarray, n_test: int) -> list[np.ndarray]:
    """The constant test-split scores built from the train marginals (one array per candidate)."""
    y = np.asarray(train_labels)
    if spec.task == "multilabel":
        order = np.argsort(-y.mean(axis=0), kind="stable")  # most frequent first
        out = []
        for k in range(y.shape[1] + 1):
            row = np.zeros(y.shape[1])
            row[order[:k]] = 1.0
            out.append(np.tile(row, (n_test, 1)))
        return out
    if spec.task == "multiclass":
        k = len(spec.labels)
        majority = int(np.bincount(y.astype(int), minlength=k).argmax())
        return [np.tile(np.eye(k)[majority], (n_test, 1))]
    if spec.task == "binary":
        return [np.full(n_test, 1.0 if y.astype(float).mean() > 0.5 else 0.0)]
    return [np.full(n_test, float(y.astype(float).mean()))]  # regression


def prior_scores(dataset: Dataset, split: str = "test") -> dict[str, float]:
    """Per metric, the best label-prior score on `split` (best in the metric's own direction).

    A metric undefined for a constant prediction (a correlation) is 0: no linear relation.
    """
    spec = dataset.spec
    y_test = np.asarray(dataset[split].labels)
    best: dict[str, float] = {}
    for scores in constant_predictions(spec, np.asarray(dataset["train"].labels), len(y_test)):
        got = metricslib.compute(spec.task, y_true=y_test, y_score=scores, threshold=0.5, labels=list(spec.labels))
        for metric, value in got.items():
            value = 0.0 if not math.isfinite(value) else float(value)
            if metric not in best:
                best[metric] = value
            elif metricslib.direction(metric):
                best[metric] = max(best[metric], value)
            else:
                best[metric] = min(best[metric], value)
    return best
