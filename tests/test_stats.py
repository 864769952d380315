"""mmerbench.stats against scipy / statsmodels, hand-computed cases, and the run store end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats as st

from mmerbench import metrics, results, stats
from mmerbench.stats import counts as stats_counts, ranks as stats_ranks, seeds as stats_seeds
from mmerbench.cli import cli
from mmerbench.errors import DataError, MmerbenchError, UnknownNameError

LABELS = ["happy", "sad", "anger", "surprise", "disgust", "fear"]
PRIORS = np.array([0.52, 0.25, 0.22, 0.10, 0.17, 0.08])
CLASSES = ["neutral", "happy", "sad", "angry"]
DATASET = "synth-mosei-aligned"


# ---------------------------------------------------------------- data


def ml_data(n=300, seed=0, strength_a=1.5, strength_b=1.5, seeds=None):
    """Multi-label truth and sigmoid scores whose quality grows with `strength`."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(LABELS))) < PRIORS).astype(np.int64)

    def scores(strength):
        logits = strength * (2 * y - 1) + rng.normal(0, 1.5, size=y.shape)
        return 1 / (1 + np.exp(-logits))

    if seeds is None:
        return y, scores(strength_a), scores(strength_b)
    return y, np.stack([scores(strength_a) for _ in range(seeds)]), np.stack([scores(strength_b) for _ in range(seeds)])


def task_data(task, n=120, seed=0):
    """(y_true, y_score, labels) of each task, with ties, zeros and empty rows that exercise the edge rules."""
    rng = np.random.default_rng(seed)
    if task == "multilabel":
        y, s, _ = ml_data(n, seed)
        y[:5] = 0  # empty truth rows (Jaccard 0/0)
        s[:3] = 0.1  # empty predictions
        return y, s, LABELS
    if task == "multiclass":
        y = rng.integers(0, 4, size=n)
        y[y == 3] = 2  # class 3 absent from the truth
        s = rng.normal(size=(n, 4)) + 1.5 * np.eye(4)[y]
        return y, s, CLASSES
    if task == "regression":
        y = np.round(rng.uniform(-3, 3, size=n) * 3) / 3
        y[:10] = 0.0
        p = np.clip(y + rng.normal(0, 1, size=n), -3, 3)
        p[10:13] = 0.0
        return y, p, None
    y = (rng.random(n) < 0.4).astype(int)
    s = 1 / (1 + np.exp(-(2 * (2 * y - 1) + rng.normal(0, 2, size=n))))
    return y, s, None


# ---------------------------------------------------------------- the count path equals the metrics module


# Metrics the count path does not cover yet: stats.py's `_counted_regression` needs a branch for it
# (the non0 binary counts of `f1_non0`, reduced with the predicted class counts as weights).
NO_COUNT_FORM_YET: set[str] = set()  # metrics the count path cannot reduce (none today)


@pytest.mark.parametrize("task", ["multilabel", "multiclass", "regression", "binary"])
def test_count_path_equals_metrics_module_on_resamples(task):
    y, s, labels = task_data(task)
    n = len(y)
    rng = np.random.default_rng(7)
    counts = [np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(6)]
    counts.append(np.ones(n, dtype=int))  # the full set
    few = np.zeros(n, dtype=int)
    few[[3, 20, 41, 77]] = [2, 1, 3, 1]  # a tiny resample: classes and labels go missing
    counts.append(few)
    counts = np.stack(counts)
    keys = [k for k in metrics.compute(task, y_true=y, y_score=s, threshold=0.5, labels=labels)
            if k not in NO_COUNT_FORM_YET]
    assert len(keys) >= 2
    for key in keys:
        got = stats_counts._metric_on_counts(task, key, y, s, counts, threshold=0.5, labels=labels)
        for r, w in enumerate(counts):
            sel = np.repeat(np.arange(n), w)
            want = metrics.compute(task, y_true=y[sel], y_score=s[sel], threshold=0.5, labels=labels)[key]
            assert abs(got[r] - want) <= 1e-12, (key, r, got[r], want)


def test_count_path_on_a_mosei_size_split():
    y, a, _ = ml_data(4659, seed=3)
    rng = np.random.default_rng(0)
    counts = np.stack([np.bincount(rng.integers(0, 4659, 4659), minlength=4659) for _ in range(3)])
    for key in ("micro_f1", "acc", "macro_f1", "hamming_loss"):
        got = stats_counts._metric_on_counts("multilabel", key, y, a, counts)
        for r, w in enumerate(counts):
            sel = np.repeat(np.arange(4659), w)
            assert abs(got[r] - metrics.multilabel(y_true=y[sel], y_score=a[sel])[key]) <= 1e-12


def test_bootstrap_equals_a_plain_loop_over_the_same_resamples():
    """The merged-types count path gives exactly what calling the metric per resample gives."""
    y, a, b = ml_data(100, seed=5, strength_a=1.2, strength_b=1.0)
    n_res, seed = 200, 11  # one chunk: the test can redraw the same indices
    idx = np.random.default_rng(seed).integers(0, 100, size=(n_res, 100))
    for key in ("micro_f1", "acc"):
        ref = np.array([metrics.multilabel(y_true=y[i], y_score=a[i])[key] - metrics.multilabel(y_true=y[i], y_score=b[i])[key]
                        for i in idx])
        obs = metrics.multilabel(y_true=y, y_score=a)[key] - metrics.multilabel(y_true=y, y_score=b)[key]
        p_ref = (1 + np.sum(np.abs(ref - obs) >= abs(obs) - 1e-12)) / (n_res + 1)
        res = stats.paired_bootstrap(y, a, b, task="multilabel", metric=key, n_resamples=n_res, seed=seed)
        assert res.p_value == pytest.approx(p_ref, abs=1e-12)
        assert res.statistic == pytest.approx(obs, abs=1e-12)
        lo, hi = np.quantile(ref, [0.025, 0.975])
        assert res.details["ci_low"] == pytest.approx(lo, abs=1e-12)
        assert res.details["ci_high"] == pytest.approx(hi, abs=1e-12)


# ---------------------------------------------------------------- Welch


def test_welch_matches_scipy_and_reads_the_direction():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.52, 0.01, 5), rng.normal(0.50, 0.02, 4)
    res = stats.welch(a, b, metric="micro_f1")
    ref = st.ttest_ind(a, b, equal_var=False)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert res.n == 9 and res.details["n_a"] == 5
    assert res.verdict == (stats.A_BETTER if ref.pvalue < 0.05 else stats.NO_DIFFERENCE)

    low, high = [0.40, 0.41, 0.42], [0.60, 0.61, 0.63]  # errors: lower is better
    assert stats.welch(low, high, metric="mae").verdict == stats.A_BETTER
    assert stats.welch(low, high, metric="micro_f1").verdict == stats.B_BETTER
    assert stats.welch(low, high, metric="hamming_loss").statistic < 0  # raw A − B


def test_welch_edge_cases():
    # Degenerate inputs (one seed, zero variance) are tests/test_stats_degenerate.py's.
    with pytest.raises(stats.StatsError, match="finite"):
        stats.welch([0.5, float("nan")], [0.4, 0.5])
    with pytest.raises(stats.StatsError, match="contradicts"):
        stats.welch([1, 2], [3, 4], metric="mae", higher_is_better=True)
    with pytest.raises(UnknownNameError, match="Did you mean 'micro_f1'"):
        stats.welch([1, 2], [3, 4], metric="micro_f2")


# ---------------------------------------------------------------- ASO


def _riemann_violation_ratio(a, b, steps=200_000):
    """ε_W2 by the definition: a midpoint sum over t of the empirical quantile functions x_(⌈n t⌉)."""
    t = (np.arange(steps) + 0.5) / steps
    qa = np.sort(a)[np.clip(np.ceil(len(a) * t).astype(int) - 1, 0, len(a) - 1)]
    qb = np.sort(b)[np.clip(np.ceil(len(b) * t).astype(int) - 1, 0, len(b) - 1)]
    diff = qb - qa
    return np.sum(np.maximum(diff, 0) ** 2) / np.sum(diff ** 2)


def test_violation_ratio_hand_cases():
    # a = (2, 3), b = (0, 4): B − A is −2 on (0, ½], +1 on (½, 1] → ε = (½·1) / (½·4 + ½·1) = 0.2
    assert stats_seeds._violation_ratios(np.array([[2.0, 3.0]]), np.array([[0.0, 4.0]]))[0] == pytest.approx(0.2)
    # a = (1, 2, 3), b = (0, 5): pieces (0,⅓] −1, (⅓,½] −2, (½,⅔] +3, (⅔,1] +2 → ε = (9/6 + 4/3) / (1/3 + 4/6 + 9/6 + 4/3) = 17/23
    got = stats_seeds._violation_ratios(np.array([[1.0, 2.0, 3.0]]), np.array([[0.0, 5.0]]))[0]
    assert got == pytest.approx(17 / 23, abs=1e-15)
    # identical samples: W2 = 0, ε = ½
    assert stats_seeds._violation_ratios(np.array([[1.0, 2.0]]), np.array([[1.0, 2.0]]))[0] == 0.5


def test_violation_ratio_is_the_limit_of_the_riemann_sum():
    rng = np.random.default_rng(4)
    for n, m in ((5, 5), (5, 7), (3, 8)):
        a, b = rng.normal(0, 1, n), rng.normal(0.3, 1, m)
        exact = stats_seeds._violation_ratios(np.sort(a)[None], np.sort(b)[None])[0]
        assert exact == pytest.approx(_riemann_violation_ratio(a, b), abs=1e-3)


def test_aso_dominance_reversal_and_swap():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.6, 0.005, 5), rng.normal(0.5, 0.005, 5)
    ab = stats.aso(a, b, seed=1)
    assert ab.statistic == 0.0 and ab.eps_min == pytest.approx(0.0, abs=1e-12) and ab.verdict == stats.A_BETTER
    ba = stats.aso(b, a, seed=1)
    assert ba.statistic == 1.0 and ba.eps_min == pytest.approx(1.0) and ba.verdict == stats.B_BETTER
    # Overlapping samples: ε(A, B) + ε(B, A) = 1, and the two bounds share one margin.
    c, d = rng.normal(0.50, 0.02, 6), rng.normal(0.49, 0.02, 5)
    cd, dc = stats.aso(c, d, seed=3), stats.aso(d, c, seed=3)
    assert cd.statistic + dc.statistic == pytest.approx(1.0, abs=1e-12)
    # ε_min = ε − sqrt((n + m)/(n m)) · σ̂ · Φ⁻¹(1 − confidence), clipped to [0, 1]
    margin = -math.sqrt((6 + 5) / (6 * 5)) * cd.details["sigma"] * st.norm.ppf(1 - 0.95)
    assert margin > 0
    assert cd.eps_min == pytest.approx(min(1.0, max(0.0, cd.statistic + margin)), abs=1e-12)
    assert cd.details["eps_min_reverse"] == pytest.approx(min(1.0, max(0.0, 1 - cd.statistic + margin)), abs=1e-12)


def test_aso_identical_distributions():
    same = stats.aso([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert same.statistic == 0.5 and same.verdict == stats.NO_DIFFERENCE
    rng = np.random.default_rng(9)
    eps, strict, lenient = [], [], []
    for i in range(200):
        a, b = rng.normal(0, 1, 10), rng.normal(0, 1, 10)
        r = stats.aso(a, b, seed=i, n_bootstrap=300)
        eps.append(r.statistic)
        strict.append(r.verdict == stats.NO_DIFFERENCE)
        lenient.append(stats.aso(a, b, seed=i, n_bootstrap=300, tau=0.5).verdict == stats.NO_DIFFERENCE)
    assert abs(np.mean(eps) - 0.5) < 0.05  # symmetric around ½
    assert np.mean(strict) > 0.85  # τ = 0.2 (default) rarely declares a winner between equals
    assert np.mean(lenient) < np.mean(strict)


def test_aso_bound_grows_with_confidence_and_reads_the_direction():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.52, 0.02, 5), rng.normal(0.50, 0.02, 5)
    lo, hi = stats.aso(a, b, confidence=0.8), stats.aso(a, b, confidence=0.99)
    assert lo.statistic == hi.statistic
    assert lo.statistic <= lo.eps_min <= hi.eps_min
    assert stats.aso(a, b, seed=5).to_dict() == stats.aso(a, b, seed=5).to_dict()
    err_a, err_b = [0.40, 0.41, 0.39, 0.40], [0.70, 0.72, 0.71, 0.69]  # MAE: lower is better
    assert stats.aso(err_a, err_b, metric="mae").verdict == stats.A_BETTER
    assert stats.aso(err_a, err_b, metric="corr").verdict == stats.B_BETTER


# ---------------------------------------------------------------- Holm


def test_holm_hand_computed():
    res = stats.holm([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → running max 0.06
    assert res.adjusted == pytest.approx((0.03, 0.06, 0.06, 0.02))
    assert res.reject == (True, False, False, True)
    assert stats.holm([0.2, 0.9]).adjusted == pytest.approx((0.4, 0.9))
    assert stats.holm([0.6, 0.7]).adjusted == pytest.approx((1.0, 1.0))
    assert stats.holm([]).adjusted == ()
    with pytest.raises(stats.StatsError):
        stats.holm([0.1, float("nan")])
    with pytest.raises(stats.StatsError):
        stats.holm([1.2])


def test_holm_matches_statsmodels():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    rng = np.random.default_rng(1)
    for m in (1, 3, 8, 20):
        p = rng.uniform(0, 0.1, m) ** rng.uniform(0.5, 2, m)
        for alpha in (0.05, 0.1):
            reject, adjusted, _, _ = multipletests(p, alpha=alpha, method="holm")
            res = stats.holm(p, alpha=alpha)
            np.testing.assert_allclose(res.adjusted, adjusted, rtol=1e-12)
            assert list(res.reject) == reject.tolist()


# ---------------------------------------------------------------- Friedman, Nemenyi, CD


def test_friedman_matches_scipy():
    rng = np.random.default_rng(0)
    table = rng.normal(0.5, 0.05, size=(8, 4)) + np.array([0.0, 0.02, 0.05, 0.01])
    res = stats.friedman(table)
    ref = st.friedmanchisquare(*table.T)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert (res.n, res.k) == (8, 4)


def test_friedman_hand_case_ranks_and_iman_davenport():
    # Ranks per dataset (1 = best, higher is better): (1,2,3) ×3 and (2,1,3) → R = (5/4, 7/4, 3)
    table = np.array([[0.9, 0.8, 0.7], [0.9, 0.8, 0.7], [0.9, 0.8, 0.7], [0.8, 0.9, 0.7]])
    res = stats.friedman(table, names=["x", "y", "z"])
    assert res.avg_ranks == pytest.approx({"x": 1.25, "y": 1.75, "z": 3.0})
    # χ²_F = 12N/(k(k+1)) ΣR² − 3N(k+1) = 4 · 13.625 − 48 = 6.5; F_F = 3 · 6.5 / (8 − 6.5) = 13
    assert res.statistic == pytest.approx(6.5)
    assert res.iman_davenport == pytest.approx(13.0)
    assert res.iman_davenport_p == pytest.approx(st.f.sf(13.0, 2, 6))
    low = stats.friedman(table, names=["x", "y", "z"], metric="mae")  # lower is better: ranks reverse
    assert low.avg_ranks == pytest.approx({"x": 2.75, "y": 2.25, "z": 1.0})
    assert low.statistic == pytest.approx(res.statistic)
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(table, columns=["x", "y", "z"])
    assert stats.friedman(frame).avg_ranks == res.avg_ranks
    with pytest.raises(stats.StatsError, match="3 methods"):
        stats.friedman(table[:, :2])
    with pytest.raises(stats.StatsError, match="complete"):
        stats.friedman(np.where(table > 0.85, np.nan, table))


# Demšar (2006), Table 5: q_α of the two-tailed Nemenyi test, k = 2 … 10.
DEMSAR_Q = {
    0.05: [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164],
    0.10: [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920],
}


def test_nemenyi_critical_difference_matches_demsar():
    for alpha, qs in DEMSAR_Q.items():
        for k, q in zip(range(2, 11), qs):
            assert stats_ranks._q_alpha(k, alpha) == pytest.approx(q, abs=1.5e-3)
    # Demšar's worked example: k = 4 classifiers, N = 14 data sets, α = 0.05 → CD = 1.25
    cd = stats.critical_difference(4, 14, 0.05)
    assert cd == pytest.approx(2.569 * math.sqrt(4 * 5 / (6 * 14)), abs=1e-3)
    assert round(cd, 2) == 1.25
    with pytest.raises(stats.StatsError):
        stats.critical_difference(1, 14)


def test_nemenyi_pairs_and_cliques():
    rng = np.random.default_rng(3)
    base = np.array([0.80, 0.80, 0.60, 0.60])  # two good, two poor methods
    table = base + rng.normal(0, 0.01, size=(14, 4))
    res = stats.nemenyi(table, names=["a", "b", "c", "d"])
    assert res.cd == pytest.approx(stats.critical_difference(4, 14))
    for x in "abcd":
        for y in "abcd":
            if x == y:
                continue
            diff = abs(res.avg_ranks[x] - res.avg_ranks[y])
            assert (res.p_values[x][y] < 0.05) == (diff > res.cd)
            assert res.p_values[x][y] == res.p_values[y][x]
    assert {("a", "c"), ("a", "d"), ("b", "c"), ("b", "d")} <= set(res.significant)
    assert set(map(frozenset, res.cliques)) == {frozenset("ab"), frozenset("cd")}
    assert stats_ranks._cliques(["p", "q", "r"], [1.0, 1.4, 1.9], cd=1.0) == (("p", "q", "r"),)
    assert stats_ranks._cliques(["p", "q", "r"], [1.0, 2.0, 3.0], cd=1.0) == ()


def test_cd_diagram_writes_svg_and_png(tmp_path):
    ranks = {"tailor": 1.4, "mult": 2.1, "<script>alert(1)</script>": 2.9, "br $x$": 3.6}
    fig = stats.cd_diagram(ranks, 1.25, path=tmp_path / "cd.svg", title="synthetic")
    assert fig.__class__.__name__ == "Figure"
    svg = (tmp_path / "cd.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "tailor" in svg and "CD = 1.25" in svg and "br $x$" in svg
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    stats.cd_diagram(ranks, 1.25, path=tmp_path / "again.svg", title="synthetic")
    assert (tmp_path / "again.svg").read_text() == svg  # byte-stable
    stats.cd_diagram(ranks, 1.25, path=tmp_path / "cd.png")
    assert (tmp_path / "cd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.svg", "cd.png", "cd.svg"]  # no temp files
    with pytest.raises(stats.StatsError, match=r"\.svg or \.png"):
        stats.cd_diagram(ranks, 1.25, path=tmp_path / "cd.pdf")
    with pytest.raises(stats.StatsError):
        stats.cd_diagram({"a": 1.0, "b": 7.0}, 1.0)


# ---------------------------------------------------------------- per-sample tests


@pytest.mark.parametrize("metric", ["micro_f1", "acc", "macro_f1", "hamming_loss"])
def test_per_sample_tests_find_a_clearly_better_system(metric):
    y, a, b = ml_data(300, seed=1, strength_a=2.5, strength_b=0.3)
    for fn in (stats.paired_bootstrap, stats.permutation_test):
        res = fn(y, a, b, task="multilabel", metric=metric)
        assert res.p_value < 0.01 and res.verdict == stats.A_BETTER, (fn.__name__, res)
        want = metrics.multilabel(y_true=y, y_score=a)[metric] - metrics.multilabel(y_true=y, y_score=b)[metric]
        assert res.statistic == pytest.approx(want, abs=1e-12)  # raw A − B: negative for Hamming loss
        swapped = fn(y, b, a, task="multilabel", metric=metric)
        assert swapped.verdict == stats.B_BETTER and swapped.p_value == res.p_value
        assert swapped.statistic == pytest.approx(-res.statistic, abs=1e-12)
    boot = stats.paired_bootstrap(y, a, b, task="multilabel", metric=metric)
    assert boot.details["ci_low"] <= boot.statistic <= boot.details["ci_high"]
    assert np.sign(boot.details["ci_low"]) == np.sign(boot.details["ci_high"]) == np.sign(boot.statistic)


def test_per_sample_tests_on_identical_predictions():
    y, a, _ = ml_data(200, seed=2)
    for fn in (stats.paired_bootstrap, stats.permutation_test):
        res = fn(y, a, a.copy(), task="multilabel", metric="micro_f1")
        assert res.statistic == 0.0 and res.p_value == 1.0 and res.verdict == stats.NO_DIFFERENCE


@pytest.mark.parametrize("task,metric", [("regression", "mae"), ("regression", "corr"), ("regression", "acc2_non0"),
                                         ("multiclass", "ua"), ("multiclass", "macro_f1"), ("binary", "f1")])
def test_per_sample_tests_other_tasks_and_lower_is_better(task, metric):
    rng = np.random.default_rng(0)
    n = 400
    if task == "regression":
        y = np.round(rng.uniform(-3, 3, n) * 3) / 3
        a, b = y + rng.normal(0, 0.3, n), y + rng.normal(0, 1.5, n)
    elif task == "multiclass":
        y = rng.integers(0, 4, n)
        a, b = rng.normal(size=(n, 4)) + 3 * np.eye(4)[y], rng.normal(size=(n, 4)) + 0.3 * np.eye(4)[y]
    else:
        y = (rng.random(n) < 0.4).astype(int)
        a, b = y + rng.normal(0, 0.3, n), y + rng.normal(0, 1.2, n)
    for fn in (stats.paired_bootstrap, stats.permutation_test):
        res = fn(y, a, b, task=task, metric=metric, n_resamples=2000) if fn is stats.paired_bootstrap else \
            fn(y, a, b, task=task, metric=metric, n_permutations=2000)
        assert res.verdict == stats.A_BETTER and res.p_value < 0.01, res
        assert res.higher_is_better == metrics.direction(metric)
        assert (res.statistic < 0) == (not metrics.direction(metric))


def test_permutation_exact_matches_scipy():
    y, a, b = ml_data(10, seed=4, strength_a=1.5, strength_b=0.8)
    both = np.concatenate([a, b])

    def stat(ia, ib):  # indices 0…9 point into A, 10…19 into B; a paired swap exchanges them
        ia, ib = np.asarray(ia, dtype=int), np.asarray(ib, dtype=int)
        return (metrics.multilabel(y_true=y, y_score=both[ia])["micro_f1"]
                - metrics.multilabel(y_true=y, y_score=both[ib])["micro_f1"])

    ref = st.permutation_test((np.arange(10), np.arange(10, 20)), stat, permutation_type="samples",
                              vectorized=False, n_resamples=np.inf, alternative="two-sided")
    res = stats.permutation_test(y, a, b, task="multilabel", metric="micro_f1", n_permutations=2 ** 10)
    assert res.details["exact"] and res.details["n_permutations"] == 1024
    assert res.statistic == pytest.approx(ref.statistic, abs=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, abs=1e-12)


def test_permutation_random_swaps_approach_the_exact_p():
    y, a, b = ml_data(14, seed=7, strength_a=1.0, strength_b=0.8)  # exact p ≈ 0.27: room on both sides
    exact = stats.permutation_test(y, a, b, task="multilabel", metric="acc", n_permutations=2 ** 14)
    sampled = stats.permutation_test(y, a, b, task="multilabel", metric="acc", n_permutations=10_000, seed=3)
    assert exact.details["exact"] and not sampled.details["exact"]
    assert 0.1 < exact.p_value < 0.9
    assert sampled.p_value == pytest.approx(exact.p_value, abs=0.02)


def test_bootstrap_ci_agrees_with_scipy_bootstrap():
    y, a, b = ml_data(200, seed=8, strength_a=1.4, strength_b=1.1)

    def diff(i):
        i = np.asarray(i, dtype=int)
        return (metrics.multilabel(y_true=y[i], y_score=a[i])["micro_f1"]
                - metrics.multilabel(y_true=y[i], y_score=b[i])["micro_f1"])

    ref = st.bootstrap((np.arange(200),), diff, vectorized=False, n_resamples=3000, method="percentile",
                       confidence_level=0.95, rng=np.random.default_rng(0))
    res = stats.paired_bootstrap(y, a, b, task="multilabel", metric="micro_f1", n_resamples=3000)
    width = ref.confidence_interval.high - ref.confidence_interval.low
    sd = ref.standard_error
    assert res.details["ci_low"] == pytest.approx(ref.confidence_interval.low, abs=0.25 * sd)
    assert res.details["ci_high"] == pytest.approx(ref.confidence_interval.high, abs=0.25 * sd)
    assert width > 0


def test_seeds_thresholds_and_determinism():
    y, a, b = ml_data(150, seed=3, strength_a=1.3, strength_b=1.0, seeds=3)
    res = stats.paired_bootstrap(y, a, b[:2], task="multilabel", metric="micro_f1", n_resamples=500)
    mean = lambda s: np.mean([metrics.multilabel(y_true=y, y_score=x)["micro_f1"] for x in s])  # noqa: E731
    assert res.statistic == pytest.approx(mean(a) - mean(b[:2]), abs=1e-12)
    assert (res.details["seeds_a"], res.details["seeds_b"]) == (3, 2)
    assert res.to_dict() == stats.paired_bootstrap(y, a, b[:2], task="multilabel", metric="micro_f1",
                                                   n_resamples=500).to_dict()
    perm = stats.permutation_test(y, a, b, task="multilabel", metric="micro_f1", n_permutations=500)
    assert perm.statistic == pytest.approx(mean(a) - mean(b), abs=1e-12)
    with pytest.raises(stats.StatsError, match="same number"):
        stats.permutation_test(y, a, b[:2], task="multilabel", metric="micro_f1")
    # Each side's own decision rule equals thresholding beforehand.
    one = stats.paired_bootstrap(y, a[0], b[0], task="multilabel", metric="acc", threshold=(0.3, 0.6),
                                 n_resamples=300)
    pre = stats.paired_bootstrap(y, (a[0] > 0.3) * 1.0, (b[0] > 0.6) * 1.0, task="multilabel", metric="acc",
                                 threshold=0.5, n_resamples=300)
    assert (one.statistic, one.p_value, one.details["ci_low"]) == pytest.approx(
        (pre.statistic, pre.p_value, pre.details["ci_low"]), abs=1e-12)


def test_per_sample_input_errors():
    y, a, b = ml_data(50)
    with pytest.raises(UnknownNameError, match="Did you mean 'micro_f1'"):
        stats.paired_bootstrap(y, a, b, task="multilabel", metric="micro_f2")
    with pytest.raises(stats.StatsError, match="regression metric"):
        stats.permutation_test(y, a, b, task="multilabel", metric="mae")
    with pytest.raises(stats.StatsError, match="Did you mean 'f1_happy'"):
        stats.paired_bootstrap(y, a, b, task="multilabel", metric="f1_hapy", labels=LABELS)
    with pytest.raises(ValueError, match="same shape"):
        stats.paired_bootstrap(y, a, b[:, :5], task="multilabel", metric="acc")
    bad = b.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        stats.permutation_test(y, a, bad, task="multilabel", metric="acc")
    with pytest.raises(stats.StatsError, match="task"):
        stats.paired_bootstrap(y, a, b, task="ranking", metric="acc")
    with pytest.raises(stats.StatsError, match="n_resamples"):
        stats.paired_bootstrap(y, a, b, task="multilabel", metric="acc", n_resamples=0)
    f1 = stats.paired_bootstrap(y, a, b, task="multilabel", metric="f1_fear", labels=LABELS, n_resamples=200)
    want = (metrics.multilabel(y_true=y, y_score=a, labels=LABELS)["f1_fear"]
            - metrics.multilabel(y_true=y, y_score=b, labels=LABELS)["f1_fear"])
    assert f1.statistic == pytest.approx(want, abs=1e-12)


# ---------------------------------------------------------------- the run store and the CLI


def _write_run(root, method, chash, seed, ids, y, scores, threshold=0.5):
    folder = results.run_dir(root, DATASET, method, chash, seed)
    results.write_yaml(folder / "config.yaml", {"method": method, "seed": seed, "config_hash": chash})
    results.write_predictions(folder / "predictions.npz", {
        "valid_ids": ids, "valid_true": y, "valid_scores": scores,
        "test_ids": ids, "test_true": y, "test_scores": scores})
    m = metrics.multilabel(y_true=y, y_score=scores, threshold=threshold, labels=LABELS)
    results.write_json(folder / results.METRICS_FILE, {
        "valid": m, "test": m,
        "decision": {"rule": "probability > threshold", "threshold": threshold, "score": "probability"}})
    return folder


@pytest.fixture()
def store(tmp_path):
    """good (3 seeds) ≫ weak (3 seeds); solo (1 seed); twocfg (two configs); shifted / disjoint test sets."""
    root = tmp_path / "store"
    n = 160
    ids = np.array([f"vid{i:04d}[{i % 7}]" for i in range(n)])
    y, good, weak = ml_data(n, seed=12, strength_a=2.5, strength_b=0.4, seeds=3)
    order = np.random.default_rng(0).permutation(n)  # rows stored in another order: matched by id
    for s in range(3):
        _write_run(root, "good", "aaaaaaaaaa", s + 1, ids, y, good[s])
        _write_run(root, "weak", "bbbbbbbbbb", s + 1, ids[order], y[order], weak[s][order], threshold=0.4)
    _write_run(root, "solo", "cccccccccc", 1, ids, y, weak[0])
    _write_run(root, "twocfg", "dddd111111", 1, ids, y, weak[1])
    _write_run(root, "twocfg", "dddd222222", 1, ids, y, good[1])
    _write_run(root, "twocfg", "dddd222222", 2, ids, y, good[2])
    _write_run(root, "shifted", "eeeeeeeeee", 1, ids[:-5], y[:-5], weak[0][:-5])
    _write_run(root, "shifted", "eeeeeeeeee", 2, ids[:-5], y[:-5], weak[1][:-5])
    other = np.array([f"other{i}" for i in range(n)])
    _write_run(root, "disjoint", "ffffffffff", 1, other, y, weak[0])
    _write_run(root, "disjoint", "ffffffffff", 2, other, y, weak[1])
    return root


def test_compare_runs_all_tests(store):
    default = stats.compare_runs(store, DATASET, "good", "weak", metric="micro_f1", n_resamples=2000)
    assert [r.test for r in default.results] == ["two-level"] and default.results[0].verdict == stats.A_BETTER
    assert 0.5 < default.results[0].details["p_a_better"] <= 1
    comp = stats.compare_runs(store, DATASET, "good", "weak", metric="micro_f1", tests="all", n_resamples=2000)
    assert [r.test for r in comp.results] == ["welch", "aso", "two-level", "bootstrap", "permutation"]
    assert all(r.verdict == stats.A_BETTER for r in comp.results), comp.results
    assert comp.a.label == "good@aaaaaaaaaa" and comp.b.seeds == (1, 2, 3)
    assert all(r.n == 160 for r in comp.results[2:]) and comp.results[0].n == 6
    json.dumps(comp.to_dict())  # every number is JSON-serialisable
    rev = stats.compare_runs(store, DATASET, "weak", "good", metric="hamming_loss", tests=["bootstrap"],
                             n_resamples=500)
    assert rev.results[0].verdict == stats.B_BETTER and rev.results[0].statistic > 0  # weak's HL is higher


def test_compare_runs_selection_and_errors(store):
    comp = stats.compare_runs(store, DATASET, "twocfg@dddd2", "weak", tests="welch")
    assert comp.a.config_hash == "dddd222222" and comp.a.seeds == (1, 2)
    with pytest.raises(MmerbenchError, match="2 configs.*dddd111111 \\(1 seed\\).*twocfg@<hash>"):
        stats.compare_runs(store, DATASET, "twocfg", "weak")
    with pytest.raises(MmerbenchError, match="ambiguous"):
        stats.compare_runs(store, DATASET, "twocfg@dddd", "weak")
    with pytest.raises(MmerbenchError, match="Did you mean 'good'"):
        stats.compare_runs(store, DATASET, "goood", "weak")
    with pytest.raises(MmerbenchError, match="No complete runs of dataset 'synth-mosei-unaligned'"):
        stats.compare_runs(store, "synth-mosei-unaligned", "good", "weak")
    one = stats.compare_runs(store, DATASET, "solo", "weak", tests=["welch"]).results[0]
    assert one.verdict == stats.NOT_APPLICABLE and "A has 1 seed" in one.note
    solo = stats.compare_runs(store, DATASET, "solo", "weak", tests="all", n_resamples=300)
    assert [r.test for r in solo.results] == ["welch", "aso", "two-level", "bootstrap", "permutation"]
    assert [r.verdict for r in solo.results[:2]] == [stats.NOT_APPLICABLE] * 2
    assert "permutation: seeds paired" in solo.notes[0]
    with pytest.raises(MmerbenchError, match="different sample sets \\(155 and 160 ids, 155 shared\\)"):
        stats.compare_runs(store, DATASET, "good", "shifted", tests="bootstrap")
    with pytest.raises(MmerbenchError, match="share no sample ids"):
        stats.compare_runs(store, DATASET, "good", "disjoint", tests="permutation")
    with pytest.raises(UnknownNameError, match="Did you mean 'macro_f1'"):
        stats.compare_runs(store, DATASET, "good", "weak", metric="makro_f1")
    with pytest.raises(MmerbenchError, match="multilabel metrics are"):
        stats.compare_runs(store, DATASET, "good", "weak", metric="mae")
    with pytest.raises(MmerbenchError, match="same runs"):
        stats.compare_runs(store, DATASET, "good", "good")


def test_compare_runs_refuses_altered_or_broken_predictions(store):
    folder = results.run_dir(store, DATASET, "weak", "bbbbbbbbbb", 2)
    with np.load(folder / "predictions.npz") as z:
        arrays = dict(z)
    arrays["test_scores"] = 1 - arrays["test_scores"]
    results.write_predictions(folder / "predictions.npz", arrays)
    with pytest.raises(DataError, match="does not reproduce its metrics.json"):
        stats.compare_runs(store, DATASET, "good", "weak", tests="bootstrap")
    (folder / "predictions.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="unreadable or truncated"):
        stats.compare_runs(store, DATASET, "good", "weak", tests="permutation")
    # The seed-level tests need only metrics.json, and nothing in the store was touched.
    assert stats.compare_runs(store, DATASET, "good", "weak", tests="welch").results[0].verdict == stats.A_BETTER
    assert (folder / "metrics.json").is_file()


def test_cli_compare_prints_every_test(store):
    out = CliRunner().invoke(cli, ["compare", "good", "weak", "--dataset", DATASET, "--runs-dir", str(store),
                                   "--resamples", "1000", "--test", "all"])
    assert out.exit_code == 0, out.output
    for word in ("two-level", "welch", "aso", "bootstrap", "permutation", "ε_min", "A better (good)",
                 "good@aaaaaaaaaa", "higher is better", "interval of Δ", "P(A > B)"):
        assert word in out.output, (word, out.output)
    one = CliRunner().invoke(cli, ["compare", "weak", "good", "-d", DATASET, "--runs-dir", str(store),
                                   "--test", "welch", "--metric", "hamming_loss"])
    assert one.exit_code == 0 and "B better (good)" in one.output and "bootstrap" not in one.output
    assert "lower is better" in one.output


def test_cli_compare_errors_are_one_sentence(store):
    env = {**os.environ, "MMERBENCH_RUNS": str(store)}
    proc = subprocess.run([sys.executable, "-m", "mmerbench.cli", "compare", "good", "weak", "-d", DATASET,
                           "--metric", "micro_f2"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "Did you mean 'micro_f1'" in proc.stderr


@pytest.mark.slow
def test_compare_trained_runs_end_to_end(twin_data_dir, tmp_path):
    """br and the small mlp trained on the tiny twin, then compared by the CLI from their stored files."""
    from conftest import TINY_SCALE
    from mmerbench.runner import RunRequest, run

    runs = tmp_path / "runs"
    common = dict(dataset=DATASET, seeds=(1, 2), data_dir=str(twin_data_dir), runs_dir=str(runs),
                  scale=TINY_SCALE, progress=False)
    run(RunRequest(method="br", **common))
    run(RunRequest(method="mlp", preset="small", **common))
    out = CliRunner().invoke(cli, ["compare", "mlp", "br", "-d", DATASET, "--runs-dir", str(runs),
                                   "--metric", "acc", "--resamples", "2000"])
    assert out.exit_code == 0, out.output
    comp = stats.compare_runs(runs, DATASET, "mlp", "br", metric="acc", n_resamples=2000)
    assert [r.test for r in comp.results] == ["welch", "aso", "bootstrap", "permutation"]
    for r in comp.results:
        assert r.verdict in (stats.A_BETTER, stats.B_BETTER, stats.NO_DIFFERENCE)
        assert r.verdict.replace("A better", "A better (mlp)").replace("B better", "B better (br)") in out.output
    boot = comp.results[2]
    assert boot.statistic == pytest.approx(np.mean(comp.values_a) - np.mean(comp.values_b), abs=1e-12)
    assert boot.n == 93
