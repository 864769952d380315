"""Significance tests: is method A better than method B, and by which evidence?

Three kinds of evidence, each with the tests the field uses:

* **Across seeds** — one metric value per training seed (``metrics.json``):
  Welch's t-test (:func:`welch`, scipy's ``ttest_ind(equal_var=False)``) and
  Almost Stochastic Order (:func:`aso`, Dror, Shlomov & Reichart, ACL 2019),
  which needs no normality and says *how much* A dominates B.
* **Per sample** — the stored test predictions (``predictions.npz``), matched
  by sample id: the paired bootstrap (:func:`paired_bootstrap`) and
  approximate randomization (:func:`permutation_test`) on any metric of
  :mod:`mmerbench.metrics`, so F1 and Jaccard accuracy, not only accuracy.
* **Across datasets** — one score per (dataset, method): Friedman's test
  (:func:`friedman`), the Nemenyi post-hoc test and its critical difference
  (:func:`nemenyi`, :func:`critical_difference`, Demšar, JMLR 2006), drawn as
  a critical-difference diagram (:func:`cd_diagram`).

:func:`holm` adjusts a family of p-values (Holm 1979); :func:`compare_runs`
reads two methods' runs from the run store and runs any of the pairwise tests.

Conventions shared by every test here:

* "A better" means better by the metric's own direction, read from
  :func:`mmerbench.metrics.direction` (lower MAE or Hamming loss is better);
  nothing here hard-codes a direction. Statistics are reported raw, as
  ``A − B`` (Welch's t, the metric difference Δ), and the verdict applies
  the direction.
* A verdict is ``"A better"``, ``"B better"`` or ``"no significant
  difference"``; p-values are two-sided.
* Randomness comes from ``numpy.random.default_rng(seed)``; the same inputs
  and seed give the same result.

Speed: the per-sample tests never call a metric function once per resample.
Every metric of :mod:`mmerbench.metrics` is a function of a few per-sample
counts summed over the samples (TP, FP, FN per label, per-sample Jaccard,
…), so a resample — a vector of sample counts (bootstrap) or of swaps
(permutation) — gives its metric through one matrix product with the
per-sample count matrix. Samples with identical counts are merged first, so
the bootstrap bins draws into a few hundred "sample types" instead of
thousands of samples. 10,000 resamples of a MOSEI-size test split
(4,659 × 6) take a fraction of a second (``benchmarks/bench_stats.py``).
"""

from __future__ import annotations

import difflib
import io
import math
import numbers
import os
import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np

from mmerbench import metrics as metricslib
from mmerbench.errors import DataError, MmerbenchError

__all__ = [
    "A_BETTER",
    "B_BETTER",
    "NO_DIFFERENCE",
    "TESTS",
    "Comparison",
    "ComparisonResult",
    "FriedmanResult",
    "HolmResult",
    "NemenyiResult",
    "RunGroup",
    "StatsError",
    "aso",
    "cd_diagram",
    "compare_runs",
    "critical_difference",
    "find_runs",
    "format_comparison",
    "friedman",
    "holm",
    "nemenyi",
    "paired_bootstrap",
    "permutation_test",
    "welch",
]

A_BETTER = "A better"
B_BETTER = "B better"
NO_DIFFERENCE = "no significant difference"

TestName = Literal["welch", "aso", "bootstrap", "permutation"]
TESTS: tuple[str, ...] = ("welch", "aso", "bootstrap", "permutation")
SEED_TESTS = ("welch", "aso")
SAMPLE_TESTS = ("bootstrap", "permutation")

# Score-array rank per task (one seed); a leading seed axis adds one.
_SCORE_NDIM = {"multilabel": 2, "multiclass": 2, "regression": 1, "binary": 1}
# Elements of one bootstrap index chunk (int64): bounds memory at ~16 MB per array.
_CHUNK_ELEMENTS = 2_000_000


class StatsError(MmerbenchError, ValueError):
    """Invalid input to a statistical test, said in one sentence."""


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


def _plain(x: Any) -> Any:
    """JSON-friendly copy: numpy scalars → Python, tuples → lists, paths → str."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, numbers.Real):
        return float(x)
    if isinstance(x, Path):
        return str(x)
    return x


@dataclass(frozen=True)
class ComparisonResult:
    """One pairwise test of A against B.

    ``statistic`` is, per test: Welch's t of ``A − B``; ASO's violation ratio
    ε_W2(A, B) (scores oriented so that larger is better); the observed
    metric difference Δ = M(A) − M(B) for the bootstrap and permutation
    tests. ``p_value`` is None for ASO, whose evidence is ``eps_min``
    (ε_min(A, B); A is better when it is below ``details["tau"]``). ``n`` is
    the number of observations: seeds of A plus seeds of B for Welch and
    ASO, paired test samples for the per-sample tests (``details`` holds
    ``n_a`` / ``n_b`` and the rest: means, confidence interval, resamples).
    """

    test: str
    statistic: float
    verdict: str
    n: int
    alpha: float
    p_value: float | None = None
    eps_min: float | None = None
    metric: str | None = None
    higher_is_better: bool = True
    details: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def significant(self) -> bool:
        return self.verdict != NO_DIFFERENCE

    @property
    def sign(self) -> int:
        """+1 when A is significantly better, −1 when B is, 0 otherwise."""
        return {A_BETTER: 1, B_BETTER: -1}.get(self.verdict, 0)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True)
class HolmResult:
    """Holm-adjusted p-values, in the order given, and which hypotheses are rejected at ``alpha``."""

    p_values: tuple[float, ...]
    adjusted: tuple[float, ...]
    reject: tuple[bool, ...]
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman's χ²_F (scipy, tie-corrected), the Iman–Davenport F_F, and average ranks (1 = best)."""

    statistic: float
    p_value: float
    iman_davenport: float
    iman_davenport_p: float
    avg_ranks: dict[str, float]
    n: int  # datasets (rows)
    k: int  # methods (columns)
    alpha: float
    verdict: str  # "the methods differ" or NO_DIFFERENCE (on the χ²_F p-value)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True)
class NemenyiResult:
    """Nemenyi post-hoc test: average ranks (1 = best), CD, pairwise p-values, cliques."""

    avg_ranks: dict[str, float]
    cd: float
    q_alpha: float
    p_values: dict[str, dict[str, float]]  # p_values[a][b], symmetric, 1.0 on the diagonal
    significant: tuple[tuple[str, str], ...]  # (better, worse) pairs whose ranks differ by ≥ CD
    cliques: tuple[tuple[str, ...], ...]  # maximal groups of methods within CD of each other
    n: int
    k: int
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


# --------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------


def _expected(name: str, what: str, got: Any) -> StatsError:
    return StatsError(f"Expected `{name}` to be {what}, but got {got}")


def _check_alpha(alpha: Any, name: str = "alpha") -> float:
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real) or not 0 < alpha < 1:
        raise _expected(name, "a number strictly between 0 and 1", repr(alpha))
    return float(alpha)


def _check_count(n: Any, name: str, minimum: int = 1) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral) or n < minimum:
        raise _expected(name, f"an integer >= {minimum}", repr(n))
    return int(n)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise _expected("seed", "a non-negative integer", repr(seed))
    return int(seed)


def _values(x: Any, name: str, minimum: int, what: str = "values") -> np.ndarray:
    """A 1-D finite float array of at least ``minimum`` values."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise _expected(name, f"a 1-D sequence of numbers ({what})", f"{type(x).__name__} ({e})") from None
    if arr.ndim != 1:
        raise _expected(name, f"a 1-D sequence of numbers ({what})", f"shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise _expected(name, "finite (no NaN or inf)", f"{int((~np.isfinite(arr)).sum())} non-finite value(s)")
    if arr.size < minimum:
        raise _expected(name, f"at least {minimum} {what}", f"{arr.size}")
    return arr


def _direction(metric: str | None, higher_is_better: bool | None) -> bool:
    """The direction of the compared values: from ``metric``'s metadata when named, else as given, else higher."""
    if metric is not None:
        d = metricslib.direction(metric)
        if higher_is_better is not None and bool(higher_is_better) != d:
            better = "higher" if d else "lower"
            raise StatsError(f"`higher_is_better={higher_is_better}` contradicts metric {metric!r}, "
                             f"where {better} is better.")
        return d
    return True if higher_is_better is None else bool(higher_is_better)


def _verdict(significant: bool, a_minus_b: float, higher_is_better: bool) -> str:
    if not significant or a_minus_b == 0:
        return NO_DIFFERENCE
    return A_BETTER if (a_minus_b > 0) == higher_is_better else B_BETTER


# --------------------------------------------------------------------------
# Across seeds: Welch's t-test
# --------------------------------------------------------------------------


def welch(
    a: Sequence[float],
    b: Sequence[float],
    *,
    alpha: float = 0.05,
    metric: str | None = None,
    higher_is_better: bool | None = None,
) -> ComparisonResult:
    """Welch's unequal-variance t-test of two sets of per-seed scores (two-sided).

    ``t = (mean(a) − mean(b)) / sqrt(s_a²/n_a + s_b²/n_b)`` with the
    Welch–Satterthwaite degrees of freedom — ``scipy.stats.ttest_ind(a, b,
    equal_var=False)``, whose statistic and p-value are returned unchanged.

    The direction comes from ``metric`` (its metadata in
    :mod:`mmerbench.metrics`) or ``higher_is_better``; higher is better when
    neither is given. Choices scipy leaves open: when both samples are
    constant and equal, t is 0 and p is 1 (nothing tells them apart; scipy
    returns NaN); when both are constant and differ, scipy's t = ±inf and
    p = 0 are kept, with a note.
    """
    from scipy import stats as st

    alpha = _check_alpha(alpha)
    hib = _direction(metric, higher_is_better)
    xa = _values(a, "a", 2, "seeds")
    xb = _values(b, "b", 2, "seeds")
    note = ""
    const_a, const_b = bool((xa == xa[0]).all()), bool((xb == xb[0]).all())
    if const_a and const_b and xa[0] == xb[0]:
        t, p, df = 0.0, 1.0, float(len(xa) + len(xb) - 2)
        note = "both samples are constant and equal"
    else:
        with warnings.catch_warnings():  # scipy warns on (near-)constant samples; the note says it
            warnings.simplefilter("ignore", RuntimeWarning)
            res = st.ttest_ind(xa, xb, equal_var=False)
        t, p, df = float(res.statistic), float(res.pvalue), float(res.df)
        if const_a and const_b:
            note = "both samples have zero variance; their difference is taken as certain"
    diff = float(xa.mean() - xb.mean())
    return ComparisonResult(
        test="welch", statistic=t, p_value=p, verdict=_verdict(p < alpha, diff, hib),
        n=len(xa) + len(xb), alpha=alpha, metric=metric, higher_is_better=hib, note=note,
        details={"df": df, "mean_a": float(xa.mean()), "mean_b": float(xb.mean()),
                 "std_a": float(xa.std(ddof=1)), "std_b": float(xb.std(ddof=1)),
                 "n_a": len(xa), "n_b": len(xb)},
    )


# --------------------------------------------------------------------------
# Across seeds: Almost Stochastic Order
# --------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _quantile_grid(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the empirical quantile functions of an n- and an m-sample are both constant.

    ``F_n^{-1}(t) = x_(⌈n t⌉)`` (sorted, 1-based) is a step function with
    steps at i/n, and likewise for m. On each piece (p_{j-1}, p_j] of the
    merged steps {i/n} ∪ {j/m} both are constant, so the integrals of ε_W2
    are exact finite sums. In units of 1/(n m) the steps are integers, and
    the order-statistic indices on a piece ending at p are ⌈p/m⌉ and ⌈p/n⌉.
    Returns (0-based index into the sorted n-sample, into the m-sample,
    piece widths).
    """
    p = np.union1d(np.arange(1, n + 1) * m, np.arange(1, m + 1) * n)  # ends of the pieces, in 1/(nm)
    ia = -(-p // m) - 1
    ib = -(-p // n) - 1
    widths = np.diff(np.concatenate([[0], p])) / (n * m)
    return ia, ib, widths


def _violation_ratios(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """ε_W2 of each row pair: sorted scores of A ``[R, n]`` against sorted scores of B ``[R, m]``.

    ε_W2(F, G) = ∫_{V} (F^{-1}(t) − G^{-1}(t))² dt / ∫_0^1 (F^{-1}(t) − G^{-1}(t))² dt
    with the violation set V = {t : F^{-1}(t) < G^{-1}(t)} — where A's
    quantile is below B's, i.e. where "A dominates B" is violated. 0.5 when
    the two empirical distributions are identical (deep-significance's choice).
    """
    ia, ib, widths = _quantile_grid(xs.shape[1], ys.shape[1])
    diff = ys[:, ib] - xs[:, ia]
    w2 = (diff * diff) @ widths
    viol = np.square(np.maximum(diff, 0.0)) @ widths
    out = np.full(len(w2), 0.5)
    np.divide(viol, w2, out=out, where=w2 > 0)
    return np.clip(out, 0.0, 1.0)


def aso(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    seed: int = 0,
    n_bootstrap: int = 1000,
    tau: float = 0.2,
    metric: str | None = None,
    higher_is_better: bool | None = None,
) -> ComparisonResult:
    """Almost Stochastic Order of two sets of per-seed scores (Dror, Shlomov & Reichart, ACL 2019).

    Following Dror et al. (2019) and del Barrio et al. (2018), with A's
    scores distributed as F and B's as G (oriented so that larger is better):

    * the violation ratio ε_W2(F, G) = ∫_{V} (F^{-1} − G^{-1})² dt / W_2(F, G)²
      with V = {t ∈ (0, 1) : F^{-1}(t) < G^{-1}(t)}, estimated on the
      empirical quantile functions F_n^{-1}(t) = x_(⌈n t⌉). The integrals are
      evaluated exactly on the merged steps of the two step functions (the
      limit dt → 0 of deep-significance's Riemann sum with dt = 0.005);
    * the confidence bound
      ε_min = ε_W2(F_n, G_m) − sqrt((n + m)/(n m)) · σ̂ · Φ^{-1}(1 − confidence),
      clipped to [0, 1], where σ̂ is the standard deviation of
      sqrt(n m/(n + m)) · (ε_W2(F*_n, G*_m) − ε_W2(F_n, G_m)) over
      ``n_bootstrap`` bootstrap resamples F*_n, G*_m of the original sizes n
      and m (deep-significance ≥ 1.2.4, which corrected the resample size;
      its ``confidence_level=0.95`` convention is ``confidence`` here).

    A is better when ε_min(A, B) < ``tau``; B is better when ε_min(B, A) <
    ``tau``. Since ε_W2(G, F) = 1 − ε_W2(F, G) and both bounds share σ̂,
    ε_min(B, A) = clip(1 − ε_W2(F_n, G_m) + the same margin)
    (``details["eps_min_reverse"]``), so at most one side can win. The
    threshold τ is the choice the method leaves open: Dror et al. read
    ε_min < 0.5 as "A is better"; deep-significance's authors recommend
    checking ε_min < 0.2. We default to 0.2 because the verdict stands beside
    p < α tests: with 5 seeds from one normal distribution on both sides,
    τ = 0.5 declares a winner in about 40% of the pairs, τ = 0.2 in about 12%
    (about 6% with 10 seeds; a check in tests/test_stats.py).

    The direction comes from ``metric`` or ``higher_is_better`` (default:
    higher is better); for a lower-is-better metric the scores are negated
    first. Needs at least 2 scores per side.
    """
    from scipy import stats as st

    if isinstance(confidence, (bool, np.bool_)) or not isinstance(confidence, numbers.Real) or not 0.5 <= confidence < 1:
        raise _expected("confidence", "a number in [0.5, 1)", repr(confidence))
    if isinstance(tau, (bool, np.bool_)) or not isinstance(tau, numbers.Real) or not 0 < tau <= 0.5:
        raise _expected("tau", "a number in (0, 0.5]", repr(tau))
    seed = _check_seed(seed)
    n_bootstrap = _check_count(n_bootstrap, "n_bootstrap", 2)
    hib = _direction(metric, higher_is_better)
    xa = _values(a, "a", 2, "seeds")
    xb = _values(b, "b", 2, "seeds")
    sign = 1.0 if hib else -1.0
    fa, gb = np.sort(sign * xa), np.sort(sign * xb)
    n, m = len(fa), len(gb)

    eps = float(_violation_ratios(fa[None, :], gb[None, :])[0])
    rng = np.random.default_rng(seed)
    boot_a = np.sort(fa[rng.integers(0, n, size=(n_bootstrap, n))], axis=1)
    boot_b = np.sort(gb[rng.integers(0, m, size=(n_bootstrap, m))], axis=1)
    eps_boot = _violation_ratios(boot_a, boot_b)
    const = math.sqrt(n * m / (n + m))
    sigma = float(np.std(const * (eps_boot - eps)))
    margin = -(sigma / const) * float(st.norm.ppf(1 - confidence))  # >= 0 for confidence >= 0.5
    eps_min = float(np.clip(eps + margin, 0.0, 1.0))
    eps_min_rev = float(np.clip(1.0 - eps + margin, 0.0, 1.0))
    if eps_min < tau:
        verdict = A_BETTER
    elif eps_min_rev < tau:
        verdict = B_BETTER
    else:
        verdict = NO_DIFFERENCE
    return ComparisonResult(
        test="aso", statistic=eps, eps_min=eps_min, verdict=verdict, n=n + m, alpha=round(1 - float(confidence), 12),
        metric=metric, higher_is_better=hib,
        details={"eps_min_reverse": eps_min_rev, "sigma": sigma, "confidence": float(confidence),
                 "tau": float(tau), "n_bootstrap": n_bootstrap, "seed": seed, "n_a": n, "n_b": m,
                 "mean_a": float(xa.mean()), "mean_b": float(xb.mean())},
    )


# --------------------------------------------------------------------------
# Per sample: metrics as functions of per-sample counts
# --------------------------------------------------------------------------


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
    what = {"acc": "acc", "f1": "f1"}.get(metric, "weighted")
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
    if metric in ("acc2_non0", "f1_non0"):
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


# --------------------------------------------------------------------------
# Per sample: paired bootstrap
# --------------------------------------------------------------------------


def paired_bootstrap(
    y_true: Any,
    score_a: Any,
    score_b: Any,
    *,
    task: str,
    metric: str,
    threshold: float | tuple[float, float] = 0.5,
    labels: Sequence[str] | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> ComparisonResult:
    """Paired bootstrap test of Δ = M(A) − M(B) on the same test samples (two-sided).

    Resample the N test samples with replacement ``n_resamples`` times (the
    same resample for A and B: the pairing) and compute Δ* on each
    (Efron & Tibshirani 1993, §16.4; Koehn 2004). The p-value is that of the
    shifted bootstrap distribution as the null — Δ* − Δ is centred at 0 —
    in its two-sided form: p = (1 + #{|Δ* − Δ| ≥ |Δ|}) / (B + 1); the
    one-sided form "Δ* > 2Δ" is Berg-Kirkpatrick et al.'s (2012), used by
    deep-significance. ``details`` carries the percentile confidence
    interval of Δ at level 1 − ``alpha`` (``ci_low``, ``ci_high``).

    Args:
        y_true: the truth in the metrics module's format for ``task``.
        score_a, score_b: scores of A and B in that format; a leading axis
            stacks several seeds (``[S, N, C]`` for multilabel). With seeds,
            M is the mean of the per-seed metric values — the number a
            leaderboard shows — and a resample keeps each sample's
            predictions from every seed together; A and B may have different
            seed counts.
        task, metric: a task of :mod:`mmerbench.metrics` and any metric key
            of it, per-label keys (``f1_<label>``, ``acc_<class>``) included
            (they need ``labels``). The direction comes from the metric.
        threshold: the decision rule (``score > threshold``) for multilabel
            and binary; a pair gives A and B their own.
        n_resamples, seed: the number of bootstrap resamples and the seed of
            ``numpy.random.default_rng``.

    Samples with identical per-sample counts are merged before resampling
    (a draw of sample i and of sample i' with the same counts is the same
    draw for every metric), which is exact and makes resampling cheap.
    """
    alpha = _check_alpha(alpha)
    n_resamples = _check_count(n_resamples, "n_resamples", 1)
    seed = _check_seed(seed)
    pt = _Paired(task, metric, y_true, score_a, score_b, threshold, labels)
    feats = np.hstack(pt.counted.features)  # [N, S·k]
    uniq, inverse = np.unique(feats, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    types = len(uniq)
    base = pt.values(feats.sum(axis=0, keepdims=True))[0]
    observed = float(pt.delta(base)[0])  # the count path's Δ; ties are judged on this scale

    rng = np.random.default_rng(seed)
    deltas = np.empty(n_resamples)
    chunk = max(1, min(n_resamples, _CHUNK_ELEMENTS // pt.n))
    done = 0
    with _one_blas_thread():
        while done < n_resamples:
            r = min(chunk, n_resamples - done)
            idx = rng.integers(0, pt.n, size=(r, pt.n))
            codes = inverse[idx]
            codes += (np.arange(r) * types)[:, None]
            counts = np.bincount(codes.ravel(), minlength=r * types).reshape(r, types)
            vals, bad = pt.values(counts.astype(np.float64) @ uniq)
            for row, system in zip(*np.nonzero(bad)):
                vals[row, system] = pt.exact(system, idx[row])
            deltas[done:done + r] = pt.delta(vals)
            done += r

    tol = _tie_tol(observed)
    extreme = int(np.count_nonzero(np.abs(deltas - observed) >= abs(observed) - tol))
    p = (extreme + 1) / (n_resamples + 1)
    lo, hi = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    return ComparisonResult(
        test="bootstrap", statistic=pt.observed, p_value=float(p),
        verdict=_verdict(p < alpha, pt.observed, pt.hib), n=pt.n, alpha=alpha, metric=metric,
        higher_is_better=pt.hib,
        details={"ci_low": float(lo), "ci_high": float(hi), "n_resamples": n_resamples, "seed": seed,
                 "mean_a": float(np.mean(pt.ref_a)), "mean_b": float(np.mean(pt.ref_b)),
                 "seeds_a": pt.n_a, "seeds_b": pt.n_b, "n_a": pt.n, "n_b": pt.n},
    )


# --------------------------------------------------------------------------
# Per sample: approximate randomization (paired permutation)
# --------------------------------------------------------------------------


def _swap_masks(n: int, rows: int, rng: np.random.Generator | None, start: int = 0) -> np.ndarray:
    """``[rows, n]`` 0/1 swap masks: random bits, or (rng None) the binary codes start, start+1, …"""
    if rng is None:
        codes = np.arange(start, start + rows, dtype=np.uint64)
        return ((codes[:, None] >> np.arange(n, dtype=np.uint64)) & np.uint64(1)).astype(np.float64)
    raw = rng.integers(0, 256, size=(rows, (n + 7) // 8), dtype=np.uint8)
    return np.unpackbits(raw, axis=1, count=n).astype(np.float64)


def permutation_test(
    y_true: Any,
    score_a: Any,
    score_b: Any,
    *,
    task: str,
    metric: str,
    threshold: float | tuple[float, float] = 0.5,
    labels: Sequence[str] | None = None,
    n_permutations: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> ComparisonResult:
    """Approximate randomization test of Δ = M(A) − M(B) (paired, two-sided).

    Under H0 A's and B's predictions of each sample are exchangeable: swap
    them per sample with probability ½, independently (Noreen 1989; Yeh
    2000; Riezler & Maxwell 2005), and recompute Δ*. The p-value is
    p = (1 + #{|Δ*| ≥ |Δ|}) / (R + 1) over R = ``n_permutations`` random swap
    sets. When 2^N ≤ ``n_permutations`` every swap set is enumerated
    instead and p = #{|Δ*| ≥ |Δ|} / 2^N exactly (as
    ``scipy.stats.permutation_test(permutation_type="samples")`` does; the
    swap distribution is symmetric, so this equals scipy's two-sided p).

    Arguments as in :func:`paired_bootstrap`. With several seeds, M is the
    mean of the per-seed metric values and seed s of A is paired with seed s
    of B (a swap exchanges a sample's predictions in every pair at once), so
    both sides need the same number of seeds.
    """
    alpha = _check_alpha(alpha)
    n_permutations = _check_count(n_permutations, "n_permutations", 1)
    seed = _check_seed(seed)
    pt = _Paired(task, metric, y_true, score_a, score_b, threshold, labels)
    if pt.n_a != pt.n_b:
        raise StatsError(f"The permutation test pairs seed s of A with seed s of B, but A has {pt.n_a} "
                         f"seed(s) and B has {pt.n_b}; pass the same number.")
    fa = np.hstack(pt.counted.features[: pt.n_a])
    fb = np.hstack(pt.counted.features[pt.n_a:])
    d = fb - fa
    base_a, base_b = fa.sum(axis=0), fb.sum(axis=0)
    observed = float(pt.delta(pt.values(np.concatenate([base_a, base_b])[None, :])[0])[0])

    exact = pt.n < 63 and 2 ** pt.n <= n_permutations
    total = 2 ** pt.n if exact else n_permutations
    rng = None if exact else np.random.default_rng(seed)
    deltas = np.empty(total)
    chunk = max(1, min(total, _CHUNK_ELEMENTS // pt.n))
    done = 0
    with _one_blas_thread():
        while done < total:
            r = min(chunk, total - done)
            swaps = _swap_masks(pt.n, r, rng, start=done)
            moved = swaps @ d
            vals, bad = pt.values(np.hstack([base_a + moved, base_b - moved]))
            for row, system in zip(*np.nonzero(bad)):
                # Only Pearson r is ever fragile: a regression metric, so no
                # threshold differs between A and B and mixing raw scores is exact.
                pair = system % pt.n_a
                mask = swaps[row].astype(bool)
                mine, other = (pair, pt.n_a + pair) if system < pt.n_a else (pt.n_a + pair, pair)
                mixed = np.where(_expand(mask, pt.scores[mine]), pt.scores[other], pt.scores[mine])
                vals[row, system] = pt.exact(system, slice(None), scores=mixed)
            deltas[done:done + r] = pt.delta(vals)
            done += r

    tol = _tie_tol(observed)
    extreme = int(np.count_nonzero(np.abs(deltas) >= abs(observed) - tol))
    p = extreme / total if exact else (extreme + 1) / (total + 1)
    return ComparisonResult(
        test="permutation", statistic=pt.observed, p_value=float(p),
        verdict=_verdict(p < alpha, pt.observed, pt.hib), n=pt.n, alpha=alpha, metric=metric,
        higher_is_better=pt.hib,
        details={"n_permutations": total, "exact": exact, "seed": seed,
                 "mean_a": float(np.mean(pt.ref_a)), "mean_b": float(np.mean(pt.ref_b)),
                 "seeds_a": pt.n_a, "seeds_b": pt.n_b, "n_a": pt.n, "n_b": pt.n},
    )


def _expand(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
    return mask.reshape(mask.shape + (1,) * (like.ndim - 1))


# --------------------------------------------------------------------------
# Families: Holm
# --------------------------------------------------------------------------


def holm(p_values: Iterable[float], *, alpha: float = 0.05) -> HolmResult:
    """Holm's step-down correction of a family of m p-values (Holm, Scand. J. Stat. 1979).

    Sort p_(1) ≤ … ≤ p_(m); reject H_(1), …, H_(i) for the largest i such
    that p_(j) ≤ α / (m − j + 1) for every j ≤ i. The adjusted p-values are
    p̃_(i) = min(1, max_{j ≤ i} (m − j + 1) p_(j)), returned in the input
    order (the same as ``statsmodels``' ``multipletests(method="holm")``).
    """
    alpha = _check_alpha(alpha)
    p = np.asarray(list(p_values), dtype=np.float64)
    if p.ndim != 1:
        raise _expected("p_values", "a flat sequence of p-values", f"shape {p.shape}")
    if p.size and (not np.isfinite(p).all() or (p < 0).any() or (p > 1).any()):
        raise _expected("p_values", "p-values in [0, 1] (no NaN)", p[~((p >= 0) & (p <= 1))][:5].tolist())
    m = p.size
    order = np.argsort(p, kind="stable")
    factors = m - np.arange(m)
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(factors * p[order]))
    below = p[order] <= alpha / factors
    first_fail = int(np.argmin(below)) if not below.all() else m
    reject_sorted = np.arange(m) < first_fail
    adjusted, reject = np.empty(m), np.empty(m, dtype=bool)
    adjusted[order], reject[order] = adjusted_sorted, reject_sorted
    return HolmResult(tuple(p.tolist()), tuple(adjusted.tolist()), tuple(reject.tolist()), alpha)


# --------------------------------------------------------------------------
# Across datasets: Friedman, Nemenyi, critical difference
# --------------------------------------------------------------------------


def _table(table: Any, names: Sequence[str] | None, min_k: int) -> tuple[np.ndarray, list[str]]:
    """A complete ``[N datasets, k methods]`` float table and the method names."""
    if names is None and hasattr(table, "columns") and hasattr(table, "to_numpy"):
        names = [str(c) for c in table.columns]
        table = table.to_numpy()
    try:
        x = np.asarray(table, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise _expected("table", "a numeric [datasets × methods] table", f"{type(table).__name__} ({e})") from None
    if x.ndim != 2:
        raise _expected("table", "a 2-D [datasets × methods] table", f"shape {x.shape}")
    n, k = x.shape
    if k < min_k or n < 2:
        raise _expected("table", f"at least 2 datasets (rows) and {min_k} methods (columns)", f"shape {x.shape}")
    if not np.isfinite(x).all():
        raise _expected("table", "complete (every method scored on every dataset, no NaN)",
                        f"{int((~np.isfinite(x)).sum())} missing or non-finite cell(s)")
    names = [f"method {i}" for i in range(k)] if names is None else [str(s) for s in names]
    if len(names) != k or len(set(names)) != k:
        raise _expected("names", f"{k} unique method names", repr(names))
    return x, names


def _avg_ranks(x: np.ndarray, higher_is_better: bool) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(-x if higher_is_better else x, axis=1).mean(axis=0)  # 1 = best; ties share the mean rank


def friedman(
    table: Any,
    *,
    names: Sequence[str] | None = None,
    metric: str | None = None,
    higher_is_better: bool | None = None,
    alpha: float = 0.05,
) -> FriedmanResult:
    """Friedman's test that k methods perform alike over N datasets (Demšar 2006, §3.2.2).

    ``table`` is ``[N datasets, k methods]`` (a pandas DataFrame's columns
    name the methods). χ²_F and its p-value are
    ``scipy.stats.friedmanchisquare`` over the columns (with scipy's tie
    correction); the Iman–Davenport statistic F_F = (N − 1) χ²_F /
    (N (k − 1) − χ²_F) with (k − 1, (k − 1)(N − 1)) degrees of freedom is
    reported too (Demšar's recommended form). Average ranks use rank 1 for
    the best method on a dataset (direction from ``metric`` /
    ``higher_is_better``, default higher), ties sharing the mean rank.
    Needs k ≥ 3 (two methods: use a paired test) and N ≥ 2.
    """
    from scipy import stats as st

    alpha = _check_alpha(alpha)
    hib = _direction(metric, higher_is_better)
    x, names = _table(table, names, 3)
    n, k = x.shape
    res = st.friedmanchisquare(*x.T)
    chi2, p = float(res.statistic), float(res.pvalue)
    if not math.isfinite(chi2):  # every dataset ties every method
        chi2, p = 0.0, 1.0
    den = n * (k - 1) - chi2
    if den > 0:
        ff = (n - 1) * chi2 / den
        ff_p = float(st.f.sf(ff, k - 1, (k - 1) * (n - 1)))
    else:  # perfect agreement of the rankings: F_F is unbounded
        ff, ff_p = math.inf, 0.0
    ranks = _avg_ranks(x, hib)
    return FriedmanResult(
        statistic=chi2, p_value=p, iman_davenport=float(ff), iman_davenport_p=ff_p,
        avg_ranks=dict(zip(names, ranks.tolist())), n=n, k=k, alpha=alpha,
        verdict="the methods differ" if p < alpha else NO_DIFFERENCE,
    )


def _q_alpha(k: int, alpha: float) -> float:
    from scipy.stats import studentized_range

    return float(studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi's critical difference of average ranks (Demšar 2006, §3.2.2).

    CD = q_α · sqrt(k (k + 1) / (6 N)), with q_α the studentized range
    quantile for k groups and infinite degrees of freedom divided by √2
    (``scipy.stats.studentized_range``). For k = 4 methods on N = 14 datasets
    at α = 0.05, q_α = 2.569 and CD = 1.25, as in Demšar's worked example.
    """
    k = _check_count(k, "k", 2)
    n = _check_count(n, "n", 1)
    alpha = _check_alpha(alpha)
    return _q_alpha(k, alpha) * math.sqrt(k * (k + 1) / (6 * n))


def _cliques(names: Sequence[str], ranks: Sequence[float], cd: float) -> tuple[tuple[str, ...], ...]:
    """Maximal runs of methods (sorted by rank) whose ranks all lie within less than CD of each other."""
    order = np.argsort(ranks, kind="stable")
    r = np.asarray(ranks, dtype=np.float64)[order]
    out: list[tuple[int, int]] = []
    for i in range(len(r)):
        j = i
        while j + 1 < len(r) and r[j + 1] - r[i] < cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in out):
            out.append((i, j))
    return tuple(tuple(names[order[t]] for t in range(a, b + 1)) for a, b in out)


def nemenyi(
    table: Any,
    *,
    names: Sequence[str] | None = None,
    metric: str | None = None,
    higher_is_better: bool | None = None,
    alpha: float = 0.05,
) -> NemenyiResult:
    """The Nemenyi post-hoc test of all pairs of k methods over N datasets (Demšar 2006, §3.2.2).

    Two methods differ significantly when their average ranks differ by at
    least CD (:func:`critical_difference`). The pairwise p-value is that of
    z = |R_i − R_j| / sqrt(k (k + 1) / (6 N)) under the studentized range
    distribution with k groups and infinite degrees of freedom,
    p = P(Q ≥ √2 z), so p < α exactly when |R_i − R_j| > CD. Cliques are
    the maximal groups whose ranks lie within less than CD, as a CD diagram
    connects them. Table, names and direction as in :func:`friedman`.
    """
    from scipy.stats import studentized_range

    alpha = _check_alpha(alpha)
    hib = _direction(metric, higher_is_better)
    x, names = _table(table, names, 2)
    n, k = x.shape
    ranks = _avg_ranks(x, hib)
    se = math.sqrt(k * (k + 1) / (6 * n))
    q = _q_alpha(k, alpha)
    cd = q * se
    pvals: dict[str, dict[str, float]] = {a: {} for a in names}
    significant = []
    for i in range(k):
        pvals[names[i]][names[i]] = 1.0
        for j in range(i + 1, k):
            diff = abs(ranks[i] - ranks[j])
            pij = float(studentized_range.sf(math.sqrt(2) * diff / se, k, np.inf)) if diff > 0 else 1.0
            pij = min(1.0, max(0.0, pij))
            pvals[names[i]][names[j]] = pvals[names[j]][names[i]] = pij
            if diff >= cd:
                better, worse = (i, j) if ranks[i] < ranks[j] else (j, i)
                significant.append((names[better], names[worse]))
    return NemenyiResult(
        avg_ranks=dict(zip(names, ranks.tolist())), cd=cd, q_alpha=q, p_values=pvals,
        significant=tuple(significant), cliques=_cliques(names, ranks.tolist(), cd), n=n, k=k, alpha=alpha,
    )


def cd_diagram(
    avg_ranks: Mapping[str, float],
    cd: float,
    *,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    width: float = 6.0,
):
    """A critical-difference diagram (Demšar 2006, Fig. 1 style) as a matplotlib Figure.

    The axis shows average ranks from 1 (best, left) to k; each method hangs
    from its rank, the better half labelled on the left and the rest on the
    right; thick bars join cliques of methods whose ranks differ by less
    than ``cd``; the CD interval is drawn above the axis. Uses matplotlib's
    object API on the Agg canvas (no pyplot state, no display needed).
    Method names are drawn as plain text (no mathtext).

    With ``path`` (``.svg`` or ``.png``) the figure is also written there,
    atomically; SVG keeps text as text and is byte-stable across runs.
    Returns the Figure.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(avg_ranks, Mapping) or len(avg_ranks) < 2:
        raise _expected("avg_ranks", "a mapping of at least 2 method names to average ranks", repr(avg_ranks))
    names = [str(k) for k in avg_ranks]
    ranks = _values(list(avg_ranks.values()), "avg_ranks", 2, "ranks")
    k = len(names)
    if (ranks < 1).any() or (ranks > k).any():
        raise _expected("avg_ranks", f"average ranks in [1, {k}]", ranks.tolist())
    if isinstance(cd, (bool, np.bool_)) or not isinstance(cd, numbers.Real) or not (math.isfinite(cd) and cd > 0):
        raise _expected("cd", "a positive finite number", repr(cd))
    suffix = None
    if path is not None:
        suffix = Path(path).suffix.lower()
        if suffix not in (".svg", ".png"):
            raise _expected("path", "a file name ending in .svg or .png", repr(str(path)))

    order = list(np.argsort(ranks, kind="stable"))
    n_left = (k + 1) // 2
    left, right = order[:n_left], order[n_left:][::-1]  # right side: worst at the top
    cliques = _cliques(names, ranks.tolist(), float(cd))
    step = 0.32
    top = 0.9
    clique_y0 = -0.25
    label_y0 = clique_y0 - step * max(len(cliques), 1) - 0.15
    rows = max(len(left), len(right))
    bottom = label_y0 - step * rows
    height = 0.55 * (top - bottom) + 0.4

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
    ax.set_axis_off()
    span = max(k - 1, 1)
    pad = 0.08 * span
    ax.set_xlim(1 - 0.45 * span, k + 0.45 * span)
    ax.set_ylim(bottom - 0.1, top + 0.1)
    ink = "#222222"

    ax.plot([1, k], [0, 0], color=ink, lw=1.2)
    for r in range(1, k + 1):
        ax.plot([r, r], [0, 0.08], color=ink, lw=1)
        ax.text(r, 0.14, str(r), ha="center", va="bottom", fontsize=9, color=ink, parse_math=False)
    ax.text((1 + k) / 2, 0.42, "average rank (1 = best)", ha="center", va="bottom", fontsize=8,
            color="#555555", parse_math=False)
    # The CD interval, from rank 1.
    cd_end = 1 + float(cd)
    ax.plot([1, cd_end], [top - 0.1, top - 0.1], color=ink, lw=1.5)
    for xx in (1, cd_end):
        ax.plot([xx, xx], [top - 0.16, top - 0.04], color=ink, lw=1.2)
    ax.text(cd_end + 0.04 * span, top - 0.1, f"CD = {cd:.2f}", ha="left", va="center", fontsize=9,
            color=ink, parse_math=False)

    for side, idxs in (("left", left), ("right", right)):
        for row, i in enumerate(idxs):
            y = label_y0 - step * row
            x_end = 1 - pad if side == "left" else k + pad
            ax.plot([ranks[i], ranks[i], x_end], [0, y, y], color=ink, lw=0.9)
            ax.text(x_end + (-0.02 if side == "left" else 0.02) * span, y,
                    f"{names[i]} ({ranks[i]:.2f})" if side == "left" else f"({ranks[i]:.2f}) {names[i]}",
                    ha="right" if side == "left" else "left", va="center", fontsize=9, color=ink,
                    parse_math=False)
    for j, group in enumerate(cliques):
        rs = [ranks[names.index(g)] for g in group]
        y = clique_y0 - step * j
        ax.plot([min(rs) - 0.03 * span, max(rs) + 0.03 * span], [y, y], color="#c0392b", lw=3.5,
                solid_capstyle="round")
    if title:
        ax.set_title(title, fontsize=10, loc="center")

    if path is not None:
        from mmerbench.results import _atomic_write_bytes

        buf = io.BytesIO()
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "mmerbench"}):
            meta = {"Date": None} if suffix == ".svg" else {"Software": None}
            fig.savefig(buf, format=suffix[1:], bbox_inches="tight", dpi=150, metadata=meta)
        _atomic_write_bytes(Path(path), buf.getvalue())
    return fig


# --------------------------------------------------------------------------
# From the run store
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RunGroup:
    """The complete seeds of one (dataset, method, config) in the run store."""

    dataset: str
    method: str
    config_hash: str
    seeds: tuple[int, ...]
    folders: tuple[Path, ...]

    @property
    def label(self) -> str:
        return f"{self.method}@{self.config_hash}"

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_runs` found and every test it ran."""

    dataset: str
    metric: str
    higher_is_better: bool
    a: RunGroup
    b: RunGroup
    values_a: tuple[float, ...]  # the metric per seed (test split), in seed order
    values_b: tuple[float, ...]
    results: tuple[ComparisonResult, ...]
    alpha: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def _scan_store(runs_dir: Path, dataset: str) -> dict[str, dict[str, list[tuple[int, Path]]]]:
    from mmerbench.results import iter_runs

    found: dict[str, dict[str, list[tuple[int, Path]]]] = {}
    datasets = set()
    for ds, method, chash, seed, folder in iter_runs(runs_dir):
        datasets.add(ds)
        if ds == dataset:
            found.setdefault(method, {}).setdefault(chash, []).append((seed, folder))
    if not found:
        there = f" (datasets there: {', '.join(sorted(datasets))})" if datasets else " (no complete runs there)"
        raise MmerbenchError(f"No complete runs of dataset {dataset!r} in {runs_dir}{there}.")
    return found


def find_runs(runs_dir: str | os.PathLike | None, dataset: str, spec: str) -> RunGroup:
    """The runs ``spec`` names on ``dataset``: ``method`` or ``method@config_hash`` (a unique prefix will do)."""
    from mmerbench.data import paths

    root = paths.runs_root(runs_dir)
    store = _scan_store(root, dataset)
    method, _, chash = str(spec).partition("@")
    if method not in store:
        close = difflib.get_close_matches(method, sorted(store), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise MmerbenchError(f"Method {method!r} has no complete runs of {dataset!r} in {root}.{hint} "
                             f"Methods there: {', '.join(sorted(store))}.")
    configs = store[method]
    if chash:
        matches = [h for h in configs if h.startswith(chash)]
        if len(matches) != 1:
            what = "matches no" if not matches else "is ambiguous among the"
            raise MmerbenchError(f"{chash!r} {what} configs of {method!r} on {dataset!r}: "
                                 f"{', '.join(sorted(configs))}.")
        chash = matches[0]
    elif len(configs) > 1:
        listing = ", ".join(f"{h} ({len(v)} seed{'s' * (len(v) != 1)})" for h, v in sorted(configs.items()))
        raise MmerbenchError(f"Method {method!r} has {len(configs)} configs on {dataset!r}: {listing}; "
                             f"name one as {method}@<hash>.")
    else:
        chash = next(iter(configs))
    runs = sorted(configs[chash])
    return RunGroup(dataset, method, chash, tuple(s for s, _ in runs), tuple(f for _, f in runs))


def _stored_values(group: RunGroup, metric: str) -> tuple[np.ndarray, list[dict]]:
    from mmerbench.results import read_metrics

    vals, decisions = [], []
    for seed, folder in zip(group.seeds, group.folders):
        m = read_metrics(folder)
        if m is None:
            raise DataError(f"{folder / 'metrics.json'} is unreadable.")
        test = m["test"]
        if metric not in test:
            known = ", ".join(sorted(test))
            raise MmerbenchError(f"Metric {metric!r} is not among the stored test metrics of {group.label} "
                                 f"seed {seed}: {known}.")
        try:
            v = float(test[metric])
        except (TypeError, ValueError):
            v = math.nan
        if not math.isfinite(v):
            raise DataError(f"{folder / 'metrics.json'} holds a non-finite {metric}: {test[metric]!r}.")
        vals.append(v)
        decisions.append(m.get("decision") or {})
    return np.array(vals), decisions


def _load_predictions(folder: Path, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``test_ids``, ``test_true``, ``test_scores`` of one run, checked; any defect is a DataError."""
    import zipfile

    path = Path(folder) / "predictions.npz"
    if not path.is_file():
        raise DataError(f"{path} is missing: the per-sample tests need the stored predictions.")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("test_ids", "test_true", "test_scores") if k not in z.files]
            if missing:
                raise DataError(f"{path} lacks {', '.join(missing)}.")
            ids, y, s = z["test_ids"], z["test_true"], z["test_scores"]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"{path} is unreadable or truncated ({type(e).__name__}: {e}).") from None
    if ids.ndim != 1 or ids.size == 0:
        raise DataError(f"{path}: `test_ids` must be a non-empty 1-D array, but has shape {ids.shape}.")
    ids = ids.astype(str)
    if len(np.unique(ids)) != len(ids):
        raise DataError(f"{path}: `test_ids` holds duplicate sample ids.")
    d = _SCORE_NDIM[task]
    if s.ndim != d or s.shape[0] != len(ids) or y.shape[0] != len(ids):
        raise DataError(f"{path}: expected {len(ids)} rows of {d}-D scores and truth for a {task} task, "
                        f"but got scores {s.shape} and truth {y.shape}.")
    if s.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise DataError(f"{path}: scores and truth must be numeric, but are {s.dtype} and {y.dtype}.")
    return ids, y, s


def _align(reference: np.ndarray, ids: np.ndarray, where: str, ref_where: str) -> np.ndarray:
    """Row order that puts ``ids`` in the order of ``reference``; the id sets must be equal."""
    if len(ids) == len(reference) and (ids == reference).all():
        return np.arange(len(ids))
    shared = np.intersect1d(reference, ids)
    if shared.size == 0:
        raise MmerbenchError(f"{where} and {ref_where} share no sample ids: they were not scored on the same "
                             f"test set.")
    if shared.size != len(reference) or shared.size != len(ids):
        raise MmerbenchError(f"{where} and {ref_where} were scored on different sample sets "
                             f"({len(ids)} and {len(reference)} ids, {shared.size} shared); the per-sample "
                             f"tests need the same samples.")
    pos = {v: i for i, v in enumerate(ids.tolist())}
    return np.array([pos[v] for v in reference.tolist()])


def _threshold_of(group: RunGroup, decisions: list[dict], task: str) -> float:
    if task not in ("multilabel", "binary"):
        return 0.5  # unused: argmax / identity
    thrs = set()
    for seed, d in zip(group.seeds, decisions):
        thr = d.get("threshold") if isinstance(d, dict) else None
        if isinstance(thr, bool) or not isinstance(thr, numbers.Real) or not math.isfinite(thr):
            raise DataError(f"The metrics.json of {group.label} seed {seed} records no usable decision "
                            f"threshold ({d!r}).")
        thrs.add(float(thr))
    if len(thrs) > 1:
        raise DataError(f"The seeds of {group.label} record different thresholds: {sorted(thrs)}.")
    return thrs.pop()


def _predictions(group: RunGroup, task: str, metric: str, labels, threshold: float, stored: np.ndarray,
                 ref_ids: np.ndarray | None, ref_where: str | None):
    """Scores per seed and the truth, rows in the order of ``ref_ids`` (the first run's when None)."""
    scores, truth = [], None
    for seed, folder, value in zip(group.seeds, group.folders, stored):
        where = f"{group.label} seed {seed}"
        ids, y, s = _load_predictions(folder, task)
        if ref_ids is None:
            ref_ids, ref_where = ids, where
        order = _align(ref_ids, ids, where, ref_where)
        y, s = y[order], s[order]
        if truth is None:
            truth = y
        elif y.shape != truth.shape or not np.array_equal(y, truth):
            raise DataError(f"{where} stores a different truth than {ref_where} for the same sample ids.")
        try:
            again = metricslib.compute(task, y_true=y, y_score=s, threshold=threshold, labels=labels)[metric]
        except (ValueError, KeyError) as e:
            raise DataError(f"{folder / 'predictions.npz'}: {e}") from None
        if abs(again - value) > 1e-9:
            raise DataError(f"{folder / 'predictions.npz'} does not reproduce its metrics.json "
                            f"({metric} {again:.6f} vs {value:.6f}): the file changed, or the decision rule "
                            f"or label order differs.")
        scores.append(s)
    return truth, scores, ref_ids, ref_where


def _expand_tests(tests: str | Iterable[str]) -> tuple[list[str], bool]:
    names = [tests] if isinstance(tests, str) else list(tests)
    if not names:
        raise _expected("tests", f"one or more of {', '.join(TESTS)} or 'all'", "none")
    explicit = "all" not in names
    out: list[str] = []
    for t in names:
        if t == "all":
            out.extend(TESTS)
        elif t in TESTS:
            out.append(t)
        else:
            close = difflib.get_close_matches(str(t), list(TESTS) + ["all"], n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise StatsError(f"Unknown test {t!r}.{hint} Known: {', '.join(TESTS)}, all.")
    return list(dict.fromkeys(out)), explicit


def compare_runs(
    runs_dir: str | os.PathLike | None,
    dataset: str,
    a: str,
    b: str,
    *,
    metric: str = "micro_f1",
    tests: TestName | Literal["all"] | Iterable[str] = "all",
    alpha: float = 0.05,
    seed: int = 0,
    n_resamples: int = 10_000,
    n_bootstrap_aso: int = 1000,
) -> Comparison:
    """Compare two methods' runs of ``dataset`` in the run store on ``metric`` (test split).

    ``a`` and ``b`` are method names, or ``method@config_hash`` when a method
    has several configs in the store. Welch and ASO use the per-seed values
    in ``metrics.json`` (ASO at confidence 1 − ``alpha``); the bootstrap and
    permutation tests use ``predictions.npz``, matched by sample id (the id
    sets must be equal), each run scored with the decision rule its
    ``metrics.json`` records — and each run must reproduce its stored metric
    from its predictions, or it is refused as altered.

    Several seeds: the per-sample tests compare the mean over seeds of the
    metric (the leaderboard's number), resampling each sample with all its
    seeds' predictions (see :func:`paired_bootstrap`); the permutation test
    pairs seeds in seed order, and with unequal seed counts uses the first
    min(n_A, n_B) of each (a note says so). With ``tests="all"``, Welch and
    ASO are skipped with a note when a side has a single seed; named
    explicitly, that is an error.
    """
    from mmerbench.data.registry import get_entry

    alpha = _check_alpha(alpha)
    selected, explicit = _expand_tests(tests)
    task = get_entry(dataset).spec.task
    info = _check_metric_for_task(metric, task)
    spec_labels = list(get_entry(dataset).spec.labels) if task in ("multilabel", "multiclass") else None
    ga, gb = find_runs(runs_dir, dataset, a), find_runs(runs_dir, dataset, b)
    if ga.label == gb.label:
        raise MmerbenchError(f"A and B are the same runs ({ga.label}); name two different methods or configs.")
    va, da = _stored_values(ga, metric)
    vb, db = _stored_values(gb, metric)
    hib = info.higher_is_better
    notes: list[str] = []
    results: list[ComparisonResult] = []

    seed_tests = [t for t in selected if t in SEED_TESTS]
    few = [g for g, v in ((ga, va), (gb, vb)) if len(v) < 2]
    if seed_tests and few:
        who = "; ".join(f"{g.label} has {len(g.seeds)} (seed {', '.join(map(str, g.seeds))})" for g in few)
        if explicit:
            raise MmerbenchError(f"{' and '.join(seed_tests)} need at least 2 seeds per method, but {who}; run more "
                                 f"seeds or use --test bootstrap / permutation.")
        notes.append(f"{', '.join(seed_tests)} skipped: they need at least 2 seeds per method ({who}).")
        seed_tests = []
    for t in seed_tests:
        if t == "welch":
            results.append(welch(va, vb, alpha=alpha, metric=metric))
        else:
            results.append(aso(va, vb, confidence=1 - alpha, seed=seed, n_bootstrap=n_bootstrap_aso, metric=metric))

    sample_tests = [t for t in selected if t in SAMPLE_TESTS]
    if sample_tests:
        thr_a, thr_b = _threshold_of(ga, da, task), _threshold_of(gb, db, task)
        ya, sa, ref, ref_where = _predictions(ga, task, metric, spec_labels, thr_a, va, None, None)
        _, sb, _, _ = _predictions(gb, task, metric, spec_labels, thr_b, vb, ref, ref_where)
        kw = dict(task=task, metric=metric, threshold=(thr_a, thr_b), labels=spec_labels, seed=seed, alpha=alpha)
        for t in sample_tests:
            if t == "bootstrap":
                results.append(paired_bootstrap(ya, np.stack(sa), np.stack(sb), n_resamples=n_resamples, **kw))
            else:
                k = min(len(sa), len(sb))
                if len(sa) != len(sb):
                    notes.append(f"permutation: seeds paired in seed order; used the first {k} of each "
                                 f"({ga.label}: {', '.join(map(str, ga.seeds[:k]))}; "
                                 f"{gb.label}: {', '.join(map(str, gb.seeds[:k]))}).")
                results.append(permutation_test(ya, np.stack(sa[:k]), np.stack(sb[:k]),
                                                n_permutations=n_resamples, **kw))
    return Comparison(dataset=dataset, metric=metric, higher_is_better=hib, a=ga, b=gb,
                      values_a=tuple(va.tolist()), values_b=tuple(vb.tolist()), results=tuple(results),
                      alpha=alpha, notes=tuple(notes))


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "—"
    if x != 0 and abs(x) < 10 ** -digits:
        return f"{x:.2e}"
    return f"{x:.{digits}f}"


def format_comparison(comp: Comparison) -> str:
    """The text ``mmerbench compare`` prints: both sides, then one row per test."""
    from tabulate import tabulate

    info = metricslib.metric_info(comp.metric)
    better = "higher" if comp.higher_is_better else "lower"

    def side(tag: str, g: RunGroup, v: tuple[float, ...]) -> list[str]:
        spread = f" ± {np.std(v, ddof=1):.4f}" if len(v) > 1 else ""  # ddof = 1, as the leaderboards
        return [tag, g.label, " ".join(map(str, g.seeds)), f"{np.mean(v):.4f}{spread}"]

    head = (f"{comp.dataset}, test split: {comp.metric} ({info.display}, {better} is better), "
            f"α = {comp.alpha:g}")
    sides = tabulate([side("A", comp.a, comp.values_a), side("B", comp.b, comp.values_b)],
                     headers=["", "runs", "seeds", f"{comp.metric} mean ± std"], disable_numparse=True)
    names = {A_BETTER: f"A better ({comp.a.method})", B_BETTER: f"B better ({comp.b.method})",
             NO_DIFFERENCE: f"no significant difference at α = {comp.alpha:g}"}
    rows = []
    for r in comp.results:
        if r.test == "welch":
            stat, evidence, what = f"t = {r.statistic:.3f}", f"p = {_fmt(r.p_value)}", f"seeds {r.n}"
        elif r.test == "aso":
            stat = f"ε = {r.statistic:.3f}"
            evidence = f"ε_min = {_fmt(r.eps_min, 3)} (τ = {r.details['tau']:g})"
            what = f"seeds {r.n}"
        else:
            stat, evidence = f"Δ = {r.statistic:+.4f}", f"p = {_fmt(r.p_value)}"
            what = f"samples {r.n}"
        rows.append([r.test, stat, evidence, what, names.get(r.verdict, r.verdict)])
    table = tabulate(rows, headers=["test", "statistic", "p-value / ε_min", "n", "verdict"],
                     disable_numparse=True) if rows else "(no test ran)"
    extra = [r.note for r in comp.results if r.note] + list(comp.notes)
    boot = [r for r in comp.results if r.test == "bootstrap"]
    if boot:
        d = boot[0].details
        extra.insert(0, f"bootstrap {100 * (1 - comp.alpha):g}% CI of Δ (A − B): "
                        f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")
    tail = "".join(f"\n- {x}" for x in extra)
    return f"{head}\n\n{sides}\n\n{table}\n{tail}".rstrip() + "\n"
