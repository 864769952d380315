"""Progress on stderr while a twin is generated, a file is read, and the batches of a slow epoch
run; nothing when progress is off (``-q``), and the numbers do not depend on it."""

from __future__ import annotations

import pickle

import numpy as np

from mmerbench import progress
from mmerbench.data.registry import get_entry
from mmerbench.data.safe_pickle import safe_load
from mmerbench.runner import RunRequest, run

from conftest import TINY_SCALE


def test_twin_generation_shows_a_bar_and_the_same_data(capsys):
    gen = get_entry("synth-mosei-aligned").generate
    with progress.showing(True):
        shown = gen(TINY_SCALE, 0)
    err = capsys.readouterr().err
    assert "generating synth-mosei-aligned (scale 0.02, seed 0)" in err and "sample" in err
    quiet = gen(TINY_SCALE, 0)
    assert capsys.readouterr().err == ""
    for s in ("train", "test"):
        for m in shown.spec.modalities:
            np.testing.assert_array_equal(shown[s].inputs[m], quiet[s].inputs[m])


def test_reading_a_file_says_which_and_how_large(tmp_path, capsys):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))
    with progress.showing(True):
        assert safe_load(path) == {"a": 1}
    assert f"reading {path}" in capsys.readouterr().err
    safe_load(path)
    assert capsys.readouterr().err == ""


def test_a_slow_epoch_shows_its_batches_and_quiet_shows_nothing(twin_data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "SLOW_EPOCH_S", 0.0)  # every epoch counts as slow here
    common = dict(method="mlp", dataset="synth-mosei-aligned", preset="small", epochs=1, scale=TINY_SCALE,
                  data_dir=str(twin_data_dir))
    run(RunRequest(**common, runs_dir=str(tmp_path / "a"), progress=True))
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "batch" in err
    run(RunRequest(**common, runs_dir=str(tmp_path / "b"), progress=False))
    assert capsys.readouterr().err == ""
    assert not progress.enabled()  # a run leaves the setting as it found it
