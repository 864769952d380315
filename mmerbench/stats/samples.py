"""Per sample: the paired bootstrap and approximate randomization on the stored test predictions."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from mmerbench.stats.checks import _check_alpha, _check_count, _check_seed, _verdict
from mmerbench.stats.counts import _CHUNK_ELEMENTS, _Paired, _one_blas_thread, _tie_tol
from mmerbench.stats.verdicts import ComparisonResult, StatsError, not_applicable


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
    why = _too_few_samples(pt)
    if why:
        return not_applicable("bootstrap", why, n=pt.n, alpha=alpha, metric=metric, higher_is_better=pt.hib,
                              details=_sides(pt))
    deltas = np.empty(n_resamples)
    for done, _, vals in resampled_values(pt, n_resamples, np.random.default_rng(seed)):
        deltas[done:done + len(vals)] = pt.delta(vals)
    return bootstrap_result("bootstrap", pt, deltas, alpha=alpha, metric=metric,
                            details={"n_resamples": n_resamples, "seed": seed})


def _sides(pt: _Paired) -> dict[str, Any]:
    return {"mean_a": float(np.mean(pt.ref_a)), "mean_b": float(np.mean(pt.ref_b)),
            "seeds_a": pt.n_a, "seeds_b": pt.n_b, "n_a": pt.n, "n_b": pt.n}


def _too_few_samples(pt: _Paired) -> str | None:
    if pt.n < 2:
        return f"{pt.n} test sample; a test over samples needs at least 2"
    return None


def resampled_values(pt: _Paired, n_resamples: int, rng: np.random.Generator):
    """Chunks of sample resamples: ``(first row, sample indices [r, N], metric per system [r, S])``.

    Every per-sample test that bootstraps draws its resamples here, in the
    same order from ``rng``, so that one seed gives one set of resamples.
    Samples with identical counts in every system are merged first (exact:
    drawing either is the same draw for every metric), so a resample is a
    bincount over "sample types" and one matrix product.
    """
    feats = np.hstack(pt.counted.features)  # [N, S·k]
    uniq, inverse = np.unique(feats, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    types = len(uniq)
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
            yield done, idx, vals
            done += r


def bootstrap_result(test: str, pt: _Paired, deltas: np.ndarray, *, alpha: float, metric: str,
                     details: dict[str, Any], df: float = math.inf) -> ComparisonResult:
    """The verdict of a bootstrap distribution ``deltas`` of Δ: two-sided p, percentile CI.

    The p-value takes the shifted distribution Δ* − Δ as the null:
    p = (1 + #{|Δ* − Δ| ≥ |Δ|}) / (B + 1). A distribution with no spread
    while Δ ≠ 0 (every sample favours one side by the same amount, or too
    few samples) measures no uncertainty at all: not applicable.

    A finite ``df`` reads the result on a t scale: p becomes the t tail
    (``df`` degrees of freedom) of the normal quantile of the bootstrap p,
    and the interval's half-widths around Δ grow by t_df / z at 1 − α/2.
    """
    feats = np.hstack(pt.counted.features)
    observed = float(pt.delta(pt.values(feats.sum(axis=0, keepdims=True))[0])[0])  # ties judged on this scale
    tol = _tie_tol(observed)
    info = {**details, **_sides(pt)}
    if np.ptp(deltas) <= tol and abs(observed) > tol:
        return not_applicable(test, f"the resampled differences have no spread (every resample gives Δ = "
                                    f"{observed:+.6g}), so they cannot weigh it; try --test permutation",
                              n=pt.n, alpha=alpha, metric=metric, higher_is_better=pt.hib, details=info)
    extreme = int(np.count_nonzero(np.abs(deltas - observed) >= abs(observed) - tol))
    p = (extreme + 1) / (len(deltas) + 1)
    lo, hi = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    if math.isfinite(df):
        from scipy import stats as st

        p = float(min(1.0, 2 * st.t.sf(st.norm.isf(p / 2), df)))
        widen = float(st.t.isf(alpha / 2, df) / st.norm.isf(alpha / 2))
        lo, hi = observed + (lo - observed) * widen, observed + (hi - observed) * widen
    return ComparisonResult(
        test=test, statistic=pt.observed, p_value=float(p),
        verdict=_verdict(p < alpha, pt.observed, pt.hib), n=pt.n, alpha=alpha, metric=metric,
        higher_is_better=pt.hib, details={"ci_low": float(lo), "ci_high": float(hi), **info},
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
    why = _too_few_samples(pt)
    if why:
        return not_applicable("permutation", why, n=pt.n, alpha=alpha, metric=metric, higher_is_better=pt.hib,
                              details=_sides(pt))
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
