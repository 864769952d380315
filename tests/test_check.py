"""The metric regression check can fail: a changed, vanished or new number, a run below its floor,
a broken method, a crash, a missing entry, a reused run store and a suite that compares nothing
all fail with a line naming them; a missing or malformed baseline or suite is one clear error."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from mmerbench import check as checkmod
from mmerbench.check import CheckRequest, check, format_report
from mmerbench.cli import cli, main
from mmerbench.errors import MmerbenchError
from mmerbench.suite import Floor, load_baseline, load_suite

from conftest import TINY_SCALE

ALIGNED = "synth-mosei-aligned"
MLP = "mlp/synth-iemocap"
SUITE = {
    "version": 2, "split": "test", "device": "cpu", "threads": 1, "seeds": [1, 2], "exact": 1.0e-6,
    "metrics": ["acc", "hamming_loss", "micro_f1", "macro_f1", "wa", "weighted_f1"],
    "runs": [{"method": "br", "dataset": ALIGNED, "scale": TINY_SCALE},
             # a multi-class twin with a clear signal: a small MLP learns it in a second
             {"method": "mlp", "dataset": "synth-iemocap", "scale": 0.1, "preset": "small", "epochs": 10,
              "floor": {"metric": "weighted_f1", "margin": 0.2}}],
}


def _write_suite(path: Path, suite: dict) -> Path:
    path.write_text(yaml.safe_dump(suite))
    return path


@pytest.fixture(scope="module")
def stored(tmp_path_factory, twin_data_dir):
    """The mini suite run once, its baseline written with update=True and its results kept."""
    root = tmp_path_factory.mktemp("check")
    suite = _write_suite(root / "suite.yaml", SUITE)
    baseline = root / "baseline.json"
    report = check(CheckRequest(suite=suite, baseline=baseline, update=True, reason="first baseline",
                                data_dir=str(twin_data_dir)))
    assert report.updated and not report.failed
    return {"suite": suite, "baseline": baseline, "data": str(twin_data_dir), "results": report.results}


@pytest.fixture
def reran(stored, monkeypatch):
    """check() compares the stored results instead of training again (the comparison is what is tested)."""
    monkeypatch.setattr(checkmod, "run_suite", lambda *a, **kw: copy.deepcopy(stored["results"]))


def _request(stored, baseline=None, **kw) -> CheckRequest:
    base = dict(suite=stored["suite"], baseline=baseline or stored["baseline"], data_dir=stored["data"])
    base.update(kw)
    return CheckRequest(**base)


def _edited_baseline(stored, tmp_path, edit) -> Path:
    doc = json.loads(Path(stored["baseline"]).read_text())
    edit(doc["entries"])
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(doc))
    return path


def _cli(stored, baseline, *extra):
    return CliRunner().invoke(cli, ["check", "--suite", str(stored["suite"]), "--baseline", str(baseline),
                                    "--data-dir", stored["data"], "-q", *extra])


def test_baseline_holds_per_seed_values_floors_and_history_and_a_fresh_run_reproduces_it(stored):
    from mmerbench.data.registry import load_dataset
    from mmerbench.prior import prior_scores

    doc = load_baseline(stored["baseline"])
    assert set(doc["entries"]) == {"br/synth-mosei-aligned", MLP}
    assert [h["reason"] for h in doc["history"]] == ["first baseline"]
    for entry in doc["entries"].values():
        assert entry["seeds"] == [1, 2]
        for m in entry["metrics"].values():
            assert len(m["values"]) == 2 and m["mean"] == pytest.approx(np.mean(m["values"]))
    assert set(doc["entries"][MLP]["metrics"]) == {"wa", "weighted_f1", "macro_f1"}
    floor = doc["entries"][MLP]["floor"]
    prior = prior_scores(load_dataset("synth-iemocap", data_dir=stored["data"], scale=0.1))["weighted_f1"]
    assert floor == {"metric": "weighted_f1", "label_prior": prior, "margin": 0.2, "floor": prior + 0.2}
    assert "floor" not in doc["entries"]["br/synth-mosei-aligned"]

    report = check(_request(stored))  # trains again, into a fresh temporary store
    assert not report.failed, format_report(report, show_all=True)
    assert {r.status for r in report.rows} == {"ok", "floor ok"}
    assert report.count("ok") == 7 and report.count("floor ok") == 1
    assert "Check passed: 7 metrics compared exactly and 1 floors over 2 runs" in format_report(report)


@pytest.mark.parametrize("moved, fails", [(1e-5, True), (-0.01, True), (5e-7, False)])
def test_any_change_beyond_1e_6_fails_with_a_table_naming_it(stored, tmp_path, reran, moved, fails):
    def edit(entries):
        entries[MLP]["metrics"]["wa"]["values"][1] += moved

    path = _edited_baseline(stored, tmp_path, edit)
    report = check(_request(stored, baseline=path))
    assert report.failed is fails
    assert [(r.entry, r.metric) for r in report.rows if r.status == "changed"] == ([(MLP, "wa")] if fails else [])
    out = _cli(stored, path)
    assert out.exit_code == (1 if fails else 0)
    if fails:
        assert "changed" in out.output and "wa" in out.output and "Check FAILED: 1 changed" in out.output
        assert 'mmerbench check --update --reason' in out.output


def test_a_vanished_or_a_new_metric_fails(stored, tmp_path, reran):
    def extra(entries):
        entries[MLP]["metrics"]["ua"] = {"mean": 0.5, "std": 0.0, "values": [0.5, 0.5]}

    report = check(_request(stored, baseline=_edited_baseline(stored, tmp_path, extra)))
    assert report.failed and [(r.metric, r.status) for r in report.rows if r.status != "ok"
                              and r.status != "floor ok"] == [("ua", "vanished")]
    report = check(_request(stored, baseline=_edited_baseline(stored, tmp_path,
                                                              lambda e: e[MLP]["metrics"].pop("wa"))))
    assert report.failed and [(r.metric, r.status) for r in report.rows if r.status == "new"] == [("wa", "new")]


def test_a_broken_method_fails_the_check_and_its_floor(stored, tmp_path, monkeypatch):
    import torch

    from mmerbench.methods.base import Output
    from mmerbench.methods.mlp import MLP as MLPMethod

    def constant(self, batch):  # the same logits for every sample: it learns nothing from the inputs
        n = next(iter(batch.inputs.values())).shape[0]
        return Output(scores=torch.zeros(n, 4) + 0.0 * self.net[-1].bias)

    monkeypatch.setattr(MLPMethod, "forward", constant)
    report = check(_request(stored))
    assert report.failed
    assert [r.status for r in report.rows if r.entry == MLP and r.metric == "weighted_f1"] == ["below floor",
                                                                                                "changed"]
    text = format_report(report)
    assert "below floor" in text and "did not learn" in text
    # The floors alone catch it too, with no baseline at all (a machine whose numbers differ bitwise).
    report = check(_request(stored, baseline=tmp_path / "none.json", exact=False))
    assert report.failed and [r.status for r in report.rows] == ["below floor"]
    with pytest.raises(MmerbenchError, match="Not updating .*weighted_f1 does not clear its floor"):
        check(_request(stored, baseline=tmp_path / "new.json", update=True, reason="broken"))
    assert not (tmp_path / "new.json").exists()


def test_another_device_goes_with_the_floors_only(stored, tmp_path):
    with pytest.raises(MmerbenchError, match="--device cuda differs from the suite's cpu.*--floors-only"):
        check(_request(stored, device="cuda", runs_dir=tmp_path / "never"))
    assert not (tmp_path / "never").exists()


def test_floor_direction_and_margin():
    up, down = Floor("weighted_f1", 0.05), Floor("hamming_loss", 0.05)
    assert up.value(0.3) == pytest.approx(0.35) and down.value(0.3) == pytest.approx(0.25)
    assert up.cleared(0.36, 0.3) and not up.cleared(0.35, 0.3) and not up.cleared(float("nan"), 0.3)
    assert down.cleared(0.24, 0.3) and not down.cleared(0.26, 0.3)


def test_a_reused_run_store_is_refused_before_any_run(stored, tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "old-run").mkdir()
    with pytest.raises(MmerbenchError, match="not a new or empty folder: the check trains into a fresh store"):
        check(_request(stored, runs_dir=tmp_path / "runs"))
    with pytest.raises(SystemExit) as exc:
        main(["check", "--suite", str(stored["suite"]), "--baseline", str(stored["baseline"]),
              "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: --runs-dir")


def test_a_metrics_list_that_matches_nothing_fails(stored, tmp_path):
    suite = _write_suite(tmp_path / "suite.yaml", {**SUITE, "metrics": ["mae"], "runs": SUITE["runs"][:1]})
    report = check(_request(stored, suite=suite))
    assert report.failed
    assert [(r.status, r.note) for r in report.rows if r.status != "removed"] == [
        ("error", "none of the suite's metrics is reported by this run")]


def test_missing_entry_fails_removed_entry_is_reported_crash_fails(stored, tmp_path, reran, monkeypatch):
    path = _edited_baseline(stored, tmp_path, lambda e: e.pop("br/synth-mosei-aligned"))
    report = check(_request(stored, baseline=path))
    assert report.failed and [r.status for r in report.rows if r.entry.startswith("br/")] == ["missing"]

    monkeypatch.setattr(checkmod, "run_suite", lambda *a, **kw: copy.deepcopy(stored["results"][1:]))
    suite = _write_suite(tmp_path / "only-mlp.yaml", {**SUITE, "runs": SUITE["runs"][1:]})
    report = check(_request(stored, suite=suite))  # a run dropped from the suite is reported, not a failure
    assert not report.failed
    assert [(r.entry, r.status) for r in report.rows if r.status not in ("ok", "floor ok")] == [
        ("br/synth-mosei-aligned", "removed")]

    crashed = copy.deepcopy(stored["results"])
    crashed[1].error, crashed[1].values = "RuntimeError: injected failure", {}
    monkeypatch.setattr(checkmod, "run_suite", lambda *a, **kw: crashed)
    report = check(_request(stored))
    assert report.failed
    assert [(r.status, r.note) for r in report.rows if r.entry == MLP] == [("error", crashed[1].error)]
    with pytest.raises(MmerbenchError, match="Not updating .*injected failure"):
        check(_request(stored, baseline=tmp_path / "new.json", update=True, reason="x"))
    assert not (tmp_path / "new.json").exists()


def test_update_needs_a_reason_and_appends_it_to_the_history(stored, tmp_path, reran, capsys):
    path = tmp_path / "baseline.json"
    shutil.copy(stored["baseline"], path)
    with pytest.raises(MmerbenchError, match="--update needs --reason"):
        check(_request(stored, baseline=path, update=True, reason="  "))
    doc = json.loads(path.read_text())
    doc["entries"][MLP]["metrics"]["wa"]["values"][0] = 0.99
    path.write_text(json.dumps(doc))
    report = check(_request(stored, baseline=path, update=True, reason="MLP: a better init"))
    assert report.updated and not report.failed
    assert "changed" in {r.status for r in report.rows}  # the old baseline's view is still reported
    new = load_baseline(path)
    assert new["entries"] == load_baseline(stored["baseline"])["entries"]
    assert [h["reason"] for h in new["history"]] == ["first baseline", "MLP: a better init"]
    assert new["history"][-1]["moved"] == 1 and new["history"][-1]["first_moved"] == [f"{MLP} wa"]
    assert [p.name for p in tmp_path.iterdir()] == ["baseline.json"]  # no temporary file left behind
    with pytest.raises(SystemExit) as exc:
        main(["check", "--suite", str(stored["suite"]), "--baseline", str(path), "--update", "-q"])
    assert exc.value.code == 1 and capsys.readouterr().err.startswith("Error: --update needs --reason")


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ('{"version": 2, "entries": {"a": {"metrics": {"acc"', "not readable JSON"),
    ('{"version": 1, "entries": {}}', "version"),
    ('{"version": 2, "entries": {}}', "non-empty"),
    ('{"version": 2, "entries": {"a": {"seeds": [1, 2], "metrics": {}}}}', "entry 'a' has no metrics"),
    ('{"version": 2, "entries": {"a": {"seeds": [1, 2], "metrics": {"acc": {"values": [0.5]}}}}}',
     "one finite value per seed"),
    ('{"version": 2, "entries": {"a": {"seeds": [1], "metrics": {"acc": {"values": [NaN]}}}}}', "finite"),
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
    assert "mmerbench check --update" in err[0]


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(runs=[]), "`runs` must be a non-empty list"),
    (lambda s: s.update(seeds=["one"]), "`seeds` must be a non-empty list of integers"),
    (lambda s: s.update(metrics=["micro_f2"]), "Did you mean 'micro_f1'"),
    (lambda s: s.update(metrics=[]), "`metrics` must be a non-empty list"),
    (lambda s: s.update(colour="red"), "unknown keys \\['colour'\\]"),
    (lambda s: s["runs"].append(dict(s["runs"][0])), "two runs are named 'br/synth-mosei-aligned'"),
    (lambda s: s.update(exact=-1), "`exact` must be a non-negative number"),
    (lambda s: s["runs"][1].update(floor={"metric": "ua"}), "floor's metric 'ua' is not among `metrics`"),
    (lambda s: s["runs"][1].update(floor={"metric": "wa", "margin": 0}), "margin must be a positive number"),
    (lambda s: s["runs"][1].update(floor=3), "floor must be a metric name or"),
])
def test_malformed_suite_is_one_sentence(tmp_path, edit, message):
    suite = copy.deepcopy(SUITE)
    edit(suite)
    with pytest.raises(MmerbenchError, match=message):
        load_suite(_write_suite(tmp_path / "suite.yaml", suite))
    (tmp_path / "bad.yaml").write_text("runs: [unclosed")
    with pytest.raises(MmerbenchError, match="not readable YAML"):
        load_suite(tmp_path / "bad.yaml")
