"""Helpers for the reader tests: small datasets at a real spec's shapes, and the usual ways a file goes bad."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from mmerbench.data.dataset import Dataset
from mmerbench.data.registry import get_entry
from mmerbench.data.spec import SPLITS, DatasetSpec
from mmerbench.data.synthetic import PROFILES, generate
from mmerbench.errors import DataError

SIZES = {"train": 12, "valid": 9, "test": 10}


def small(name: str, *, seed: int = 0, sizes=SIZES, **spec_changes) -> Dataset:
    """A dataset with `name`'s real spec (sizes and any changed fields aside), from its twin's generator."""
    real = get_entry(name).spec.with_(splits=dict(sizes), **spec_changes)
    ds = generate(real, name, 1.0, seed, profile=PROFILES[name])
    ds.spec = ds.spec.with_(name=name, synthetic=False, twin_of=None)
    return ds


def with_spec(spec: DatasetSpec, **changes) -> DatasetSpec:
    return spec.with_(**changes)


def truncate(path: Path) -> None:
    raw = Path(path).read_bytes()
    Path(path).write_bytes(raw[: len(raw) // 2])


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_hostile_pickle(path: Path, marker: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump({"train": {"text": Evil(marker)}}, f)


def expect_data_error(fn, *needles: str) -> str:
    with pytest.raises(DataError) as e:
        fn()
    msg = str(e.value)
    for needle in needles:
        assert needle in msg, msg
    assert "\n" not in msg.strip(), msg  # one sentence, no traceback text
    return msg


def rewrite_pickle(path: Path, edit) -> None:
    from mmerbench.data.safe_pickle import safe_load

    data = safe_load(path)
    edit(data)
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)


def assert_features_equal(got: Dataset, want: Dataset, modalities=None) -> None:
    for split in SPLITS:
        for m in modalities or want.spec.modalities:
            x = np.asarray(got[split].inputs[m])
            assert x.dtype == np.float32
            np.testing.assert_array_equal(x, np.asarray(want[split].inputs[m]), err_msg=f"{split}/{m}")
            np.testing.assert_array_equal(got[split].masks[m], want[split].masks[m], err_msg=f"{split}/{m} mask")
