"""Tests for mmerbench.metrics: scikit-learn / SciPy references over seeded
random cases, hand-computed edge cases, errors, and metric metadata."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from mmerbench import metrics as M
from mmerbench.errors import UnknownNameError

TOL = dict(rel=1e-12, abs=1e-12)


def assert_close(got: dict[str, float], want: dict[str, float]) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        assert isinstance(got[key], float), key
        assert got[key] == pytest.approx(value, **TOL), key


# --------------------------------------------------------------------------
# Reference adapters (scikit-learn / SciPy / the authors' NumPy formulas)
# --------------------------------------------------------------------------


def ref_multilabel(y_true, y_score, threshold, labels=None):
    p = (y_score > threshold).astype(int)
    kw = dict(y_true=y_true, y_pred=p, zero_division=0)
    out = {
        "acc": skm.jaccard_score(average="samples", **kw),
        "hamming_loss": skm.hamming_loss(y_true, p),
        "micro_f1": skm.f1_score(average="micro", **kw),
        "macro_f1": skm.f1_score(average="macro", **kw),
        "micro_precision": skm.precision_score(average="micro", **kw),
        "micro_recall": skm.recall_score(average="micro", **kw),
        "macro_precision": skm.precision_score(average="macro", **kw),
        "macro_recall": skm.recall_score(average="macro", **kw),
        "subset_acc": skm.accuracy_score(y_true, p),
    }
    if labels is not None:
        out.update(zip([f"f1_{x}" for x in labels], skm.f1_score(average=None, **kw)))
    return out


def ref_multiclass(y_true, y_score, labels=None):
    k = y_score.shape[1]
    p = y_score.argmax(axis=1)
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true"
        warnings.simplefilter("ignore")
        ua = skm.balanced_accuracy_score(y_true, p)
    names = labels if labels is not None else [str(i) for i in range(k)]
    recall = skm.recall_score(y_true, p, labels=range(k), average=None, zero_division=0)
    return {
        "wa": skm.accuracy_score(y_true, p),
        "ua": ua,
        "weighted_f1": skm.f1_score(y_true, p, average="weighted", zero_division=0),
        "macro_f1": skm.f1_score(y_true, p, average="macro", zero_division=0),
        **{f"acc_{n}": r for n, r in zip(names, recall)},
    }


def authors_multiclass_acc(preds, truths):
    # MulT / MMSA `multiclass_acc`: round both, compare.
    return np.sum(np.round(preds) == np.round(truths)) / float(len(truths))


def ref_regression(y_true, y_pred):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConstantInputWarning → NaN, ours is 0
        r = stats.pearsonr(y_true, y_pred)[0] if len(y_true) > 1 else np.nan
    non0 = np.array([i for i, e in enumerate(y_true) if e != 0], dtype=int)
    bt, bp = y_true[non0] > 0, y_pred[non0] > 0
    return {
        "mae": skm.mean_absolute_error(y_true, y_pred),
        "corr": 0.0 if np.isnan(r) else r,
        "acc7": authors_multiclass_acc(np.clip(y_pred, -3, 3), np.clip(y_true, -3, 3)),
        "acc5": authors_multiclass_acc(np.clip(y_pred, -2, 2), np.clip(y_true, -2, 2)),
        "acc2_has0": skm.accuracy_score(y_true >= 0, y_pred >= 0),
        "f1_has0": skm.f1_score(y_true >= 0, y_pred >= 0, average="weighted", zero_division=0),
        "acc2_non0": skm.accuracy_score(bt, bp) if len(non0) else 0.0,
        "f1_non0": skm.f1_score(bt, bp, average="weighted", zero_division=0) if len(non0) else 0.0,
        # MulT's eval code: predictions first, so "weighted" weights by the predicted class counts.
        "f1_non0_pred_weighted": skm.f1_score(bp, bt, average="weighted", zero_division=0) if len(non0) else 0.0,
    }


def ref_binary(y_true, y_score, threshold):
    p = y_score > threshold
    return {
        "acc": skm.accuracy_score(y_true, p),
        "f1": skm.f1_score(y_true, p, zero_division=0),
    }


# --------------------------------------------------------------------------
# Seeded random cases against the references
# --------------------------------------------------------------------------

SEEDS = [0, 1, 2, 3]


def _ml_case(seed, n, c, grid):
    rng = np.random.default_rng(seed)
    prior = rng.uniform(0.0, 0.6, size=c)
    prior[rng.integers(c)] = 0.0  # a column with no true positive
    y_true = (rng.random((n, c)) < prior).astype(np.int64)
    y_true[: max(1, n // 5)] = 0  # samples with no label
    y_score = np.clip(0.35 * y_true + rng.random((n, c)) * 0.75, 0, 1)
    if grid:  # scores on a 0.05 grid: many exactly equal to the threshold
        y_score = np.round(y_score * 20) / 20
    return y_true, y_score


# (seed, N, C); odd seeds put the scores on a 0.05 grid (ties with the threshold).
# sklearn reads a single column or a single cell as binary, not multilabel: C >= 2.
ML_CASES = [(0, 1, 4), (1, 9, 2), (2, 60, 6), (3, 300, 7), (4, 200, 6), (5, 40, 3)]


@pytest.mark.parametrize("seed,n,c", ML_CASES)
@pytest.mark.parametrize("threshold", [0.5, 0.35, 0.25, 0.0])
def test_multilabel_matches_sklearn(seed, n, c, threshold):
    y_true, y_score = _ml_case(seed, n, c, grid=seed % 2 == 1)
    labels = [f"l{j}" for j in range(c)]
    got = M.multilabel(y_true=y_true, y_score=y_score, threshold=threshold, labels=labels)
    assert_close(got, ref_multilabel(y_true, y_score, threshold, labels))


@pytest.mark.parametrize("seed", SEEDS)
def test_multilabel_dtypes_agree(seed):
    y_true, y_score = _ml_case(seed, 40, 6, grid=False)
    want = M.multilabel(y_true=y_true, y_score=y_score)
    for t, s in [
        (y_true.astype(bool), y_score),
        (y_true.astype(np.float32), y_score.astype(np.float32)),
        (y_true.tolist(), y_score.tolist()),
        (y_true.astype(np.uint8), np.asfortranarray(y_score)),
    ]:
        assert_close(M.multilabel(y_true=t, y_score=s), want)


# (seed, N, K, truth drawn from a subset of the classes)
MC_CASES = [(0, 1, 2, False), (1, 12, 4, True), (2, 200, 4, False), (3, 150, 7, True),
            (4, 300, 4, True), (5, 50, 3, False)]


@pytest.mark.parametrize("seed,n,k,subset", MC_CASES)
def test_multiclass_matches_sklearn(seed, n, k, subset):
    rng = np.random.default_rng(seed)
    classes = rng.choice(k, size=max(1, k // 2), replace=False) if subset else np.arange(k)
    y_true = rng.choice(classes, size=n)
    y_score = rng.random((n, k)) + 0.8 * np.eye(k)[y_true]
    labels = [f"c{j}" for j in range(k)]
    for lab in (None, labels):
        got = M.multiclass(y_true=y_true, y_score=y_score, labels=lab)
        assert_close(got, ref_multiclass(y_true, y_score, lab))


@pytest.mark.parametrize("seed,n", [(0, 1), (1, 2), (2, 25), (3, 400), (4, 1000), (5, 60)])
def test_regression_matches_reference(seed, n):
    rng = np.random.default_rng(seed)
    # MOSEI truths are means of annotator scores: multiples of 1/3, many 0.
    y_true = rng.integers(-10, 11, size=n) / 3.0
    y_true[rng.random(n) < 0.2] = 0.0
    y_pred = np.clip(y_true + rng.normal(0, 1.2, size=n), -3.5, 3.5)
    y_pred[rng.random(n) < 0.1] = 0.0  # exact-zero predictions
    y_pred[rng.random(n) < 0.1] = 0.5  # half-way values: round half to even
    assert_close(M.regression(y_true=y_true, y_pred=y_pred), ref_regression(y_true, y_pred))


@pytest.mark.parametrize("seed,n", [(0, 1), (1, 9), (2, 300), (3, 80)])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_binary_matches_sklearn(seed, n, threshold):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, size=n)
    y_score = np.round(np.clip(0.3 * y_true + rng.random(n) * 0.7, 0, 1) * 10) / 10
    got = M.binary(y_true=y_true, y_score=y_score, threshold=threshold)
    assert_close(got, ref_binary(y_true, y_score, threshold))


# --------------------------------------------------------------------------
# Hand-computed cases
# --------------------------------------------------------------------------


def test_multilabel_hand_3x3():
    y_true = [[1, 0, 1], [0, 1, 0], [1, 1, 0]]
    y_score = [[0.9, 0.6, 0.2], [0.1, 0.8, 0.3], [0.4, 0.7, 0.55]]
    # prediction (> 0.5):   [[1,1,0], [0,1,0], [0,1,1]]
    # Jaccard per sample:   {0,2}v{0,1}: 1/3 | {1}v{1}: 1 | {0,1}v{1,2}: 1/3 → acc 5/9
    # wrong cells: 2 + 0 + 2 = 4 of 9 → HL 4/9; exact rows: sample 2 only → 1/3
    # per label (tp,fp,fn): a (1,0,1) P1 R1/2 F2/3 | b (2,1,0) P2/3 R1 F4/5 | c (0,1,1) 0,0,0
    # micro: tp3 fp2 fn2 → P = R = F1 = 3/5
    # macro: P (1+2/3+0)/3 = 5/9, R (1/2+1+0)/3 = 1/2, F1 (2/3+4/5+0)/3 = 22/45
    got = M.multilabel(y_true=y_true, y_score=y_score, labels=["a", "b", "c"])
    assert_close(got, {
        "acc": 5 / 9, "hamming_loss": 4 / 9, "subset_acc": 1 / 3,
        "micro_f1": 3 / 5, "micro_precision": 3 / 5, "micro_recall": 3 / 5,
        "macro_f1": 22 / 45, "macro_precision": 5 / 9, "macro_recall": 1 / 2,
        "f1_a": 2 / 3, "f1_b": 4 / 5, "f1_c": 0.0,
    })


def test_multilabel_empty_truth_and_empty_prediction_scores_zero():
    # Sample 1: no label, nothing predicted → Jaccard 0 (field convention),
    # yet it is an exact match for subset accuracy. Sample 2: {a} v {a} → 1.
    got = M.multilabel(y_true=[[0, 0], [1, 0]], y_score=[[0.1, 0.2], [0.9, 0.1]])
    assert got["acc"] == pytest.approx(0.5)
    assert got["subset_acc"] == pytest.approx(1.0)
    assert got["hamming_loss"] == 0.0
    # Label b: no true and no predicted positive → F1 0 (zero_division=0).
    assert got["macro_f1"] == pytest.approx(0.5)
    assert got["micro_f1"] == pytest.approx(1.0)


def test_multilabel_all_empty_is_zero_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = M.multilabel(y_true=np.zeros((4, 3)), y_score=np.zeros((4, 3)))
    assert got["acc"] == 0.0 and got["micro_f1"] == 0.0 and got["macro_f1"] == 0.0
    assert got["subset_acc"] == 1.0 and got["hamming_loss"] == 0.0


def test_multilabel_empty_truth_with_prediction():
    # Sample 1: truth {} pred {a} → 0/1 = 0; sample 2: {a} v {a} → 1.
    # label a: tp1 fp1 fn0 → P 1/2, R 1, F1 2/3; label b empty → 0.
    got = M.multilabel(y_true=[[0, 0], [1, 0]], y_score=[[0.9, 0.1], [0.9, 0.1]])
    assert got["acc"] == pytest.approx(0.5)
    assert got["micro_precision"] == pytest.approx(0.5)
    assert got["micro_recall"] == pytest.approx(1.0)
    assert got["micro_f1"] == pytest.approx(2 / 3)
    assert got["macro_f1"] == pytest.approx(1 / 3)


def test_precision_and_recall_not_swapped():
    # TAILOR/CARAT bug: get_metrics(pred, label) against (label, pred).
    # One FP, three FN: precision = 2/3, recall = 2/5.
    y_true = [[1, 1, 1, 0], [1, 1, 1, 0]]
    y_score = [[0.9, 0.9, 0.1, 0.9], [0.1, 0.1, 0.1, 0.1]]
    got = M.multilabel(y_true=y_true, y_score=y_score)
    assert got["micro_precision"] == pytest.approx(2 / 3)
    assert got["micro_recall"] == pytest.approx(2 / 6)
    # per label (tp,fp,fn): (1,0,1) (1,0,1) (0,0,2) (0,1,0)
    assert got["macro_precision"] == pytest.approx((1 + 1 + 0 + 0) / 4)
    assert got["macro_recall"] == pytest.approx((0.5 + 0.5 + 0 + 0) / 4)


def test_threshold_is_strict():
    y_true = [[1, 0], [0, 1]]
    at = [[0.5, 0.5], [0.5, 0.5]]  # exactly at 0.5 → nothing predicted
    assert M.multilabel(y_true=y_true, y_score=at)["micro_recall"] == 0.0
    assert M.multilabel(y_true=y_true, y_score=at, threshold=0.4999)["micro_recall"] == 1.0
    got = M.multilabel(y_true=[[1]], y_score=[[0.35]], threshold=0.35)  # TAILOR's rule
    assert got["acc"] == 0.0
    assert M.binary(y_true=[1, 0], y_score=[0.5, 0.2])["acc"] == 0.5
    assert M.binary(y_true=[1, 0], y_score=[0.5, 0.2], threshold=0.2)["acc"] == 1.0
    # Logits with threshold 0: a score of exactly 0 is negative.
    assert M.binary(y_true=[1, 0], y_score=[1e-9, 0.0], threshold=0)["f1"] == 1.0


def test_multiclass_hand():
    # truth [0,0,1,2]; argmax [0,1,1,1] (row 0 is a tie: first column wins);
    # class 3 never occurs in truth nor prediction.
    y_score = [[0.5, 0.5, 0, 0], [0.1, 0.6, 0.3, 0], [0, 1, 0, 0], [0.2, 0.5, 0.3, 0]]
    got = M.multiclass(y_true=[0, 0, 1, 2], y_score=y_score, labels=["n", "h", "s", "a"])
    # recall: 1/2, 1, 0 (class 3 absent → 0); UA over present {0,1,2} = 1/2
    # F1: c0 (1,0,1) 2/3, c1 (1,2,0) 1/2, c2 (0,0,1) 0
    # weighted = (2·2/3 + 1·1/2 + 1·0)/4 = 11/24; macro over {0,1,2} = 7/18
    assert_close(got, {
        "wa": 0.5, "ua": 0.5, "weighted_f1": 11 / 24, "macro_f1": 7 / 18,
        "acc_n": 0.5, "acc_h": 1.0, "acc_s": 0.0, "acc_a": 0.0,
    })


def test_regression_hand_zero_truth_handling():
    y_true = [-1.0, 0.0, 0.0, 2.0, 1.0]
    y_pred = [-0.5, 0.3, -0.2, 0.0, 1.4]
    got = M.regression(y_true=y_true, y_pred=y_pred)
    # has0 (>= 0): truth FTTTT, pred FTFTT → 4/5.
    #   F1 non-neg (tp3 fp0 fn1) 6/7, neg (tp1 fp1 fn0) 2/3 → (4·6/7 + 1·2/3)/5 = 86/105
    # non0: drop the two zero truths → truth [-1, 2, 1] > 0: FTT; pred
    #   [-0.5, 0.0, 1.4] > 0: FFT (a prediction of exactly 0 is negative) → 2/3.
    #   F1 pos (tp1 fp0 fn1) 2/3, neg (tp1 fp1 fn0) 2/3 → 2/3
    # acc7: round(pred) = [-0., 0, -0., 0, 1] (half to even: -0.5 → -0) vs
    #   [-1, 0, 0, 2, 1] → 3/5; same for acc5. MAE = (.5+.3+.2+2+.4)/5 = 0.68.
    assert got["acc2_has0"] == pytest.approx(4 / 5)
    assert got["f1_has0"] == pytest.approx(86 / 105)
    assert got["acc2_non0"] == pytest.approx(2 / 3)
    assert got["f1_non0"] == pytest.approx(2 / 3)
    assert got["acc7"] == pytest.approx(3 / 5)
    assert got["acc5"] == pytest.approx(3 / 5)
    assert got["mae"] == pytest.approx(0.68)


def test_pred_weighted_f1_weights_by_the_predicted_class_counts():
    # non0 truth > 0: T T T F, pred > 0: T T F F → tp 2, fp 0, fn 1, tn 1.
    # F1 pos = 4/5, F1 neg = 2/3. Truth counts (3, 1): (3·4/5 + 1·2/3)/4 = 23/30;
    # predicted counts (2, 2): (2·4/5 + 2·2/3)/4 = 11/15.
    y_true, y_pred = [1.0, 2.0, 0.5, -1.0, 0.0], [0.4, 1.0, -0.3, -2.0, 1.0]
    got = M.regression(y_true=y_true, y_pred=y_pred)
    assert got["f1_non0"] == pytest.approx(23 / 30)
    assert got["f1_non0_pred_weighted"] == pytest.approx(11 / 15)
    bt, bp = np.array(y_true[:4]) > 0, np.array(y_pred[:4]) > 0
    assert got["f1_non0_pred_weighted"] == pytest.approx(skm.f1_score(bp, bt, average="weighted"))
    assert got["f1_non0"] == pytest.approx(skm.f1_score(bt, bp, average="weighted"))
    # One predicted class: the other class has weight 0 whatever its F1.
    one = M.regression(y_true=[1.0, -1.0, -2.0], y_pred=[1.0, 1.0, 2.0])
    assert one["f1_non0_pred_weighted"] == pytest.approx(skm.f1_score([1, 1, 1], [1, 0, 0], average="weighted"))
    assert one["f1_non0_pred_weighted"] == pytest.approx(0.5) and one["f1_non0"] == pytest.approx(1 / 6)


def test_regression_clipping():
    # acc7 clips to [-3, 3], acc5 to [-2, 2] before rounding.
    got = M.regression(y_true=[3.0, -2.0], y_pred=[4.2, -2.6])
    assert got["acc7"] == 0.5  # 3 == 3; -2 != round(-2.6) = -3
    assert got["acc5"] == 1.0  # 2 == 2; -2 == -2


def test_regression_all_zero_truth_and_constant_inputs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConstantInputWarning, no divide warning
        got = M.regression(y_true=[0.0, 0.0, 0.0], y_pred=[0.5, -0.2, 0.1])
        assert got["acc2_non0"] == 0.0 and got["f1_non0"] == 0.0 and got["f1_non0_pred_weighted"] == 0.0
        assert got["corr"] == 0.0
        # 0.1 * 3: the mean is not exactly 0.1; still constant → 0.0.
        assert M.regression(y_true=[0.3, -1.0, 2.0], y_pred=[0.1, 0.1, 0.1])["corr"] == 0.0
        assert M.regression(y_true=[1.0], y_pred=[2.0])["corr"] == 0.0
    perfect = M.regression(y_true=[-1.0, 0.0, 2.0], y_pred=[-2.0, 0.0, 4.0])
    assert perfect["corr"] == pytest.approx(1.0)


def test_binary_hand():
    # tp1 fp1 fn1 tn1 → acc 1/2, F1 1/2; no positive predicted → F1 0.
    assert_close(M.binary(y_true=[1, 1, 0, 0], y_score=[0.9, 0.1, 0.8, 0.2]), {"acc": 0.5, "f1": 0.5})
    assert M.binary(y_true=[1, 0], y_score=[0.1, 0.1])["f1"] == 0.0


def test_compute_dispatches():
    rng = np.random.default_rng(0)
    t, s = _ml_case(0, 20, 4, grid=False)
    assert M.compute("multilabel", y_true=t, y_score=s, threshold=0.3) == M.multilabel(
        y_true=t, y_score=s, threshold=0.3
    )
    yt, yp = rng.normal(size=20), rng.normal(size=20)
    assert M.compute("regression", y_true=yt, y_score=yp) == M.regression(y_true=yt, y_pred=yp)
    sc = rng.random((20, 3))
    assert M.compute("multiclass", y_true=sc.argmax(1), y_score=sc)["wa"] == 1.0
    assert M.compute("binary", y_true=[1, 0], y_score=[0.9, 0.1])["acc"] == 1.0
    with pytest.raises(ValueError, match="Expected `task`"):
        M.compute("ranking", y_true=t, y_score=s)


def test_array_like_objects_are_accepted():
    # What a CPU torch tensor offers numpy (torch is not imported: it is slow).
    class Tensorish:
        def __init__(self, a):
            self.a = np.asarray(a)

        def __array__(self, dtype=None, copy=None):
            return self.a

    class NeedsDetach:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("Can't call numpy() on Tensor that requires grad.")

    t, s = _ml_case(1, 10, 3, grid=False)
    assert M.multilabel(y_true=Tensorish(t), y_score=Tensorish(s)) == M.multilabel(y_true=t, y_score=s)
    with pytest.raises(ValueError, match=r"Expected `y_score` to be .*detach"):
        M.multilabel(y_true=t, y_score=NeedsDetach())


@pytest.mark.slow  # importing torch takes seconds
def test_torch_cpu_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    t, s = _ml_case(1, 10, 3, grid=False)
    want = M.multilabel(y_true=t, y_score=s)
    assert M.multilabel(y_true=torch.from_numpy(t), y_score=torch.from_numpy(s).float()) == pytest.approx(want)
    with pytest.raises(ValueError, match=r"Expected `y_score` to be .*detach"):
        M.multilabel(y_true=t, y_score=torch.from_numpy(s).requires_grad_())


def test_inputs_not_modified():
    t, s = _ml_case(2, 10, 3, grid=False)
    t0, s0 = t.copy(), s.copy()
    M.multilabel(y_true=t, y_score=s)
    np.testing.assert_array_equal(t, t0)
    np.testing.assert_array_equal(s, s0)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

T2 = [[1, 0], [0, 1]]
S2 = [[0.9, 0.1], [0.2, 0.8]]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: M.multilabel(y_true=T2, y_score=[[0.9, 0.1, 0.3], [0.2, 0.8, 0.1]]), "`y_score` to be of the same shape"),
        (lambda: M.multilabel(y_true=T2, y_score=[[np.nan, 0.1], [0.2, 0.8]]), "`y_score` to be finite"),
        (lambda: M.multilabel(y_true=T2, y_score=[[np.inf, 0.1], [0.2, 0.8]]), "`y_score` to be finite"),
        (lambda: M.multilabel(y_true=np.zeros((0, 2)), y_score=np.zeros((0, 2))), "`y_true` to be a non-empty"),
        (lambda: M.multilabel(y_true=[[2, 0], [0, 1]], y_score=S2), r"`y_true` to be binary.*\[2\]"),
        (lambda: M.multilabel(y_true=[[0.5, 0], [0, 1]], y_score=S2), "`y_true` to be binary"),
        (lambda: M.multilabel(y_true=[1, 0], y_score=[0.9, 0.1]), "`y_true` to be a 2-D array"),
        (lambda: M.multilabel(y_true=T2, y_score=[["a", "b"], ["c", "d"]]), "`y_score` to be a numeric"),
        (lambda: M.multilabel(y_true=T2, y_score=[[0.1], [0.2, 0.3]]), "`y_score` to be an array-like"),
        (lambda: M.multilabel(y_true=T2, y_score=S2, threshold=np.nan), "`threshold` to be a finite"),
        (lambda: M.multilabel(y_true=T2, y_score=S2, threshold="0.5"), "`threshold`"),
        (lambda: M.multilabel(y_true=T2, y_score=S2, labels=["a"]), "`labels` to be a sequence of 2"),
        (lambda: M.multilabel(y_true=T2, y_score=S2, labels=["a", "a"]), "`labels` to be unique"),
        (lambda: M.multilabel(y_true=T2, y_score=S2, labels="ab"), "`labels`"),
        (lambda: M.multiclass(y_true=[0, 1, 1], y_score=S2), r"`y_true` to be of shape \(2,\)"),
        (lambda: M.multiclass(y_true=[0, 2], y_score=S2), r"`y_true` to be class indices in \[0, 2\)"),
        (lambda: M.multiclass(y_true=[0, -1], y_score=S2), "`y_true` to be class indices"),
        (lambda: M.multiclass(y_true=[0, 0.5], y_score=S2), "`y_true` to be integer"),
        (lambda: M.multiclass(y_true=[0, 1], y_score=[0.2, 0.8]), "`y_score` to be a 2-D"),
        (lambda: M.multiclass(y_true=[0, 0], y_score=[[1.0], [2.0]]), "K >= 2"),
        (lambda: M.multiclass(y_true=[0, 1], y_score=[[np.nan, 0], [0, 1]]), "`y_score` to be finite"),
        (lambda: M.multiclass(y_true=[], y_score=np.zeros((0, 3))), "non-empty"),
        (lambda: M.regression(y_true=[0.1, 0.2], y_pred=[0.1]), "`y_pred` to be of the same shape"),
        (lambda: M.regression(y_true=[0.1, np.nan], y_pred=[0.1, 0.2]), "`y_true` to be finite"),
        (lambda: M.regression(y_true=[0.1, 0.2], y_pred=[0.1, -np.inf]), "`y_pred` to be finite"),
        (lambda: M.regression(y_true=[[0.1], [0.2]], y_pred=[[0.1], [0.2]]), "`y_true` to be a 1-D"),
        (lambda: M.regression(y_true=[], y_pred=[]), "non-empty"),
        (lambda: M.binary(y_true=[0, 2], y_score=[0.1, 0.2]), "`y_true` to be binary"),
        (lambda: M.binary(y_true=[0, 1], y_score=[0.1, np.nan]), "`y_score` to be finite"),
        (lambda: M.binary(y_true=[0, 1], y_score=[0.1, 0.2, 0.3]), "same shape"),
        (lambda: M.binary(y_true=[], y_score=[]), "non-empty"),  # no metric over an empty split, any task
    ],
)
def test_invalid_input_raises(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert str(info.value).startswith("Expected `")
    assert ", but got " in str(info.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda: M.multilabel(T2, S2),
        lambda: M.multiclass([0, 1], S2),
        lambda: M.regression([0.1, 0.2], [0.1, 0.2]),
        lambda: M.binary([0, 1], [0.1, 0.2]),
        lambda: M.compute("binary", [0, 1], [0.1, 0.2]),
    ],
)
def test_positional_arguments_refused(call):
    with pytest.raises(TypeError):
        call()


# --------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------


def test_direction():
    assert M.direction("hamming_loss") is False
    assert M.direction("mae") is False
    for name in ("micro_f1", "f1_happy", "acc_neutral", "ua", "corr", "f1_has0", "acc2_non0"):
        assert M.direction(name) is True, name
    assert M.metric_info("f1_happy").display == "F1 (happy)"
    assert M.metric_info("acc_neutral").task == ("multiclass",)
    for bad in ("hamming", "f1_", "acc_", "", "MAE"):
        with pytest.raises(UnknownNameError):
            M.direction(bad)
    with pytest.raises(KeyError, match="Did you mean 'micro_f1'"):
        M.direction("micro_f2")


def test_every_returned_key_has_metadata():
    t, s = _ml_case(0, 20, 3, grid=False)
    outputs = {
        "multilabel": M.multilabel(y_true=t, y_score=s, labels=["happy", "sad", "has0"]),
        "multiclass": M.multiclass(y_true=s.argmax(1), y_score=s, labels=["x", "y", "z"]),
        "regression": M.regression(y_true=s[:, 0] * 6 - 3, y_pred=s[:, 1] * 6 - 3),
        "binary": M.binary(y_true=t[:, 0], y_score=s[:, 0]),
    }
    seen = set()
    for task, out in outputs.items():
        for key in out:
            assert task in M.metric_info(key).task or key.startswith(("f1_", "acc_")), (task, key)
            seen.add(key)
    assert set(M.METRICS) <= seen
    for name, info in M.METRICS.items():
        assert info.name == name and set(info.task) <= set(M.TASKS)


def test_metadata_is_frozen():
    with pytest.raises(AttributeError):
        M.METRICS["mae"].higher_is_better = True  # type: ignore[misc]


def test_module_imports_neither_sklearn_nor_torch():
    code = (
        "import sys, mmerbench.metrics; "
        "bad = [m for m in ('sklearn', 'torch', 'scipy', 'pandas') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
