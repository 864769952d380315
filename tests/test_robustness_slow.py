"""On the MOSEI twin, text carries the most signal (the generator's design): removing text must hurt
more than removing vision, for the pooled baseline and for a neural model (slow: trains on a twin)."""

from __future__ import annotations

import json

import pytest

from mmerbench import results
from mmerbench.robustness import RobustnessRequest, robustness
from mmerbench.runner import RunRequest, run

pytestmark = pytest.mark.slow

TWIN = "synth-mosei-aligned"
SCALE = 0.1


@pytest.mark.parametrize("method, extra", [("br", {}), ("mlp", {"preset": "small", "epochs": 20})])
def test_removing_text_hurts_more_than_removing_vision(tmp_path, method, extra):
    common = dict(method=method, dataset=TWIN, seeds=(1, 2), scale=SCALE, data_dir=str(tmp_path / "data"),
                  runs_dir=str(tmp_path / "runs"), device="cpu", **extra)
    run(RunRequest(progress=False, **common))
    robustness(RobustnessRequest(corruptions=("missing-text", "missing-vision"), **common))
    for _, _, _, seed, folder in results.iter_runs(tmp_path / "runs"):
        f1 = {n: json.loads((folder / "robustness" / f"{n}.json").read_text())["test"]["micro_f1"]
              for n in ("missing-text", "missing-vision")}
        clean = results.read_metrics(folder)["test"]["micro_f1"]
        assert f1["missing-text"] < f1["missing-vision"] <= clean + 0.02, (seed, f1, clean)
