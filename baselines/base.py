"""Shared parts of the classical baselines: pooled features and the estimator contract.

The papers that report BR, CC and LP on MOSEI concatenate all modalities
into one input but do not publish the base learner. Ours (a stated choice):
each modality is averaged over its real time steps (masked mean), the
pooled vectors are concatenated, standardised on the training split, and
fed to L2-regularised logistic regression (lbfgs).

The estimators follow scikit-learn's contract: ``__init__`` stores
hyperparameters only, ``fit(X, Y)`` returns self, learned state ends in
``_``, randomness comes through ``seed``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from mmerbench.data.dataset import Split


def pooled_features(split: Split, modalities: list[str], chunk: int = 2048) -> np.ndarray:
    """[N, sum(D_m)] float64: per modality the mean over real time steps, concatenated.

    Reads memory-mapped arrays in chunks, so a full-size dataset never needs a
    second copy in memory.
    """
    parts = []
    for m in modalities:
        x, mask = split.inputs[m], split.masks[m]
        out = np.empty((x.shape[0], x.shape[2]), dtype=np.float64)
        for lo in range(0, x.shape[0], chunk):
            xs = np.asarray(x[lo : lo + chunk], dtype=np.float64)
            ms = np.asarray(mask[lo : lo + chunk], dtype=np.float64)[..., None]
            out[lo : lo + chunk] = (xs * ms).sum(1) / np.maximum(ms.sum(1), 1.0)
        parts.append(out)
    return np.concatenate(parts, axis=1)


class PooledBaseline(ABC):
    """Base of BR/CC/LP: the registry metadata and the standardise → fit wiring."""

    kind: ClassVar[str] = "sklearn"
    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ("multilabel",)
    config_package: ClassVar[str] = "mmerbench.baselines"

    def __init__(self, *, C: float = 1.0, max_iter: int = 1000, seed: int = 0) -> None:
        self.C = C
        self.max_iter = max_iter
        self.seed = seed

    @classmethod
    def for_spec(cls, spec, **hparams) -> "PooledBaseline":
        """The estimator for a dataset (the runner's factory); BR/CC/LP need nothing from the spec."""
        return cls(**hparams)

    def _logreg(self):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=float(self.C), max_iter=int(self.max_iter), random_state=self.seed)

    def fit(self, X: np.ndarray, Y: np.ndarray) -> "PooledBaseline":
        from sklearn.preprocessing import StandardScaler

        self.scaler_ = StandardScaler().fit(X)
        self._fit(self.scaler_.transform(X), np.asarray(Y, dtype=np.int64))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """[N, C] probability that each label is present."""
        return self._predict_proba(self.scaler_.transform(X))

    @abstractmethod
    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        """Fit on standardised features X and 0/1 labels Y [N, C]."""

    @abstractmethod
    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        """[N, C] label probabilities for standardised features X."""


def constant_column(y: np.ndarray) -> float | None:
    """The value of a label column that never varies in training (logistic regression cannot fit it)."""
    return float(y[0]) if len(np.unique(y)) == 1 else None
