"""Verdicts that hold: degenerate inputs never win, the two-level bootstrap against a brute-force loop,
ASO against an independent implementation, and the deterministic BR/CC case end to end."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from mmerbench import metrics as metricslib
from mmerbench import stats
from mmerbench.cli import cli
from mmerbench.data.registry import get_entry
from mmerbench.report.leaderboard import LeaderboardRequest, build
from mmerbench.stats.counts import _Paired
from mmerbench.stats.two_level import two_level_draws

from report_helpers import fake_run

TWIN = "synth-mosei-aligned"
LABELS = list(get_entry(TWIN).spec.labels)


def _ml(n, seeds, strength, rng, y=None):
    y = (rng.random((n, 6)) < 0.3).astype(np.int8) if y is None else y
    logits = strength * (2 * y - 1)[None] + rng.normal(0, 1.5, (seeds,) + y.shape)
    return y, 1 / (1 + np.exp(-logits))


# ------------------------------------------------------------- degenerate inputs never win


@pytest.mark.parametrize("test", [stats.welch, stats.aso])
@pytest.mark.parametrize("a, b, why", [
    ([0.3752] * 3, [0.3742] * 3, "no variance across seeds"),  # the BR/CC case: both deterministic
    ([0.40, 0.41, 0.42], [0.30] * 3, "every seed of B scores 0.3"),  # one side constant
    ([0.5, 0.5], [0.5, 0.5, 0.5], "no variance across seeds"),  # constant and equal
    ([0.9], [0.40, 0.41, 0.42], "A has 1 seed"),
    ([0.40, 0.41], [0.1], "B has 1 seed"),
])
def test_seed_tests_are_not_applicable_on_degenerate_input(test, a, b, why):
    r = test(a, b)
    assert r.verdict == stats.NOT_APPLICABLE and not r.significant and r.sign == 0
    assert r.note.startswith("not applicable") and why in r.note
    assert r.p_value is None and r.eps_min is None and r.statistic is None
    r.to_dict()  # still a plain record


def test_seed_tests_still_decide_on_real_spread():
    a, b = [0.40, 0.41, 0.42, 0.405], [0.30, 0.31, 0.295, 0.305]
    assert stats.welch(a, b).verdict == stats.A_BETTER and stats.aso(a, b).verdict == stats.A_BETTER


@pytest.mark.parametrize("test", [stats.paired_bootstrap, stats.permutation_test, stats.two_level_bootstrap])
def test_sample_tests_need_two_samples(test):
    y = np.array([[1, 0, 1, 0, 0, 1]])
    r = test(y, np.where(y, 0.9, 0.1), np.where(y, 0.1, 0.9), task="multilabel", metric="micro_f1")
    assert r.verdict == stats.NOT_APPLICABLE and "1 test sample" in r.note


@pytest.mark.parametrize("test", [stats.paired_bootstrap, stats.two_level_bootstrap])
def test_a_bootstrap_without_spread_is_not_applicable(test):
    # Two samples, A right and B wrong on both: every resample gives the same Δ = 1.
    y = np.array([[1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]])
    r = test(y, np.where(y, 0.9, 0.1), np.where(y, 0.1, 0.9), task="multilabel", metric="micro_f1",
             n_resamples=200)
    assert r.verdict == stats.NOT_APPLICABLE and "no spread" in r.note
    perm = stats.permutation_test(y, np.where(y, 0.9, 0.1), np.where(y, 0.1, 0.9), task="multilabel",
                                  metric="micro_f1")
    assert perm.verdict == stats.NO_DIFFERENCE and perm.p_value == 0.5  # 2 of the 4 swap sets are as extreme


def test_identical_predictions_are_no_difference_in_every_test():
    rng = np.random.default_rng(1)
    y, s = _ml(200, 3, 1.0, rng)
    for test in (stats.paired_bootstrap, stats.permutation_test, stats.two_level_bootstrap):
        r = test(y, s, s, task="multilabel", metric="micro_f1")
        assert r.verdict == stats.NO_DIFFERENCE and r.statistic == 0


def test_friedman_on_all_ties_is_not_applicable():
    ties = np.full((3, 4), 0.5)
    fr = stats.friedman(ties)
    assert fr.verdict == stats.NOT_APPLICABLE and "ties on every dataset" in fr.note
    assert stats.nemenyi(ties).significant == ()


# ------------------------------------------------------------- the two-level bootstrap


def test_two_level_matches_a_brute_force_loop():
    """Same generators, same draws: every Δ* and every P(A > B) share recomputed with the metrics module."""
    rng = np.random.default_rng(5)
    y, a = _ml(15, 3, 1.0, rng)
    _, b = _ml(15, 2, 0.8, rng, y)
    n_res, seed = 60, 7
    pt = _Paired("multilabel", "micro_f1", y, a, b, 0.5, None)
    deltas, wins = two_level_draws(pt, n_res, seed)

    sample_rng, seed_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    idx = sample_rng.integers(0, len(y), size=(n_res, len(y)))  # one chunk: the kernel draws it at once
    wa = seed_rng.multinomial(3, np.full(3, 1 / 3), size=n_res) / 3
    wb = seed_rng.multinomial(2, np.full(2, 1 / 2), size=n_res) / 2
    for r in range(n_res):
        va = np.array([metricslib.compute("multilabel", y_true=y[idx[r]], y_score=s[idx[r]])["micro_f1"] for s in a])
        vb = np.array([metricslib.compute("multilabel", y_true=y[idx[r]], y_score=s[idx[r]])["micro_f1"] for s in b])
        # each side: all-seed mean plus its seed spread scaled by sqrt(n / (n - 1))
        ma = va.mean() + np.sqrt(3 / 2) * (va @ wa[r] - va.mean())
        mb = vb.mean() + np.sqrt(2 / 1) * (vb @ wb[r] - vb.mean())
        assert deltas[r] == pytest.approx(ma - mb, abs=1e-12)
        pair = va[:, None] - vb[None, :]
        assert wins[r] == pytest.approx(((pair > 0) + 0.5 * (pair == 0)).mean(), abs=1e-12)


def test_two_level_with_one_seed_is_the_paired_bootstrap():
    rng = np.random.default_rng(2)
    y, a = _ml(300, 1, 1.0, rng)
    _, b = _ml(300, 1, 0.9, rng, y)
    two = stats.two_level_bootstrap(y, a, b, task="multilabel", metric="micro_f1", n_resamples=2000, seed=3)
    one = stats.paired_bootstrap(y, a, b, task="multilabel", metric="micro_f1", n_resamples=2000, seed=3)
    assert (two.p_value, two.details["ci_low"], two.details["ci_high"]) == (
        one.p_value, one.details["ci_low"], one.details["ci_high"])
    assert two.statistic == one.statistic and two.verdict == one.verdict
    assert two.details["df"] == float("inf")


def test_two_level_counts_the_seed_variance():
    """Seeds that disagree widen the interval; the sample-only bootstrap does not see them."""
    rng = np.random.default_rng(4)
    y = (rng.random((400, 6)) < 0.3).astype(np.int8)
    luck = np.array([0.0, 0.6, -0.6, 0.3, -0.3])  # a seed's overall luck
    a = np.stack([1 / (1 + np.exp(-((1.0 + g) * (2 * y - 1) + rng.normal(0, 1, y.shape)))) for g in luck])
    b = np.stack([1 / (1 + np.exp(-((1.0 + g) * (2 * y - 1) + rng.normal(0, 1, y.shape)))) for g in luck[::-1]])
    two = stats.two_level_bootstrap(y, a, b, task="multilabel", metric="micro_f1", n_resamples=2000)
    one = stats.paired_bootstrap(y, a, b, task="multilabel", metric="micro_f1", n_resamples=2000)
    width = lambda r: r.details["ci_high"] - r.details["ci_low"]  # noqa: E731
    assert width(two) > 1.5 * width(one)
    assert 0 <= two.details["p_a_better"] <= 1 and np.isfinite(two.details["df"])


def test_metric_interval_has_width_for_a_deterministic_method():
    rng = np.random.default_rng(6)
    y, s = _ml(300, 1, 1.0, rng)
    three = np.concatenate([s, s, s])  # three identical seeds: zero std, but the test set is a sample
    m, lo, hi = stats.metric_interval(y, three, task="multilabel", metric="micro_f1")
    assert m == pytest.approx(metricslib.compute("multilabel", y_true=y, y_score=s[0])["micro_f1"])
    assert lo < m < hi and hi - lo > 0.02


# ------------------------------------------------------------- ASO against deep-significance


@pytest.mark.parametrize("case", [0, 1, 2])
def test_aso_agrees_with_deepsig(case):
    """ε_min against deep-significance's own implementation, within the Monte-Carlo spread of both.

    Ours integrates the quantile functions exactly; deepsig uses a Riemann sum (dt = 0.005) and its own
    bootstrap draws, so the two agree only up to Monte-Carlo error: the tolerance is 4 standard
    deviations of our ε_min over 20 bootstrap seeds, plus the Riemann sum's step.
    """
    deepsig = pytest.importorskip("deepsig")
    rng = np.random.default_rng(10 + case)
    a = rng.normal([0.52, 0.50, 0.52][case], 0.02, 5)
    b = rng.normal([0.50, 0.51, 0.51][case], [0.02, 0.02, 0.04][case], 5)
    ours = np.array([stats.aso(a, b, seed=s, n_bootstrap=1000).eps_min for s in range(20)])
    theirs = deepsig.aso(a, b, confidence_level=0.95, num_bootstrap_iterations=100, seed=0, show_progress=False)
    assert 0.02 < ours.mean() < 0.98, "pick a case where ε_min is not clipped"
    assert abs(ours.mean() - theirs) <= 4 * ours.std() + 0.01, (ours.mean(), ours.std(), theirs)


# ------------------------------------------------------------- the BR/CC case, end to end


@pytest.fixture(scope="module")
def brcc_store(tmp_path_factory):
    """Two deterministic methods (3 identical seeds each) whose Jaccard accuracy differs by about 0.001."""
    root = tmp_path_factory.mktemp("brcc")
    rng = np.random.default_rng(0)
    n = 932
    y = (rng.random((n, 6)) < 0.3).astype(np.int8)
    br = np.clip(0.3 * y + 0.6 * rng.random(y.shape), 0, 1)
    cc = br.copy()
    flip = rng.choice(n, 30, replace=False)  # CC differs from BR on a few samples, both ways
    cc[flip, 0] = 1 - cc[flip, 0]
    ids = np.array([f"s{i}" for i in range(n)])
    for method, s in (("br", br), ("cc", cc)):
        m = metricslib.compute("multilabel", y_true=y, y_score=s, threshold=0.5, labels=LABELS)
        for seed in (1, 2, 3):
            fake_run(root, TWIN, method, f"{method:0>10}", seed, m, data={"scale": 0.2, "seed": 0},
                     predictions={"valid_ids": ids, "valid_true": y, "valid_scores": s,
                                  "test_ids": ids, "test_true": y, "test_scores": s})
    return root


def test_brcc_gets_no_marker_from_any_leaderboard_test(brcc_store):
    for test in ("two-level", "welch", "aso", "bootstrap", "permutation"):
        doc = build(LeaderboardRequest(runs_dir=brcc_store, data="synthetic", reference="br", test=test,
                                       metrics=("all",), plots=False, ranks=False))
        row = next(r for r in doc.tables[0].rows if r.meta["method"] == "cc")
        assert all(c.marker == "" for c in row.cells), (test, [(c.display, c.note) for c in row.cells])
        if test in ("welch", "aso"):
            notes = [c.note for c in row.cells if c.note]
            assert notes and all("not applicable: no variance across seeds" in n for n in notes)


def test_brcc_compare_never_says_better(brcc_store):
    comp = stats.compare_runs(brcc_store, TWIN, "cc", "br", metric="acc", tests="all", n_resamples=2000)
    assert not any(r.significant for r in comp.results)
    by = {r.test: r for r in comp.results}
    for t in ("welch", "aso"):
        assert by[t].verdict == stats.NOT_APPLICABLE and "no variance across seeds" in by[t].note
    two = by["two-level"]
    assert two.p_value > 0.05 and two.details["ci_low"] < 0 < two.details["ci_high"]
    out = CliRunner().invoke(cli, ["compare", "cc", "br", "-d", TWIN, "--runs-dir", str(brcc_store),
                                   "--metric", "acc", "--test", "all", "--resamples", "1000"])
    assert out.exit_code == 0, out.output
    assert "better (" not in out.output and "not applicable: no variance across seeds" in out.output


def test_leaderboard_interval_cells(brcc_store):
    out = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(brcc_store), "--data", "synthetic",
                                   "--metric", "micro_f1", "--interval", "ci", "--format", "md", "--out", "-",
                                   "--no-plots"])
    assert out.exit_code == 0, out.output
    assert "95% interval" in out.output
    doc = build(LeaderboardRequest(runs_dir=brcc_store, data="synthetic", metrics=("micro_f1",), interval="ci",
                                   plots=False, ranks=False))
    j = [c.key for c in doc.tables[0].columns].index("metric:micro_f1")
    for r in doc.tables[0].rows:
        lo, hi = r.cells[j].extra["interval"]
        assert lo < r.cells[j].value < hi and "[" in r.cells[j].display
