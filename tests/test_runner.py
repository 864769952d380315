"""The runner's protocol: determinism, resume after a kill, skip/force, selection on valid only."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from mmerbench import results
from mmerbench.errors import MmerbenchError
from mmerbench.runner import CHECKPOINT, MODEL, RunRequest, prepare, run

from conftest import TINY_SCALE


def _req(twin_data_dir, runs, **kw):
    base = dict(method="mlp", dataset="synth-mosei-aligned", seeds=(3,), epochs=3,
                overrides=("hidden=16",), data_dir=str(twin_data_dir), runs_dir=str(runs),
                scale=TINY_SCALE, progress=False, device="cpu")
    base.update(kw)
    return RunRequest(**base)


def test_run_writes_a_complete_folder(twin_data_dir, tmp_path):
    (res,) = run(_req(twin_data_dir, tmp_path / "runs"))
    names = {p.name for p in res.folder.iterdir()}
    assert {"config.yaml", "env.json", "history.json", "predictions.npz", "metrics.json", MODEL} <= names
    assert CHECKPOINT not in names  # a finished run keeps only the selected weights
    m = json.loads((res.folder / "metrics.json").read_text())
    assert set(m) == {"valid", "test", "decision"}
    assert m["decision"] == {"rule": "sigmoid > threshold", "threshold": 0.5, "score": "sigmoid"}
    pred = np.load(res.folder / "predictions.npz")
    n_test = len(pred["test_ids"])
    assert pred["test_scores"].shape == (n_test, 6) and pred["test_true"].shape == (n_test, 6)
    hist = json.loads((res.folder / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [0, 1, 2]
    assert all("task" in h["train_loss"] for h in hist)


def test_same_seed_gives_identical_metrics(twin_data_dir, tmp_path):
    (a,) = run(_req(twin_data_dir, tmp_path / "a"))
    (b,) = run(_req(twin_data_dir, tmp_path / "b"))
    assert (a.folder / "metrics.json").read_bytes() == (b.folder / "metrics.json").read_bytes()
    pa, pb = np.load(a.folder / "predictions.npz"), np.load(b.folder / "predictions.npz")
    np.testing.assert_array_equal(pa["test_scores"], pb["test_scores"])
    (c,) = run(_req(twin_data_dir, tmp_path / "c", seeds=(4,)))
    assert not np.array_equal(np.load(c.folder / "predictions.npz")["test_scores"], pa["test_scores"])


def test_resume_after_kill_matches_uninterrupted_run(twin_data_dir, tmp_path):
    runs = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import os
        from mmerbench.runner import RunRequest, run
        req = RunRequest(method="mlp", dataset="synth-mosei-aligned", seeds=(3,), epochs=3,
                         overrides=("hidden=16",), data_dir={str(twin_data_dir)!r}, runs_dir={str(runs)!r},
                         scale={TINY_SCALE}, progress=False, device="cpu")
        def kill(epoch, record):
            if epoch == 0:
                os._exit(137)  # no clean-up, like a SIGKILL after the first epoch
        run(req, on_epoch_end=kill)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr
    folder = prepare(_req(twin_data_dir, runs)).folders[3]
    assert not results.is_complete(folder)
    assert (folder / CHECKPOINT).is_file()
    assert results.collect(runs).empty  # a killed run is never read as complete

    (resumed,) = run(_req(twin_data_dir, runs))
    assert resumed.status == "resumed"
    (clean,) = run(_req(twin_data_dir, tmp_path / "clean"))
    assert resumed.metrics == clean.metrics
    hist = json.loads((folder / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [0, 1, 2]


def test_half_written_folder_is_not_complete(twin_data_dir, tmp_path):
    runs = tmp_path / "runs"
    folder = prepare(_req(twin_data_dir, runs)).folders[3]
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text('{"valid": {"micro_f1": 0.5}, "te')  # cut mid-write
    assert not results.is_complete(folder)
    assert results.collect(runs).empty
    (res,) = run(_req(twin_data_dir, runs))
    assert res.status == "ran" and results.is_complete(folder)


def test_finished_run_is_skipped_unless_forced(twin_data_dir, tmp_path):
    runs = tmp_path / "runs"
    (first,) = run(_req(twin_data_dir, runs))
    stamp = (first.folder / "metrics.json").stat().st_mtime_ns
    (again,) = run(_req(twin_data_dir, runs))
    assert again.status == "skipped" and again.metrics == first.metrics
    assert (first.folder / "metrics.json").stat().st_mtime_ns == stamp
    (forced,) = run(_req(twin_data_dir, runs, force=True))
    assert forced.status == "ran" and forced.metrics == first.metrics


def test_test_split_scored_once_with_selected_weights(twin_data_dir, tmp_path):
    """The epoch is picked on valid; model.pt holds it; the stored test scores come from it."""
    from mmerbench.data.batching import DeviceSplit
    from mmerbench.data.registry import load_dataset
    from mmerbench.registry import get_method

    (res,) = run(_req(twin_data_dir, tmp_path / "runs", epochs=4))
    hist = json.loads((res.folder / "history.json").read_text())
    assert all(set(h) >= {"valid", "valid_loss"} and "test" not in h for h in hist)
    best_epoch = int(np.argmax([h["valid"]["micro_f1"] for h in hist]))  # first maximum, as the runner keeps
    saved = torch.load(res.folder / MODEL, weights_only=True)
    assert saved["epoch"] == best_epoch

    ds = load_dataset("synth-mosei-aligned", data_dir=twin_data_dir, scale=TINY_SCALE)
    cfg = prepare(_req(twin_data_dir, tmp_path / "runs", epochs=4)).config
    model = get_method("mlp")(ds.spec, **cfg["params"])
    model.load_state_dict(saved["model"])
    model.eval()
    with torch.no_grad():
        batch = DeviceSplit(ds.spec, ds["test"], "cpu").take(torch.arange(len(ds["test"])))
        scores = model.probabilities(model(batch)).numpy()
    stored = np.load(res.folder / "predictions.npz")["test_scores"]
    np.testing.assert_allclose(stored, scores, rtol=1e-5, atol=1e-6)
    assert len(stored) == len(ds["test"])  # every test sample, none dropped


def test_baseline_runs_and_modality_subset_changes_config(twin_data_dir, tmp_path):
    runs = tmp_path / "runs"
    (all_mods,) = run(_req(twin_data_dir, runs, method="br", epochs=None, overrides=()))
    (text,) = run(_req(twin_data_dir, runs, method="br", epochs=None, overrides=("modalities=[text]",)))
    assert all_mods.folder.parent != text.folder.parent
    assert all_mods.metrics["decision"]["score"] == "probability"
    frame = results.collect(runs)
    assert set(frame.columns) == {"dataset", "method", "config_hash", "seed", "split", "metric", "value"}
    assert set(frame["split"]) == {"valid", "test"}
    assert frame["config_hash"].nunique() == 2


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(method="br", epochs=3, overrides=()), "epochs"),
        (dict(overrides=("hiden=3",)), "Did you mean 'hidden'"),
        (dict(overrides=("modalities=[smell]",)), "smell"),
        (dict(overrides=("select=accuracy",)), "select"),
        (dict(scale=0.5, dataset="mosei-aligned"), "synthetic twins only"),
        (dict(preset="huge"), "preset"),
    ],
)
def test_bad_requests_are_one_clear_error(twin_data_dir, tmp_path, kw, message):
    with pytest.raises(MmerbenchError, match=message):
        run(_req(twin_data_dir, tmp_path / "runs", **kw))


def test_cuda_requested_without_cuda_is_an_error(twin_data_dir, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(MmerbenchError, match="CUDA"):
        run(_req(twin_data_dir, tmp_path / "runs", device="cuda"))
