"""Steps the readers share: safe containers → float32 arrays, ids, the `tgt` label vocabulary, key look-ups.

Every public-format reader turns a loaded (allow-listed) pickle into arrays
with these helpers, so every one of them refuses bad input the same way: a
missing key, a wrong shape, a non-numeric array, a label token outside the
file's vocabulary is one :class:`~mmerbench.errors.DataError` sentence that
names the file, the split and the key, never a traceback from inside numpy.

Features may be numpy arrays of any numeric dtype, torch tensors, or lists of
per-sample arrays/tensors; they become float32 C-contiguous ``[N, L, D]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmerbench.data.dataset import LoadReport, Split, mask_from_features, zero_nonfinite
from mmerbench.data.spec import DatasetSpec
from mmerbench.errors import DataError

PAD, UNK, BOS, EOS = 0, 1, 2, 3
FIRST_LABEL_TOKEN = 4
SPECIAL_NAMES = {"<blank>": PAD, "<pad>": PAD, "<unk>": UNK, "<s>": BOS, "<bos>": BOS, "</s>": EOS, "<eos>": EOS}
SPLIT_ALIASES = {"train": ("train",), "valid": ("valid", "dev", "val"), "test": ("test",)}


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
    skip = {PAD, BOS, EOS} | {t for t, n in specials.items() if SPECIAL_NAMES.get(n.lower()) in (PAD, BOS, EOS)}
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
    tgt = untensor(tgt)
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
    row = untensor(row)
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


def feature_array(obj: Any, *, length: int | None, dim: int | None, where: str) -> np.ndarray:
    """Any of (numpy array, tensor, list of per-sample [L, D] arrays) → float32 C-contiguous ``[N, L, D]``.

    ``length`` / ``dim`` None: taken from the data (a release whose sizes are not published).
    """
    arr = _numeric_array(obj, where)
    if arr is None:  # an empty list: a split with no samples
        if length is None or dim is None:
            raise DataError(f"{where}: holds no samples, so its feature shape cannot be read.")
        return np.zeros((0, length, dim), dtype=np.float32)
    want = f"(N, {'L' if length is None else length}, {'D' if dim is None else dim})"
    if arr.ndim != 3 or (length is not None and arr.shape[1] != length) or (dim is not None and arr.shape[2] != dim):
        raise DataError(f"{where}: expected shape {want}, but got {tuple(arr.shape)}.")
    with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32's range → inf, zeroed later
        return np.ascontiguousarray(arr, dtype=np.float32)


def _numeric_array(obj: Any, where: str) -> np.ndarray | None:
    obj = untensor(obj)
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
    o = untensor(o)
    try:
        arr = np.asarray(o, dtype=np.float64) if not isinstance(o, np.ndarray) or o.dtype == object else o
    except (ValueError, TypeError):
        raise DataError(f"{where}: sample {i} is not an array of numbers.") from None
    if arr.dtype.kind not in "fiub":
        raise DataError(f"{where}: sample {i} is not an array of numbers (dtype {arr.dtype}).")
    return arr


def untensor(x: Any) -> Any:
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
    raw = untensor(raw)
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
    x = untensor(x)
    if isinstance(x, (np.ndarray, list, tuple)):
        parts = [_id_text(p) for p in np.asarray(x, dtype=object).reshape(-1)]
        return "_".join(p for p in parts if p != "")
    if isinstance(x, bytes):
        return x.decode("utf-8", errors="replace")
    return str(x)


# --------------------------------------------------------------------------- shared steps


def expect_files(files: Sequence[Path], k: int, name: str) -> list[Path]:
    files = [Path(f) for f in files]
    if len(files) != k:
        raise DataError(f"{name}: expected {k} file(s), but got {len(files)}: {[str(f) for f in files]}.")
    return files


def top_level(data: Any, path: Path) -> Mapping:
    if not isinstance(data, Mapping):
        raise DataError(f"{path}: expected a dict at the top level, but got {type(data).__name__}.")
    return data


def where_key(path: Path, split: str, key: str) -> str:
    return f"{path}, split {split!r}, key {key!r}"


def keys_text(d: Mapping) -> str:
    keys = [str(k) for k in d]
    return ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")


def get_key(d: Mapping, key: str, path: Path, split: str | None = None) -> Any:
    if key not in d:
        where = f"{path}, split {split!r}" if split else str(path)
        raise DataError(f"{where}: key {key!r} is missing (keys present: {keys_text(d)}).")
    return d[key]


def split_dict(data: Mapping, split: str, path: Path) -> Mapping:
    for name in SPLIT_ALIASES[split]:
        if name in data:
            sd = data[name]
            if not isinstance(sd, Mapping):
                raise DataError(f"{path}: split {name!r} is a {type(sd).__name__}, expected a dict of arrays.")
            return sd
    raise DataError(f"{path}: split {split!r} is missing (top-level keys: {keys_text(data)}).")


def vocab_of(data: Mapping, path: Path) -> TgtVocab:
    d = get_key(data, "dict", path)
    if not isinstance(d, Mapping):
        raise DataError(f"{path}: key 'dict' is a {type(d).__name__}, expected a dict with 'src' and 'tgt'.")
    if "tgt" not in d:
        raise DataError(f"{path}: key ['dict']['tgt'] (the label vocabulary) is missing (keys present: {keys_text(d)}).")
    return parse_tgt_vocab(d["tgt"], where=f"{path}, key ['dict']['tgt']")


Shapes = Mapping[str, "tuple[int | None, int | None]"]  # modality → (length, dim), None = read from the file


def read_features(
    sd: Mapping, keys: Mapping[str, str], shapes: DatasetSpec | Shapes, path: Path, split: str
) -> dict[str, np.ndarray]:
    """Per modality the array under ``keys[m]``, shape-checked; all must have the same number of samples."""
    if isinstance(shapes, DatasetSpec):
        shapes = {m: (ms.length, ms.dim) for m, ms in shapes.modalities.items()}
    inputs: dict[str, np.ndarray] = {}
    for m, key in keys.items():
        length, dim = shapes[m]
        x = feature_array(get_key(sd, key, path, split), length=length, dim=dim, where=where_key(path, split, key))
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


def shapes_of(inputs: Mapping[str, np.ndarray]) -> dict[str, tuple[int, int]]:
    """(length, dim) per modality, to hold the other splits of a release to the training split's shapes."""
    return {m: (int(x.shape[1]), int(x.shape[2])) for m, x in inputs.items()}


def num_samples(inputs: dict[str, np.ndarray]) -> int:
    return int(next(iter(inputs.values())).shape[0])


def finish_split(
    inputs: dict[str, np.ndarray],
    y: np.ndarray,
    ids: np.ndarray,
    report: LoadReport,
    split: str,
    masks: Mapping[str, np.ndarray] | None = None,
    extras: Mapping[str, np.ndarray] | None = None,
    text_raw: np.ndarray | None = None,
) -> Split:
    """Zero and count non-finite features; masks from the file when it has them, else from the zero padding."""
    counts, out_masks = {}, {}
    for m in list(inputs):
        x, counts[m] = zero_nonfinite(inputs[m])
        inputs[m] = x
        out_masks[m] = np.asarray(masks[m], dtype=bool) if masks is not None and m in masks else mask_from_features(x)
    report.nonfinite[split] = counts
    return Split(inputs=inputs, masks=out_masks, labels=y, ids=ids, extras=dict(extras or {}), text_raw=text_raw)


def lengths_to_mask(lengths: Any, n: int, length: int, *, where: str) -> np.ndarray:
    """Valid-step counts ``[N]`` → a bool mask ``[N, L]`` (counts beyond L are clipped: the file truncated)."""
    arr = _numeric_array(lengths, where)
    if arr is None:
        arr = np.zeros(0)
    arr = arr.reshape(-1)
    if arr.shape[0] != n:
        raise DataError(f"{where}: {arr.shape[0]} lengths for {n} samples.")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr != np.round(arr)):
        raise DataError(f"{where}: expected non-negative whole lengths.")
    return np.arange(length)[None, :] < np.minimum(arr.astype(np.int64), length)[:, None]


def count_summary(counts: Mapping[str, Mapping[str, int]]) -> str:
    """'train: audio 12, vision 3; test: audio 4' for the non-zero counts (empty string when none)."""
    parts = []
    for split, per in counts.items():
        nz = [f"{m} {c:,}" for m, c in per.items() if c]
        if nz:
            parts.append(f"{split}: {', '.join(nz)}")
    return "; ".join(parts)
