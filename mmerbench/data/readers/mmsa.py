"""The MMSA authors' pickles for CMU-MOSI and CMU-MOSEI sentiment: ``aligned_50.pkl`` and ``unaligned_50.pkl``.

Format (the MMSA authors' release, github.com/thuiar/MMSA): a plain pickle of ``data[split][key]`` with
splits ``train``, ``valid``, ``test`` and keys ``raw_text``, ``audio``,
``vision``, ``id``, ``text``, ``text_bert``, ``audio_lengths``,
``vision_lengths``, ``annotations``, ``regression_labels`` (CH-SIMS adds
``regression_labels_T/A/V``, which we do not use).

What we read, and the choices the release leaves open:

* ``raw_text`` (one string per utterance) is kept as the split's
  ``text_raw``, which a pretrained text encoder (``text_encoder``) reads; a
  file without it loads without text.
* ``text`` ``[N, L, D]`` (BERT features, D = 768 in the public files) is the
  text modality; ``text_bert`` holds token ids and is not a feature. Its
  attention-mask row ``text_bert[:, 1, :]`` gives the text mask when present
  (BERT features are non-zero on padding, so zero padding cannot be trusted);
  without it, the mask comes from the zero padding.
* ``audio`` / ``vision`` ``[N, L, D]`` with masks from ``audio_lengths`` /
  ``vision_lengths`` when present (lengths beyond L are clipped), else from the
  zero padding.
* Labels: ``regression_labels`` ``[N]``, finite and in [-3, 3].
* Dims and lengths are the file's own (the MMSA configs list MOSI 768/5/20,
  MOSEI 768/74/35, unaligned lengths up to 500): the training split fixes
  them and the other splits must agree.
"""

from __future__ import annotations

import os
import pickle
from functools import partial
from pathlib import Path

import numpy as np

from mmerbench.data.dataset import Dataset, LoadReport, text_array
from mmerbench.data.readers.common import (
    expect_files,
    finish_split,
    get_key,
    ids_array,
    lengths_to_mask,
    num_samples,
    read_features,
    shapes_of,
    split_dict,
    top_level,
    untensor,
    where_key,
)
from mmerbench.data.readers.mult import sentiment_labels
from mmerbench.data.safe_pickle import safe_load
from mmerbench.data.spec import SPLITS, DatasetSpec, ModalitySpec
from mmerbench.errors import DataError

KEYS = {"text": "text", "audio": "audio", "vision": "vision"}
LENGTH_KEYS = {"audio": "audio_lengths", "vision": "vision_lengths"}


def read_mmsa(files: list[Path], *, spec: DatasetSpec) -> Dataset:
    """Read one MMSA pickle; `spec` gives the name, task and labels (dims and sizes come from the file)."""
    (path,) = expect_files(files, 1, spec.name)
    data = top_level(safe_load(path), path)
    report = LoadReport(source=str(path))
    shapes: dict = {m: (None, None) for m in KEYS}
    splits = {}
    for split in SPLITS:
        sd = split_dict(data, split, path)
        masks = {}
        text_bert = untensor(sd.get("text_bert"))  # read before the features are released
        raw_text = sd.get("raw_text")
        lengths = {m: untensor(sd.get(k)) for m, k in LENGTH_KEYS.items()}
        y_raw = untensor(get_key(sd, "regression_labels", path, split))
        inputs = read_features(sd, KEYS, shapes, path, split)
        if split == "train":
            shapes = shapes_of(inputs)
        n = num_samples(inputs)
        y = sentiment_labels(y_raw, n, where=where_key(path, split, "regression_labels"))
        for m, raw in lengths.items():
            if raw is not None:
                masks[m] = lengths_to_mask(raw, n, inputs[m].shape[1], where=where_key(path, split, LENGTH_KEYS[m]))
        if text_bert is not None:
            masks["text"] = _bert_mask(text_bert, n, inputs["text"].shape[1], where=where_key(path, split, "text_bert"))
        ids = ids_array(sd.get("id"), n, split, where=where_key(path, split, "id"))
        text_raw = None if raw_text is None else text_array(untensor(raw_text), n,
                                                            where=where_key(path, split, "raw_text"))
        splits[split] = finish_split(inputs, y, ids, report, split, masks=masks, text_raw=text_raw)
    report.notes.append("text = MMSA's BERT features; text mask from text_bert where present, else the padding")
    modalities = {m: ModalitySpec(dim=d, length=n) for m, (n, d) in shapes.items()}
    out = spec.with_(modalities=modalities, splits={s: len(v) for s, v in splits.items()},
                     description=f"{spec.description.split(' (')[0]} (MMSA's pickle: text = BERT features).")
    return Dataset(out, splits, report)


def mmsa_reader(spec: DatasetSpec):
    return partial(read_mmsa, spec=spec)


def _bert_mask(raw, n: int, length: int, *, where: str) -> np.ndarray:
    arr = np.asarray(raw) if not isinstance(raw, np.ndarray) else raw
    if arr.dtype.kind not in "fiub" or arr.ndim != 3 or arr.shape[0] != n or arr.shape[1] < 2 or arr.shape[2] != length:
        raise DataError(f"{where}: expected token rows of shape ({n}, 3, {length}), but got {tuple(arr.shape)}.")
    mask = arr[:, 1, :]
    if not np.all(np.isin(mask, (0, 1))):
        raise DataError(f"{where}: the attention-mask row (index 1) holds values other than 0 and 1.")
    return mask.astype(bool)


# --------------------------------------------------------------------------- writer (tests)


def write_mmsa_pkl(ds: Dataset, path: str | os.PathLike, *, with_text_bert: bool = True,
                   with_lengths: bool = True, protocol: int = 4) -> Path:
    """Write ``ds`` (a regression set) in MMSA's layout, with the keys the release carries."""
    out = {}
    for split, s in ds.splits.items():
        n = len(s)
        d: dict = {m: np.array(s.inputs[m], dtype=np.float32) for m in KEYS}
        d["regression_labels"] = np.asarray(s.labels, dtype=np.float32).reshape(n)
        d["classification_labels"] = (np.asarray(s.labels) >= 0).astype(np.float32)
        d["annotations"] = np.array(["Positive" if v >= 0 else "Negative" for v in np.asarray(s.labels)], dtype=object)
        texts = s.text_raw if s.text_raw is not None else [f"utterance {i}" for i in s.ids]
        d["raw_text"] = np.array([str(t) for t in texts], dtype=object)
        d["id"] = np.array([str(i) for i in s.ids], dtype=object)
        if with_lengths:
            for m, key in LENGTH_KEYS.items():
                d[key] = np.asarray(s.masks[m]).sum(1).astype(np.int64).tolist()
        if with_text_bert:
            tm = np.asarray(s.masks["text"], dtype=np.float32)
            ids = np.where(tm > 0, 1000.0, 0.0)
            d["text_bert"] = np.stack([ids, tm, np.zeros_like(tm)], axis=1)
        out[split] = d
    path = Path(path)
    with open(path, "wb") as f:
        pickle.dump(out, f, protocol=protocol)
    return path
