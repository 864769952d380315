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


def edit_npz(folder: Path, edit) -> None:
    """Rewrite each split's .npz of a canonical folder: ``edit(arrays, split)`` changes the dict in place."""
    for split in SPLITS:
        path = Path(folder) / f"{split}.npz"
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        edit(arrays, split)
        np.savez(path, **arrays)


def edit_spec_yaml(folder: Path, edit) -> None:
    """Rewrite a canonical folder's spec.yaml: ``edit(meta)`` changes the loaded mapping in place."""
    import yaml

    path = Path(folder) / "spec.yaml"
    meta = yaml.safe_load(path.read_text())
    edit(meta)
    path.write_text(yaml.safe_dump(meta, sort_keys=False))


def rename_modality(folder: Path, old: str, new: str) -> None:
    """Rename a modality in a canonical folder's spec and in its arrays (`old`, `old_lengths`, `old_mask`)."""
    def spec(meta):
        meta["spec"]["modalities"] = {new if m == old else m: v for m, v in meta["spec"]["modalities"].items()}

    def arrays(a, split):
        for k in list(a):
            if k == old or k in (f"{old}_lengths", f"{old}_mask"):
                a[new + k[len(old):]] = a.pop(k)

    edit_spec_yaml(folder, spec)
    edit_npz(folder, arrays)


def add_extra(folder: Path, name: str) -> None:
    """Add an ``extra_<name>`` array (zeros, two columns) to every split of a canonical folder."""
    edit_npz(folder, lambda a, split: a.__setitem__(f"extra_{name}", np.zeros((len(a["ids"]), 2), np.float32)))
