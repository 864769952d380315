"""A linear baseline for the single-label sets: logistic regression (multi-class, binary) or ridge (regression).

The same input as BR/CC/LP (base.py): each modality's masked time-average,
concatenated and standardised on the training split. Then:

* multi-class (IEMOCAP, MSP-Improv) and binary (UR-FUNNY): L2 logistic
  regression (multinomial for more than two classes, lbfgs);
* regression (CMU-MOSI / CMU-MOSEI sentiment): ridge regression, the output
  used as the prediction (the metrics clip where theirs do).

Choices no paper makes for us: the regularisation strength is chosen on the
training split only (never on valid or test) when ``C`` / ``alpha`` is null
(the default): ridge by scikit-learn's efficient leave-one-out (``RidgeCV``)
over ``alphas``, logistic regression by 3-fold stratified cross-validation
(shuffled with the run's seed) over ``Cs``, scored by log-loss; a number
fixes it. Scores are class probabilities ``[N, C]`` (multi-class), the
positive class's probability ``[N]`` (binary, decided at the spec's
threshold) or the predicted value ``[N]`` (regression). A class absent from
the training split gets probability 0.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mmerbench.baselines.base import PooledBaseline
from mmerbench.errors import MmerbenchError
from mmerbench.registry import register

DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 13))


@register("linear")
class LinearBaseline(PooledBaseline):
    paper = "Linear baseline: logistic regression (classes) or ridge (sentiment) on pooled features"
    tasks = ("multiclass", "binary", "regression")

    def __init__(self, *, task: str = "multiclass", n_classes: int | None = None, C: float | None = None,
                 Cs: Sequence[float] = DEFAULT_CS, alpha: float | None = None,
                 alphas: Sequence[float] = DEFAULT_ALPHAS, max_iter: int = 1000, seed: int = 0) -> None:
        super().__init__(C=C, max_iter=max_iter, seed=seed)
        self.task = task
        self.n_classes = n_classes
        self.Cs = Cs
        self.alpha = alpha
        self.alphas = alphas

    @classmethod
    def for_spec(cls, spec, **hparams: Any) -> "LinearBaseline":
        if spec.task not in cls.tasks:
            raise MmerbenchError(f"'linear' handles {', '.join(cls.tasks)} datasets, not {spec.task} ones "
                                 "(use br, cc or lp).")
        k = len(spec.labels) if spec.task == "multiclass" else 2 if spec.task == "binary" else None
        return cls(task=spec.task, n_classes=k, **hparams)

    def fit(self, X: np.ndarray, Y: np.ndarray) -> "LinearBaseline":
        from sklearn.preprocessing import StandardScaler

        if self.task not in self.tasks:
            raise MmerbenchError(f"Expected `task` in {self.tasks}, but got {self.task!r}.")
        self.scaler_ = StandardScaler().fit(X)
        Xs = self.scaler_.transform(X)
        y = np.asarray(Y)
        if self.task == "regression":
            self._fit_ridge(Xs, y.astype(np.float64))
        else:
            self._fit(Xs, y.astype(np.int64))
        return self

    def _fit_ridge(self, X: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import Ridge, RidgeCV

        if self.alpha is None:
            self.model_ = RidgeCV(alphas=tuple(float(a) for a in self.alphas)).fit(X, y)
            self.alpha_ = float(self.model_.alpha_)
        else:
            self.alpha_ = float(self.alpha)
            self.model_ = Ridge(alpha=self.alpha_).fit(X, y)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV, StratifiedKFold

        k = int(self.n_classes or (y.max() + 1))
        if y.min() < 0 or y.max() >= k:
            raise MmerbenchError(f"Expected class indices in [0, {k}), but got [{y.min()}, {y.max()}].")
        self.classes_ = np.unique(y)
        self.n_classes_ = k
        if len(self.classes_) == 1:  # one class seen: it is certain
            self.model_, self.C_ = None, None
            return
        base = LogisticRegression(max_iter=int(self.max_iter), random_state=self.seed)
        folds = int(min(3, np.bincount(y)[self.classes_].min()))
        if self.C is None and folds >= 2:
            cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.seed)
            search = GridSearchCV(base, {"C": [float(c) for c in self.Cs]}, cv=cv, scoring="neg_log_loss")
            self.model_ = search.fit(X, y).best_estimator_
            self.C_ = float(search.best_params_["C"])
        else:
            self.C_ = float(self.C if self.C is not None else 1.0)
            self.model_ = base.set_params(C=self.C_).fit(X, y)

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return self.model_.predict(X).astype(np.float64)
        proba = np.zeros((len(X), self.n_classes_))
        if self.model_ is None:
            proba[:, self.classes_[0]] = 1.0
        else:
            proba[:, self.model_.classes_] = self.model_.predict_proba(X)
        return proba[:, 1] if self.task == "binary" else proba
