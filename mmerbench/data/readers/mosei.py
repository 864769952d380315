"""CMU-MOSEI multi-label emotion: the aligned ``.pt`` release and MulT's unaligned pickle.

Formats (the authors' public releases; see also docs/formats.md):

* ``train_valid_test.pt`` (shared by the TAILOR, HHMPN, RobMMR and CARAT
  authors), a ``torch.save`` dict: ``settings`` (an ``argparse.Namespace``),
  ``dict`` = ``{'src': vocab, 'tgt': vocab}``, and per split ``src-text``
  ``[N, 60, 300]``, ``src-visual`` ``[N, 60, 35]``, ``src-audio``
  ``[N, 60, 74]`` (holds ``-inf``) and ``tgt``: per sample a token list
  ``[BOS=2, e1, e2, ..., EOS=3]``, PAD=0 possibly trailing. The emotion each
  token ``4, 5, ...`` stands for is read from ``dict['tgt']``: the authors
  built that vocabulary from a Python set, so its order is the file's own.
* ``mosei_senti_data_noalign.pkl`` (MulT authors), a plain pickle:
  ``data[split]['text'|'vision'|'audio'|'labels'|'id']`` with text
  ``[N, 50, 300]``, vision ``[N, 500, 35]``, audio ``[N, 500, 74]``. Its
  labels are sentiment only; the emotion targets come from the aligned
  ``.pt`` (same sample order), so both files must have the same split sizes.

Both files are read with :func:`~mmerbench.data.safe_pickle.safe_load` (no
code from the file ever runs). Features may be numpy arrays of any float
dtype, torch tensors, or lists of per-sample ``[L, D]`` arrays/tensors; they
become float32 with non-finite values set to 0 (counted in the load report)
and masks computed after that. Multi-hot labels are int8 ``[N, C]`` with
column ``j`` for token ``4 + j``'s emotion (in token order).

The writers at the end export a :class:`Dataset` to these exact public
layouts, for tests and benchmarks.
"""

from __future__ import annotations

import argparse
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmerbench.data.dataset import Dataset, LoadReport
from mmerbench.data.readers.common import (  # noqa: F401  (re-exported: the readers' shared steps)
    BOS,
    EOS,
    FIRST_LABEL_TOKEN,
    PAD,
    UNK,
    TgtVocab,
    feature_array,
    ids_array,
    parse_tgt_vocab,
    tgt_to_multihot,
)
from mmerbench.data.readers.common import expect_files as _expect_files
from mmerbench.data.readers.common import finish_split as _finish_split
from mmerbench.data.readers.common import get_key as _get
from mmerbench.data.readers.common import num_samples as _num_samples
from mmerbench.data.readers.common import read_features as _read_features
from mmerbench.data.readers.common import split_dict as _split_dict
from mmerbench.data.readers.common import top_level as _top_level
from mmerbench.data.readers.common import vocab_of as _vocab_of
from mmerbench.data.readers.common import where_key as _where
from mmerbench.data.registry import DatasetEntry, register_dataset
from mmerbench.data.safe_pickle import safe_load
from mmerbench.data.spec import SPLITS, DatasetSpec, ModalitySpec, SourceSpec
from mmerbench.errors import DataError

PT_FILE = "mosei/train_valid_test.pt"
UNALIGNED_FILE = "mosei/mosei_senti_data_noalign.pkl"

# The authors' docstrings name tokens 4..9 in this order; a file's own `dict['tgt']` overrides it.
DOCUMENTED_LABELS = ("happy", "sad", "anger", "surprise", "disgust", "fear")
SPLIT_SIZES = {"train": 16326, "valid": 1871, "test": 4659}


# mmerbench modality -> key in the file, in the spec's modality order.
ALIGNED_KEYS = {"text": "src-text", "audio": "src-audio", "vision": "src-visual"}
UNALIGNED_KEYS = {"text": "text", "audio": "audio", "vision": "vision"}

ALIGNED_SPEC = DatasetSpec(
    name="mosei-aligned",
    task="multilabel",
    labels=DOCUMENTED_LABELS,
    modalities={"text": ModalitySpec(300, 60), "audio": ModalitySpec(74, 60), "vision": ModalitySpec(35, 60)},
    splits=dict(SPLIT_SIZES),
    threshold=0.5,
    source=SourceSpec(reader="mosei-pt", files=(PT_FILE,)),
    description="CMU-MOSEI, 6 emotions multi-label, word-aligned GloVe/COVAREP/FACET features (60 steps).",
)

UNALIGNED_SPEC = DatasetSpec(
    name="mosei-unaligned",
    task="multilabel",
    labels=DOCUMENTED_LABELS,
    modalities={"text": ModalitySpec(300, 50), "audio": ModalitySpec(74, 500), "vision": ModalitySpec(35, 500)},
    splits=dict(SPLIT_SIZES),
    threshold=0.5,
    source=SourceSpec(reader="mosei-unaligned-pkl", files=(PT_FILE, UNALIGNED_FILE)),
    description="CMU-MOSEI, 6 emotions multi-label, unaligned MulT features (text 50, audio/vision 500 steps).",
)


# --------------------------------------------------------------------------- readers


def read_aligned(files: list[Path]) -> Dataset:
    """Read ``train_valid_test.pt`` into a Dataset whose labels are the file's own names, in token order."""
    (pt,) = _expect_files(files, 1, ALIGNED_SPEC.name)
    data = _top_level(safe_load(pt), pt)
    vocab = _vocab_of(data, pt)
    report = LoadReport(source=str(pt))
    splits = {}
    for split in SPLITS:
        sd = _split_dict(data, split, pt)
        inputs = _read_features(sd, ALIGNED_KEYS, ALIGNED_SPEC, pt, split)
        n = _num_samples(inputs)
        y = tgt_to_multihot(_get(sd, "tgt", pt, split), vocab, where=_where(pt, split, "tgt"))
        if len(y) != n:
            raise DataError(
                f"{_where(pt, split, 'tgt')}: {len(y)} target lists for {n} samples in {ALIGNED_KEYS['text']!r}."
            )
        ids = ids_array(sd.get("id"), n, split, where=_where(pt, split, "id"))
        splits[split] = _finish_split(inputs, y, ids, report, split)
    report.notes.append(f"label order from data['dict']['tgt']: {', '.join(vocab.names)}")
    spec = ALIGNED_SPEC.with_(labels=vocab.names, splits={s: len(v) for s, v in splits.items()})
    return Dataset(spec, splits, report)


def read_unaligned(files: list[Path]) -> Dataset:
    """Read MulT's unaligned pickle, with the emotion targets joined by position from the aligned ``.pt``."""
    pt, pkl = _expect_files(files, 2, UNALIGNED_SPEC.name)
    vocab, targets = read_pt_targets(pt)  # loaded and released before the (larger) pickle is read
    data = _top_level(safe_load(pkl), pkl)
    report = LoadReport(source=f"{pkl} (labels from {pt})")
    splits = {}
    for split in SPLITS:
        sd = _split_dict(data, split, pkl)
        inputs = _read_features(sd, UNALIGNED_KEYS, UNALIGNED_SPEC, pkl, split)
        n = _num_samples(inputs)
        y = targets[split]
        if len(y) != n:
            raise DataError(
                f"{pkl} has {n} {split!r} samples but {pt} has {len(y)}: the emotion labels are joined by "
                "position, so both files must come from the same release."
            )
        ids = ids_array(sd.get("id"), n, split, where=_where(pkl, split, "id"))
        splits[split] = _finish_split(inputs, y, ids, report, split)
    report.notes.append(f"emotion labels from {pt.name} by position; order: {', '.join(vocab.names)}")
    spec = UNALIGNED_SPEC.with_(labels=vocab.names, splits={s: len(v) for s, v in splits.items()})
    return Dataset(spec, splits, report)


def read_pt_targets(pt: Path) -> tuple["TgtVocab", dict[str, np.ndarray]]:
    """The ``.pt`` file's label vocabulary and per-split multi-hot targets (features are not checked)."""
    data = _top_level(safe_load(pt), pt)
    vocab = _vocab_of(data, pt)
    targets = {
        split: tgt_to_multihot(
            _get(_split_dict(data, split, pt), "tgt", pt, split), vocab, where=_where(pt, split, "tgt")
        )
        for split in SPLITS
    }
    return vocab, targets


# --------------------------------------------------------------------------- writers (tests, benchmarks)

FeatureContainer = Literal["numpy", "numpy64", "torch", "list", "torch-list"]


def write_aligned_pt(
    ds: Dataset,
    path: str | os.PathLike,
    *,
    label_order: Sequence[str] | None = None,
    feature_container: FeatureContainer = "numpy",
    include_ids: bool = False,
    legacy_format: bool = False,
) -> Path:
    """Write ``ds`` as the authors' ``train_valid_test.pt``.

    ``label_order`` sets the vocabulary (name → token 4, 5, ...), by default
    ``ds.spec.labels``. ``feature_container`` picks how features are stored:
    float32 numpy (``numpy``), float64 numpy (``numpy64``), a tensor
    (``torch``), or a list of per-sample numpy arrays / tensors (``list``,
    ``torch-list``). The public file has no ids; ``include_ids`` adds them.
    ``legacy_format`` writes torch's pre-1.6 (non-zip) format.
    """
    import torch

    names = tuple(ds.spec.labels if label_order is None else label_order)
    if sorted(names) != sorted(ds.spec.labels) or len(set(names)) != len(names):
        raise ValueError(f"Expected `label_order` to be a permutation of {ds.spec.labels}, but got {names}.")
    col = [ds.spec.labels.index(n) for n in names]  # token 4 + j names column col[j] of ds's labels
    tgt_vocab = {"<blank>": PAD, "<unk>": UNK, "<s>": BOS, "</s>": EOS}
    tgt_vocab.update({n: FIRST_LABEL_TOKEN + j for j, n in enumerate(names)})
    out: dict[str, Any] = {
        "settings": argparse.Namespace(max_token_seq_len=_seq_len(ds), keep_case=False, share_vocab=False),
        "dict": {"src": {"<blank>": PAD, "<unk>": UNK, "<s>": BOS, "</s>": EOS}, "tgt": tgt_vocab},
    }
    for split, s in ds.splits.items():
        d: dict[str, Any] = {key: _contain(s.inputs[m], feature_container) for m, key in ALIGNED_KEYS.items()}
        y = np.asarray(s.labels)
        d["tgt"] = [
            [BOS] + [FIRST_LABEL_TOKEN + j for j in range(len(names)) if y[i, col[j]]] + [EOS] for i in range(len(s))
        ]
        if include_ids:
            d["id"] = [str(x) for x in s.ids]
        out[split] = d
    path = Path(path)
    torch.save(out, path, _use_new_zipfile_serialization=not legacy_format)
    return path


def write_unaligned_pkl(ds: Dataset, path: str | os.PathLike, *, protocol: int = 4) -> Path:
    """Write ``ds``'s features in MulT's pickle layout (sentiment labels are zeros; ids an N×2 str array)."""
    out = {}
    for split, s in ds.splits.items():
        n = len(s)
        out[split] = {
            "vision": np.array(s.inputs["vision"], dtype=np.float32),
            "audio": np.array(s.inputs["audio"], dtype=np.float32),
            "text": np.array(s.inputs["text"], dtype=np.float32),
            "labels": np.zeros((n, 1, 1), dtype=np.float32),
            "id": _id_pairs(s.ids),
        }
    path = Path(path)
    with open(path, "wb") as f:
        pickle.dump(out, f, protocol=protocol)
    return path


def _seq_len(ds: Dataset) -> int:
    return max((ms.length for ms in ds.spec.modalities.values()), default=0)


def _contain(x: np.ndarray, how: FeatureContainer) -> Any:
    if how == "numpy":
        return np.array(x, dtype=np.float32)
    if how == "numpy64":
        return np.array(x, dtype=np.float64)
    if how == "list":
        return [row for row in np.array(x, dtype=np.float32)]
    import torch

    if how == "torch":
        return torch.from_numpy(np.array(x, dtype=np.float32))
    if how == "torch-list":
        return [torch.from_numpy(row.copy()) for row in np.array(x, dtype=np.float32)]
    raise ValueError(
        f"Expected `feature_container` to be one of numpy, numpy64, torch, list, torch-list, but got {how!r}."
    )


def _id_pairs(ids: np.ndarray) -> np.ndarray:
    """'video_segment' → ['video', 'segment'] (an id without '_' gets an empty second part)."""
    rows = [(str(i).rsplit("_", 1) + [""])[:2] for i in ids]
    return np.array(rows, dtype=str).reshape(len(rows), 2)


register_dataset(DatasetEntry(spec=ALIGNED_SPEC, read=read_aligned))
register_dataset(DatasetEntry(spec=UNALIGNED_SPEC, read=read_unaligned))
