"""Run-store files get the mode the umask allows (as `open` would give), not mkstemp's 0600, so a
shared or group run store is readable (and with umask 002, lockable) by colleagues."""

from __future__ import annotations

import os
import stat

import pytest

from mmerbench import results
from mmerbench.report import render
from mmerbench.runner import RunRequest, run

from conftest import TINY_SCALE


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_run_store_files_follow_the_umask(twin_data_dir, tmp_path, umask):
    old = os.umask(umask)
    try:
        assert results.current_umask() == umask
        runs = tmp_path / "runs"
        run(RunRequest(method="mlp", dataset="synth-mosei-aligned", preset="small", epochs=1,
                       data_dir=str(twin_data_dir), runs_dir=str(runs), scale=TINY_SCALE, progress=False))
        doc = render.Document(title="t", sections=[])
        written = render.write(doc, tmp_path / "boards", "leaderboard", ["md", "json"])
    finally:
        os.umask(old)
    files = [p for p in runs.rglob("*") if p.is_file()] + list(written)
    names = {p.name for p in files}
    assert {"metrics.json", "config.yaml", "env.json", "history.json", "predictions.npz", "model.pt",
            ".lock"} <= names
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p
    for p in [d for d in runs.rglob("*") if d.is_dir()]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o777 & ~umask, p
