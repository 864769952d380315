"""Calibration of the default test under a null, on demand (`pytest -m slow`): about 3 minutes on 2 cores.

The simulation is benchmarks/bench_calibration.py's (its docstring describes the generator); the README's
table comes from running that file as a script.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_calibration.py"
    spec = importlib.util.spec_from_file_location("bench_calibration", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("regime", ["deterministic", "seed-heavy"])
def test_two_level_false_positive_rate_is_calibrated(regime):
    rates = _bench().simulate(regime, 0.0, comparisons=1000)
    assert 0.03 <= rates["two-level"] <= 0.07, rates
