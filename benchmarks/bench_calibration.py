"""Calibration of the significance tests: false-positive rate under a null and power on a small effect.

Simulates many comparisons of two "methods" drawn from one generator
(multi-label, 6 labels, micro-F1), each with several seeds, on a test set
freshly drawn per comparison, and counts how often each test declares a
winner at α = 0.05. Under the null a calibrated test does so in about 5 % of
the comparisons; with a true effect, the more often the better (power).

The generator (the score of label c is sigmoid(logit), predicted when > 0.5):

    logit[m, s, i, c] = (2 y[i, c] − 1) · (1 + skill[m] + g[m, s] + 0.5 h[i])
                        + u[m, i, c] + e[m, s, i, c]

* y: labels with prevalence 0.3; h[i] ~ N(0, 1): how hard sample i is
  (shared by both methods, so the pairing removes it);
* skill[m]: 0 for both methods under the null, ``effect`` for A otherwise;
* u[m, i, c] ~ N(0, σ_method): the method's own errors on a sample, the
  same for all its seeds (two deterministic methods still disagree);
* g[m, s] ~ N(0, σ_seed): a seed's overall luck; e ~ N(0, σ_noise): a
  seed's own errors on a sample.

Regimes: ``deterministic`` (σ_seed = σ_noise = 0: every seed identical, as
BR or CC), ``mixed`` (both sources), ``seed-heavy`` (the seed's luck
dominates). Tests: the two-level bootstrap (default), Welch over seeds, and
the paired bootstrap over samples (seed means). A test that is not
applicable counts as no rejection.

    python benchmarks/bench_calibration.py                   # the README table (about 5 min on 2 cores)
    python benchmarks/bench_calibration.py --comparisons 200 # a quick look
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mmerbench import stats

REGIMES = {  # σ_method, σ_seed, σ_noise
    "deterministic": (1.0, 0.0, 0.0),
    "mixed": (1.0, 0.1, 0.7),
    "seed-heavy": (0.7, 0.25, 0.5),
}
TESTS = ("two-level", "welch", "bootstrap")


def simulate(regime: str, effect: float, *, comparisons: int = 1000, n: int = 500, seeds: int = 5,
             labels: int = 6, resamples: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict[str, float]:
    """The share of comparisons in which each test declares a winner (either side) at ``alpha``."""
    s_method, s_seed, s_noise = REGIMES[regime]
    rng = np.random.default_rng([seed, int(1000 * effect), list(REGIMES).index(regime)])
    wins = dict.fromkeys(TESTS, 0)
    for k in range(comparisons):
        y = (rng.random((n, labels)) < 0.3).astype(np.int8)
        sign = 2.0 * y - 1
        h = rng.normal(0, 1, (n, 1))

        def method(skill: float) -> np.ndarray:
            u = rng.normal(0, s_method, (n, labels))
            g = rng.normal(0, s_seed, (seeds, 1, 1))
            e = rng.normal(0, s_noise, (seeds, n, labels))
            logit = sign * (1.0 + skill + g + 0.5 * h) + u + e
            return 1.0 / (1.0 + np.exp(-logit))

        a, b = method(effect), method(0.0)
        kw = dict(task="multilabel", metric="micro_f1", n_resamples=resamples, seed=k, alpha=alpha)
        results = {
            "two-level": stats.two_level_bootstrap(y, a, b, **kw),
            "bootstrap": stats.paired_bootstrap(y, a, b, **kw),
            "welch": stats.welch(_per_seed(y, a), _per_seed(y, b), alpha=alpha, metric="micro_f1"),
        }
        for t, r in results.items():
            wins[t] += r.significant
    return {t: w / comparisons for t, w in wins.items()}


def _per_seed(y: np.ndarray, scores: np.ndarray) -> list[float]:
    from mmerbench.metrics import compute

    return [compute("multilabel", y_true=y, y_score=s)["micro_f1"] for s in scores]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comparisons", type=int, default=1000)
    ap.add_argument("--effect", type=float, default=0.1, help="A's skill advantage for the power rows")
    ap.add_argument("--regimes", nargs="+", default=list(REGIMES))
    args = ap.parse_args()
    print(f"{args.comparisons} comparisons per cell, 5 vs 5 seeds, 500 test samples x 6 labels, micro-F1, "
          f"alpha = 0.05, 1,000 resamples; power at skill effect {args.effect:g}")
    print()
    print("| regime | test | false-positive rate (null) | power (small effect) |")
    print("| --- | --- | --- | --- |")
    for regime in args.regimes:
        t0 = time.perf_counter()
        null = simulate(regime, 0.0, comparisons=args.comparisons)
        power = simulate(regime, args.effect, comparisons=args.comparisons)
        for t in TESTS:
            print(f"| {regime} | {t} | {null[t]:.3f} | {power[t]:.3f} |", flush=True)
        print(f"<!-- {regime}: {time.perf_counter() - t0:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
