"""The leaderboard's robustness section, from hand-written run folders and corruption records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmerbench import results
from mmerbench.report import render
from mmerbench.report.leaderboard import LeaderboardRequest, build
from mmerbench.robustness.scoring import record_path
from mmerbench.robustness.summary import area, collect, summarize

from report_helpers import SIGMOID, fake_run, multilabel_metrics

N, C = 120, 6
CORRUPTIONS = {"missing-text": ("missing", 0.0, ["text"]), "noise-0.1": ("noise", 0.1, []),
               "noise-1": ("noise", 1.0, []), "tmask-0.5": ("tmask", 0.5, [])}


def _scores(y: np.ndarray, noise: float, rng) -> np.ndarray:
    """Scores that threshold to the truth with some flips: more noise, more errors."""
    return np.clip(0.25 + 0.5 * y + rng.normal(0, noise, y.shape), 0, 1)


def fake_record(folder, name: str, y: np.ndarray, scores: np.ndarray) -> None:
    from mmerbench.metrics import compute

    fam, level, mods = CORRUPTIONS[name]
    path = record_path(folder, name)
    ids = np.array([f"s{i}" for i in range(len(y))])
    results.write_predictions(path.with_suffix(".npz"), {"test_ids": ids, "test_true": y, "test_scores": scores})
    test = compute("multilabel", y_true=y, y_score=scores, threshold=0.5, labels=[f"l{i}" for i in range(C)])
    results.write_json(path, {"corruption": {"name": name, "family": fam, "level": level, "modalities": mods},
                              "seed": 1, "test": test, "decision": SIGMOID})


def robustness_store(root):
    """Two methods on the MOSEI twin, 2 seeds each: 'good' barely degrades, 'weak' collapses under noise."""
    rng = np.random.default_rng(0)
    y = (rng.random((N, C)) < 0.3).astype(np.int8)
    for chash, method, spread in (("a" * 10, "good", (0.05, 0.1, 0.15, 0.1, 0.3)),
                                  ("b" * 10, "weak", (0.05, 0.3, 0.6, 0.5, 0.4))):
        for seed in (1, 2):
            folder = fake_run(root, "synth-mosei-aligned", method, chash, seed, multilabel_metrics(0.5, 0.2, 0.6),
                              data={"scale": 0.2, "seed": 0})
            for name, noise in zip(["clean", "noise-0.1", "noise-1", "tmask-0.5", "missing-text"], spread):
                s = _scores(y, noise, rng)
                if name == "clean":
                    from mmerbench.metrics import compute

                    metrics = compute("multilabel", y_true=y, y_score=s, threshold=0.5,
                                      labels=[f"l{i}" for i in range(C)])
                    results.write_json(folder / results.METRICS_FILE,
                                       {"valid": metrics, "test": metrics, "decision": SIGMOID})
                else:
                    fake_record(folder, name, y, s)
    return root


@pytest.fixture
def store(tmp_path):
    return robustness_store(tmp_path / "runs")


def test_area_is_the_trapezoid_over_the_levels_divided_by_the_largest():
    assert area(np.array([0, 0.5, 1.0]), np.array([1.0, 0.5, 0.0])) == pytest.approx(0.5)
    assert area(np.array([0, 0.1, 0.3, 1.0]), np.array([0.6, 0.6, 0.6, 0.6])) == pytest.approx(0.6)
    assert np.isnan(area(np.array([0.0]), np.array([0.6])))


def test_summary_multibench_figures_by_hand(store):
    frame = collect(store)
    t = summarize(frame, "micro_f1", reference="weak").set_index("method")
    f = {m: [frame[(frame.method == m) & (frame.metric == "micro_f1") & (frame.corruption == c)].value.mean()
             for c in ("clean", "noise-0.1", "noise-1")] for m in ("good", "weak")}
    lv = [0, 0.1, 1.0]
    for m in f:
        assert t.loc[m, "auc_noise"] == pytest.approx(np.trapezoid(f[m], lv) / 1.0)
    # MultiBench: the sum over levels of f − (r + f(0) − r(0))
    eff = sum(f["good"][i] - (f["weak"][i] + f["good"][0] - f["weak"][0]) for i in range(3))
    assert t.loc["good", "effective_noise"] == pytest.approx(eff) and eff > 0
    assert t.loc["weak", "effective_noise"] == 0.0
    assert t.loc["good", "relative_noise"] == 1.0 and t.loc["weak", "relative_noise"] == 0.0
    assert t.loc["good", "worst_missing"] == pytest.approx(
        frame[(frame.method == "good") & (frame.metric == "micro_f1") & (frame.corruption == "missing-text")].value.mean())
    assert "effective_noise" in summarize(frame, "micro_f1", reference=None).columns


def test_leaderboard_has_the_section_with_curves_and_holm_markers(store, tmp_path):
    doc = build(LeaderboardRequest(runs_dir=store, data="synthetic", reference="weak", metrics=("micro_f1",)))
    (sec,) = [s for s in doc.sections if s.title == "Robustness"]
    (table,) = sec.tables
    assert "synthetic" in table.labels
    keys = [c.key for c in table.columns]
    assert keys[:2] == ["method", "clean"] and {"missing-text", "noise-0.1", "noise-1", "tmask-0.5"} <= set(keys)
    assert {f.kind for f in table.figures} == {"robustness-noise", "robustness-tmask"}
    good = next(r for r in table.rows if r.meta["method"] == "good")
    noisy = good.cells[keys.index("noise-1")]
    sig = noisy.extra["significance"]
    assert sig["p_adjusted"] >= sig["p_value"] and noisy.marker == "▲"  # far fewer errors under heavy noise
    assert any("Holm-adjusted" in f for f in table.footnotes)
    md, html, js = render.to_markdown(doc), render.to_html(doc), json.loads(render.to_json(doc))
    assert "## Robustness" in md and "noise" in md
    assert "Robustness" in html and html.count("data:image/svg+xml;base64,") >= 2
    (jt,) = [t for s in js["sections"] if s["title"] == "Robustness" for t in s["tables"]]
    assert jt["id"] == table.id

def test_no_records_no_section(tmp_path):
    root = tmp_path / "runs"
    fake_run(root, "synth-mosei-aligned", "br", "c" * 10, 1, multilabel_metrics(0.5, 0.2, 0.6),
             data={"scale": 0.2, "seed": 0})
    doc = build(LeaderboardRequest(runs_dir=root, data="synthetic"))
    assert all(s.title != "Robustness" for s in doc.sections)
    assert collect(root).empty


@pytest.mark.parametrize("content", ['{"corruption": {"name": "../../evil", "family": "noise", "level": 1, '
                                     '"modalities": []}, "test": {"micro_f1": 0.9}}',
                                     '{"corruption": {"name": "evil", "family": "blur", "level": 1, '
                                     '"modalities": []}, "test": {"micro_f1": 0.9}}',
                                     '{"test": {"micro_f1": "high"}}', "not json", "[1, 2]"])
def test_a_hostile_or_broken_record_is_ignored_never_a_path(store, tmp_path, content):
    folder = next(store.glob("*/good/*/seed-1"))
    (folder / "robustness" / "evil.json").write_text(content)
    frame = collect(store)
    assert "evil" not in set(frame.corruption) and "../../evil" not in set(frame.corruption)
    doc = build(LeaderboardRequest(runs_dir=store, data="synthetic", reference="weak", metrics=("micro_f1",)))
    assert all("evil" not in c.key for t in doc.tables for c in t.columns)
