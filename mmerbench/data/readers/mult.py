"""The MulT authors' pickles: IEMOCAP 4-class, CMU-MOSI and CMU-MOSEI sentiment, aligned and unaligned.

Format (Tsai et al., ACL 2019; github.com/yaohungt/Multimodal-Transformer): ``{name}_data.pkl`` (word-aligned)
and ``{name}_data_noalign.pkl`` (unaligned), plain pickles of
``data[split]['text'|'audio'|'vision'|'labels'|'id']`` with splits ``train``,
``valid``, ``test``. Features are ``[N, L, D]`` arrays (IEMOCAP 20 × 300/74/35,
unaligned audio 400 and vision 500 steps; MOSI 50 × 300/5/20, unaligned
audio 375 and vision 500; MOSEI 50 × 300/74/35, unaligned 500 and 500),
zero-padded; ``id`` is optional (IEMOCAP's file has none).

Labels:

* IEMOCAP ``[N, 4, 2]``: per emotion (neutral, happy, sad, angry, the file's
  order) a one-hot pair, ``argmax`` over the last axis = 1 when the emotion is
  present (MulT's loader does this argmax). Each sample must have exactly one
  emotion present: it becomes a class index in ``[0, 4)``. A ``[N, 4]`` 0/1
  array is read the same way.
* MOSI / MOSEI ``[N, 1, 1]`` (or ``[N, 1]``, ``[N]``): sentiment, finite and in
  [-3, 3]; anything else is refused (the labels' vocabulary).

Non-finite features are set to 0 and counted (MOSEI's audio holds ``-inf``);
masks come from the zero padding. The writer at the end produces these exact
layouts for the tests.
"""

from __future__ import annotations

import os
import pickle
from functools import partial
from pathlib import Path

import numpy as np

from mmerbench.data.dataset import Dataset, LoadReport
from mmerbench.data.readers.common import (
    expect_files,
    finish_split,
    get_key,
    ids_array,
    num_samples,
    read_features,
    split_dict,
    top_level,
    untensor,
    where_key,
)
from mmerbench.data.safe_pickle import safe_load
from mmerbench.data.spec import SPLITS, DatasetSpec
from mmerbench.errors import DataError

KEYS = {"text": "text", "audio": "audio", "vision": "vision"}
SENTIMENT_RANGE = (-3.0, 3.0)


def read_mult(files: list[Path], *, spec: DatasetSpec) -> Dataset:
    """Read one MulT pickle into a Dataset with `spec`'s task, labels and shapes (sizes from the file)."""
    (path,) = expect_files(files, 1, spec.name)
    data = top_level(safe_load(path), path)
    report = LoadReport(source=str(path))
    splits = {}
    for split in SPLITS:
        sd = split_dict(data, split, path)
        inputs = read_features(sd, KEYS, spec, path, split)
        n = num_samples(inputs)
        raw = untensor(get_key(sd, "labels", path, split))
        where = where_key(path, split, "labels")
        if spec.task == "multiclass":
            y = one_hot_pairs_to_class(raw, len(spec.labels), n, where=where, names=spec.labels)
        else:
            y = sentiment_labels(raw, n, where=where)
        ids = ids_array(sd.get("id"), n, split, where=where_key(path, split, "id"))
        splits[split] = finish_split(inputs, y, ids, report, split)
    return Dataset(spec.with_(splits={s: len(v) for s, v in splits.items()}), splits, report)


def mult_reader(spec: DatasetSpec):
    """The reader of one registered dataset (a DataFormat's `read`)."""
    return partial(read_mult, spec=spec)


def _numeric(raw, where: str) -> np.ndarray:
    try:
        arr = np.asarray(raw)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.dtype.kind not in "fiub":
        raise DataError(f"{where}: expected an array of numbers, but got {type(raw).__name__}.")
    return arr


def one_hot_pairs_to_class(raw, k: int, n: int, *, where: str, names=None) -> np.ndarray:
    """MulT's IEMOCAP labels ``[N, K, 2]`` (or ``[N, K]`` 0/1) → class indices ``[N]`` (one emotion per sample)."""
    arr = _numeric(raw, where)
    if arr.shape[:1] != (n,):
        raise DataError(f"{where}: {arr.shape[0] if arr.ndim else 0} labels for {n} samples.")
    if arr.ndim == 3 and arr.shape[1:] == (k, 2):
        pairs = arr
        if not np.all(np.isin(pairs, (0, 1))) or not np.all(pairs.sum(-1) == 1):
            raise DataError(f"{where}: expected one-hot (absent, present) pairs of 0/1 per emotion, "
                            "but found other values.")
        present = pairs.argmax(-1)
    elif arr.ndim == 2 and arr.shape[1] == k:
        if not np.all(np.isin(arr, (0, 1))):
            raise DataError(f"{where}: expected 0/1 per emotion, but found other values.")
        present = arr.astype(np.int64)
    else:
        raise DataError(f"{where}: expected labels of shape (N, {k}, 2) or (N, {k}), but got {tuple(arr.shape)}.")
    count = present.sum(1)
    bad = np.flatnonzero(count != 1)
    if bad.size:
        i = int(bad[0])
        label_names = ", ".join(names) if names else f"{k} emotions"
        raise DataError(
            f"{where}: {bad.size} sample(s) mark {int(count[i])} emotion(s) present (first: sample {i}); "
            f"a 4-class sample marks exactly one of {label_names}."
        )
    return present.argmax(1).astype(np.int64)


def sentiment_labels(raw, n: int, *, where: str) -> np.ndarray:
    """Sentiment ``[N, 1, 1]`` / ``[N, 1]`` / ``[N]`` → float32 ``[N]`` in [-3, 3]."""
    arr = _numeric(raw, where)
    if arr.shape[:1] != (n,) or arr.size != n:
        raise DataError(f"{where}: expected one sentiment value per sample ({n}), but got shape {tuple(arr.shape)}.")
    y = arr.reshape(n).astype(np.float64)
    bad = ~np.isfinite(y)
    if bad.any():
        raise DataError(f"{where}: {int(bad.sum())} sentiment label(s) are NaN or infinite (first: sample "
                        f"{int(np.flatnonzero(bad)[0])}).")
    lo, hi = SENTIMENT_RANGE
    out = (y < lo) | (y > hi)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise DataError(f"{where}: {int(out.sum())} sentiment label(s) lie outside [-3, 3] "
                        f"(first: sample {i}, {y[i]:g}).")
    return y.astype(np.float32)


# --------------------------------------------------------------------------- writer (tests)


def write_mult_pkl(ds: Dataset, path: str | os.PathLike, *, include_ids: bool = True, protocol: int = 4) -> Path:
    """Write ``ds`` in the MulT authors' layout (IEMOCAP-style one-hot pairs for a multi-class set)."""
    out = {}
    for split, s in ds.splits.items():
        n = len(s)
        y = np.asarray(s.labels)
        if ds.spec.task == "multiclass":
            k = len(ds.spec.labels)
            labels = np.zeros((n, k, 2), dtype=np.float32)
            labels[:, :, 0] = 1
            labels[np.arange(n), y, 0] = 0
            labels[np.arange(n), y, 1] = 1
        else:
            labels = y.astype(np.float32).reshape(n, 1, 1)
        d = {m: np.array(s.inputs[m], dtype=np.float32) for m in KEYS}
        d["labels"] = labels
        if include_ids:
            d["id"] = np.array([str(i) for i in s.ids], dtype=str)
        out[split] = d
    path = Path(path)
    with open(path, "wb") as f:
        pickle.dump(out, f, protocol=protocol)
    return path
