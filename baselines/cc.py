"""Classifier chains (Read et al., Machine Learning 2011): logistic regressions
chained in label order, each seeing the features and the earlier labels
(scikit-learn's ClassifierChain; the chain order is the dataset's label
order, a stated choice: the papers do not give theirs)."""

from __future__ import annotations

import numpy as np

from mmerbench.baselines.base import PooledBaseline
from mmerbench.registry import register


@register("cc")
class ClassifierChain(PooledBaseline):
    paper = "Classifier chains (Read et al., Machine Learning 2011)"

    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        from sklearn.multioutput import ClassifierChain as SkChain

        self.chain_ = SkChain(self._logreg(), order=None, random_state=self.seed).fit(X, Y)

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.chain_.predict_proba(X))
