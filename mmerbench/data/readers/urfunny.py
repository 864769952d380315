"""UR-FUNNY humour detection: the dataset authors' sdk pickles, as read by the MISA authors.

Format (Hasan et al., EMNLP 2019, the UR-FUNNY README; MISA's
``create_dataset.py``), six plain pickles keyed by humour-instance id:

* ``data_folds.pkl``: ``{'train': [id, ...], 'dev': [...], 'test': [...]}``;
* ``word_embedding_list.pkl``: ``[V, 300]`` GloVe vectors of the unique words;
* ``word_embedding_indexes_sdk.pkl``: ``{id: {'punchline_embedding_indexes':
  [word index, ...], 'context_embedding_indexes': [[...], ...]}}``;
* ``covarep_features_sdk.pkl``: ``{id: {'punchline_features': [n_words, 81],
  'context_features': ...}}`` (word-aligned COVAREP);
* ``openface_features_sdk.pkl``: likewise, OpenFace (75 in the first release,
  371 in version 2: the dim is read from the file);
* ``humor_label_sdk.pkl``: ``{id: 0 or 1}``.

Choices (the MISA reader's, unless noted): the punchline only (context
sentences are left out), one step per punchline word with the word's GloVe
vector, COVAREP and OpenFace rows; an instance whose three sequences differ
in length is dropped (MISA drops them too; we count them in the load
report). Ours: at most ``MAX_WORDS`` = 50 steps (longer punchlines keep their
first 50 words; counted), zero-padded, masks from the word counts; raw
features (MISA z-normalises per instance; a method may do so itself).
Non-finite feature values are set to 0 and counted (MISA replaces them too).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mmerbench.data.dataset import Dataset, LoadReport
from mmerbench.data.readers.common import expect_files, finish_split, untensor
from mmerbench.data.safe_pickle import safe_load
from mmerbench.data.spec import SPLITS, DatasetSpec, ModalitySpec
from mmerbench.errors import DataError

SDK_FILES = ("data_folds.pkl", "word_embedding_list.pkl", "word_embedding_indexes_sdk.pkl",
             "covarep_features_sdk.pkl", "openface_features_sdk.pkl", "humor_label_sdk.pkl")
FOLDS = {"train": "train", "valid": "dev", "test": "test"}
MAX_WORDS = 50


def read_urfunny_sdk(files: list[Path], *, spec: DatasetSpec) -> Dataset:
    paths = dict(zip(SDK_FILES, expect_files(files, len(SDK_FILES), spec.name)))
    loaded = {name: safe_load(p) for name, p in paths.items()}
    folds = _mapping(loaded["data_folds.pkl"], paths["data_folds.pkl"])
    emb = _embeddings(loaded["word_embedding_list.pkl"], paths["word_embedding_list.pkl"])
    words = _mapping(loaded["word_embedding_indexes_sdk.pkl"], paths["word_embedding_indexes_sdk.pkl"])
    audio = _mapping(loaded["covarep_features_sdk.pkl"], paths["covarep_features_sdk.pkl"])
    vision = _mapping(loaded["openface_features_sdk.pkl"], paths["openface_features_sdk.pkl"])
    labels = _mapping(loaded["humor_label_sdk.pkl"], paths["humor_label_sdk.pkl"])
    report = LoadReport(source=str(paths["data_folds.pkl"].parent))
    fold_ids = {split: _fold(folds, split, paths["data_folds.pkl"]) for split in SPLITS}
    for name, sdk in (("word_embedding_indexes_sdk.pkl", words), ("covarep_features_sdk.pkl", audio),
                      ("openface_features_sdk.pkl", vision), ("humor_label_sdk.pkl", labels)):
        _check_coverage(fold_ids, sdk, paths[name])
    dims: dict[str, int | None] = {"text": int(emb.shape[1]), "audio": None, "vision": None}
    dropped, truncated, splits = 0, 0, {}
    for split in SPLITS:
        ids = fold_ids[split]
        rows: dict[str, list[np.ndarray]] = {"text": [], "audio": [], "vision": []}
        keep_ids, ys = [], []
        for hid in ids:
            idx = _word_indexes(_entry(words, hid, paths["word_embedding_indexes_sdk.pkl"]),
                                hid, paths["word_embedding_indexes_sdk.pkl"], len(emb))
            a = _punchline(_entry(audio, hid, paths["covarep_features_sdk.pkl"]), hid, paths["covarep_features_sdk.pkl"])
            v = _punchline(_entry(vision, hid, paths["openface_features_sdk.pkl"]), hid,
                           paths["openface_features_sdk.pkl"])
            y = _label(_entry(labels, hid, paths["humor_label_sdk.pkl"]), hid, paths["humor_label_sdk.pkl"])
            if not len(idx) == a.shape[0] == v.shape[0]:
                dropped += 1
                continue
            for m, x, path in (("audio", a, paths["covarep_features_sdk.pkl"]),
                               ("vision", v, paths["openface_features_sdk.pkl"])):
                if dims[m] is None and x.shape[0]:
                    dims[m] = int(x.shape[1])
                if x.shape[0] and x.shape[1] != dims[m]:
                    raise DataError(f"{path}: instance {hid!r} has {x.shape[1]} features per word; earlier "
                                    f"instances have {dims[m]}.")
            truncated += len(idx) > MAX_WORDS
            rows["text"].append(emb[idx[:MAX_WORDS]])
            rows["audio"].append(a[:MAX_WORDS])
            rows["vision"].append(v[:MAX_WORDS])
            keep_ids.append(str(hid))
            ys.append(y)
        n = len(keep_ids)
        inputs, masks = {}, {}
        for m, seqs in rows.items():
            d = dims[m] or 0
            x = np.zeros((n, MAX_WORDS, d), dtype=np.float32)
            for i, seq in enumerate(seqs):
                if seq.shape[0]:
                    with np.errstate(over="ignore", invalid="ignore"):
                        x[i, : seq.shape[0]] = seq
            inputs[m] = x
            counts = np.array([seq.shape[0] for seq in seqs], dtype=np.int64).reshape(n)
            masks[m] = np.arange(MAX_WORDS)[None, :] < counts[:, None]
        splits[split] = finish_split(inputs, np.array(ys, dtype=np.int64), np.array(keep_ids, dtype=str),
                                     report, split, masks=masks)
    if dropped:
        report.notes.append(f"{dropped} instance(s) dropped: their word, COVAREP and OpenFace lengths differ "
                            "(as MISA's reader drops them)")
    if truncated:
        report.notes.append(f"{truncated} punchline(s) longer than {MAX_WORDS} words keep their first {MAX_WORDS}")
    modalities = {m: ModalitySpec(dim=int(dims[m] or 0), length=MAX_WORDS) for m in ("text", "audio", "vision")}
    out = spec.with_(modalities=modalities, splits={s: len(v) for s, v in splits.items()},
                     description="UR-FUNNY humour detection, punchline words (the authors' sdk pickles).")
    return Dataset(out, splits, report)


def _mapping(obj: Any, path: Path) -> Mapping:
    if not isinstance(obj, Mapping):
        raise DataError(f"{path}: expected a dict keyed by instance id, but got {type(obj).__name__}.")
    return obj


def _fold(folds: Mapping, split: str, path: Path) -> list:
    key = FOLDS[split]
    if key not in folds:
        raise DataError(f"{path}: fold {key!r} is missing (keys present: {', '.join(map(str, folds))}).")
    ids = untensor(folds[key])
    if not isinstance(ids, (list, tuple, np.ndarray)):
        raise DataError(f"{path}: fold {key!r} is a {type(ids).__name__}, expected a list of instance ids.")
    return list(ids)


def _embeddings(obj: Any, path: Path) -> np.ndarray:
    try:
        arr = np.asarray(untensor(obj) if not isinstance(obj, list) else [np.asarray(r) for r in obj])
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.dtype.kind not in "fiu" or arr.ndim != 2:
        raise DataError(f"{path}: expected word vectors [V, D] of numbers.")
    return arr.astype(np.float32)


def _has(sdk: Mapping, hid: Any) -> bool:
    try:
        _entry(sdk, hid, Path())
    except DataError:
        return False
    return True


def _check_coverage(fold_ids: dict[str, list], sdk: Mapping, path: Path) -> None:
    """Every fold id has an entry in `sdk`; else say how many lack one and where the first is (a
    count in the thousands means files of different releases, which one missing id would hide)."""
    missing = [(split, i, hid) for split in SPLITS for i, hid in enumerate(fold_ids[split]) if not _has(sdk, hid)]
    if not missing:
        return
    total = sum(len(v) for v in fold_ids.values())
    split, i, hid = missing[0]
    per_fold = ", ".join(f"{FOLDS[s]} {sum(m[0] == s for m in missing):,}" for s in SPLITS)
    raise DataError(f"{path}: {len(missing):,} of the {total:,} instance ids in data_folds.pkl are missing "
                    f"({per_fold}); the first is {hid!r}, at position {i} of fold {FOLDS[split]!r} "
                    f"(files of different UR-FUNNY releases do not match: take all six from one).")


def _entry(sdk: Mapping, hid: Any, path: Path) -> Any:
    if hid in sdk:
        return sdk[hid]
    alt = str(hid) if not isinstance(hid, str) else (int(hid) if hid.isdigit() else None)
    if alt is not None and alt in sdk:
        return sdk[alt]
    raise DataError(f"{path}: instance {hid!r} of data_folds.pkl is missing.")


def _word_indexes(entry: Any, hid: Any, path: Path, vocab: int) -> np.ndarray:
    if not isinstance(entry, Mapping) or "punchline_embedding_indexes" not in entry:
        raise DataError(f"{path}: instance {hid!r} has no 'punchline_embedding_indexes'.")
    try:
        idx = np.asarray(untensor(entry["punchline_embedding_indexes"])).reshape(-1)
    except (ValueError, TypeError):
        idx = None
    if idx is None or (idx.size and idx.dtype.kind not in "iu"):
        raise DataError(f"{path}: instance {hid!r}: word indexes must be whole numbers.")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= vocab):
        raise DataError(f"{path}: instance {hid!r} uses word index {int(idx.max() if idx.max() >= vocab else idx.min())}"
                        f", outside the {vocab} vectors of word_embedding_list.pkl.")
    return idx


def _punchline(entry: Any, hid: Any, path: Path) -> np.ndarray:
    if not isinstance(entry, Mapping) or "punchline_features" not in entry:
        raise DataError(f"{path}: instance {hid!r} has no 'punchline_features'.")
    raw = untensor(entry["punchline_features"])
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (ValueError, TypeError):
        raise DataError(f"{path}: instance {hid!r}: 'punchline_features' is not an array of numbers.") from None
    if arr.size == 0:
        return arr.reshape(0, 0)
    if arr.ndim != 2:
        raise DataError(f"{path}: instance {hid!r}: expected one feature row per word, but got shape {arr.shape}.")
    return arr


def _label(raw: Any, hid: Any, path: Path) -> int:
    v = untensor(raw)
    try:
        f = float(np.asarray(v).reshape(-1)[0]) if np.size(v) == 1 else None
    except (ValueError, TypeError):
        f = None
    if f not in (0.0, 1.0):
        raise DataError(f"{path}: instance {hid!r} has label {v!r}; expected 0 (not humour) or 1 (humour).")
    return int(f)


# --------------------------------------------------------------------------- writer (tests)


def write_urfunny_sdk(ds: Dataset, folder: str | os.PathLike, *, protocol: int = 4) -> list[Path]:
    """Write a UR-FUNNY-shaped binary ``ds`` as the six sdk pickles; each word's GloVe vector is its text row."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folds: dict[str, list] = {}
    vectors: list[np.ndarray] = []
    words, audio, vision, labels = {}, {}, {}, {}
    for split, s in ds.splits.items():
        folds[FOLDS[split]] = []
        for i in range(len(s)):
            hid = f"{split}{i}"
            n = int(np.asarray(s.masks["text"][i]).sum())
            start = len(vectors)
            vectors.extend(np.array(s.inputs["text"][i, :n], dtype=np.float32))
            words[hid] = {"punchline_embedding_indexes": list(range(start, start + n)), "context_embedding_indexes": []}
            audio[hid] = {"punchline_features": np.array(s.inputs["audio"][i, :n], dtype=np.float64),
                          "context_features": []}
            vision[hid] = {"punchline_features": np.array(s.inputs["vision"][i, :n], dtype=np.float64),
                           "context_features": []}
            labels[hid] = int(s.labels[i])
            folds[FOLDS[split]].append(hid)
    objs = {"data_folds.pkl": folds, "word_embedding_list.pkl": np.array(vectors, dtype=np.float32),
            "word_embedding_indexes_sdk.pkl": words, "covarep_features_sdk.pkl": audio,
            "openface_features_sdk.pkl": vision, "humor_label_sdk.pkl": labels}
    out = []
    for name in SDK_FILES:
        path = folder / name
        with open(path, "wb") as f:
            pickle.dump(objs[name], f, protocol=protocol)
        out.append(path)
    return out
