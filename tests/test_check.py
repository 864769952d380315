"""The metric regression check: a baseline it just wrote passes; a degraded method, a baseline
better than reality, a crash or a missing entry fail with a table naming what moved; an
improvement is reported; a missing or malformed baseline or suite is one clear error."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from mmerbench.check import (CheckRequest, EntryResult, Suite, SuiteEntry, check, compare, format_report,
                             load_baseline, load_suite, uncovered_methods)
from mmerbench.cli import cli, main
from mmerbench.errors import MmerbenchError
from mmerbench.registry import list_methods

from conftest import TINY_SCALE

REPO = Path(__file__).resolve().parents[1]
ALIGNED = "synth-mosei-aligned"
SUITE = {
    "version": 1, "split": "test", "device": "cpu", "threads": 1, "scale": TINY_SCALE, "seeds": [1, 2],
    "metrics": ["acc", "hamming_loss", "micro_f1", "macro_f1"],
    "tolerance": {"floor": 0.02, "k": 3.0},
    "runs": [{"method": "br", "dataset": ALIGNED},
             {"method": "mlp", "dataset": ALIGNED, "preset": "small", "epochs": 1, "set": ["hidden=16"]}],
}


def _write_suite(path: Path, suite: dict) -> Path:
    path.write_text(yaml.safe_dump(suite))
    return path


@pytest.fixture(scope="module")
def stored(tmp_path_factory, twin_data_dir):
    """The mini suite run once, its baseline written with update=True; later checks reuse the runs."""
    root = tmp_path_factory.mktemp("check")
    suite = _write_suite(root / "suite.yaml", SUITE)
    baseline = root / "baseline.json"
    report = check(CheckRequest(suite=suite, baseline=baseline, update=True, runs_dir=root / "runs",
                                data_dir=str(twin_data_dir)))
    assert report.updated and not report.failed
    return {"suite": suite, "baseline": baseline, "runs": root / "runs", "data": str(twin_data_dir)}


def _request(stored, baseline=None, **kw) -> CheckRequest:
    base = dict(suite=stored["suite"], baseline=baseline or stored["baseline"], runs_dir=stored["runs"],
                data_dir=stored["data"])
    base.update(kw)
    return CheckRequest(**base)


def _edited_baseline(stored, tmp_path, edit) -> Path:
    doc = json.loads(Path(stored["baseline"]).read_text())
    edit(doc["entries"])
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(doc))
    return path


def test_baseline_holds_mean_and_seed_std_and_a_fresh_check_passes(stored):
    doc = load_baseline(stored["baseline"])
    assert set(doc["entries"]) == {"br/synth-mosei-aligned", "mlp/synth-mosei-aligned"}
    for entry in doc["entries"].values():
        assert entry["seeds"] == [1, 2] and set(entry["metrics"]) == {"acc", "hamming_loss", "micro_f1", "macro_f1"}
        for m in entry["metrics"].values():
            assert m["mean"] == pytest.approx(np.mean(m["values"]))
            assert m["std"] == pytest.approx(np.std(m["values"], ddof=1))
    assert doc["entries"]["br/synth-mosei-aligned"]["metrics"]["micro_f1"]["std"] == 0.0  # convex: seed-free

    report = check(_request(stored))
    assert not report.failed and {r.status for r in report.rows} == {"ok"} and len(report.rows) == 8
    assert "Check passed: 8 metrics" in format_report(report)


def test_baseline_better_than_reality_fails_with_a_table_naming_the_metric(stored, tmp_path):
    def better(entries):
        entries["mlp/synth-mosei-aligned"]["metrics"]["micro_f1"]["mean"] += 0.2
        entries["br/synth-mosei-aligned"]["metrics"]["hamming_loss"]["mean"] -= 0.1  # lower is better

    path = _edited_baseline(stored, tmp_path, better)
    report = check(_request(stored, baseline=path))
    assert report.failed
    regressed = {(r.entry, r.metric) for r in report.rows if r.status == "regressed"}
    assert regressed == {("mlp/synth-mosei-aligned", "micro_f1"), ("br/synth-mosei-aligned", "hamming_loss")}

    out = CliRunner().invoke(cli, ["check", "--suite", str(stored["suite"]), "--baseline", str(path),
                                   "--runs-dir", str(stored["runs"]), "--data-dir", stored["data"], "-q"])
    assert out.exit_code == 1
    assert "regressed" in out.output and "micro_f1" in out.output and "hamming_loss" in out.output
    assert "-0.2000" in out.output and "Check FAILED" in out.output and "mmerbench check --update" in out.output


def test_improvement_is_reported_and_passes(stored, tmp_path):
    def worse(entries):
        entries["mlp/synth-mosei-aligned"]["metrics"]["macro_f1"]["mean"] -= 0.2
        entries["br/synth-mosei-aligned"]["metrics"]["hamming_loss"]["mean"] += 0.1

    path = _edited_baseline(stored, tmp_path, worse)
    report = check(_request(stored, baseline=path))
    assert not report.failed
    assert {(r.entry, r.metric) for r in report.rows if r.status == "improved"} == {
        ("mlp/synth-mosei-aligned", "macro_f1"), ("br/synth-mosei-aligned", "hamming_loss")}
    out = CliRunner().invoke(cli, ["check", "--suite", str(stored["suite"]), "--baseline", str(path),
                                   "--runs-dir", str(stored["runs"]), "--data-dir", stored["data"], "-q"])
    assert out.exit_code == 0 and "improved" in out.output and "2 improved" in out.output


def test_a_degraded_method_fails_the_check(stored, tmp_path, monkeypatch):
    from mmerbench.methods.mlp import MLP

    original = MLP.probabilities
    # Scores inverted: every confident "yes" becomes a "no".
    monkeypatch.setattr(MLP, "probabilities", lambda self, out: 1.0 - original(self, out))
    suite = _write_suite(tmp_path / "suite.yaml", {**SUITE, "runs": SUITE["runs"][1:]})
    report = check(_request(stored, suite=suite, runs_dir=tmp_path / "runs"))
    assert report.failed
    regressed = {r.metric for r in report.rows if r.status == "regressed"}
    assert "micro_f1" in regressed and "hamming_loss" in regressed


def test_tolerance_is_the_floor_or_k_seed_stds():
    entry = SuiteEntry("x/d", "x", "d", (1, 2))
    suite = Suite(entries=(entry,), floor=0.02, k=3.0, floors={"acc": 0.5})
    cur = EntryResult(entry, values={"micro_f1": [0.5, 0.5], "acc": [0.5, 0.5], "hamming_loss": [0.3, 0.3]})

    def status(metric, mean, std):
        base = {"entries": {"x/d": {"metrics": {metric: {"mean": mean, "std": std}}}}}
        (row,) = [r for r in compare(suite, [cur], base) if r.metric == metric]
        return row.status, row.tolerance

    assert status("micro_f1", 0.515, 0.0) == ("ok", 0.02)
    assert status("micro_f1", 0.53, 0.0) == ("regressed", 0.02)
    assert status("micro_f1", 0.6, 0.04) == ("ok", pytest.approx(0.12))  # 3 × 0.04 > 0.1
    assert status("micro_f1", 0.4, 0.01) == ("improved", pytest.approx(0.03))
    assert status("acc", 0.9, 0.0) == ("ok", 0.5)  # a per-metric floor
    assert status("hamming_loss", 0.2, 0.0)[0] == "regressed"  # lower is better: 0.3 is worse than 0.2
    assert status("hamming_loss", 0.4, 0.0)[0] == "improved"


def test_missing_entry_and_crashed_run_fail(stored, tmp_path, monkeypatch):
    path = _edited_baseline(stored, tmp_path, lambda e: e.pop("br/synth-mosei-aligned"))
    report = check(_request(stored, baseline=path))
    assert report.failed and [r.status for r in report.rows if r.entry.startswith("br/")] == ["missing"]

    suite = _write_suite(tmp_path / "only-br.yaml", {**SUITE, "runs": SUITE["runs"][:1]})
    report = check(_request(stored, suite=suite))  # a run dropped from the suite is reported, not a failure
    assert not report.failed
    assert [(r.entry, r.status) for r in report.rows if r.status != "ok"] == [("mlp/synth-mosei-aligned", "removed")]

    from mmerbench.methods.mlp import MLP

    def boom(self, batch):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(MLP, "forward", boom)
    suite = _write_suite(tmp_path / "suite.yaml", {**SUITE, "runs": SUITE["runs"][1:]})
    report = check(_request(stored, suite=suite, runs_dir=tmp_path / "runs"))
    assert report.failed
    (row,) = [r for r in report.rows if r.entry == "mlp/synth-mosei-aligned"]
    assert row.status == "error" and "injected failure" in row.note
    with pytest.raises(MmerbenchError, match="Not updating .*injected failure"):
        check(_request(stored, suite=suite, runs_dir=tmp_path / "runs2", baseline=tmp_path / "new.json",
                       update=True))
    assert not (tmp_path / "new.json").exists()


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ('{"version": 1, "entries": {"a": {"metrics": {"acc"', "not readable JSON"),
    ('{"version": 7, "entries": {}}', "version"),
    ('{"version": 1, "entries": {"a": {"metrics": {"acc": {"mean": 0.5, "std": -1}}}}}', "non-negative"),
    ('{"version": 1, "entries": {"a": {"metrics": {"acc": {"mean": NaN, "std": 0}}}}}', "finite"),
])
def test_missing_or_malformed_baseline_is_one_sentence_before_any_run(stored, tmp_path, capsys, content, message):
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(MmerbenchError, match=message):
        check(_request(stored, baseline=path, runs_dir=tmp_path / "never"))
    assert not (tmp_path / "never").exists()  # nothing ran
    with pytest.raises(SystemExit) as exc:
        main(["check", "--suite", str(stored["suite"]), "--baseline", str(path), "-q"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: Baseline") and "Traceback" not in err[0]
    if content is not None:
        assert "mmerbench check --update" in err[0]


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(runs=[]), "`runs` must be a non-empty list"),
    (lambda s: s.update(seeds=["one"]), "`seeds` must be a non-empty list of integers"),
    (lambda s: s.update(metrics=["micro_f2"]), "Did you mean 'micro_f1'"),
    (lambda s: s.update(colour="red"), "unknown keys \\['colour'\\]"),
    (lambda s: s["runs"].append(dict(s["runs"][0])), "two runs are named 'br/synth-mosei-aligned'"),
    (lambda s: s.update(tolerance={"floor": -1}), "tolerance.floor must be a non-negative number"),
])
def test_malformed_suite_is_one_sentence(tmp_path, edit, message):
    suite = copy.deepcopy(SUITE)
    edit(suite)
    with pytest.raises(MmerbenchError, match=message):
        load_suite(_write_suite(tmp_path / "suite.yaml", suite))
    (tmp_path / "bad.yaml").write_text("runs: [unclosed")
    with pytest.raises(MmerbenchError, match="not readable YAML"):
        load_suite(tmp_path / "bad.yaml")


def test_update_rewrites_the_baseline_atomically(stored, tmp_path):
    path = tmp_path / "baseline.json"
    shutil.copy(stored["baseline"], path)
    doc = json.loads(path.read_text())
    doc["entries"]["mlp/synth-mosei-aligned"]["metrics"]["acc"]["mean"] = 0.99
    path.write_text(json.dumps(doc))
    report = check(_request(stored, baseline=path, update=True))
    assert report.updated and not report.failed
    assert "regressed" in {r.status for r in report.rows}  # the old baseline's view is still reported
    assert load_baseline(path)["entries"] == load_baseline(stored["baseline"])["entries"]
    assert [p.name for p in tmp_path.iterdir()] == ["baseline.json"]  # no temporary file left behind


def test_repository_suite_covers_every_registered_method_and_its_baseline_every_entry():
    suite = load_suite(REPO / "ci" / "suite.yaml")
    assert uncovered_methods(suite) == [], (
        "Add the new method(s) to ci/suite.yaml and run `mmerbench check --update`.")
    assert {e.method for e in suite.entries} <= set(list_methods())
    assert len(suite.entries[0].seeds) >= 2 and all(len(e.seeds) >= 2 for e in suite.entries)
    baseline = load_baseline(REPO / "ci" / "baseline.json")
    assert {e.name for e in suite.entries} <= set(baseline["entries"]), (
        "ci/baseline.json lacks suite entries: run `mmerbench check --update`.")


@pytest.mark.slow
def test_repository_suite_passes_against_its_baseline(tmp_path):
    report = check(CheckRequest(suite=REPO / "ci" / "suite.yaml", baseline=REPO / "ci" / "baseline.json",
                                runs_dir=tmp_path / "runs", data_dir=str(tmp_path / "data")))
    assert not report.failed, format_report(report)
