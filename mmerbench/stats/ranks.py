"""Families and rankings: Holm's correction; Friedman, Nemenyi and the critical difference across datasets."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from mmerbench.stats.checks import _check_alpha, _check_count, _direction, _expected
from mmerbench.stats.verdicts import NO_DIFFERENCE, NOT_APPLICABLE, FriedmanResult, HolmResult, NemenyiResult

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
    note = ""
    if (np.ptp(x, axis=1) == 0).all():  # every dataset ties every method: no ranking to test
        chi2, p = 0.0, 1.0
        note = "not applicable: every method ties on every dataset"
    else:
        res = st.friedmanchisquare(*x.T)
        chi2, p = float(res.statistic), float(res.pvalue)
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
        verdict=NOT_APPLICABLE if note else "the methods differ" if p < alpha else NO_DIFFERENCE, note=note,
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
