"""benchmarks/gpu_check.py on CPU through the same functions as on CUDA (tiny settings: seconds)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cpu_run_writes_both_reports_and_passes(gpu_check, tmp_path):
    rc = gpu_check.main(["--device", "cpu", "--preset", "small", "--scale", "0.005", "--methods", "mlp",
                         "--steps", "1", "--max-seconds", "0.5", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    md = (tmp_path / "gpu_check.md").read_text()
    assert rc == 0 and report["passed"] == 1
    (row,) = report["rows"]
    assert row["same_seed"] is True and row["resume"] is True
    assert row["accumulation_max_abs_diff"] < 1e-4
    assert row["profile"]["train_samples_per_s"] > 0 and row["profile"]["latency_ms_p99"] > 0
    assert [r["dtype"] for r in report["rows"]] == ["fp32"] and "--dtypes bf16" in report["note"]
    assert "| mlp | fp32 | yes |" in md


def test_a_failed_check_is_a_failed_row_and_exit_1(gpu_check, tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "check_runs", lambda *a: {"same_seed": False, "resume": True})
    rc = gpu_check.main(["--device", "cpu", "--preset", "small", "--scale", "0.005", "--methods", "mlp",
                         "--steps", "1", "--max-seconds", "0.5", "--out", str(tmp_path)])
    assert rc == 1 and "| mlp | fp32 | NO |" in (tmp_path / "gpu_check.md").read_text()


def test_checkpoint_parity_and_refused_accumulation_are_reported(gpu_check):
    import argparse

    args = argparse.Namespace(device="cpu", preset="small", data_dir=None)
    out = gpu_check.check_parity(args, "carat", "fp32")
    assert out["accumulation"].startswith("refused: ")
