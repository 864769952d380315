"""benchmarks/bench_throughput.py end to end on a tiny config, and its comparison with the authors' figures."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_throughput.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_throughput", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ratios_to_the_authors_and_their_targets(bench):
    # RobMMR's authors: 1.9–2.0 samples/s (mean 1.95) and 17.6 GB.
    r = {"method": "robmmr", "dataset": "synth-mosei-aligned", "samples_per_s": 3.9, "peak_gib": 8.8 * 1e9 / 2**30}
    assert bench.beside_authors(r) == ["64", "1.9–2", "17.6", "2.00×", "0.50×"]
    slow = bench.beside_authors({**r, "samples_per_s": 1.95, "peak_gib": 17.6 * 1e9 / 2**30})
    assert slow[3:] == ["1.00× ✗", "1.00× ✗"]
    assert bench.beside_authors({**r, "method": "mlp"}) == [""] * 5
    assert bench.beside_authors({**r, "dataset": "synth-mosei-unaligned"}) == [""] * 5  # their shapes only


def _bench(tmp_path, *extra):
    out = tmp_path / "rows.json"
    env = {**os.environ, "MMERBENCH_DATA": str(tmp_path / "data")}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--methods", "mlp", "--datasets", "synth-mosei-aligned",
                           "--device", "cpu", "--preset", "small", "--steps", "1", "--warmup", "0", "--no-flops",
                           "--json", str(out), *extra], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(out.read_text())["rows"]
    return row, proc.stdout


def test_cpu_run_with_every_option_writes_its_rows(tmp_path):
    row, table = _bench(tmp_path, "--max-memory", "20GB", "--dtype", "bf16")
    assert row["method"] == "mlp" and row["dtype"] == "bf16" and row["samples_per_s"] > 0
    assert row["settings"] == [] and row["gflop_per_sample"] is None  # fits as it is; --no-flops
    assert "| mlp " in table and "| bf16 " in table
    failed, table = _bench(tmp_path, "--max-memory", "1MB")
    assert "needs about" in failed["failed"] and "failed: " in table  # one row says why; the table goes on


def test_speed_options_compares_each_option_with_the_plain_step():
    script = SCRIPT.parent / "bench_speed_options.py"
    proc = subprocess.run([sys.executable, str(script), "--methods", "mlp", "--options", "base", "fused", "bf16",
                           "--steps", "1"], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in proc.stdout.splitlines() if line.startswith("| mlp")}
    assert set(rows) == {"base", "fused", "bf16"}
    assert rows["base"][-1] == "0"  # the plain step against itself
    assert float(rows["bf16"][-1]) > 0  # bf16 autocast is not exact
