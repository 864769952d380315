"""NEMu (music emotions, multi-label): the ``torch.save`` file read by the RobMMR authors' ``NEMuDataset``.

Format (ShipingGe/MMER ``utils/data_utils.py``): per split
(``train``, ``valid``, ``test``) the keys ``img`` (one picture vector per
sample, ``[N, D]`` or ``[N, 1, D]``), ``aud``, ``com`` (listener comments),
``lyr`` (lyrics), each ``[N, L, D]``, and ``tgt``. The modalities are
``picture`` (a sequence of length 1), ``audio``, ``comments``, ``lyrics``.

``tgt`` comes in two forms and both are read: the authors' loader takes it as
multi-hot rows ``[N, C]`` of 0/1 (then the label names are the catalog's
``emotion_1..C``: no name is published); the other form is the token lists of the
aligned MOSEI release, ``[BOS, e1, ..., EOS]`` named by a top-level ``dict['tgt']`` (then the names
are the file's). Dims and lengths are the file's own (the training split
fixes them; the others must agree). Masks come from the zero padding (the
authors' loader treats every step as real, so a file without padding gives
all-true masks). Non-finite features are set to 0 and counted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mmerbench.data.dataset import Dataset, LoadReport
from mmerbench.data.readers.common import (
    expect_files,
    feature_array,
    finish_split,
    get_key,
    ids_array,
    read_features,
    shapes_of,
    split_dict,
    tgt_to_multihot,
    top_level,
    untensor,
    vocab_of,
    where_key,
)
from mmerbench.data.safe_pickle import safe_load
from mmerbench.data.spec import SPLITS, DatasetSpec, ModalitySpec
from mmerbench.errors import DataError

KEYS = {"picture": "img", "audio": "aud", "comments": "com", "lyrics": "lyr"}
NEMU_LABELS = tuple(f"emotion_{i}" for i in range(1, 7))  # no published names: columns of the authors' rows


def read_nemu(files: list[Path], *, spec: DatasetSpec) -> Dataset:
    (pt,) = expect_files(files, 1, spec.name)
    data = top_level(safe_load(pt), pt)
    vocab = vocab_of(data, pt) if "dict" in data else None
    report = LoadReport(source=str(pt))
    shapes: dict = {m: (None, None) for m in KEYS}
    shapes["picture"] = (1, None)
    names: tuple[str, ...] | None = vocab.names if vocab is not None else None
    splits = {}
    for split in SPLITS:
        sd = split_dict(data, split, pt)
        if isinstance(sd, dict) and "img" in sd:
            sd = dict(sd)
            sd["img"] = _picture(sd["img"], where=where_key(pt, split, "img"))
        inputs = read_features(sd, KEYS, shapes, pt, split)
        n = int(inputs["picture"].shape[0])
        tgt = get_key(sd, "tgt", pt, split)
        where = where_key(pt, split, "tgt")
        if vocab is not None:
            y = tgt_to_multihot(tgt, vocab, where=where)
        else:
            y = _multi_hot(tgt, n, where=where, k=None if names is None else len(names))
            if names is None:
                names = NEMU_LABELS if y.shape[1] == len(NEMU_LABELS) else tuple(
                    f"emotion_{i}" for i in range(1, y.shape[1] + 1))
        if len(y) != n:
            raise DataError(f"{where}: {len(y)} label rows for {n} samples in 'img'.")
        if split == "train":
            shapes = shapes_of(inputs)
        ids = ids_array(sd.get("id"), n, split, where=where_key(pt, split, "id"))
        splits[split] = finish_split(inputs, y, ids, report, split)
    if names is None:  # unreachable while SPLITS is non-empty; a typed error, not an assert, on a data path
        raise DataError(f"{pt}: no split was read, so the label names are unknown.")
    report.notes.append(f"labels: {', '.join(names)} ("
                        + ("the file's dict['tgt'])" if vocab is not None else "multi-hot columns; no names published)"))
    modalities = {m: ModalitySpec(dim=d, length=n_) for m, (n_, d) in shapes.items()}
    out = spec.with_(labels=names, modalities=modalities, splits={s: len(v) for s, v in splits.items()})
    return Dataset(out, splits, report)


def _picture(raw: Any, *, where: str) -> Any:
    """One vector per sample ``[N, D]`` → ``[N, 1, D]`` (a sequence of length 1)."""
    arr = untensor(raw)
    if isinstance(arr, np.ndarray) and arr.dtype != object and arr.ndim == 2:
        return arr[:, None, :]
    if isinstance(arr, (list, tuple)) and arr and np.ndim(untensor(arr[0])) == 1:
        return feature_array([np.asarray(untensor(v))[None, :] for v in arr], length=1, dim=None, where=where)
    return arr


def _multi_hot(raw: Any, n: int, *, where: str, k: int | None) -> np.ndarray:
    arr = untensor(raw)
    try:
        y = np.asarray([np.asarray(untensor(r)) for r in arr]) if isinstance(arr, (list, tuple)) else np.asarray(arr)
    except (ValueError, TypeError):
        raise DataError(f"{where}: expected multi-hot label rows of equal length (or a dict['tgt'] vocabulary "
                        "for token lists).") from None
    if y.dtype.kind not in "fiub" or y.ndim != 2:
        raise DataError(f"{where}: expected multi-hot label rows [N, C] of 0/1 (or a dict['tgt'] vocabulary for "
                        f"token lists), but got shape {tuple(y.shape)}.")
    if k is not None and y.shape[1] != k:
        raise DataError(f"{where}: {y.shape[1]} label columns, but the training split has {k}.")
    if not np.all(np.isin(y, (0, 1))):
        i, j = np.argwhere(~np.isin(y, (0, 1)))[0]
        raise DataError(f"{where}: sample {i} has value {y[i, j].item():g} in label column {j}; expected 0 or 1.")
    return y.astype(np.int8)


# --------------------------------------------------------------------------- writer (tests)


def write_nemu_pt(ds: Dataset, path: str | os.PathLike, *, token_lists: bool = False) -> Path:
    """Write a NEMu-shaped ``ds``: multi-hot ``tgt`` (the authors' loader) or token lists with a ``dict``."""
    import torch

    out: dict[str, Any] = {}
    names = ds.spec.labels
    if token_lists:
        out["dict"] = {"tgt": {"<blank>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, **{n: 4 + j for j, n in enumerate(names)}}}
    for split, s in ds.splits.items():
        y = np.asarray(s.labels)
        d: dict[str, Any] = {key: np.array(s.inputs[m], dtype=np.float32) for m, key in KEYS.items()}
        d["img"] = d["img"][:, 0, :]
        d["tgt"] = ([[2] + [4 + int(j) for j in np.flatnonzero(row)] + [3] for row in y] if token_lists
                    else y.astype(np.int64))
        out[split] = d
    path = Path(path)
    torch.save(out, path)
    return path
