"""The label-prior score: constant predictions from the train split's marginals, scored on the test
split; checked against scikit-learn on hand-made label sets."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, hamming_loss, mean_absolute_error

from mmerbench.prior import prior_scores


class _Data:
    def __init__(self, task, labels, train, test):
        self.spec = SimpleNamespace(task=task, labels=labels)
        self._splits = {"train": SimpleNamespace(labels=np.asarray(train)),
                        "test": SimpleNamespace(labels=np.asarray(test))}

    def __getitem__(self, split):
        return self._splits[split]


def test_multilabel_prior_is_the_best_top_k_frequent_labels_on_test():
    rng = np.random.default_rng(0)
    train = (rng.random((200, 4)) < [0.7, 0.4, 0.2, 0.05]).astype(np.int8)  # frequency order 0, 1, 2, 3
    test = (rng.random((80, 4)) < [0.3, 0.6, 0.2, 0.5]).astype(np.int8)
    got = prior_scores(_Data("multilabel", list("abcd"), train, test))
    candidates = [np.tile(np.isin(np.arange(4), [0, 1, 2, 3][:k]).astype(int), (80, 1)) for k in range(5)]
    assert got["micro_f1"] == pytest.approx(max(f1_score(test, c, average="micro", zero_division=0)
                                                for c in candidates))
    assert got["macro_f1"] == pytest.approx(max(f1_score(test, c, average="macro", zero_division=0)
                                                for c in candidates))
    assert got["hamming_loss"] == pytest.approx(min(hamming_loss(test, c) for c in candidates))
    # Only the train order counts: {1, 3}, the test's most frequent pair, is not a candidate.
    pair = np.tile([0, 1, 0, 1], (80, 1))
    assert f1_score(test, pair, average="micro") > got["micro_f1"]


def test_multiclass_and_binary_prior_is_the_train_majority_class():
    train = [2] * 50 + [0] * 30 + [1] * 20
    test = [0] * 40 + [2] * 25 + [1] * 15 + [3] * 20  # the test majority (0) is not the train majority (2)
    got = prior_scores(_Data("multiclass", list("abcd"), train, test))
    const = np.full(len(test), 2)
    assert got["wa"] == pytest.approx(accuracy_score(test, const)) == 0.25
    assert got["weighted_f1"] == pytest.approx(f1_score(test, const, average="weighted", zero_division=0))
    assert got["ua"] == pytest.approx(0.25)  # a constant class recalls one class of four

    got = prior_scores(_Data("binary", ["yes"], [1, 1, 1, 0], [0, 0, 1, 0, 1]))
    assert got["acc"] == pytest.approx(0.4) and got["f1"] == pytest.approx(f1_score([0, 0, 1, 0, 1], [1] * 5))


def test_regression_prior_is_the_train_mean():
    train = np.array([1.0, 2.0, 3.0, -2.0], dtype=np.float32)
    test = np.array([0.5, -1.0, 2.5], dtype=np.float32)
    got = prior_scores(_Data("regression", ["sentiment"], train, test))
    assert got["mae"] == pytest.approx(mean_absolute_error(test, np.full(3, train.mean())))
    assert got["corr"] == 0.0  # undefined for a constant prediction: no linear relation
