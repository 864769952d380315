"""Shared fixtures: an isolated data root and run store, and a small cached twin."""

from __future__ import annotations

import pytest

from mmerbench.data.registry import load_dataset

TINY_SCALE = 0.02  # ~330 / 37 / 93 samples: enough to train, fast to generate


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test reads or writes the user's data root or ./runs."""
    monkeypatch.setenv("MMERBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MMERBENCH_RUNS", str(tmp_path / "runs"))


@pytest.fixture(scope="session")
def twin_data_dir(tmp_path_factory):
    """A data root whose cache already holds the tiny aligned twin (generated once per session)."""
    root = tmp_path_factory.mktemp("twin-data")
    load_dataset("synth-mosei-aligned", data_dir=root, scale=TINY_SCALE)
    return root


@pytest.fixture(scope="session")
def tiny_twin(twin_data_dir):
    return load_dataset("synth-mosei-aligned", data_dir=twin_data_dir, scale=TINY_SCALE)
