"""Label powerset (Tsoumakas & Katakis, IJDWM 2007): one multinomial logistic
regression over the label sets seen in training; a label's score is the
summed probability of the sets that contain it."""

from __future__ import annotations

import numpy as np

from mmerbench.baselines.base import PooledBaseline
from mmerbench.registry import register


@register("lp")
class LabelPowerset(PooledBaseline):
    paper = "Label powerset (Tsoumakas & Katakis, IJDWM 2007)"

    def _fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        self.sets_, classes = np.unique(Y, axis=0, return_inverse=True)
        classes = classes.reshape(-1)
        if len(self.sets_) == 1:
            self.clf_ = None
        else:
            self.clf_ = self._logreg().fit(X, classes)

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.clf_ is None:
            return np.repeat(self.sets_.astype(np.float64), len(X), axis=0)
        proba = self.clf_.predict_proba(X)  # [N, n_sets], columns in clf_.classes_ order
        return proba @ self.sets_[self.clf_.classes_].astype(np.float64)
