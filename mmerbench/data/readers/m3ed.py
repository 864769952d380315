"""M3ED: UniVA's utterance-level pickles (with per-modality valence/arousal) and CARAT's dialogue-level ``.pt``.

**UniVA's release** (Zheng et al., ACM MM 2024; their ``utils/dataset.py``),
nine plain pickles per dataset, under ``final_feat/{T,A,V}/``:

* ``{DATASET}_{split}_audio_utt_VA.pkl`` and ``..._vision_utt_VA.pkl``:
  ``{split: {'<m>': [N, L, D], '<m>_utt_mask': [N, L], '<m>_VA_values': [N, 2],
  'labels_class': [N, C]}, 'num_labels': C}``;
* ``{DATASET}_{split}_text_glove300_VA.pkl``: ``{'text': [N, L, 300],
  'text_utt_mask': [N, L], 'text_VA_values': [N, 2]}`` (no split level and no
  labels);
* splits ``train``, ``valid``, ``test``; one sample per utterance.

Optional beside ``final_feat/``: ``utt_annot.json``, the annotation file
their RoBERTa path reads (``{split: {utterance_id: {"text": ..., "Emotion":
"Happy,Sad", ...}}}``, in the pickles' sample order). When present it gives
each utterance its id and its text (``text_raw``, for a pretrained text
encoder); its emotions must equal the pickles' labels sample by sample, which
catches a file from another release or order.

Labels are ``labels_class`` (0/1, C = 7 for M3ED) in UniVA's order (happy,
surprise, sad, disgust, anger, fear, neutral; the files carry no names), and
the audio and vision files must agree on them. The ``<m>_utt_mask`` arrays
are the modalities' masks. The raw ``<m>_VA_values`` travel as extras
``va_<m>`` (float32 ``[N, 2]``, valence then arousal); UniVA's loader
standardises them per split before use, which is the method's business, not
the reader's. Dims and lengths are the files' own (fixed by the training
split; the other splits must agree). Non-finite features and VA values are
set to 0 and counted.

**CARAT's file** ``m3ed_data_60.pt`` (Peng et al., AAAI 2024), in the aligned
MOSEI ``.pt`` layout: per split ``src-text`` ``[N, 60, 768]``, ``src-visual``
``[N, 60, 1024]``, ``src-audio`` ``[N, 60, 342]``, ``tgt`` token lists
(tokens 4..10 named by ``dict['tgt']``: Happy, Neutral, Sad, Disgust, Anger,
Fear, Surprise in CARAT's file) and ``len_list`` (utterances per dialogue).
Each sample is a *dialogue*: its steps are utterances (at most 60, the rest
cut by the authors), its labels the emotions of any of its utterances.
``len_list`` gives the masks (clipped to 60); without it, the zero padding.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mmerbench.data.dataset import Dataset, LoadReport, zero_nonfinite
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
    tgt_to_multihot,
    top_level,
    untensor,
    vocab_of,
    where_key,
)
from mmerbench.data.safe_pickle import safe_load
from mmerbench.data.spec import SPLITS, DatasetSpec, ModalitySpec
from mmerbench.errors import DataError

UNIVA_KINDS = {"text": ("T", "text_glove300"), "audio": ("A", "audio_utt"), "vision": ("V", "vision_utt")}
UNIVA_ANNOTATIONS = "utt_annot.json"  # beside final_feat/: utterance ids, text and emotions (their RoBERTa path)
CARAT_KEYS = {"text": "src-text", "audio": "src-audio", "vision": "src-visual"}
CARAT_SHAPES = {"text": (60, 768), "audio": (60, 342), "vision": (60, 1024)}
M3ED_LABELS = ("Happy", "Surprise", "Sad", "Disgust", "Anger", "Fear", "Neutral")  # UniVA's order (its code)


def univa_files(dataset: str, folder: str = "") -> tuple[str, ...]:
    """The nine file names of UniVA's release for `dataset` ("M3ED", "MOSEI"), modality-major."""
    prefix = f"{folder.rstrip('/')}/" if folder else ""
    return tuple(f"{prefix}final_feat/{d}/{dataset}_{s}_{kind}_VA.pkl"
                 for d, kind in UNIVA_KINDS.values() for s in SPLITS)


# --------------------------------------------------------------------------- UniVA


def read_univa(files: list[Path], *, spec: DatasetSpec, labels: tuple[str, ...] = M3ED_LABELS) -> Dataset:
    """Read UniVA's nine pickles (modality-major, splits train/valid/test) into an utterance-level Dataset."""
    files = expect_files(files, 9, spec.name)
    by = {(m, s): files[i * 3 + j] for i, m in enumerate(UNIVA_KINDS) for j, s in enumerate(SPLITS)}
    report = LoadReport(source=str(files[0].parent.parent))
    annot_path = files[0].parent.parent.parent / UNIVA_ANNOTATIONS
    annotations = _read_json(annot_path) if annot_path.is_file() else None
    shapes: dict = {m: (None, None) for m in UNIVA_KINDS}
    splits = {}
    for split in SPLITS:
        inputs, masks, extras, ys, n = {}, {}, {}, {}, None
        va_counts = {}
        for m in UNIVA_KINDS:
            path = by[(m, split)]
            data = top_level(safe_load(path), path)
            sd = data if m == "text" else split_dict(data, split, path)
            mask_raw = untensor(get_key(sd, f"{m}_utt_mask", path, split if m != "text" else None))
            va_raw = untensor(get_key(sd, f"{m}_VA_values", path, split if m != "text" else None))
            if m != "text":
                ys[m] = (path, untensor(get_key(sd, "labels_class", path, split)), data.get("num_labels"))
            x = read_features(sd, {m: m}, {m: shapes[m]}, path, split)[m]
            if n is not None and x.shape[0] != n:
                first = next(iter(inputs))
                raise DataError(f"{path}: split {split!r} has {x.shape[0]} samples but the {first} file has {n}.")
            n = x.shape[0]
            inputs[m] = x
            masks[m] = _mask01(mask_raw, x.shape[:2], where=where_key(path, split, f"{m}_utt_mask"))
            va = _va(va_raw, n, where=where_key(path, split, f"{m}_VA_values"))
            extras[f"va_{m}"], va_counts[f"va_{m}"] = zero_nonfinite(va)
        if split == "train":
            shapes = shapes_of(inputs)
        y = _univa_labels(ys, n, labels, split)
        ids, text_raw = ids_array(None, n, split, where=""), None
        if annotations is not None:
            ids, text_raw = _annotated(annotations, annot_path, split, y, labels)
        splits[split] = finish_split(inputs, y, ids, report, split, masks=masks, extras=extras, text_raw=text_raw)
        report.nonfinite[split].update(va_counts)
    report.notes.append(f"UniVA's utterance-level release; label order {', '.join(labels)} (UniVA's code; the "
                        "files carry no names); raw per-modality VA as extras va_<modality>"
                        + (f"; ids and text from {UNIVA_ANNOTATIONS}" if annotations is not None else ""))
    modalities = {m: ModalitySpec(dim=d, length=n_) for m, (n_, d) in shapes.items()}
    out = spec.with_(labels=labels, modalities=modalities, splits={s: len(v) for s, v in splits.items()})
    return Dataset(out, splits, report)


def _read_json(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise DataError(f"{path}: not a readable JSON file ({type(e).__name__}).") from None


def _annotated(data: Any, path: Path, split: str, y: np.ndarray, labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Ids and text of `split` from the annotation file, refused unless its emotions are the pickles' labels."""
    rows = data.get(split) if isinstance(data, dict) else None
    if not isinstance(rows, dict):
        raise DataError(f"{path}: expected an object with a {split!r} entry mapping utterance ids to annotations.")
    if len(rows) != len(y):
        raise DataError(f"{path}: split {split!r} annotates {len(rows)} utterances, but the pickles hold {len(y)}.")
    ids, texts, got = [], [], np.zeros_like(y)
    for i, (uid, row) in enumerate(rows.items()):
        text, emotion = (row.get("text"), row.get("Emotion")) if isinstance(row, dict) else (None, None)
        if not isinstance(text, str) or not isinstance(emotion, str):
            raise DataError(f"{path}: utterance {str(uid)[:40]!r} of split {split!r} lacks a string 'text' "
                            f"and 'Emotion'.")
        names = [e.strip() for e in emotion.split(",") if e.strip()]
        unknown = [e for e in names if e not in labels]
        if unknown:
            raise DataError(f"{path}: utterance {str(uid)[:40]!r} has emotion {unknown[0][:40]!r}, not one of "
                            f"{', '.join(labels)}.")
        got[i, [labels.index(e) for e in names]] = 1
        ids.append(str(uid))
        texts.append(text)
    bad = np.flatnonzero((got != y).any(1))
    if bad.size:
        raise DataError(f"{path}: the emotions of utterance {ids[bad[0]][:40]!r} (sample {bad[0]} of {split!r}) "
                        f"differ from the pickles' labels: the file is not in the pickles' order or release.")
    return np.asarray(ids, dtype=str), np.asarray(texts, dtype=str)


def _mask01(raw: Any, shape: tuple[int, int], *, where: str) -> np.ndarray:
    try:
        arr = np.asarray(raw)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.dtype.kind not in "fiub" or arr.shape != shape:
        got = tuple(arr.shape) if arr is not None else type(raw).__name__
        raise DataError(f"{where}: expected a 0/1 mask of shape {shape}, but got {got}.")
    if not np.all(np.isin(arr, (0, 1))):
        raise DataError(f"{where}: the mask holds values other than 0 and 1.")
    return arr.astype(bool)


def _va(raw: Any, n: int, *, where: str) -> np.ndarray:
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (ValueError, TypeError):
        raise DataError(f"{where}: expected (valence, arousal) numbers per sample.") from None
    if arr.shape != (n, 2):
        raise DataError(f"{where}: expected shape ({n}, 2) (valence, arousal), but got {tuple(arr.shape)}.")
    with np.errstate(over="ignore", invalid="ignore"):
        return arr.astype(np.float32)


def _univa_labels(ys: Mapping[str, tuple], n: int, labels: tuple[str, ...], split: str) -> np.ndarray:
    out = None
    for m, (path, raw, num) in ys.items():
        where = where_key(path, split, "labels_class")
        try:
            y = np.asarray(raw)
        except (ValueError, TypeError):
            y = None
        if y is None or y.dtype.kind not in "fiub" or y.ndim != 2:
            raise DataError(f"{where}: expected 0/1 labels of shape ({n}, {len(labels)}).")
        if y.shape != (n, len(labels)):
            raise DataError(f"{where}: expected 0/1 labels of shape ({n}, {len(labels)}) "
                            f"({', '.join(labels)}), but got {tuple(y.shape)}.")
        if num is not None and (not isinstance(num, (int, np.integer)) or int(num) != len(labels)):
            raise DataError(f"{path}: 'num_labels' is {num!r}, but the label columns are {len(labels)}.")
        if not np.all(np.isin(y, (0, 1))):
            bad = np.argwhere(~np.isin(y, (0, 1)))[0]
            raise DataError(f"{where}: sample {bad[0]} has label value {y[tuple(bad)].item():g}; expected 0 or 1 per "
                            f"emotion ({', '.join(labels)}).")
        y = y.astype(np.int8)
        if out is not None and not np.array_equal(out, y):
            raise DataError(f"{path}: 'labels_class' of split {split!r} differs from the audio file's; both "
                            "files must come from the same release.")
        out = y
    if out is None:
        raise DataError(f"Split {split!r} has no 'labels_class' in any modality's file.")
    return out


# --------------------------------------------------------------------------- CARAT


def read_carat(files: list[Path], *, spec: DatasetSpec) -> Dataset:
    """Read CARAT's ``m3ed_data_60.pt`` (dialogue-level samples; label names from the file)."""
    (pt,) = expect_files(files, 1, spec.name)
    data = top_level(safe_load(pt), pt)
    vocab = vocab_of(data, pt)
    report = LoadReport(source=str(pt))
    splits = {}
    for split in SPLITS:
        sd = split_dict(data, split, pt)
        lens = untensor(sd.get("len_list"))
        inputs = read_features(sd, CARAT_KEYS, CARAT_SHAPES, pt, split)
        n = num_samples(inputs)
        y = tgt_to_multihot(get_key(sd, "tgt", pt, split), vocab, where=where_key(pt, split, "tgt"))
        if len(y) != n:
            raise DataError(f"{where_key(pt, split, 'tgt')}: {len(y)} target lists for {n} samples in 'src-text'.")
        masks = {}
        if lens is not None:
            mask = lengths_to_mask(lens, n, CARAT_SHAPES["text"][0], where=where_key(pt, split, "len_list"))
            masks = {m: mask for m in CARAT_KEYS}
        ids = ids_array(sd.get("id"), n, split, where=where_key(pt, split, "id"))
        splits[split] = finish_split(inputs, y, ids, report, split, masks=masks)
    report.notes.append(f"CARAT's dialogue-level file: one sample per dialogue, steps are utterances; label order "
                        f"from data['dict']['tgt']: {', '.join(vocab.names)}")
    modalities = {m: ModalitySpec(dim=d, length=n_) for m, (n_, d) in CARAT_SHAPES.items()}
    out = spec.with_(labels=vocab.names, modalities=modalities, splits={s: len(v) for s, v in splits.items()},
                     description="M3ED dialogues (CARAT's file): 7 emotions multi-label per dialogue, one step per "
                                 "utterance.")
    return Dataset(out, splits, report)


# --------------------------------------------------------------------------- writers (tests)


def write_univa_pickles(ds: Dataset, root: str | os.PathLike, *, dataset: str = "M3ED", protocol: int = 4) -> list[Path]:
    """Write a multi-label ``ds`` with ``va_<m>`` extras as UniVA's nine pickles under ``root``; returns the files."""
    root = Path(root)
    paths = [root / f for f in univa_files(dataset)]
    k = len(ds.spec.labels)
    for i, m in enumerate(UNIVA_KINDS):
        for j, split in enumerate(SPLITS):
            s = ds[split]
            d = {
                m: np.array(s.inputs[m], dtype=np.float32),
                f"{m}_utt_mask": np.asarray(s.masks[m]).astype(np.float32),
                f"{m}_VA_values": np.asarray(s.extras[f"va_{m}"], dtype=np.float32).tolist(),
            }
            if m == "text":
                obj: dict = d
            else:
                d["labels_class"] = np.asarray(s.labels, dtype=np.float32)
                obj = {split: d, "num_labels": k}
            path = paths[i * 3 + j]
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                pickle.dump(obj, f, protocol=protocol)
    return paths


def write_carat_pt(ds: Dataset, path: str | os.PathLike, *, label_order: tuple[str, ...] | None = None,
                   with_len_list: bool = True) -> Path:
    """Write a multi-label ``ds`` with CARAT's shapes as ``m3ed_data_60.pt``."""
    import argparse

    import torch

    names = tuple(label_order or ds.spec.labels)
    col = [ds.spec.labels.index(n) for n in names]
    vocab = {"<blank>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}
    vocab.update({n: 4 + j for j, n in enumerate(names)})
    out: dict[str, Any] = {"settings": argparse.Namespace(max_token_seq_len=60),
                           "dict": {"src": {"<blank>": 0}, "tgt": vocab}}
    for split, s in ds.splits.items():
        y = np.asarray(s.labels)
        d: dict[str, Any] = {key: [row for row in np.array(s.inputs[m], dtype=np.float32)]
                             for m, key in CARAT_KEYS.items()}
        d["tgt"] = [[2] + [4 + j for j in range(len(names)) if y[i, col[j]]] + [3] for i in range(len(s))]
        if with_len_list:
            d["len_list"] = [int(v) for v in np.asarray(s.masks["text"]).sum(1)]
        out[split] = d
    path = Path(path)
    torch.save(out, path)
    return path
