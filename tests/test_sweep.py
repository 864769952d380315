"""Sweeps: the grid expands as documented, a local sweep over two methods × two twins × two seeds
finishes and is skipped on the second invocation (without loading data), a failing run is
reported with its log while the others finish, and submitit's local executor runs the same cells."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import submitit
import torch
from click.testing import CliRunner

from mmerbench import results
from mmerbench.cli import cli
from mmerbench.errors import MmerbenchError, UnknownNameError
from mmerbench.sweep import Cell, SweepRequest, expand, load_grid, request_from, sweep

from conftest import TINY_SCALE

ALIGNED, UNALIGNED = "synth-mosei-aligned", "synth-mosei-unaligned"
_REAL_EXECUTOR = submitit.AutoExecutor


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from mmerbench.data.registry import load_dataset

    root = tmp_path_factory.mktemp("sweep-data")
    for name in (ALIGNED, UNALIGNED):
        load_dataset(name, data_dir=root, scale=TINY_SCALE)
    return str(root)


def _args(runs, data_dir, *extra):
    return ["sweep", "--methods", "br", "mlp", "--datasets", ALIGNED, UNALIGNED, "--seeds", "1", "2",
            "--preset", "small", "--epochs", "1", "--set", "hidden=8", "--scale", str(TINY_SCALE),
            "--data-dir", data_dir, "--runs-dir", str(runs), "--device", "cpu", *extra]


def test_grid_expansion_per_method_settings_and_epochs_for_neural_methods_only():
    req = request_from({"methods": ["br", "mlp"], "datasets": [ALIGNED], "seeds": [1, 2],
                        "preset": {"mlp": "small"}, "set": {"mlp": ["dropout=0.0"]},
                        "grid": {"mlp": {"lr": [0.001, 0.0003], "hidden": [8]}}, "epochs": 2})
    cells = expand(req)
    br = [c for c in cells if c.method == "br"]
    mlp = [c for c in cells if c.method == "mlp"]
    assert [(c.seed, c.preset, c.epochs, c.overrides) for c in br] == [(1, None, None, ()), (2, None, None, ())]
    assert len(mlp) == 4 and {c.epochs for c in mlp} == {2} and {c.preset for c in mlp} == {"small"}
    assert {c.overrides for c in mlp} == {("dropout=0.0", "hidden=8", "lr=0.001"),
                                          ("dropout=0.0", "hidden=8", "lr=0.0003")}
    # The command line wins over the file; a flat grid applies to every method.
    req = request_from({"methods": ["br"], "datasets": [ALIGNED], "grid": {"C": [0.5, 1.0]}}, seeds=(7,))
    assert [(c.seed, c.overrides) for c in expand(req)] == [(7, ("C=0.5",)), (7, ("C=1.0",))]


def test_bad_sweeps_are_one_sentence_errors(tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean 'mlp'"):
        expand(request_from(methods=("mlpp",), datasets=(ALIGNED,)))
    with pytest.raises(MmerbenchError, match="needs --datasets"):
        request_from(methods=("br",))
    with pytest.raises(MmerbenchError, match="not in the sweep: \\['tailor'\\]"):
        expand(request_from({"preset": {"tailor": "small"}}, methods=("br",), datasets=(ALIGNED,)))
    with pytest.raises(MmerbenchError, match="Unknown launcher"):
        request_from(methods=("br",), datasets=(ALIGNED,), launcher="pbs")
    (tmp_path / "g.yaml").write_text("methods: [br]\nflavour: sweet\n")
    with pytest.raises(MmerbenchError, match="unknown keys \\['flavour'\\]"):
        load_grid(tmp_path / "g.yaml")
    with pytest.raises(MmerbenchError, match="does not exist"):
        load_grid(tmp_path / "missing.yaml")


def test_local_sweep_finishes_then_skips_everything_without_loading_data(tmp_path, data_dir, monkeypatch):
    runs = tmp_path / "runs"
    # `--set hidden=8` is not a setting of `br`: give it per method through a grid file instead.
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"set: {{mlp: [hidden=8]}}\n")
    args = [a for a in _args(runs, data_dir, "--grid", str(grid)) if a not in ("--set", "hidden=8")]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert "8 runs: 8 ran" in out.output
    frame = results.collect(runs)
    assert len(frame.groupby(["dataset", "method", "seed"])) == 8

    from mmerbench.data import registry

    def no_loading(*a, **k):
        raise AssertionError("a finished run loaded data")

    monkeypatch.setattr(registry, "load_dataset", no_loading)
    monkeypatch.setattr("mmerbench.runner.load_dataset", no_loading)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "8 runs: 8 skipped" in again.output


def test_a_failing_run_is_reported_with_its_log_and_the_others_finish(tmp_path, data_dir, monkeypatch):
    from mmerbench.methods.mlp import MLP

    original = MLP.forward

    def fails_on_unaligned(self, batch):
        if self.spec.name == UNALIGNED:
            raise RuntimeError("injected failure on the unaligned twin")
        return original(self, batch)

    monkeypatch.setattr(MLP, "forward", fails_on_unaligned)
    runs = tmp_path / "runs"
    # `hidden=8` applies to every method here, so `br` fails before running (no such setting),
    # and mlp fails on the unaligned twin while training.
    out = CliRunner().invoke(cli, _args(runs, data_dir))
    assert out.exit_code == 1
    assert "4 ran" not in out.output and "2 ran, 6 failed" in out.output
    assert "'br' has no setting 'hidden'" in out.output and "injected failure" in out.output

    summary = json.loads(next((runs / "_sweeps").glob("*/summary.json")).read_text())
    failed = [r for r in summary if r["status"] == "failed"]
    assert len(failed) == 6
    for r in failed:
        log = Path(r["log"]).read_text()
        assert r["error"] in log or "failed before running" in log
    mlp_fail = [r for r in failed if r["cell"]["method"] == "mlp"]
    assert all("Traceback" in Path(r["log"]).read_text() for r in mlp_fail)
    ran = [r for r in summary if r["status"] == "ran"]
    assert {(r["cell"]["method"], r["cell"]["dataset"]) for r in ran} == {("mlp", ALIGNED)}
    assert all(results.is_complete(Path(r["folder"])) for r in ran)


def _in_process_submitit(monkeypatch):
    """submitit's debug executor: the launcher's submit-and-wait path, with the jobs run in this process."""
    import submitit

    monkeypatch.setattr(submitit, "AutoExecutor", lambda folder, cluster: _REAL_EXECUTOR(folder, cluster="debug"))


def test_submitit_path_collects_results_and_reports_dead_jobs(tmp_path, data_dir, monkeypatch):
    _in_process_submitit(monkeypatch)
    req = SweepRequest(methods=("br",), datasets=(ALIGNED,), seeds=(1, 2), scale=TINY_SCALE, data_dir=data_dir,
                       runs_dir=str(tmp_path / "runs"), device="cpu", launcher="submitit-local",
                       slurm={"partition": "gpu", "timeout_min": 10, "gpus_per_node": 1})
    lines = []
    report = sweep(req, progress=lines.append)
    assert [r.status for r in report.results] == ["ran", "ran"]
    assert all(results.is_complete(Path(r.folder)) and Path(r.log).is_file() for r in report.results)
    assert any(ln.startswith("submitted 2 job(s)") for ln in lines)

    # A job the cluster killed (time limit, out of memory): its result() raises, the others go on.
    import submitit
    from submitit.core.utils import FailedJobError

    class DeadJob:
        def __init__(self, i):
            self.job_id, self.paths = f"900_{i}", type("P", (), {"stderr": tmp_path / f"900_{i}_log.err"})

        def done(self):
            return True

        def result(self):
            raise FailedJobError("Job (task=0) failed during processing with trace:\n...\n"
                                 "slurmstepd: error: Detected 1 oom_kill event")

    class ClusterThatKills:
        def __init__(self, folder, cluster):
            pass

        def update_parameters(self, **params):
            pass

        def map_array(self, fn, cells, logs):
            return [DeadJob(i) for i in range(len(cells))]

    monkeypatch.setattr(submitit, "AutoExecutor", ClusterThatKills)
    report = sweep(SweepRequest(**{**req.__dict__, "seeds": (3,)}))
    (res,) = report.results
    assert res.status == "failed" and res.error == "job 900_0 failed: slurmstepd: error: Detected 1 oom_kill event"
    assert res.log == str(tmp_path / "900_0_log.err")
    _in_process_submitit(monkeypatch)
    with pytest.raises(MmerbenchError, match="Invalid Slurm/submitit parameters"):
        sweep(SweepRequest(**{**req.__dict__, "seeds": (4,), "slurm": {"colour": "red"}}))


@pytest.mark.slow
def test_submitit_local_executor_runs_the_same_cells(tmp_path, data_dir):
    runs = tmp_path / "runs"
    req = SweepRequest(methods=("br",), datasets=(ALIGNED,), seeds=(1, 2), scale=TINY_SCALE, data_dir=data_dir,
                       runs_dir=str(runs), device="cpu", launcher="submitit-local", slurm={"timeout_min": 10})
    lines = []
    report = sweep(req, progress=lines.append)
    assert [r.status for r in report.results] == ["ran", "ran"], [r.error for r in report.results]
    assert any("submitted 2 job(s) to local" in ln for ln in lines)
    assert (report.folder / "submitit").is_dir()
    local = sweep(SweepRequest(**{**req.__dict__, "launcher": "local"}))
    assert [r.status for r in local.results] == ["skipped", "skipped"]  # the same run folders


def test_slurm_without_sbatch_is_a_clear_error(tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    req = SweepRequest(methods=("br",), datasets=(ALIGNED,), seeds=(1,), scale=TINY_SCALE, data_dir=data_dir,
                       runs_dir=str(tmp_path / "runs"), launcher="slurm")
    with pytest.raises(MmerbenchError, match="needs Slurm's `sbatch`"):
        sweep(req)


def test_cells_are_picklable_for_submitit():
    import pickle

    cell = Cell("mlp", ALIGNED, 3, preset="small", overrides=("hidden=8",))
    assert pickle.loads(pickle.dumps(cell)) == cell


def test_impossible_pairs_are_reported_as_incompatible_not_failed(tmp_path, data_dir):
    """BR on a sentiment (regression) twin cannot run at all: listed as incompatible, and the sweep exits 0."""
    runs = tmp_path / "runs"
    out = CliRunner().invoke(cli, ["sweep", "--methods", "br", "--datasets", ALIGNED, "synth-mosi", "--seeds", "1",
                                   "--scale", str(TINY_SCALE), "--data-dir", data_dir, "--runs-dir", str(runs),
                                   "--device", "cpu"])
    assert out.exit_code == 0, out.output
    assert "2 runs: 1 ran, 1 incompatible" in out.output
    assert "br handles multilabel tasks, not regression" in out.output
    assert not (runs / "synth-mosi").exists()
