"""Per sample: every metric as per-sample counts, so that a resample costs one matrix product.

Also the validated inputs shared by the per-sample tests (:class:`_Paired`)."""

from __future__ import annotations

import difflib
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from mmerbench import metrics as metricslib
from mmerbench.stats.checks import _SCORE_NDIM, _expected
from mmerbench.stats.verdicts import StatsError

# Elements of one bootstrap index chunk (int64): bounds memory at ~16 MB per array.
_CHUNK_ELEMENTS = 2_000_000


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den == 0 (the metrics module's zero_division=0)."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    return np.divide(num, den, out=np.zeros(num.shape), where=den != 0)


@dataclass(frozen=True)
class _Counted:
    """A metric as per-sample contributions and a reduction of their column sums.

    ``features[s]`` is system s's ``[N, k]`` matrix; for any sample weights
    w (bootstrap counts, or a swap mask folded into the sums), the metric of
    the weighted sample set is ``reduce(w @ features[s])``. ``fragile`` marks
    sums whose reduction would lose precision (a near-constant Pearson
    input); those rows are recomputed with the metrics module itself.
    """

    features: list[np.ndarray]
    reduce: Callable[[np.ndarray], np.ndarray]
    fragile: Callable[[np.ndarray], np.ndarray] | None = None


def _prf_sums(tp: np.ndarray, pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # F1 = 2tp / (2tp + fp + fn) and 2tp + fp + fn = pred + true exactly.
    return _div(tp, pred), _div(tp, true), _div(2 * tp, pred + true)


def _binary_reduce(s: np.ndarray, what: str) -> np.ndarray:
    """acc / weighted F1 / positive F1 from sums of (t∧p, t, p, n)."""
    tp, nt, npred, n = s[:, 0], s[:, 1], s[:, 2], s[:, 3]
    fp, fn = npred - tp, nt - tp
    tn = n - tp - fp - fn
    f1_pos = _div(2 * tp, 2 * tp + fp + fn)
    if what == "acc":
        return _div(tp + tn, n)
    if what == "f1":
        return f1_pos
    f1_neg = _div(2 * tn, 2 * tn + fn + fp)
    if what == "pred_weighted":  # MulT's f1_score(preds, truths, average="weighted"): weights by predicted class
        return _div(f1_pos * npred + f1_neg * (n - npred), n)
    return _div(f1_pos * (tp + fn) + f1_neg * (tn + fp), n)


def _label_index(metric: str, prefix: str, labels: Sequence[str] | None, k: int, what: str) -> int:
    names = list(labels) if labels is not None else [str(i) for i in range(k)]
    name = metric[len(prefix):]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = f" Did you mean {prefix + close[0]!r}?" if close else ""
        raise StatsError(f"Unknown {what} {name!r} in metric {metric!r}.{hint} The {what}s are: {', '.join(names)}.")
    return names.index(name)


def _counted_multilabel(metric: str, y_true: np.ndarray, preds: list[np.ndarray], labels) -> _Counted:
    t = y_true.astype(bool)
    n, c = t.shape
    ones = np.ones((n, 1))
    if metric in ("micro_f1", "micro_precision", "micro_recall"):
        feats = [np.stack([(t & p).sum(1), p.sum(1), t.sum(1)], axis=1).astype(np.float64) for p in preds]
        which = {"micro_precision": 0, "micro_recall": 1, "micro_f1": 2}[metric]
        return _Counted(feats, lambda s: _prf_sums(s[:, 0], s[:, 1], s[:, 2])[which])
    if metric in ("macro_f1", "macro_precision", "macro_recall"):
        feats = [np.hstack([t & p, p, t]).astype(np.float64) for p in preds]
        which = {"macro_precision": 0, "macro_recall": 1, "macro_f1": 2}[metric]
        return _Counted(feats, lambda s: _prf_sums(s[:, :c], s[:, c:2 * c], s[:, 2 * c:])[which].mean(axis=1))
    if metric.startswith("f1_") and metric not in metricslib.METRICS:
        j = _label_index(metric, "f1_", labels, c, "label")
        feats = [np.stack([t[:, j] & p[:, j], p[:, j], t[:, j]], axis=1).astype(np.float64) for p in preds]
        return _Counted(feats, lambda s: _prf_sums(s[:, 0], s[:, 1], s[:, 2])[2])
    if metric == "acc":  # Jaccard: mean over samples of |t∧p| / |t∨p| (empty ∧ empty → 0)
        feats = [np.hstack([_div((t & p).sum(1), (t | p).sum(1))[:, None], ones]) for p in preds]
        return _Counted(feats, lambda s: _div(s[:, 0], s[:, 1]))
    if metric == "hamming_loss":
        feats = [np.hstack([(t ^ p).sum(1, keepdims=True), ones]).astype(np.float64) for p in preds]
        return _Counted(feats, lambda s: _div(s[:, 0], s[:, 1] * c))
    if metric == "subset_acc":
        feats = [np.hstack([(t == p).all(1, keepdims=True), ones]).astype(np.float64) for p in preds]
        return _Counted(feats, lambda s: _div(s[:, 0], s[:, 1]))
    raise StatsError(f"Metric {metric!r} has no multilabel form.")


def _counted_multiclass(metric: str, y_true: np.ndarray, preds: list[np.ndarray], k: int, labels) -> _Counted:
    t = y_true.astype(np.int64)
    eye = np.eye(k)
    onehot_t = eye[t]
    ones = np.ones((len(t), 1))

    def per_class(p):  # tp_k, predicted_k, support_k
        return np.hstack([onehot_t * (p == t)[:, None], eye[p], onehot_t])

    if metric == "wa":
        return _Counted([np.hstack([(p == t)[:, None].astype(np.float64), ones]) for p in preds],
                        lambda s: _div(s[:, 0], s[:, 1]))
    feats = [per_class(p) for p in preds]
    tp, pr, sup = (lambda s: s[:, :k]), (lambda s: s[:, k:2 * k]), (lambda s: s[:, 2 * k:])
    if metric == "ua":  # mean recall over the classes present in the (resampled) truth
        def reduce(s):
            present = sup(s) > 0
            return _div((_div(tp(s), sup(s)) * present).sum(1), present.sum(1))
        return _Counted(feats, reduce)
    if metric == "weighted_f1":
        return _Counted(feats, lambda s: _div((_prf_sums(tp(s), pr(s), sup(s))[2] * sup(s)).sum(1), sup(s).sum(1)))
    if metric == "macro_f1":  # over classes in the truth or the prediction
        def reduce(s):
            either = (sup(s) > 0) | (pr(s) > 0)
            return _div((_prf_sums(tp(s), pr(s), sup(s))[2] * either).sum(1), either.sum(1))
        return _Counted(feats, reduce)
    if metric.startswith("acc_") and metric not in metricslib.METRICS:
        j = _label_index(metric, "acc_", labels, k, "class")
        return _Counted(feats, lambda s: _div(tp(s)[:, j], sup(s)[:, j]))
    raise StatsError(f"Metric {metric!r} has no multiclass form.")


def _counted_binary_like(metric: str, t: np.ndarray, preds: list[np.ndarray], keep: np.ndarray | None) -> _Counted:
    kp = np.ones(len(t), dtype=bool) if keep is None else keep
    feats = [np.stack([kp & t & p, kp & t, kp & p, kp], axis=1).astype(np.float64) for p in preds]
    what = {"acc": "acc", "f1": "f1", "f1_non0_pred_weighted": "pred_weighted"}.get(metric, "weighted")
    if metric.startswith("acc2"):
        what = "acc"
    return _Counted(feats, lambda s: _binary_reduce(s, what))


def _counted_regression(metric: str, y_true: np.ndarray, preds: list[np.ndarray]) -> _Counted:
    t = y_true.astype(np.float64)
    ones = np.ones((len(t), 1))
    if metric == "mae":
        return _Counted([np.hstack([np.abs(t - p)[:, None], ones]) for p in preds], lambda s: _div(s[:, 0], s[:, 1]))
    if metric in ("acc7", "acc5"):
        lim = 3 if metric == "acc7" else 2
        rt = np.round(np.clip(t, -lim, lim))
        feats = [np.hstack([(rt == np.round(np.clip(p, -lim, lim)))[:, None].astype(np.float64), ones]) for p in preds]
        return _Counted(feats, lambda s: _div(s[:, 0], s[:, 1]))
    if metric in ("acc2_has0", "f1_has0"):
        return _counted_binary_like(metric, t >= 0, [p >= 0 for p in preds], None)
    if metric in ("acc2_non0", "f1_non0", "f1_non0_pred_weighted"):
        return _counted_binary_like(metric, t > 0, [p > 0 for p in preds], t != 0)
    if metric == "corr":
        # Centre on shared constants (Pearson r is shift-invariant) to keep the
        # sums well conditioned; one constant for every system keeps swaps linear.
        x = t - t.mean()
        pool = np.concatenate(preds)
        my = pool.mean()
        ys = [p - my for p in preds]
        var_x = float(np.mean(x * x))
        var_y = float(np.mean((pool - my) ** 2))
        feats = [np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1) for y in ys]

        def central(s):
            n = s[:, 0]
            sxx = s[:, 3] - _div(s[:, 1] ** 2, n)
            syy = s[:, 4] - _div(s[:, 2] ** 2, n)
            sxy = s[:, 5] - _div(s[:, 1] * s[:, 2], n)
            return n, sxx, syy, sxy

        def reduce(s):
            _, sxx, syy, sxy = central(s)
            den = np.sqrt(np.maximum(sxx, 0) * np.maximum(syy, 0))
            return np.clip(_div(sxy, den), -1.0, 1.0)

        def fragile(s):
            # Near-constant resamples (relative variance < 1e-4) lose digits in
            # the sums, and a constant one must give 0: recompute those exactly.
            n, sxx, syy, _ = central(s)
            return (sxx <= 1e-4 * var_x * n) | (syy <= 1e-4 * var_y * n)

        return _Counted(feats, reduce, fragile)
    raise StatsError(f"Metric {metric!r} has no regression form.")


def _counted(task: str, metric: str, y_true: np.ndarray, scores: list[np.ndarray],
             thresholds: list[float], labels) -> _Counted:
    if task == "multilabel":
        return _counted_multilabel(metric, y_true, [s > thr for s, thr in zip(scores, thresholds)], labels)
    if task == "multiclass":
        k = scores[0].shape[1]
        return _counted_multiclass(metric, y_true, [s.argmax(axis=1) for s in scores], k, labels)
    if task == "regression":
        return _counted_regression(metric, y_true, [s.astype(np.float64) for s in scores])
    t = y_true.astype(bool)
    return _counted_binary_like(metric, t, [s > thr for s, thr in zip(scores, thresholds)], None)


def _metric_on_counts(task: str, metric: str, y_true: Any, y_score: Any, counts: np.ndarray, *,
                      threshold: float = 0.5, labels: Sequence[str] | None = None) -> np.ndarray:
    """The metric of each weighted sample set ``counts[r]`` (``[R, N]``), through the count path.

    Exactly what the per-sample tests compute per resample, exposed so that a
    test can check it against :mod:`mmerbench.metrics` on materialised resamples.
    """
    y, scores, thr = _paired_inputs(task, metric, y_true, y_score, y_score, threshold, labels)
    c = _counted(task, metric, y, scores[:1], thr[:1], labels)
    return c.reduce(np.asarray(counts, dtype=np.float64) @ c.features[0])


# --------------------------------------------------------------------------
# Per sample: inputs
# --------------------------------------------------------------------------


def _check_task(task: Any) -> str:
    if task not in _SCORE_NDIM:
        raise _expected("task", f"one of {', '.join(map(repr, _SCORE_NDIM))}", repr(task))
    return task


def _check_metric_for_task(metric: Any, task: str) -> metricslib.MetricInfo:
    if not isinstance(metric, str):
        raise _expected("metric", "a metric name (str)", repr(metric))
    info = metricslib.metric_info(metric)  # UnknownNameError with a close match
    if task not in info.task:
        names = [k for k, v in metricslib.METRICS.items() if task in v.task]
        raise StatsError(f"Metric {metric!r} is a {' / '.join(info.task)} metric, not a {task} one; "
                         f"the {task} metrics are: {', '.join(names)}.")
    return info


def _seed_stack(x: Any, name: str, task: str) -> list[np.ndarray]:
    """A score array of one run (``[N, …]``) or of several seeds (``[S, N, …]``) → list per seed."""
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError, RuntimeError) as e:
        raise _expected(name, "an array of scores", f"{type(x).__name__} ({e})") from None
    d = _SCORE_NDIM[task]
    if arr.ndim == d:
        return [arr]
    if arr.ndim == d + 1 and arr.shape[0] >= 1:
        return list(arr)
    raise _expected(name, f"a {d}-D score array, or {d + 1}-D with a leading seed axis, for a {task} task",
                    f"shape {arr.shape}")


def _thresholds(threshold: Any) -> tuple[float, float]:
    pair = threshold if isinstance(threshold, (tuple, list)) else (threshold, threshold)
    if len(pair) != 2:
        raise _expected("threshold", "a number or a pair (threshold_a, threshold_b)", repr(threshold))
    out = []
    for thr in pair:
        if isinstance(thr, (bool, np.bool_)) or not isinstance(thr, numbers.Real) or not math.isfinite(thr):
            raise _expected("threshold", "a finite number or a pair of them", repr(threshold))
        out.append(float(thr))
    return out[0], out[1]


def _paired_inputs(task, metric, y_true, score_a, score_b, threshold, labels):
    """Validated (y_true, [scores of A's seeds…, B's seeds…], [threshold per system]).

    Every system is run through :func:`mmerbench.metrics.compute` once, which
    validates shapes, values and NaN with the metrics module's own messages.
    """
    task = _check_task(task)
    _check_metric_for_task(metric, task)
    thr_a, thr_b = _thresholds(threshold)
    sa, sb = _seed_stack(score_a, "score_a", task), _seed_stack(score_b, "score_b", task)
    for s in sa + sb:
        metricslib.compute(task, y_true=y_true, y_score=s, threshold=thr_a, labels=labels)
    y = np.asarray(y_true)
    scores = [np.asarray(s) for s in sa + sb]
    if task == "multiclass" and len({s.shape[1] for s in scores}) > 1:
        raise _expected("score_b", f"{scores[0].shape[1]} class columns like `score_a`", f"{scores[-1].shape[1]}")
    return y, scores, [thr_a] * len(sa) + [thr_b] * len(sb)


class _Paired:
    """Shared set-up of the two per-sample tests: validated inputs, counts, the exact fallback."""

    def __init__(self, task, metric, y_true, score_a, score_b, threshold, labels):
        self.task, self.metric, self.labels = task, metric, labels
        self.y, self.scores, self.thr = _paired_inputs(task, metric, y_true, score_a, score_b, threshold, labels)
        self.n_a = len(_seed_stack(score_a, "score_a", task))
        self.n_b = len(self.scores) - self.n_a
        self.n = len(self.y)
        self.hib = metricslib.direction(metric)
        self.counted = _counted(task, metric, self.y, self.scores, self.thr, labels)
        self.k = self.counted.features[0].shape[1]
        ref = [self.exact(j, slice(None)) for j in range(len(self.scores))]
        self.ref_a, self.ref_b = ref[: self.n_a], ref[self.n_a:]
        self.observed = float(np.mean(self.ref_a) - np.mean(self.ref_b))

    def exact(self, system: int, rows, scores: np.ndarray | None = None) -> float:
        """The metric of ``system`` on the samples ``rows`` (an index array), by the metrics module."""
        s = self.scores[system] if scores is None else scores
        out = metricslib.compute(self.task, y_true=self.y[rows], y_score=s[rows],
                                 threshold=self.thr[system], labels=self.labels)
        return float(out[self.metric])

    def values(self, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-system metric values ``[R, S]`` from stacked sums ``[R, S·k]``, and the fragile mask."""
        r, k = sums.shape[0], self.k
        blocks = sums.reshape(r, -1, k)
        vals = np.stack([self.counted.reduce(blocks[:, j]) for j in range(blocks.shape[1])], axis=1)
        if self.counted.fragile is None:
            return vals, np.zeros(vals.shape, dtype=bool)
        bad = np.stack([self.counted.fragile(blocks[:, j]) for j in range(blocks.shape[1])], axis=1)
        return vals, bad

    def delta(self, vals: np.ndarray) -> np.ndarray:
        """Δ per row: mean over A's seeds minus mean over B's seeds."""
        return vals[:, : self.n_a].mean(axis=1) - vals[:, self.n_a:].mean(axis=1)


def _one_blas_thread():
    """Single-threaded BLAS for the many small products of a resampling loop.

    Each product is tiny (hundreds of rows); on a busy machine, waking a BLAS
    thread pool for each costs more than the product itself.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings threadpoolctl; without it, run as is
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _tie_tol(observed: float) -> float:
    # Resampled statistics that equal the observed one mathematically may
    # differ in the last bits; count them as ties (scipy's permutation_test
    # uses the same relative tolerance).
    return 100 * np.finfo(np.float64).eps * abs(observed)
