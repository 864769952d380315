"""CMU-MOSEI multi-label emotion: the aligned ``.pt`` release and MulT's unaligned pickle.

Formats (METHODS.md, "Data formats"):

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmerbench.data.dataset import Dataset, LoadReport, Split, mask_from_features, zero_nonfinite
from mmerbench.data.registry import DatasetEntry, register_dataset
from mmerbench.data.safe_pickle import safe_load
from mmerbench.data.spec import SPLITS, DatasetSpec, ModalitySpec, SourceSpec
from mmerbench.errors import DataError

PT_FILE = "mosei/train_valid_test.pt"
UNALIGNED_FILE = "mosei/mosei_senti_data_noalign.pkl"

# The authors' docstrings name tokens 4..9 in this order; a file's own `dict['tgt']` overrides it.
DOCUMENTED_LABELS = ("happy", "sad", "anger", "surprise", "disgust", "fear")
SPLIT_SIZES = {"train": 16326, "valid": 1871, "test": 4659}

PAD, UNK, BOS, EOS = 0, 1, 2, 3
FIRST_LABEL_TOKEN = 4
_SPECIAL_NAMES = {"<blank>": PAD, "<pad>": PAD, "<unk>": UNK, "<s>": BOS, "<bos>": BOS, "</s>": EOS, "<eos>": EOS}

# mmerbench modality -> key in the file, in the spec's modality order.
ALIGNED_KEYS = {"text": "src-text", "audio": "src-audio", "vision": "src-visual"}
UNALIGNED_KEYS = {"text": "text", "audio": "audio", "vision": "vision"}
_SPLIT_ALIASES = {"train": ("train",), "valid": ("valid", "dev", "val"), "test": ("test",)}

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


# --------------------------------------------------------------------------- the `tgt` vocabulary


@dataclass(frozen=True)
class TgtVocab:
    """Emotion names in token order, token → multi-hot column, and the tokens a target list may skip."""

    names: tuple[str, ...]
    columns: dict[int, int]
    skip: frozenset[int]  # PAD, BOS, EOS


def parse_tgt_vocab(vocab: Any, *, where: str) -> TgtVocab:
    """Accept a name→token dict (the authors' form), a token→name dict, or a list of names."""
    pairs = _vocab_pairs(vocab, where)
    tokens = [t for t, _ in pairs]
    if len(set(tokens)) != len(tokens):
        raise DataError(f"{where}: the vocabulary gives one token to two names.")
    specials = {t: n for t, n in pairs if _is_special(n)}
    emotions = sorted((t, n) for t, n in pairs if not _is_special(n))
    if not emotions:
        raise DataError(f"{where}: the vocabulary names no emotion (only {sorted(specials.values())}).")
    names = tuple(n for _, n in emotions)
    if len(set(names)) != len(names):
        raise DataError(f"{where}: an emotion name occurs twice in the vocabulary: {list(names)}.")
    columns = {t: j for j, (t, _) in enumerate(emotions)}
    skip = {PAD, BOS, EOS} | {t for t, n in specials.items() if _SPECIAL_NAMES.get(n.lower()) in (PAD, BOS, EOS)}
    return TgtVocab(names=names, columns=columns, skip=frozenset(skip - set(columns)))


def _vocab_pairs(vocab: Any, where: str) -> list[tuple[int, str]]:
    if isinstance(vocab, Mapping):
        items = list(vocab.items())
        if all(_is_text(k) and _is_int(v) for k, v in items):
            return [(int(v), _text(k)) for k, v in items]
        if all(_is_int(k) and _is_text(v) for k, v in items):
            return [(int(k), _text(v)) for k, v in items]
        raise DataError(f"{where}: expected a vocabulary mapping names to token numbers (or the reverse).")
    if isinstance(vocab, (list, tuple)) or (isinstance(vocab, np.ndarray) and vocab.ndim == 1):
        if not all(_is_text(n) for n in vocab):
            raise DataError(f"{where}: expected a list of label names.")
        names = [_text(n) for n in vocab]
        if any(_is_special(n) for n in names):  # a full vocabulary: the position is the token
            return list(enumerate(names))
        return [(FIRST_LABEL_TOKEN + i, n) for i, n in enumerate(names)]  # emotions only: tokens 4, 5, ...
    raise DataError(f"{where}: expected a vocabulary (dict or list of names), but got {type(vocab).__name__}.")


def _is_special(name: str) -> bool:
    return name.startswith("<") and name.endswith(">")


def _is_text(x: Any) -> bool:
    return isinstance(x, (str, bytes))


def _text(x: str | bytes) -> str:
    return x.decode("utf-8", errors="replace") if isinstance(x, bytes) else str(x)


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def tgt_to_multihot(tgt: Any, vocab: TgtVocab, *, where: str) -> np.ndarray:
    """Token lists ``[BOS, e1, ..., EOS, PAD...]`` → int8 multi-hot ``[N, C]``; unknown tokens are an error."""
    rows = _tgt_rows(tgt, where)
    y = np.zeros((len(rows), len(vocab.names)), dtype=np.int8)
    lo, hi = min(vocab.columns), max(vocab.columns)
    for i, row in enumerate(rows):
        for tok in _int_tokens(row, where, i):
            col = vocab.columns.get(tok)
            if col is not None:
                y[i, col] = 1
            elif tok not in vocab.skip:
                raise DataError(
                    f"{where}: sample {i} has label token {tok}, which is not an emotion of the file's "
                    f"vocabulary (emotion tokens {lo}..{hi}: {', '.join(vocab.names)})."
                )
    return y


def _tgt_rows(tgt: Any, where: str) -> list[Any]:
    tgt = _untensor(tgt)
    if isinstance(tgt, np.ndarray):
        if tgt.dtype == object and tgt.ndim == 1:
            return list(tgt)
        if tgt.ndim == 2 and tgt.dtype.kind in "iuf":
            return list(tgt)
        raise DataError(f"{where}: expected per-sample token lists, but got an array of shape {tgt.shape}.")
    if isinstance(tgt, (list, tuple)):
        return list(tgt)
    raise DataError(f"{where}: expected per-sample token lists, but got {type(tgt).__name__}.")


def _int_tokens(row: Any, where: str, i: int) -> list[int]:
    row = _untensor(row)
    try:
        arr = np.asarray(row)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.ndim > 1 or arr.dtype.kind not in "iuf":
        raise DataError(f"{where}: sample {i} is not a list of integer tokens.")
    arr = arr.reshape(-1)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise DataError(f"{where}: sample {i} is not a list of integer tokens.")
    return [int(t) for t in arr]


# --------------------------------------------------------------------------- features and ids


def feature_array(obj: Any, *, length: int, dim: int, where: str) -> np.ndarray:
    """Any of (numpy array, tensor, list of per-sample [L, D] arrays) → float32 C-contiguous ``[N, L, D]``."""
    arr = _numeric_array(obj, where)
    if arr is None:  # an empty list: a split with no samples
        return np.zeros((0, length, dim), dtype=np.float32)
    if arr.ndim != 3 or arr.shape[1:] != (length, dim):
        raise DataError(f"{where}: expected shape (N, {length}, {dim}), but got {tuple(arr.shape)}.")
    with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32's range → inf, zeroed later
        return np.ascontiguousarray(arr, dtype=np.float32)


def _numeric_array(obj: Any, where: str) -> np.ndarray | None:
    obj = _untensor(obj)
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        arr = obj
    elif isinstance(obj, (list, tuple)) or (isinstance(obj, np.ndarray) and obj.ndim >= 1):
        if len(obj) == 0:
            return None
        parts = [_leaf_array(o, where, i) for i, o in enumerate(obj)]
        first = parts[0].shape
        for i, p in enumerate(parts):
            if p.shape != first:
                raise DataError(
                    f"{where}: per-sample arrays differ in shape (sample 0 has {first}, sample {i} has {p.shape})."
                )
        arr = np.stack(parts)
    else:
        raise DataError(f"{where}: expected an array, a tensor or a list of arrays, but got {type(obj).__name__}.")
    if arr.dtype.kind not in "fiub":
        raise DataError(f"{where}: expected numbers, but got an array of dtype {arr.dtype}.")
    return arr


def _leaf_array(o: Any, where: str, i: int) -> np.ndarray:
    o = _untensor(o)
    try:
        arr = np.asarray(o, dtype=np.float64) if not isinstance(o, np.ndarray) or o.dtype == object else o
    except (ValueError, TypeError):
        raise DataError(f"{where}: sample {i} is not an array of numbers.") from None
    if arr.dtype.kind not in "fiub":
        raise DataError(f"{where}: sample {i} is not an array of numbers (dtype {arr.dtype}).")
    return arr


def _untensor(x: Any) -> Any:
    """A torch tensor → numpy (without importing torch for files that hold none)."""
    if type(x).__module__.startswith("torch") and hasattr(x, "detach"):
        t = x.detach().cpu()
        if t.is_floating_point() and t.dtype.itemsize < 4:  # float16/bfloat16 have no numpy twin
            t = t.float()
        return t.numpy()
    return x


def ids_array(raw: Any, n: int, split: str, *, where: str) -> np.ndarray:
    """Sample ids as str ``[N]``: an id made of parts (a row of an N×k array) is joined with '_'."""
    if raw is None:
        return np.array([f"{split}-{i:05d}" for i in range(n)], dtype=str)
    raw = _untensor(raw)
    if isinstance(raw, np.ndarray) and raw.ndim >= 1:
        items = list(raw)
    elif isinstance(raw, (list, tuple)):
        items = list(raw)
    else:
        raise DataError(f"{where}: expected one id per sample, but got {type(raw).__name__}.")
    if len(items) != n:
        raise DataError(f"{where}: {len(items)} ids for {n} samples.")
    return np.array([_id_text(x) for x in items], dtype=str).reshape(n)


def _id_text(x: Any) -> str:
    x = _untensor(x)
    if isinstance(x, (np.ndarray, list, tuple)):
        parts = [_id_text(p) for p in np.asarray(x, dtype=object).reshape(-1)]
        return "_".join(p for p in parts if p != "")
    if isinstance(x, bytes):
        return x.decode("utf-8", errors="replace")
    return str(x)


# --------------------------------------------------------------------------- shared steps


def _expect_files(files: Sequence[Path], k: int, name: str) -> list[Path]:
    files = [Path(f) for f in files]
    if len(files) != k:
        raise DataError(f"{name}: expected {k} file(s), but got {len(files)}: {[str(f) for f in files]}.")
    return files


def _top_level(data: Any, path: Path) -> Mapping:
    if not isinstance(data, Mapping):
        raise DataError(f"{path}: expected a dict at the top level, but got {type(data).__name__}.")
    return data


def _where(path: Path, split: str, key: str) -> str:
    return f"{path}, split {split!r}, key {key!r}"


def _keys(d: Mapping) -> str:
    keys = [str(k) for k in d]
    return ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")


def _get(d: Mapping, key: str, path: Path, split: str | None = None) -> Any:
    if key not in d:
        where = f"{path}, split {split!r}" if split else str(path)
        raise DataError(f"{where}: key {key!r} is missing (keys present: {_keys(d)}).")
    return d[key]


def _split_dict(data: Mapping, split: str, path: Path) -> Mapping:
    for name in _SPLIT_ALIASES[split]:
        if name in data:
            sd = data[name]
            if not isinstance(sd, Mapping):
                raise DataError(f"{path}: split {name!r} is a {type(sd).__name__}, expected a dict of arrays.")
            return sd
    raise DataError(f"{path}: split {split!r} is missing (top-level keys: {_keys(data)}).")


def _vocab_of(data: Mapping, path: Path) -> TgtVocab:
    d = _get(data, "dict", path)
    if not isinstance(d, Mapping):
        raise DataError(f"{path}: key 'dict' is a {type(d).__name__}, expected a dict with 'src' and 'tgt'.")
    if "tgt" not in d:
        raise DataError(f"{path}: key ['dict']['tgt'] (the label vocabulary) is missing (keys present: {_keys(d)}).")
    return parse_tgt_vocab(d["tgt"], where=f"{path}, key ['dict']['tgt']")


def _read_features(
    sd: Mapping, keys: dict[str, str], spec: DatasetSpec, path: Path, split: str
) -> dict[str, np.ndarray]:
    inputs: dict[str, np.ndarray] = {}
    for m, key in keys.items():
        ms = spec.modalities[m]
        x = feature_array(_get(sd, key, path, split), length=ms.length, dim=ms.dim, where=_where(path, split, key))
        if isinstance(sd, dict):
            sd[key] = None  # the loaded object is ours: drop the original so peak memory stays near one copy
        if inputs:
            m0 = next(iter(inputs))
            if x.shape[0] != inputs[m0].shape[0]:
                raise DataError(
                    f"{path}, split {split!r}: key {key!r} has {x.shape[0]} samples but "
                    f"{keys[m0]!r} has {inputs[m0].shape[0]}."
                )
        inputs[m] = x
    return inputs


def _num_samples(inputs: dict[str, np.ndarray]) -> int:
    return int(next(iter(inputs.values())).shape[0])


def _finish_split(
    inputs: dict[str, np.ndarray], y: np.ndarray, ids: np.ndarray, report: LoadReport, split: str
) -> Split:
    counts, masks = {}, {}
    for m in list(inputs):
        x, counts[m] = zero_nonfinite(inputs[m])
        inputs[m] = x
        masks[m] = mask_from_features(x)
    report.nonfinite[split] = counts
    return Split(inputs=inputs, masks=masks, labels=y, ids=ids)


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
