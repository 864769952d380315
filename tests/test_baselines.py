"""BR, CC and LP: the scikit-learn estimator contract and what each one computes."""

from __future__ import annotations

import numpy as np
import pytest

from mmerbench.baselines.base import pooled_features
from mmerbench.data.dataset import Split
from mmerbench.registry import get_method


def _toy(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8)) * 5 + 3
    Y = np.stack([X[:, 0] > 3, (X[:, 1] + X[:, 0]) > 6, X[:, 2] > 8], 1).astype(np.int8)
    return X, Y


@pytest.mark.parametrize("name", ["br", "cc", "lp"])
def test_estimator_contract(name):
    X, Y = _toy()
    est = get_method(name)(C=1.0, seed=0)
    assert not [k for k in vars(est) if k.endswith("_")]  # __init__ stores hyperparameters only
    assert est.fit(X, Y) is est
    P = est.predict_proba(X)
    assert P.shape == Y.shape and np.all((P >= 0) & (P <= 1))
    acc = ((P > 0.5) == Y).mean()
    assert acc > 0.85, acc  # separable toy labels are learned


def test_br_matches_independent_logistic_regressions():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, Y = _toy()
    P = get_method("br")(seed=0).fit(X, Y).predict_proba(X)
    Xs = StandardScaler().fit_transform(X)
    for k in range(Y.shape[1]):
        ref = LogisticRegression(max_iter=1000).fit(Xs, Y[:, k]).predict_proba(Xs)[:, 1]
        np.testing.assert_allclose(P[:, k], ref, rtol=1e-6)


def test_lp_scores_are_marginals_of_label_sets():
    X, Y = _toy()
    lp = get_method("lp")(seed=0).fit(X, Y)
    proba = lp.clf_.predict_proba(lp.scaler_.transform(X))
    sets = lp.sets_[lp.clf_.classes_]
    np.testing.assert_allclose(lp.predict_proba(X)[:, 0], proba[:, sets[:, 0] == 1].sum(1))
    assert len(lp.sets_) == len(np.unique(Y, axis=0))


def test_constant_label_column_is_handled():
    X, Y = _toy()
    Y[:, 2] = 0
    for name in ("br", "lp"):
        P = get_method(name)(seed=0).fit(X, Y).predict_proba(X)
        assert np.allclose(P[:, 2], 0)


def test_pooled_features_average_real_steps_only():
    x = np.zeros((2, 4, 2), dtype=np.float32)
    x[0, :2] = [[1, 2], [3, 4]]
    x[1, :] = 5
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=bool)
    split = Split(inputs={"a": x, "b": x * 2}, masks={"a": mask, "b": mask}, labels=np.zeros((2, 1)), ids=np.array(["p", "q"]))
    f = pooled_features(split, ["a", "b"], chunk=1)
    np.testing.assert_allclose(f, [[2, 3, 4, 6], [5, 5, 10, 10]])
    empty = Split(inputs={"a": x}, masks={"a": np.zeros_like(mask)}, labels=np.zeros((2, 1)), ids=np.array(["p", "q"]))
    np.testing.assert_array_equal(pooled_features(empty, ["a"]), 0)
