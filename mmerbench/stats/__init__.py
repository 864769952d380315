"""Significance tests: is method A better than method B, and by which evidence?

Four kinds of evidence, each with the tests the field uses:

* **Seeds and samples together** (the default of ``mmerbench compare`` and of
  the leaderboard's ``--reference``) — the two-level bootstrap
  (:func:`two_level_bootstrap`, after Bouthillier et al., MLSys 2021), which
  resamples each side's seeds and the shared test samples at once and
  reports Δ, its interval and P(A > B); :func:`metric_interval` is its
  one-method form, a leaderboard cell's interval.
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
* A verdict is ``"A better"``, ``"B better"``, ``"no significant
  difference"`` or ``"not applicable"`` (with the reason in ``note``: too
  few seeds or samples, zero variance across seeds — which is not
  certainty); p-values are two-sided. A degenerate input never wins.
* Randomness comes from ``numpy.random.default_rng(seed)``; the same inputs
  and seed give the same result.

Modules: :mod:`~mmerbench.stats.verdicts` (result records),
:mod:`~mmerbench.stats.checks` (argument checks), :mod:`~mmerbench.stats.seeds`,
:mod:`~mmerbench.stats.counts` (metrics as per-sample counts),
:mod:`~mmerbench.stats.samples`, :mod:`~mmerbench.stats.two_level`,
:mod:`~mmerbench.stats.ranks`, :mod:`~mmerbench.stats.cd_diagram`,
:mod:`~mmerbench.stats.store` (reading the run store) and
:mod:`~mmerbench.stats.compare` (``mmerbench compare``).

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

from mmerbench.stats.cd_diagram import cd_diagram
from mmerbench.stats.compare import (
    DEFAULT_TEST,
    SAMPLE_TESTS,
    SEED_TESTS,
    TESTS,
    Comparison,
    compare_runs,
    format_comparison,
    interval_of_runs,
)
from mmerbench.stats.ranks import critical_difference, friedman, holm, nemenyi
from mmerbench.stats.samples import paired_bootstrap, permutation_test
from mmerbench.stats.seeds import aso, welch
from mmerbench.stats.store import RunGroup, find_runs
from mmerbench.stats.two_level import metric_interval, two_level_bootstrap
from mmerbench.stats.verdicts import (
    A_BETTER,
    B_BETTER,
    NO_DIFFERENCE,
    NOT_APPLICABLE,
    ComparisonResult,
    FriedmanResult,
    HolmResult,
    NemenyiResult,
    StatsError,
)

__all__ = [
    "A_BETTER",
    "B_BETTER",
    "DEFAULT_TEST",
    "NOT_APPLICABLE",
    "NO_DIFFERENCE",
    "SAMPLE_TESTS",
    "SEED_TESTS",
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
    "interval_of_runs",
    "metric_interval",
    "nemenyi",
    "paired_bootstrap",
    "permutation_test",
    "two_level_bootstrap",
    "welch",
]
