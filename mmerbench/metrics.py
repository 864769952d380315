"""Evaluation metrics: pure functions, NumPy in, a flat ``dict[str, float]`` out.

Every public function is keyword-only (``multilabel(y_true=..., y_score=...)``)
so that a swapped ``(pred, label)`` call cannot happen silently. That is the
bug in TAILOR's and CARAT's logs: their training scripts (``train.py``,
``main.py``) call ``get_metrics(pred, label)`` from their ``eval.py``, whose
parameters are ``(labels, predictions)``, so what they print as precision is
recall and vice versa (``mmerbench table`` compares them crossed). Each
is a short chain of private steps: validate arguments → validate and format
inputs → compute counts → reduce to floats. Inputs may be anything
``numpy.asarray`` accepts, CPU torch tensors included (torch is never
imported here). Invalid input raises ``ValueError("Expected `name` to be …,
but got …")``.

Conventions (the same as scikit-learn's with ``zero_division=0`` and the
field's code):

- Decision rule: a label / the positive class is predicted when
  ``y_score > threshold`` — strictly greater, as in TAILOR's
  ``pred > 0.35``; a score equal to the threshold is a negative.
- Multi-label Jaccard accuracy: a sample whose truth and prediction are both
  empty scores 0 (the authors' code and ``jaccard_score(average="samples",
  zero_division=0)`` agree).
- ``zero_division=0``: any precision, recall or F1 whose denominator is 0 is
  0. A multi-label column with no true and no predicted positive therefore
  counts as F1 = 0 in ``macro_f1``.
- Multi-class: the prediction is ``argmax`` over the score columns (the
  first column wins a tie). ``ua`` (and scikit-learn's
  ``balanced_accuracy_score``) averages recall over the classes present in
  ``y_true``; ``macro_f1`` averages over the classes present in ``y_true`` or
  in the prediction (scikit-learn's default label set; torchmetrics likewise
  leaves out classes with no true and no predicted sample); ``acc_<class>``
  is that class's recall, 0 for a class absent from ``y_true``.
- Sentiment (MOSI/MOSEI, scores in [-3, 3]): ``np.round`` rounds half to
  even, as the authors' code does. ``acc2_has0``: negative (< 0) vs
  non-negative (>= 0) on all samples. ``acc2_non0``: samples whose truth is 0
  are dropped; truth and prediction are positive when > 0 (so a prediction of
  exactly 0 counts as negative, as in the authors' code); 0.0 when every
  truth is 0.

Which splits a metric can score: every metric here is defined on any
non-empty split, whatever labels it lacks. A label or class with no sample
in a split is normal (a rare emotion in a small test set) and scores by the
conventions above (its F1 or recall is 0; ``ua`` averages over the classes
present), so the data layer refuses only empty splits, and these functions
refuse empty input. A metric that needs both classes of every label (a
per-label ROC-AUC, say) would have to refuse such a split itself.

Metadata: :data:`METRICS` maps each key to a :class:`MetricInfo` (display
name, direction, tasks); :func:`metric_info` and :func:`direction` also
resolve the per-label families ``f1_<label>`` and ``acc_<class>``.
"""

from __future__ import annotations

import difflib
import numbers
from dataclasses import dataclass
from typing import Any, Literal, Sequence, get_args

import numpy as np

from mmerbench.errors import UnknownNameError

__all__ = [
    "METRICS",
    "MetricInfo",
    "Task",
    "binary",
    "compute",
    "direction",
    "metric_info",
    "multiclass",
    "multilabel",
    "regression",
]

Task = Literal["multilabel", "multiclass", "regression", "binary"]
TASKS: tuple[str, ...] = get_args(Task)


# --------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricInfo:
    """What the stats and leaderboards need to know about one metric key.

    ``task`` is the tuple of tasks whose result dict carries the key (``acc``
    and ``macro_f1`` are shared by two tasks).
    """

    name: str
    display: str
    higher_is_better: bool
    task: tuple[str, ...]


def _info(name: str, display: str, *task: str, higher: bool = True) -> MetricInfo:
    return MetricInfo(name=name, display=display, higher_is_better=higher, task=task)


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        _info("acc", "Acc", "multilabel", "binary"),
        _info("hamming_loss", "HL", "multilabel", higher=False),
        _info("micro_f1", "Micro-F1", "multilabel"),
        _info("macro_f1", "Macro-F1", "multilabel", "multiclass"),
        _info("micro_precision", "Micro-P", "multilabel"),
        _info("micro_recall", "Micro-R", "multilabel"),
        _info("macro_precision", "Macro-P", "multilabel"),
        _info("macro_recall", "Macro-R", "multilabel"),
        _info("subset_acc", "Subset Acc", "multilabel"),
        _info("wa", "WA", "multiclass"),
        _info("ua", "UA", "multiclass"),
        _info("weighted_f1", "Weighted F1", "multiclass"),
        _info("mae", "MAE", "regression", higher=False),
        _info("corr", "Corr", "regression"),
        _info("acc7", "Acc-7", "regression"),
        _info("acc5", "Acc-5", "regression"),
        _info("acc2_has0", "Acc-2 (has0)", "regression"),
        _info("f1_has0", "F1 (has0)", "regression"),
        _info("acc2_non0", "Acc-2 (non0)", "regression"),
        _info("f1_non0", "F1 (non0)", "regression"),
        _info("f1_non0_pred_weighted", "F1 (non0, pred-weighted)", "regression"),
        _info("f1", "F1", "binary"),
    )
}

# Per-label families: key prefix → (display template, task). Exact names in
# METRICS win over a prefix (``f1_has0`` is a regression metric, not the F1 of
# a label named "has0"; both are higher-is-better anyway).
_FAMILIES: dict[str, tuple[str, str]] = {
    "f1_": ("F1 ({})", "multilabel"),
    "acc_": ("Acc ({})", "multiclass"),
}


def metric_info(name: str) -> MetricInfo:
    """The :class:`MetricInfo` of a result key, per-label keys included.

    Raises :class:`~mmerbench.errors.UnknownNameError` (a ``KeyError``) for a
    name that is neither registered nor of the form ``f1_<label>`` /
    ``acc_<class>``.
    """
    info = METRICS.get(name)
    if info is not None:
        return info
    if isinstance(name, str):
        for prefix, (display, task) in _FAMILIES.items():
            if name.startswith(prefix) and len(name) > len(prefix):
                return _info(name, display.format(name[len(prefix):]), task)
    known = sorted(METRICS) + [f"{p}<label>" for p in _FAMILIES]
    close = difflib.get_close_matches(str(name), sorted(METRICS), n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownNameError(f"Unknown metric {name!r}.{hint} Known: {', '.join(known)}.")


def direction(name: str) -> bool:
    """True when a higher value of metric ``name`` is better."""
    return metric_info(name).higher_is_better


# --------------------------------------------------------------------------
# Validation and formatting (private steps shared by the public functions)
# --------------------------------------------------------------------------


def _expected(name: str, what: str, got: Any) -> ValueError:
    return ValueError(f"Expected `{name}` to be {what}, but got {got}")


def _as_array(x: Any, name: str) -> np.ndarray:
    """``np.asarray`` with the module's error pattern; numeric dtypes only."""
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError, RuntimeError) as e:
        # RuntimeError: a torch tensor that requires grad; TypeError: a CUDA
        # tensor; ValueError: a ragged nested list.
        raise _expected(
            name, "an array-like numpy can convert (a CPU tensor: call .detach().cpu())",
            f"{type(x).__name__} ({e})",
        ) from None
    if arr.dtype.kind not in "biuf":
        raise _expected(name, "a numeric or boolean array", f"dtype {arr.dtype}")
    return arr


def _check_ndim(arr: np.ndarray, name: str, ndim: int, shape_doc: str) -> None:
    if arr.ndim != ndim:
        raise _expected(name, f"a {ndim}-D array of shape {shape_doc}", f"shape {arr.shape}")
    if arr.size == 0:
        raise _expected(name, f"a non-empty array of shape {shape_doc}", f"shape {arr.shape}")


def _check_finite(arr: np.ndarray, name: str) -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise _expected(name, "finite (no NaN or inf)", f"{n_bad} non-finite value(s)")


def _check_same_shape(y_true: np.ndarray, y_score: np.ndarray, score_name: str) -> None:
    if y_true.shape != y_score.shape:
        raise _expected(
            score_name, f"of the same shape as `y_true` {y_true.shape}", f"shape {y_score.shape}"
        )


def _binary_truth(y_true: Any, ndim: int, shape_doc: str) -> np.ndarray:
    """Validate a 0/1 truth array and return it as bool."""
    t = _as_array(y_true, "y_true")
    _check_ndim(t, "y_true", ndim, shape_doc)
    if t.dtype.kind == "b":
        return t
    if not ((t == 0) | (t == 1)).all():
        bad = np.unique(t[(t != 0) & (t != 1)])[:5]
        raise _expected("y_true", "binary (only 0 and 1)", f"values {bad.tolist()}")
    return t.astype(bool)


def _scores(y_score: Any, name: str, ndim: int, shape_doc: str) -> np.ndarray:
    s = _as_array(y_score, name)
    _check_ndim(s, name, ndim, shape_doc)
    _check_finite(s, name)
    return s


def _check_threshold(threshold: Any) -> float:
    if (
        isinstance(threshold, (bool, np.bool_))
        or not isinstance(threshold, numbers.Real)
        or not np.isfinite(threshold)
    ):
        raise _expected("threshold", "a finite real number", repr(threshold))
    return float(threshold)


def _check_labels(labels: Sequence[str] | None, n: int, what: str) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, str):
        raise _expected("labels", f"a sequence of {n} {what} names", f"the string {labels!r}")
    names = list(labels)
    if len(names) != n:
        raise _expected("labels", f"a sequence of {n} {what} names", f"{len(names)} names")
    if not all(isinstance(x, str) and x for x in names):
        raise _expected("labels", "non-empty strings", repr(names))
    if len(set(names)) != len(names):
        raise _expected("labels", "unique names", repr(names))
    return names


def _safe_div(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """num / den, 0 where den == 0 (zero_division=0), without warnings."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, ...]:
    """Precision, recall, F1 from counts; F1 = 2tp / (2tp + fp + fn) (= sklearn)."""
    return _safe_div(tp, tp + fp), _safe_div(tp, tp + fn), _safe_div(2 * tp, 2 * tp + fp + fn)


# --------------------------------------------------------------------------
# Multi-label
# --------------------------------------------------------------------------


def _multilabel_format(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    t = _binary_truth(y_true, 2, "[N, C]")
    s = _scores(y_score, "y_score", 2, "[N, C]")
    _check_same_shape(t, s, "y_score")
    return t, s


def _multilabel_counts(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-label ``[3, C]`` and per-sample ``[3, N]`` counts of (t∧p, p, t).

    Reductions over a short axis of a bool array are slow in NumPy (~0.1 ms
    each at 4,659 × 6), so the three indicator planes are summed with two
    matrix-vector products; float64 sums of 0/1 are exact below 2**53.
    """
    n, c = t.shape
    x = np.empty((3, n, c))
    np.logical_and(t, p, out=x[0])
    x[1] = p
    x[2] = t
    return np.ones(n) @ x, x @ np.ones(c)


def _multilabel_reduce(t: np.ndarray, p: np.ndarray, labels: list[str] | None) -> dict[str, float]:
    n, c = t.shape
    (tp_l, pred_l, true_l), (inter_s, pred_s, true_s) = _multilabel_counts(t, p)
    fp_l = pred_l - tp_l
    fn_l = true_l - tp_l
    union_s = pred_s + true_s - inter_s

    tp, fp, fn = tp_l.sum(), fp_l.sum(), fn_l.sum()
    micro_p, micro_r, micro_f1 = _prf(tp, fp, fn)
    prec_l, rec_l, f1_l = _prf(tp_l, fp_l, fn_l)
    out = {
        "acc": float(_safe_div(inter_s, union_s).mean()),  # empty ∧ empty → 0
        "hamming_loss": float((fp + fn) / (n * c)),
        "micro_f1": float(micro_f1),
        "macro_f1": float(f1_l.mean()),
        "micro_precision": float(micro_p),
        "micro_recall": float(micro_r),
        "macro_precision": float(prec_l.mean()),
        "macro_recall": float(rec_l.mean()),
        "subset_acc": float(np.count_nonzero(inter_s == union_s) / n),
    }
    if labels is not None:
        out.update({f"f1_{name}": float(v) for name, v in zip(labels, f1_l)})
    return out


def multilabel(
    *,
    y_true: Any,
    y_score: Any,
    threshold: float = 0.5,
    labels: Sequence[str] | None = None,
) -> dict[str, float]:
    """Multi-label metrics.

    Args:
        y_true: 0/1 (or bool) array ``[N, C]``.
        y_score: real scores ``[N, C]`` (probabilities, logits, anything).
        threshold: label ``j`` of sample ``i`` is predicted when
            ``y_score[i, j] > threshold`` (strict).
        labels: ``C`` label names; adds ``f1_<name>`` per label.

    Returns:
        ``acc`` (Jaccard, empty ∧ empty = 0), ``hamming_loss``, ``micro_f1``,
        ``macro_f1``, ``micro_precision``, ``micro_recall``,
        ``macro_precision``, ``macro_recall``, ``subset_acc`` and, with
        ``labels``, ``f1_<label>``.
    """
    thr = _check_threshold(threshold)
    t, s = _multilabel_format(y_true, y_score)
    names = _check_labels(labels, t.shape[1], "label")
    return _multilabel_reduce(t, s > thr, names)


# --------------------------------------------------------------------------
# Multi-class
# --------------------------------------------------------------------------


def _multiclass_format(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    s = _scores(y_score, "y_score", 2, "[N, K]")
    n, k = s.shape
    if k < 2:
        raise _expected("y_score", "of shape [N, K] with K >= 2 classes", f"shape {s.shape}")
    t = _as_array(y_true, "y_true")
    _check_ndim(t, "y_true", 1, "[N]")
    if t.shape[0] != n:
        raise _expected("y_true", f"of shape ({n},) to match `y_score` {s.shape}", f"shape {t.shape}")
    if t.dtype.kind == "f":
        _check_finite(t, "y_true")
        if not (t == np.round(t)).all():
            raise _expected("y_true", "integer class indices", "non-integer values")
    t = t.astype(np.int64)
    if t.min() < 0 or t.max() >= k:
        raise _expected(
            "y_true", f"class indices in [0, {k}) (K = y_score.shape[1])",
            f"values in [{t.min()}, {t.max()}]",
        )
    return t, s


def _multiclass_reduce(t: np.ndarray, pred: np.ndarray, k: int, labels: list[str] | None) -> dict[str, float]:
    n = t.shape[0]
    cm = np.bincount(t * k + pred, minlength=k * k).reshape(k, k)  # rows: truth
    tp = np.diagonal(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    _, recall, f1 = _prf(tp, predicted - tp, support - tp)
    in_true = support > 0
    in_either = in_true | (predicted > 0)
    names = labels if labels is not None else [str(i) for i in range(k)]
    out = {
        "wa": float(tp.sum() / n),
        "ua": float(recall[in_true].mean()),  # classes present in y_true
        "weighted_f1": float((f1 * support).sum() / n),
        "macro_f1": float(f1[in_either].mean()),  # classes in y_true or prediction
    }
    out.update({f"acc_{name}": float(r) for name, r in zip(names, recall)})
    return out


def multiclass(
    *,
    y_true: Any,
    y_score: Any,
    labels: Sequence[str] | None = None,
) -> dict[str, float]:
    """Single-label multi-class metrics (IEMOCAP / MSP-Improv 4-class).

    Args:
        y_true: class indices ``[N]`` in ``[0, K)``.
        y_score: scores ``[N, K]``; the prediction is the argmax (first
            column on a tie).
        labels: ``K`` class names for the ``acc_<class>`` keys (default: the
            column index).

    Returns:
        ``wa`` (accuracy), ``ua`` (mean recall over classes present in
        ``y_true``), ``weighted_f1``, ``macro_f1`` (over classes present in
        ``y_true`` or the prediction), ``acc_<class>`` (per-class recall) for
        every column.
    """
    t, s = _multiclass_format(y_true, y_score)
    k = s.shape[1]
    names = _check_labels(labels, k, "class")
    return _multiclass_reduce(t, s.argmax(axis=1), k, names)


# --------------------------------------------------------------------------
# Regression (sentiment) and binary
# --------------------------------------------------------------------------


def _binary_counts(t: np.ndarray, p: np.ndarray) -> tuple[int, int, int, int]:
    tp = int(np.count_nonzero(t & p))
    n_true = int(np.count_nonzero(t))
    n_pred = int(np.count_nonzero(p))
    return tp, n_pred - tp, n_true - tp, t.shape[0]


def _binary_acc_f1(t: np.ndarray, p: np.ndarray) -> tuple[float, float, float, float]:
    """Accuracy, positive-class F1, F1 weighted by the true class counts (support) and F1
    weighted by the predicted class counts, of a 0/1 problem."""
    tp, fp, fn, n = _binary_counts(t, p)
    if n == 0:
        return 0.0, 0.0, 0.0, 0.0
    tn = n - tp - fp - fn
    f1_pos = float(_safe_div(2 * tp, 2 * tp + fp + fn))
    f1_neg = float(_safe_div(2 * tn, 2 * tn + fn + fp))  # negatives: roles of fp/fn swap
    weighted = (f1_pos * (tp + fn) + f1_neg * (tn + fp)) / n
    pred_weighted = (f1_pos * (tp + fp) + f1_neg * (tn + fn)) / n
    return (tp + tn) / n, f1_pos, float(weighted), float(pred_weighted)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    # A constant input has no correlation; scipy returns NaN with a warning,
    # we return 0.0 quietly. Compare to the first element, not the mean (the
    # mean of a constant float array need not equal its elements).
    if (x == x[0]).all() or (y == y[0]).all():
        return 0.0
    dx = x - x.mean()
    dy = y - y.mean()
    r = np.dot(dx, dy) / np.sqrt(np.dot(dx, dx) * np.dot(dy, dy))
    return float(np.clip(r, -1.0, 1.0))


def _regression_format(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = _scores(y_true, "y_true", 1, "[N]").astype(np.float64, copy=False)
    p = _scores(y_pred, "y_pred", 1, "[N]").astype(np.float64, copy=False)
    _check_same_shape(t, p, "y_pred")
    return t, p


def regression(*, y_true: Any, y_pred: Any) -> dict[str, float]:
    """Sentiment-regression metrics (CMU-MOSI / CMU-MOSEI, values in [-3, 3]).

    Returns:
        ``mae``, ``corr`` (Pearson r; 0.0 when either input is constant),
        ``acc7`` (``round(clip(x, -3, 3))`` equality), ``acc5`` (clip to
        [-2, 2], then round), ``acc2_has0`` / ``f1_has0`` (negative < 0 vs
        non-negative >= 0, all samples; weighted F1), ``acc2_non0`` /
        ``f1_non0`` (truth == 0 dropped, positive means > 0; weighted F1),
        ``f1_non0_pred_weighted`` (the same F1 per class, weighted by the
        *predicted* class counts instead of the true ones).

    ``f1_non0_pred_weighted`` is the number MulT's evaluation code (and MISA's,
    which copies it) prints as "F1": it calls scikit-learn's ``f1_score`` with
    the predictions where the truths belong, and with ``average="weighted"`` the
    per-class F1 (symmetric in its two arguments) is then weighted by how often
    each class was predicted. It equals
    ``sklearn.metrics.f1_score(y_pred > 0, y_true > 0, average="weighted")`` on
    the non-zero truths; use it to compare with numbers from that code.
    """
    t, p = _regression_format(y_true, y_pred)
    acc2_has0, _, f1_has0, _ = _binary_acc_f1(t >= 0, p >= 0)
    keep = t != 0
    acc2_non0, _, f1_non0, f1_non0_pred_weighted = _binary_acc_f1(t[keep] > 0, p[keep] > 0)
    return {
        "mae": float(np.abs(t - p).mean()),
        "corr": _pearson(t, p),
        "acc7": float(np.mean(np.round(np.clip(t, -3, 3)) == np.round(np.clip(p, -3, 3)))),
        "acc5": float(np.mean(np.round(np.clip(t, -2, 2)) == np.round(np.clip(p, -2, 2)))),
        "acc2_has0": float(acc2_has0),
        "f1_has0": f1_has0,
        "acc2_non0": float(acc2_non0),
        "f1_non0": f1_non0,
        "f1_non0_pred_weighted": f1_non0_pred_weighted,
    }


def binary(*, y_true: Any, y_score: Any, threshold: float = 0.5) -> dict[str, float]:
    """Binary metrics (e.g. UR-FUNNY humour).

    Args:
        y_true: 0/1 (or bool) array ``[N]``.
        y_score: scores ``[N]``; positive when ``y_score > threshold`` (strict).

    Returns:
        ``acc`` and ``f1`` (F1 of the positive class, 0 when undefined).
    """
    thr = _check_threshold(threshold)
    t = _binary_truth(y_true, 1, "[N]")
    s = _scores(y_score, "y_score", 1, "[N]")
    _check_same_shape(t, s, "y_score")
    acc, f1, _, _ = _binary_acc_f1(t, s > thr)
    return {"acc": float(acc), "f1": f1}


# --------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------


def compute(
    task: Task,
    *,
    y_true: Any,
    y_score: Any,
    threshold: float = 0.5,
    labels: Sequence[str] | None = None,
) -> dict[str, float]:
    """The metrics of ``task`` (a DatasetSpec's task name).

    ``threshold`` is used by ``multilabel`` and ``binary``, ``labels`` by
    ``multilabel`` and ``multiclass``; each is ignored by the other tasks.
    For ``regression``, ``y_score`` holds the predicted values.
    """
    if task == "multilabel":
        return multilabel(y_true=y_true, y_score=y_score, threshold=threshold, labels=labels)
    if task == "multiclass":
        return multiclass(y_true=y_true, y_score=y_score, labels=labels)
    if task == "regression":
        return regression(y_true=y_true, y_pred=y_score)
    if task == "binary":
        return binary(y_true=y_true, y_score=y_score, threshold=threshold)
    raise _expected("task", f"one of {', '.join(map(repr, TASKS))}", repr(task))
