"""Across seeds: Welch's t-test and Almost Stochastic Order on one metric value per training seed."""

from __future__ import annotations

import math
import numbers
import warnings
from functools import lru_cache
from typing import Sequence

import numpy as np

from mmerbench.stats.checks import _check_alpha, _check_count, _check_seed, _direction, _expected, _values, _verdict
from mmerbench.stats.verdicts import A_BETTER, B_BETTER, NO_DIFFERENCE, ComparisonResult, not_applicable


def _degenerate(xa: np.ndarray, xb: np.ndarray) -> str | None:
    """Why one value per seed cannot support a verdict on these inputs, or None when it can.

    Fewer than 2 seeds gives no spread at all; zero spread across seeds (a
    deterministic method, or identical runs) is not certainty: the test set
    is a sample too, and only a test that resamples it can weigh the
    difference (the two-level bootstrap).
    """
    few = [f"{side} has {len(x)} seed" for side, x in (("A", xa), ("B", xb)) if len(x) < 2]
    if few:
        return f"{' and '.join(few)}; a test over seeds needs at least 2 per side"
    flat = [f"every seed of {side} scores {x[0]:.6g}" for side, x in (("A", xa), ("B", xb)) if np.ptp(x) == 0]
    if flat:
        return (f"no variance across seeds ({'; '.join(flat)}), and zero spread is not certainty: the test "
                f"set is a sample too (the two-level bootstrap resamples it)")
    return None


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
    neither is given.

    Not applicable (``verdict == NOT_APPLICABLE``, the reason in ``note``)
    when a side has fewer than 2 seeds or zero variance: t is then 0/0 or
    ±inf, and scipy's p = 0 for two different constants would call a tie
    on a finite test set a certain win.
    """
    from scipy import stats as st

    alpha = _check_alpha(alpha)
    hib = _direction(metric, higher_is_better)
    xa = _values(a, "a", 1, "seeds")
    xb = _values(b, "b", 1, "seeds")
    means = {"mean_a": float(xa.mean()), "mean_b": float(xb.mean()), "n_a": len(xa), "n_b": len(xb)}
    why = _degenerate(xa, xb)
    if why:
        return not_applicable("welch", why, n=len(xa) + len(xb), alpha=alpha, metric=metric,
                              higher_is_better=hib, details=means)
    with warnings.catch_warnings():  # scipy warns on nearly constant samples
        warnings.simplefilter("ignore", RuntimeWarning)
        res = st.ttest_ind(xa, xb, equal_var=False)
    t, p, df = float(res.statistic), float(res.pvalue), float(res.df)
    diff = float(xa.mean() - xb.mean())
    return ComparisonResult(
        test="welch", statistic=t, p_value=p, verdict=_verdict(p < alpha, diff, hib),
        n=len(xa) + len(xb), alpha=alpha, metric=metric, higher_is_better=hib,
        details={"df": df, **means, "std_a": float(xa.std(ddof=1)), "std_b": float(xb.std(ddof=1))},
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
    first. Not applicable (the reason in ``note``) when a side has fewer
    than 2 scores or zero variance: the bootstrap spread σ̂ is then 0 and
    ε_min would be exactly 0 or 1, a "certain" verdict from no evidence.
    """
    from scipy import stats as st

    if isinstance(confidence, (bool, np.bool_)) or not isinstance(confidence, numbers.Real) or not 0.5 <= confidence < 1:
        raise _expected("confidence", "a number in [0.5, 1)", repr(confidence))
    if isinstance(tau, (bool, np.bool_)) or not isinstance(tau, numbers.Real) or not 0 < tau <= 0.5:
        raise _expected("tau", "a number in (0, 0.5]", repr(tau))
    seed = _check_seed(seed)
    n_bootstrap = _check_count(n_bootstrap, "n_bootstrap", 2)
    hib = _direction(metric, higher_is_better)
    xa = _values(a, "a", 1, "seeds")
    xb = _values(b, "b", 1, "seeds")
    why = _degenerate(xa, xb)
    if why:
        return not_applicable("aso", why, n=len(xa) + len(xb), alpha=round(1 - float(confidence), 12),
                              metric=metric, higher_is_better=hib,
                              details={"tau": float(tau), "confidence": float(confidence), "n_a": len(xa),
                                       "n_b": len(xb), "mean_a": float(xa.mean()), "mean_b": float(xb.mean())})
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
