"""Binary relevance (Boutell et al., Pattern Recognition 2004): one independent
logistic regression per label on pooled, standardised features (base.py)."""

from __future__ import annotations

import numpy as np

from mmerbench.baselines.base import PooledBaseline, constant_column
from mmerbench.registry import register


@register("br")
class BinaryRelevance(PooledBaseline):
    paper = "Binary relevance (Boutell et al., Pattern Recognition 2004)"

    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        self.estimators_ = []
        for k in range(Y.shape[1]):
            const = constant_column(Y[:, k])
            self.estimators_.append(const if const is not None else self._logreg().fit(X, Y[:, k]))

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        cols = [np.full(len(X), e) if isinstance(e, float) else e.predict_proba(X)[:, 1] for e in self.estimators_]
        return np.stack(cols, axis=1)
