"""Significance markers and average ranks on the leaderboard, checked against scipy and hand-computed Holm."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

pytest.importorskip("mmerbench.stats", reason="the statistics module lands with branch `stats`")

from mmerbench import metrics as metricslib  # noqa: E402
from mmerbench.data.registry import get_entry  # noqa: E402
from mmerbench.errors import MmerbenchError  # noqa: E402
from mmerbench.report.leaderboard import LeaderboardRequest, build  # noqa: E402

from report_helpers import fake_run, multilabel_metrics  # noqa: E402

TWIN = "synth-mosei-aligned"
SEEDS = {  # acc per seed: a clearly better, b like the reference, c clearly worse
    "ref": [0.300, 0.305, 0.298, 0.302, 0.301],
    "a": [0.400, 0.410, 0.395, 0.405, 0.402],
    "b": [0.299, 0.306, 0.300, 0.303, 0.297],
    "c": [0.200, 0.205, 0.198, 0.202, 0.199],
}


def _holm(p):
    """Holm's step-down adjusted p-values, by hand."""
    p = np.asarray(p, float)
    m = len(p)
    order = np.argsort(p)
    adj = np.empty(m)
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        adj[j] = running
    return adj


@pytest.fixture
def seed_store(tmp_path):
    for method, accs in SEEDS.items():
        for seed, acc in enumerate(accs, 1):
            fake_run(tmp_path, "mosei-aligned", method, f"{method:0>10}", seed,
                     multilabel_metrics(acc, 0.5 - acc, acc + 0.1))
    return tmp_path


def _cells(doc, metric):
    t = doc.tables[0]
    j = [c.key for c in t.columns].index(f"metric:{metric}")
    return t, {r.meta["method"]: r.cells[j] for r in t.rows}


def test_welch_markers_match_scipy_and_holm(seed_store):
    doc = build(LeaderboardRequest(runs_dir=seed_store, reference="ref", test="welch", metrics=("acc",),
                                   plots=False, ranks=False))
    t, cells = _cells(doc, "acc")
    others = ["a", "b", "c"]
    p = [st.ttest_ind(SEEDS[m], SEEDS["ref"], equal_var=False).pvalue for m in others]
    adj = _holm(p)
    for m, pv, pa in zip(others, p, adj):
        sig = cells[m].extra["significance"]
        assert sig["p_value"] == pytest.approx(pv) and sig["p_adjusted"] == pytest.approx(pa)
    assert cells["a"].marker == "▲" and cells["c"].marker == "▼" and cells["b"].marker == ""
    assert cells["ref"].marker == "" and "significance" not in cells["ref"].extra
    assert any("Welch's t-test" in n and "α = 0.05" in n and "Holm" in n for n in t.footnotes)
    assert next(r for r in t.rows if r.meta["method"] == "ref").cells[0].display == "ref (reference)"


def test_lower_is_better_metrics_flip_the_marker(seed_store):
    doc = build(LeaderboardRequest(runs_dir=seed_store, reference="ref", test="welch", metrics=("hamming_loss",),
                                   plots=False, ranks=False))
    _, cells = _cells(doc, "hamming_loss")
    assert cells["a"].marker == "▲" and cells["c"].marker == "▼"  # a has the lower Hamming loss


def test_holm_family_is_the_whole_table(seed_store):
    doc = build(LeaderboardRequest(runs_dir=seed_store, reference="ref", test="welch", metrics=("acc", "micro_f1"),
                                   plots=False, ranks=False))
    t = doc.tables[0]
    raw, adjusted = [], []
    for r in t.rows:
        for c in r.cells:
            sig = c.extra.get("significance")
            if sig:
                raw.append(sig["p_value"])
                adjusted.append(sig["p_adjusted"])
    assert len(raw) == 6
    np.testing.assert_allclose(adjusted, _holm(raw))


def test_aso_uses_a_bonferroni_confidence(seed_store):
    doc = build(LeaderboardRequest(runs_dir=seed_store, reference="ref", test="aso", metrics=("acc",), plots=False,
                                   ranks=False))
    t, cells = _cells(doc, "acc")
    conf = cells["a"].extra["significance"]["result"]["details"]["confidence"]
    assert conf == pytest.approx(1 - 0.05 / 3)
    assert cells["a"].marker == "▲" and cells["c"].marker == "▼" and cells["b"].marker == ""
    assert any("Bonferroni" in n for n in t.footnotes)


def test_single_seed_rows_are_not_tested_and_say_why(seed_store):
    fake_run(seed_store, "mosei-aligned", "one", "oneoneone0", 1, multilabel_metrics(0.9, 0.1, 0.9))
    doc = build(LeaderboardRequest(runs_dir=seed_store, reference="ref", test="welch", metrics=("acc",),
                                   plots=False, ranks=False))
    t, cells = _cells(doc, "acc")
    assert cells["one"].marker == "" and cells["one"].note.startswith("not applicable: A has 1 seed")
    assert any("1 comparison(s) not tested or not applicable" in n for n in t.footnotes)
    # The default test reads the stored predictions; these fake runs have none, and the note says so.
    doc = build(LeaderboardRequest(runs_dir=seed_store, reference="ref", metrics=("acc",), plots=False, ranks=False))
    t, cells = _cells(doc, "acc")
    assert all(c.marker == "" for c in cells.values()) and "predictions.npz" in cells["a"].note
    assert any("two-level bootstrap" in n for n in t.footnotes)


def test_reference_errors(seed_store):
    fake_run(seed_store, "mosei-aligned", "ref", "otherhash0", 1, multilabel_metrics(0.3, 0.2, 0.4))
    with pytest.raises(MmerbenchError, match="has 2 configs on mosei-aligned: name one as METHOD@HASH"):
        build(LeaderboardRequest(runs_dir=seed_store, reference="ref", plots=False, ranks=False))
    doc = build(LeaderboardRequest(runs_dir=seed_store, reference="ref@0000000ref", plots=False, ranks=False))
    assert "ref (reference)" in [r.cells[0].display for r in doc.tables[0].rows]
    doc = build(LeaderboardRequest(runs_dir=seed_store, reference="nobody", plots=False, ranks=False))
    assert any("'nobody' has no runs here" in n for n in doc.tables[0].footnotes)


def _write_scored_runs(root, method, seed, y, scores):
    spec = get_entry(TWIN).spec
    m = metricslib.compute("multilabel", y_true=y, y_score=scores, threshold=0.5, labels=list(spec.labels))
    ids = np.array([f"s{i}" for i in range(len(y))])
    preds = {"valid_ids": ids, "valid_true": y, "valid_scores": scores,
             "test_ids": ids, "test_true": y, "test_scores": scores}
    fake_run(root, TWIN, method, f"{method:0>10}", seed, m, predictions=preds, data={"scale": 0.2, "seed": 0})


def test_bootstrap_uses_the_stored_predictions(tmp_path):
    rng = np.random.default_rng(0)
    y = (rng.random((300, 6)) < 0.3).astype(np.int8)
    for seed in (1, 2):
        noise = rng.random((300, 6))
        _write_scored_runs(tmp_path, "good", seed, y, np.clip(0.7 * y + 0.3 * noise, 0, 1))
        _write_scored_runs(tmp_path, "ref", seed, y, np.clip(0.3 * y + 0.5 * noise, 0, 1))
    doc = build(LeaderboardRequest(runs_dir=tmp_path, data="synthetic", reference="ref", test="bootstrap",
                                   metrics=("micro_f1",), plots=False, ranks=False))
    t, cells = _cells(doc, "micro_f1")
    sig = cells["good"].extra["significance"]
    assert sig["test"] == "bootstrap" and cells["good"].marker == "▲"
    assert sig["result"]["details"]["n_a"] == 300
    assert any("paired bootstrap" in n for n in t.footnotes)


def test_average_ranks_across_datasets_match_scipy(tmp_path):
    table = {  # dataset → method → acc
        "ds-one": {"m1": 0.50, "m2": 0.40, "m3": 0.30, "m4": 0.20},
        "ds-two": {"m1": 0.45, "m2": 0.48, "m3": 0.20, "m4": 0.25},
        "ds-three": {"m1": 0.60, "m2": 0.50, "m3": 0.55, "m4": 0.10},
    }
    for ds, row in table.items():
        for method, acc in row.items():
            fake_run(tmp_path, ds, method, f"{method:0>10}", 1, multilabel_metrics(acc, 0.5 - acc, acc))
    doc = build(LeaderboardRequest(runs_dir=tmp_path, metrics=("acc",)))
    ranks = next(t for t in doc.tables if t.id.startswith("ranks-"))
    x = np.array([[table[d][m] for m in ("m1", "m2", "m3", "m4")] for d in table])
    expected = st.rankdata(-x, axis=1).mean(axis=0)
    got = {r.meta["method"]: r.cells[1].value for r in ranks.rows}
    assert [got[m] for m in ("m1", "m2", "m3", "m4")] == pytest.approx(expected.tolist())
    chi2 = st.friedmanchisquare(*x.T).statistic
    assert ranks.meta["friedman"]["statistic"] == pytest.approx(chi2)
    assert [f.kind for f in ranks.figures] == ["critical-difference"]
    assert any("Nemenyi critical difference" in n for n in ranks.footnotes)


def test_average_ranks_never_pool_two_configs_of_a_method(tmp_path):
    """`mlp` default on one dataset and `mlp` small on another are two configs, not one ranked method."""
    for ds in ("ds-one", "ds-two", "ds-three"):
        for method, acc in (("m1", 0.5), ("m2", 0.4), ("m3", 0.3)):
            fake_run(tmp_path, ds, method, f"{method:0>10}", 1, multilabel_metrics(acc, 0.5 - acc, acc))
    fake_run(tmp_path, "ds-one", "mlp", "mlpdefault", 1, multilabel_metrics(0.6, 0.1, 0.6), params={"hidden": 256})
    fake_run(tmp_path, "ds-two", "mlp", "mlpsmall00", 1, multilabel_metrics(0.1, 0.4, 0.1), preset="small",
             params={"hidden": 64})
    fake_run(tmp_path, "ds-three", "mlp", "mlpwide000", 1, multilabel_metrics(0.2, 0.3, 0.2), params={"hidden": 512})
    doc = build(LeaderboardRequest(runs_dir=tmp_path, metrics=("acc",)))
    ranks = next(t for t in doc.tables if t.id.startswith("ranks-"))
    assert sorted(r.meta["method"] for r in ranks.rows) == ["m1", "m2", "m3"]
    note = next(n for n in ranks.footnotes if "not on every dataset" in n)
    assert "mlp (small)" in note and "mlp @mlpdef" in note and "mlp @mlpwid" in note
