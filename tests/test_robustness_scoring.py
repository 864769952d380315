"""`mmerbench robustness`: stored models scored under corruptions, stored beside the run, resumable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mmerbench import results, runner
from mmerbench.cli import cli, main
from mmerbench.data.batching import Batch
from mmerbench.robustness import collect, summarize
from mmerbench.robustness.scoring import RobustnessRequest, record_path, robustness
from mmerbench.weights import load_state_dict

from conftest import TINY_SCALE

TWIN = "synth-mosei-aligned"
MLP = ("--preset", "small", "--epochs", "2")


def _common(data_dir, runs):
    return ["--dataset", TWIN, "--scale", str(TINY_SCALE), "--data-dir", str(data_dir), "--runs-dir", str(runs)]


def _req(data_dir, runs, method, *corruptions, **kw):
    extra = {"preset": "small", "epochs": 2} if method == "mlp" else {}
    return RobustnessRequest(method=method, dataset=TWIN, corruptions=tuple(corruptions), scale=TINY_SCALE,
                             data_dir=str(data_dir), runs_dir=str(runs), device="cpu", **{**extra, **kw})


def _folder(runs: Path, method: str) -> Path:
    (folder,) = [f for _, m, _, _, f in results.iter_runs(runs) if m == method]
    return folder


def _digest(folder: Path) -> dict[str, str]:
    """Every file of the clean run (not the robustness records, not the lock) by content."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "robustness" not in p.parts and p.name != ".lock"}


@pytest.fixture(scope="module")
def store(twin_data_dir, tmp_path_factory):
    """One mlp run (small preset, 2 epochs) and one BR run in their own store."""
    runs = tmp_path_factory.mktemp("runs")
    for method, extra in (("mlp", MLP), ("br", ())):
        out = CliRunner().invoke(cli, ["run", "--method", method, *_common(twin_data_dir, runs), *extra, "-q",
                                       "--device", "cpu"])
        assert out.exit_code == 0, out.output
    return runs


@pytest.mark.parametrize("method", ["mlp", "br"])
def test_level_zero_gives_exactly_the_clean_metrics(store, twin_data_dir, method):
    out = robustness(_req(twin_data_dir, store, method, "noise-0", "tmask-0", force=True))
    clean = results.read_metrics(_folder(store, method))["test"]
    assert [r.status for r in out] == ["scored", "scored"]
    for r in out:
        assert r.test == clean


def test_all_modalities_missing_is_the_models_output_on_zero_inputs(store, twin_data_dir, tiny_twin):
    robustness(_req(twin_data_dir, store, "mlp", "missing-text.audio.vision"))
    folder = _folder(store, "mlp")
    with np.load(record_path(folder, "missing-text.audio.vision").with_suffix(".npz")) as z:
        stored = z["test_scores"]
    prep = runner.prepare(runner.RunRequest(method="mlp", dataset=TWIN, preset="small", epochs=2, scale=TINY_SCALE,
                                            runs_dir=str(store)))
    model = runner.build_model(prep, tiny_twin.spec)
    model.load_state_dict(load_state_dict(folder / runner.MODEL))
    model.eval()
    test, n = tiny_twin["test"], len(tiny_twin["test"])
    batch = Batch(inputs={m: torch.zeros(n, *x.shape[1:]) for m, x in test.inputs.items()},
                  masks={m: torch.zeros(n, x.shape[1], dtype=torch.bool) for m, x in test.inputs.items()},
                  labels=torch.as_tensor(np.asarray(test.labels), dtype=torch.float32), index=torch.arange(n),
                  extras={k: torch.as_tensor(np.asarray(v)) for k, v in test.extras.items()})
    with torch.no_grad():
        expected = model.probabilities(model(batch)).double().numpy()
    np.testing.assert_allclose(stored, expected, rtol=0, atol=1e-6)
    assert np.allclose(stored, stored[0])  # nothing sample-specific is left in the input


@pytest.mark.parametrize("method", ["mlp", "br"])
def test_same_seed_same_numbers_and_the_clean_run_is_never_changed(store, twin_data_dir, method):
    folder = _folder(store, method)
    before = _digest(folder)
    names = ("noise-0.3", "tmask-0.5", "misalign-text", "missing-vision")
    robustness(_req(twin_data_dir, store, method, *names, force=True))
    first = {n: np.load(record_path(folder, n).with_suffix(".npz"))["test_scores"] for n in names}
    robustness(_req(twin_data_dir, store, method, *names, force=True))
    for n in names:
        assert np.array_equal(first[n], np.load(record_path(folder, n).with_suffix(".npz"))["test_scores"]), n
    assert _digest(folder) == before
    noisy = json.loads(record_path(folder, "noise-0.3").read_text())
    assert noisy["corruption"] == {"name": "noise-0.3", "family": "noise", "level": 0.3, "modalities": []}
    assert noisy["model"] == ("refitted" if method == "br" else "model.pt")


def test_resumes_and_skips_finished_corruptions(store, twin_data_dir):
    folder = _folder(store, "br")
    robustness(_req(twin_data_dir, store, "br", "missing"))
    record_path(folder, "missing-audio").unlink()
    out = robustness(_req(twin_data_dir, store, "br", "missing"))
    assert {r.corruption: r.status for r in out}["missing-audio"] == "scored"
    assert sum(r.status == "scored" for r in out) == 1


def test_the_api_frame_and_summary(store, twin_data_dir):
    robustness(_req(twin_data_dir, store, "br", "noise", "missing"))
    robustness(_req(twin_data_dir, store, "mlp", "noise", "missing"))
    frame = collect(store)
    assert set(frame.columns) >= {"dataset", "method", "config_hash", "seed", "corruption", "family", "level",
                                  "metric", "value"}
    table = summarize(frame, "micro_f1", reference="br").set_index("method")
    folder = _folder(store, "mlp")
    clean = results.read_metrics(folder)["test"]["micro_f1"]
    assert table.loc["mlp", "clean"] == pytest.approx(clean)
    levels = [0, 0.1, 0.3, 1.0]
    vals = [clean] + [json.loads(record_path(folder, f"noise-{lv:g}").read_text())["test"]["micro_f1"]
                      for lv in levels[1:]]
    area = sum((vals[i] + vals[i + 1]) / 2 * (levels[i + 1] - levels[i]) for i in range(3)) / 1.0
    assert table.loc["mlp", "auc_noise"] == pytest.approx(area)
    missing = [json.loads(p.read_text())["test"]["micro_f1"] for p in (folder / "robustness").glob("missing-*.json")]
    assert table.loc["mlp", "worst_missing"] == pytest.approx(min(missing))
    assert table.loc["br", "effective_noise"] == pytest.approx(0.0)  # the reference against itself
    assert sorted(table["relative_noise"].dropna()) in ([0.0, 1.0], [])


def test_unfinished_run_and_bad_names_are_one_line_errors(store, twin_data_dir, capsys):
    base = ["robustness", "--method", "mlp", *_common(twin_data_dir, store), *MLP]
    for extra, words in ((["--seeds", "9"], "no finished run for seed 9"),
                         (["--corruptions", "blur-2"], "Unknown corruption")):
        with pytest.raises(SystemExit) as e:
            main([*base, *extra])
        err = capsys.readouterr().err
        assert e.value.code == 1 and words in err and "Traceback" not in err


def test_a_model_that_does_not_reproduce_its_run_is_refused(store, twin_data_dir, tmp_path):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(store, runs)
    folder = _folder(runs, "mlp")
    state = torch.load(folder / runner.MODEL, weights_only=True)
    for v in state["model"].values():
        if v.is_floating_point():
            v.add_(0.5)
    torch.save(state, folder / runner.MODEL)
    from mmerbench.errors import MmerbenchError

    with pytest.raises(MmerbenchError, match="does not reproduce"):
        robustness(_req(twin_data_dir, runs, "mlp", "noise-0.1", force=True))
