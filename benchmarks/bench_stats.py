"""Speed of mmerbench.stats on a MOSEI-sized test split (N = 4,659, 6 labels) and on 5 seeds.

Two ways to run it (neither is part of the default ``pytest`` run):

    python -m pytest benchmarks/bench_stats.py      # pytest-benchmark table
    python benchmarks/bench_stats.py                # median seconds per call

Targets: 10,000 paired-bootstrap resamples of micro-F1 and of Jaccard accuracy
well under a second each; 10,000 two-level resamples (seeds and samples) of
5 seeds × 4,659 samples × 6 labels (micro-F1) under 2 s; ASO on two sets of 5
seeds (1,000 bootstrap iterations) well under a second. The permutation test
and Welch are timed too.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path
from typing import Any, Callable

import numpy as np

try:
    from mmerbench import stats
except ImportError:  # run as a script from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mmerbench import stats

N = 4659  # CMU-MOSEI emotion test split
PRIORS = np.array([0.52, 0.25, 0.22, 0.10, 0.17, 0.08])  # roughly MOSEI's label marginals
RESAMPLES = 10_000


def make_data(seed: int = 0) -> dict[str, Any]:
    """Truth and two systems' sigmoid scores (A slightly better), and per-seed micro-F1 of 5 seeds each."""
    rng = np.random.default_rng(seed)
    y = (rng.random((N, len(PRIORS))) < PRIORS).astype(np.int64)

    def scores(strength: float) -> np.ndarray:
        return 1 / (1 + np.exp(-(strength * (2 * y - 1) + rng.normal(0, 1.5, size=y.shape))))

    return {
        "y": y, "a": scores(1.5), "b": scores(1.4),
        "a5": np.stack([scores(1.5) for _ in range(5)]), "b5": np.stack([scores(1.4) for _ in range(5)]),
        "seeds_a": rng.normal(0.52, 0.01, 5), "seeds_b": rng.normal(0.51, 0.01, 5),
    }


DATA = make_data()


def bootstrap(metric: str) -> stats.ComparisonResult:
    return stats.paired_bootstrap(DATA["y"], DATA["a"], DATA["b"], task="multilabel", metric=metric,
                                  n_resamples=RESAMPLES)


def two_level(metric: str) -> stats.ComparisonResult:
    return stats.two_level_bootstrap(DATA["y"], DATA["a5"], DATA["b5"], task="multilabel", metric=metric,
                                     n_resamples=RESAMPLES)


def permutation(metric: str) -> stats.ComparisonResult:
    return stats.permutation_test(DATA["y"], DATA["a"], DATA["b"], task="multilabel", metric=metric,
                                  n_permutations=RESAMPLES)


def aso() -> stats.ComparisonResult:
    return stats.aso(DATA["seeds_a"], DATA["seeds_b"], n_bootstrap=1000)


def welch() -> stats.ComparisonResult:
    return stats.welch(DATA["seeds_a"], DATA["seeds_b"])


CASES: dict[str, Callable[[], stats.ComparisonResult]] = {
    "two-level micro_f1 5+5 seeds (10k)": lambda: two_level("micro_f1"),
    "bootstrap micro_f1 (10k)": lambda: bootstrap("micro_f1"),
    "bootstrap jaccard acc (10k)": lambda: bootstrap("acc"),
    "bootstrap macro_f1 (10k)": lambda: bootstrap("macro_f1"),
    "permutation micro_f1 (10k)": lambda: permutation("micro_f1"),
    "permutation jaccard acc (10k)": lambda: permutation("acc"),
    "aso 5 vs 5 seeds (1k)": aso,
    "welch 5 vs 5 seeds": welch,
}


def test_bootstrap_micro_f1(benchmark):
    res = benchmark(bootstrap, "micro_f1")
    assert res.details["n_resamples"] == RESAMPLES and 0 < res.p_value <= 1


def test_two_level_micro_f1_five_seeds(benchmark):
    res = benchmark(two_level, "micro_f1")
    assert res.details["n_resamples"] == RESAMPLES and res.details["seeds_a"] == 5 and 0 < res.p_value <= 1


def test_bootstrap_jaccard(benchmark):
    res = benchmark(bootstrap, "acc")
    assert res.details["n_resamples"] == RESAMPLES and 0 < res.p_value <= 1


def test_permutation_micro_f1(benchmark):
    res = benchmark(permutation, "micro_f1")
    assert res.details["n_permutations"] == RESAMPLES and 0 < res.p_value <= 1


def test_aso_five_seeds(benchmark):
    res = benchmark(aso)
    assert 0 <= res.eps_min <= 1


def median_s(fn: Callable[[], Any], repeat: int = 7) -> float:
    fn()  # warm-up: imports, caches
    return float(np.median(timeit.repeat(fn, number=1, repeat=repeat)))


def main() -> None:
    print(f"mmerbench.stats, test split N = {N} x {len(PRIORS)} labels, numpy {np.__version__}")
    for name, fn in CASES.items():
        print(f"  {name:<36} {median_s(fn):8.4f} s/call (median of 7)")


if __name__ == "__main__":
    main()
