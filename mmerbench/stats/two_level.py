"""Seeds and test samples together: the two-level bootstrap (the default test of `compare` and the leaderboard).

A benchmark number has two sources of variance: the training run (seed) and
the finite test set. A test over seeds alone reads zero spread as certainty;
a test over samples alone ignores that another seed gives another model.
Following Bouthillier et al. ("Accounting for Variance in Machine Learning
Benchmarks", MLSys 2021), both are resampled together:

* level 1, seeds: each side's seeds are drawn with replacement (n_A from
  A's, n_B from B's), independently — A's seed 1 has nothing to do with
  B's seed 1;
* level 2, test samples: the N samples are drawn with replacement, once per
  resample and shared by both sides (the pairing: both methods are scored
  on the same resampled test set);

and Δ* = mean over the drawn seeds of M(A) − the same for B on that
resample. From the B resamples: Δ on the full data, its 1 − α percentile
interval, a two-sided p (the shifted distribution Δ* − Δ as the null, as in
:func:`~mmerbench.stats.paired_bootstrap`) and P(A > B), the probability
that one training run of A beats one of B on a test set drawn like this one
(Bouthillier et al.'s probability of outperforming, ties counting ½),
averaged over the resamples.

With one seed per side level 1 is empty and the test is exactly the paired
bootstrap over samples (the sample draws come from the same generator
stream; the seed draws from a second one).

Two choices for few seeds, ours (a bootstrap of 5 values is too narrow):

* the seed level's spread around the all-seed mean is scaled by
  sqrt(n / (n − 1)), so its variance is the unbiased s²/n;
* the bootstrap p and interval are read on a t scale with Welch–Satterthwaite
  degrees of freedom of Δ's variance (seed parts with n − 1 df each, the
  sample part with N − 1): the bootstrap p is turned into its normal
  quantile and that into a t tail; the interval's half-widths are scaled
  by t_df / z at 1 − α/2. With many samples and no seed variance df is
  about N and nothing changes.

Without them the false-positive rate with 5 seeds of seed-dominated noise
is about 0.12 (0.09 with the first alone); the calibration measured by
``benchmarks/bench_calibration.py`` is in the README.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from mmerbench.stats.checks import _check_alpha, _check_count, _check_seed
from mmerbench.stats.counts import _Paired
from mmerbench.stats.samples import _sides, _too_few_samples, bootstrap_result, resampled_values
from mmerbench.stats.verdicts import ComparisonResult, not_applicable


def _seed_weights(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """``[rows, n]`` weights of n seeds drawn with replacement (counts / n); no draw for one seed."""
    if n == 1:
        return np.ones((rows, 1))
    return rng.multinomial(n, np.full(n, 1.0 / n), size=rows) / n


def _seed_mean(vals: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The mean over drawn seeds, its spread around the all-seed mean scaled by sqrt(n / (n − 1)).

    A bootstrap of n values has variance (n − 1)/n · s²/n for their mean; the
    scale makes it s²/n, unbiased (n = 1: no seed spread at all).
    """
    n = vals.shape[1]
    full = vals.mean(axis=1)
    if n == 1:
        return (vals * w).sum(axis=1)
    return full + np.sqrt(n / (n - 1)) * ((vals * w).sum(axis=1) - full)


def two_level_draws(pt: _Paired, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Δ* per resample and, per resample, the share of (A seed, B seed) pairs in which A is better."""
    sample_rng = np.random.default_rng(seed)  # the paired bootstrap's stream
    seed_rng = np.random.default_rng([seed, 1])
    deltas, wins = np.empty(n_resamples), np.empty(n_resamples)
    sign = 1.0 if pt.hib else -1.0
    for done, _, vals in resampled_values(pt, n_resamples, sample_rng):
        r = len(vals)
        va, vb = vals[:, : pt.n_a], vals[:, pt.n_a:]
        wa, wb = _seed_weights(seed_rng, r, pt.n_a), _seed_weights(seed_rng, r, pt.n_b)
        deltas[done:done + r] = _seed_mean(va, wa) - _seed_mean(vb, wb)
        pair = sign * (va[:, :, None] - vb[:, None, :])
        wins[done:done + r] = ((pair > 0) + 0.5 * (pair == 0)).mean(axis=(1, 2))
    return deltas, wins


def two_level_bootstrap(
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
    """Two-level bootstrap of Δ = M(A) − M(B) over seeds and test samples (two-sided).

    Arguments as in :func:`~mmerbench.stats.paired_bootstrap`: ``score_a`` /
    ``score_b`` carry a leading seed axis for several seeds (the two sides
    may have different seed counts), M is the mean of the per-seed metric
    values. ``statistic`` is the observed Δ; ``details`` holds ``ci_low`` /
    ``ci_high`` (the 1 − ``alpha`` percentile interval of Δ*) and
    ``p_a_better`` (P(A > B) by the metric's direction). Not applicable with
    fewer than 2 test samples, or when the resampled Δ* have no spread.
    """
    alpha = _check_alpha(alpha)
    n_resamples = _check_count(n_resamples, "n_resamples", 1)
    seed = _check_seed(seed)
    pt = _Paired(task, metric, y_true, score_a, score_b, threshold, labels)
    why = _too_few_samples(pt)
    if why:
        return not_applicable("two-level", why, n=pt.n, alpha=alpha, metric=metric, higher_is_better=pt.hib,
                              details=_sides(pt))
    deltas, wins = two_level_draws(pt, n_resamples, seed)
    df = _effective_df(pt, float(np.var(deltas)))
    return bootstrap_result("two-level", pt, deltas, alpha=alpha, metric=metric, df=df,
                            details={"p_a_better": float(wins.mean()), "df": df, "n_resamples": n_resamples,
                                     "seed": seed})


def _effective_df(pt: _Paired, var_total: float) -> float:
    """Welch–Satterthwaite degrees of freedom of Δ's variance, split into its seed and sample parts.

    Each side's seed part s²/n is estimated from n values (n − 1 df); what the
    bootstrap adds beyond them is the sample part, from N values. With a few
    seeds carrying most of the variance the df are small and the bootstrap's
    normal-like tails too thin; ``inf`` when neither side has 2 seeds.
    """
    parts, terms = [], []
    for ref in (pt.ref_a, pt.ref_b):
        if len(ref) >= 2:
            v = float(np.var(ref, ddof=1)) / len(ref)
            parts.append(v)
            terms.append(v * v / (len(ref) - 1))
    if not parts:
        return math.inf
    sample = max(var_total - sum(parts), 0.0)
    terms.append(sample * sample / (pt.n - 1))
    den = sum(terms)
    return var_total * var_total / den if den > 0 else math.inf


def metric_interval(
    y_true: Any,
    scores: Any,
    *,
    task: str,
    metric: str,
    threshold: float = 0.5,
    labels: Sequence[str] | None = None,
    n_resamples: int = 2_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """(mean over seeds of M, and its 1 − ``alpha`` two-level bootstrap interval) of one method.

    The interval a leaderboard cell can show instead of ± std: it counts the
    test set's sampling as well as the seeds', so a deterministic method
    still gets an honest width.
    """
    alpha = _check_alpha(alpha)
    n_resamples = _check_count(n_resamples, "n_resamples", 1)
    seed = _check_seed(seed)
    pt = _Paired(task, metric, y_true, scores, scores, threshold, labels)  # B is a copy, unused
    seed_rng = np.random.default_rng([seed, 1])
    draws = np.empty(n_resamples)
    for done, _, vals in resampled_values(pt, n_resamples, np.random.default_rng(seed)):
        va = vals[:, : pt.n_a]
        draws[done:done + len(va)] = (va * _seed_weights(seed_rng, len(va), pt.n_a)).sum(axis=1)
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return float(np.mean(pt.ref_a)), float(lo), float(hi)
