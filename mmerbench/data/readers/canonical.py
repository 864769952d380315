"""The canonical format: one folder per dataset that anyone can write, and that every dataset exports to.

Layout (also described for users in docs/formats.md)::

    <folder>/spec.yaml        the DatasetSpec, plus the format's name, version and checksums
    <folder>/train.npz        one per split (numpy's savez, read with allow_pickle=False)
    <folder>/valid.npz
    <folder>/test.npz

``spec.yaml``::

    format: mmerbench-canonical
    version: 1
    spec:                     # DatasetSpec.to_dict(): name, task, labels, modalities {m: {dim, length}},
      ...                     # splits {train: N, ...}, threshold, description, source, synthetic, twin_of
    sha256: {train.npz: <hex>, valid.npz: <hex>, test.npz: <hex>}   # optional; `data verify` checks them

Each ``<split>.npz`` holds exactly these arrays (``N`` = the spec's split size):

* ``<modality>``: float32 ``[N, L, D]``, real steps first, padding all-zero;
* ``<modality>_lengths``: integer ``[N]``, the real steps of each sample;
* ``<modality>_mask``: bool ``[N, L]``, only where a mask is not "the first
  `length` steps" (a public file whose zero rows sit between real steps);
* ``labels``: multi-label int8 ``[N, C]`` of 0/1; multi-class integer ``[N]``
  in ``[0, C)``; binary integer ``[N]`` of 0/1; regression float ``[N]``;
* ``ids``: str ``[N]``;
* ``text_raw``: optional str ``[N]``, each utterance's text (what a pretrained
  text encoder reads; see ``text_encoder`` in the README);
* ``extra_<name>``: optional numeric per-sample arrays ``[N, ...]`` (e.g.
  ``extra_va_text``, float32 ``[N, 2]``), which travel as ``Split.extras``.

Anything else (a missing or unknown array, a wrong shape or dtype, a size that
disagrees with the spec, a label outside the vocabulary, an object array) is
refused with one sentence. So are names that are not plain names (the spec's
name, modalities, splits, extras: see :mod:`mmerbench.safepath`), empty
splits, files that are symlinks out of the folder, and arrays whose ``.npy``
header declares more data than the archive entry holds or than the spec
allows (checked before numpy allocates). Non-finite features are set to 0 and
counted.
Folders are written atomically: into a temporary sibling, then renamed.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mmerbench.data.cache import publish
from mmerbench.data.dataset import Dataset, LoadReport, zero_nonfinite
from mmerbench.data.readers.common import finish_split
from mmerbench.data.spec import SPLITS, DatasetSpec, check_names
from mmerbench.errors import DataError
from mmerbench.safepath import check_inside, check_name, shown

FORMAT = "mmerbench-canonical"
VERSION = 1
SPEC_FILE = "spec.yaml"
FILES = (SPEC_FILE,) + tuple(f"{s}.npz" for s in SPLITS)
EXTRA_PREFIX = "extra_"


# --------------------------------------------------------------------------- reading


def read_spec_yaml(path: str | os.PathLike) -> tuple[DatasetSpec, dict[str, Any]]:
    """The spec in ``spec.yaml`` and the file's other fields; a malformed file is one DataError."""
    path = Path(path)
    check_inside(path, path.parent, action="read")  # a folder is self-contained: no symlink out of it
    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: a canonical dataset folder holds {', '.join(FILES)}.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"Could not read {path} ({type(e).__name__}).") from None
    except yaml.YAMLError as e:
        raise DataError(f"{path} is not valid YAML ({str(e).splitlines()[0]}).") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("spec"), dict):
        raise DataError(f"{path}: expected a mapping with a `spec` mapping (the DatasetSpec).")
    if meta.get("format", FORMAT) != FORMAT:
        raise DataError(f"{path}: format {meta.get('format')!r} is not {FORMAT!r}.")
    version = meta.get("version", VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DataError(f"{path}: format version {shown(version)} is not a whole number.")
    if version > VERSION:
        raise DataError(f"{path}: format version {meta.get('version')} is newer than this mmerbench reads ({VERSION}).")
    return _spec_from(meta["spec"], path), meta


def _spec_from(d: dict[str, Any], path: Path) -> DatasetSpec:
    missing = [k for k in ("name", "task", "labels", "modalities", "splits") if k not in d]
    if missing:
        raise DataError(f"{path}: the spec lacks {', '.join(missing)}.")
    try:
        spec = DatasetSpec.from_dict(d)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise DataError(f"{path}: the spec is malformed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}).") from None
    if not spec.labels:
        raise DataError(f"{path}: the spec's labels must be a non-empty list of names.")
    # Scalars must be scalars: a YAML alias can make a field a deeply shared structure that
    # expands exponentially when printed or hashed.
    if not isinstance(spec.description, str) or not (spec.twin_of is None or isinstance(spec.twin_of, str)):
        raise DataError(f"{path}: the spec's description and twin_of must be text.")
    if isinstance(spec.threshold, bool) or not isinstance(spec.threshold, (int, float)):
        raise DataError(f"{path}: the spec's threshold must be a number, but got {shown(spec.threshold)}.")
    if not isinstance(spec.synthetic, bool):
        raise DataError(f"{path}: the spec's synthetic must be true or false.")
    check_names(spec, where=str(path))
    for m, ms in spec.modalities.items():
        if not all(isinstance(v, int) and v > 0 for v in (ms.dim, ms.length)):
            raise DataError(f"{path}: modality {m!r} needs a positive whole dim and length.")
        if m in ("labels", "ids", "text_raw") or m.startswith(EXTRA_PREFIX) or m.endswith(("_lengths", "_mask")):
            raise DataError(f"{path}: {m!r} cannot name a modality (it names another array).")
    if sorted(spec.splits) != sorted(SPLITS) or any(v < 1 for v in spec.splits.values()):
        raise DataError(f"{path}: the spec's splits must give a size of at least 1 for each of {', '.join(SPLITS)} "
                        f"(an empty split is refused), but got {spec.splits}.")
    if spec.task == "binary" and len(spec.labels) != 1:
        raise DataError(f"{path}: a binary spec names one label (the positive class), but got {list(spec.labels)}.")
    return spec


def read_canonical(files: list[Path]) -> Dataset:
    """Read a canonical folder: ``files`` = [spec.yaml, train.npz, valid.npz, test.npz]."""
    files = [Path(f) for f in files]
    if len(files) != len(FILES):
        raise DataError(f"Expected the {len(FILES)} files of a canonical folder, but got {len(files)}.")
    spec, meta = read_spec_yaml(files[0])
    report = LoadReport(source=str(files[0].parent))
    splits = {}
    for split, path in zip(SPLITS, files[1:]):
        splits[split] = _read_split(spec, split, path, report)
    src = meta.get("source_note")
    if src:
        if not isinstance(src, str):
            raise DataError(f"{files[0]}: source_note must be text.")
        report.notes.append(src)
    return Dataset(spec, splits, report)


def _read_split(spec: DatasetSpec, split: str, path: Path, report: LoadReport):
    n = spec.splits[split]
    check_inside(path, path.parent, action="read")
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist.") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"Could not read {path}: it is truncated, corrupt or not an .npz file ({type(e).__name__}).") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single array; expected an .npz archive of named arrays.")
    with z:
        names = set(z.files)
        expected = {"labels", "ids"} | set(spec.modalities) | {f"{m}_lengths" for m in spec.modalities}
        optional = {f"{m}_mask" for m in spec.modalities} | {"text_raw"}
        missing = sorted(expected - names)
        if missing:
            raise DataError(f"{path}: array(s) {', '.join(missing)} missing (present: {', '.join(sorted(names))}).")
        unknown = sorted(k for k in names - expected - optional if not k.startswith(EXTRA_PREFIX))
        for k in sorted(names):
            if k.startswith(EXTRA_PREFIX):  # the part after the prefix names a cache file
                check_name(k[len(EXTRA_PREFIX):], where=str(path), field="extra name")
        if unknown:
            raise DataError(f"{path}: unknown array(s) {', '.join(unknown)}; expected the modalities "
                            f"{', '.join(spec.modalities)}, their _lengths (and _mask), labels, ids, extra_<name>.")
        get = lambda k, limit=None: _array(z, k, path, limit)  # noqa: E731
        inputs, masks = {}, {}
        for m, ms in spec.modalities.items():
            x = get(m, n * ms.length * ms.dim)
            if x.dtype.kind not in "fiu" or x.shape != (n, ms.length, ms.dim):
                raise DataError(f"{path}: {m!r} must be numbers of shape ({n}, {ms.length}, {ms.dim}) "
                                f"(spec: {n} {split} samples), but got {x.dtype} {tuple(x.shape)}.")
            with np.errstate(over="ignore", invalid="ignore"):
                inputs[m] = np.ascontiguousarray(x, dtype=np.float32)
            lengths = get(f"{m}_lengths", n)
            if lengths.dtype.kind not in "iu" or lengths.shape != (n,) or (n and (lengths.min() < 0 or lengths.max() > ms.length)):
                raise DataError(f"{path}: '{m}_lengths' must be whole numbers in [0, {ms.length}] of shape ({n},).")
            mask = np.arange(ms.length)[None, :] < lengths[:, None]
            if f"{m}_mask" in names:
                given = get(f"{m}_mask", n * ms.length)
                if given.dtype != np.bool_ or given.shape != (n, ms.length):
                    raise DataError(f"{path}: '{m}_mask' must be bool of shape ({n}, {ms.length}).")
                if not np.array_equal(given.sum(1), lengths):
                    raise DataError(f"{path}: '{m}_mask' and '{m}_lengths' disagree on the real steps.")
                mask = given
            masks[m] = mask
        y = _labels(spec, get("labels", n * len(spec.labels)), n, path)
        ids = get("ids", n)
        if ids.dtype.kind not in "US" or ids.shape != (n,):
            raise DataError(f"{path}: 'ids' must be strings of shape ({n},), but got {ids.dtype} {tuple(ids.shape)}.")
        text_raw = None
        if "text_raw" in names:
            text_raw = get("text_raw", n)
            if text_raw.dtype.kind != "U" or text_raw.shape != (n,):
                raise DataError(f"{path}: 'text_raw' must be strings of shape ({n},), "
                                f"but got {text_raw.dtype} {tuple(text_raw.shape)}.")
        extras = {}
        for k in sorted(names):
            if k.startswith(EXTRA_PREFIX):
                v = get(k)
                if v.dtype.kind not in "fiub" or v.ndim < 1 or v.shape[0] != n:
                    raise DataError(f"{path}: {k!r} must be numbers with one row per sample ({n}).")
                extras[k[len(EXTRA_PREFIX):]], count = zero_nonfinite(np.array(v))
                if count:
                    report.notes.append(f"{split}: {count} non-finite value(s) in {k} set to 0")
    return finish_split(inputs, y, ids.astype(str), report, split, masks=masks, extras=extras, text_raw=text_raw)


def _array(z: Any, key: str, path: Path, limit: int | None = None) -> np.ndarray:
    """One array of the archive, read only after its header passed :func:`_check_header`."""
    try:
        _check_header(z, key, path, limit)
        return z[key]
    except DataError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"Could not read array {key!r} of {path}: the file is truncated or corrupt "
                        f"({type(e).__name__}).") from None


def _check_header(z: Any, key: str, path: Path, limit: int | None) -> None:
    """Refuse an array before numpy allocates it: an object dtype, or a declared size that the archive
    entry does not hold (numpy allocates the declared size first) or that exceeds ``limit`` elements."""
    member = f"{key}.npy"
    if member not in z.zip.namelist():
        raise DataError(f"{path}: {key!r} is not a .npy array.")
    info = z.zip.getinfo(member)
    with z.zip.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DataError(f"{path}: array {key!r} has .npy format version {version}, which is not read.")
        header = f.tell()
    if dtype.hasobject:
        raise DataError(f"{path}: array {key!r} holds Python objects, which are never unpickled.")
    items = math.prod(shape)
    if header + items * dtype.itemsize != info.file_size:
        raise DataError(f"{path}: array {key!r} declares {items * dtype.itemsize:,} bytes of data but its "
                        f"archive entry holds {max(info.file_size - header, 0):,}; the file is corrupt or hostile.")
    if limit is not None and items > limit:
        raise DataError(f"{path}: array {key!r} declares shape {tuple(shape)}, more values ({items:,}) than the "
                        f"spec allows ({limit:,}).")


def _labels(spec: DatasetSpec, y: np.ndarray, n: int, path: Path) -> np.ndarray:
    task, k = spec.task, len(spec.labels)
    names = ", ".join(spec.labels)
    if task == "multilabel":
        if y.shape != (n, k) or y.dtype.kind not in "iub":
            raise DataError(f"{path}: 'labels' must be 0/1 integers of shape ({n}, {k}) ({names}), "
                            f"but got {y.dtype} {tuple(y.shape)}.")
        if n and not np.isin(y, (0, 1)).all():
            raise DataError(f"{path}: 'labels' holds values other than 0 and 1 ({names}).")
        return y.astype(np.int8)
    if task in ("multiclass", "binary"):
        top = k if task == "multiclass" else 2
        if y.shape != (n,) or y.dtype.kind not in "iub":
            raise DataError(f"{path}: 'labels' must be integer class indices of shape ({n},), "
                            f"but got {y.dtype} {tuple(y.shape)}.")
        if n and (y.min() < 0 or y.max() >= top):
            bad = int(y[(y < 0) | (y >= top)][0])
            vocab = f"classes 0..{k - 1} ({names})" if task == "multiclass" else "0 or 1"
            raise DataError(f"{path}: label {bad} is outside the vocabulary ({vocab}).")
        return y.astype(np.int64)
    if y.shape != (n,) or y.dtype.kind not in "fiu":
        raise DataError(f"{path}: 'labels' must be numbers of shape ({n},), but got {y.dtype} {tuple(y.shape)}.")
    if n and not np.isfinite(y).all():
        raise DataError(f"{path}: {int((~np.isfinite(y)).sum())} regression target(s) are NaN or infinite.")
    return y.astype(np.float32)


# --------------------------------------------------------------------------- writing


def write_canonical(ds: Dataset, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``ds`` as a canonical folder at ``out`` (atomically); returns the folder."""
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise DataError(f"{out} already exists and is not an empty folder; choose another or pass --force.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        sums = {}
        for split in SPLITS:
            s = ds[split]
            arrays: dict[str, np.ndarray] = {}
            for m in ds.spec.modalities:
                mask = np.asarray(s.masks[m], dtype=bool)
                lengths = mask.sum(1).astype(np.int64)
                arrays[m] = np.ascontiguousarray(s.inputs[m], dtype=np.float32)
                arrays[f"{m}_lengths"] = lengths
                if not np.array_equal(mask, np.arange(mask.shape[1])[None, :] < lengths[:, None]):
                    arrays[f"{m}_mask"] = mask
            arrays["labels"] = np.asarray(s.labels)
            arrays["ids"] = np.asarray(s.ids).astype(str)
            if s.text_raw is not None:
                arrays["text_raw"] = np.asarray(s.text_raw, dtype=str)
            for k, v in s.extras.items():
                arrays[f"{EXTRA_PREFIX}{k}"] = np.asarray(v)
            path = tmp / f"{split}.npz"
            np.savez(path, **arrays)
            sums[path.name] = sha256_of(path)
        meta = {"format": FORMAT, "version": VERSION, "spec": ds.spec.to_dict(), "sha256": sums}
        if ds.report.source:
            meta["source_note"] = f"exported from {ds.report.source}"
        (tmp / SPEC_FILE).write_text(yaml.safe_dump(meta, sort_keys=False, allow_unicode=True), encoding="utf-8")
        publish(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- a folder given by its path


def is_folder_path(name: str) -> bool:
    """Whether a --dataset value names a folder rather than a registered dataset."""
    return os.sep in name or "/" in name or name.startswith((".", "~")) or _is_dir(Path(name))


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def folder_entry(name: str):
    """A registry entry for a canonical folder given by path (its cache/run-store name is ``<name>@<hash>``)."""
    from mmerbench.data.registry import DataFormat, DatasetEntry

    folder = Path(name).expanduser()
    if not _is_dir(folder):
        raise DataError(f"{folder} is not a folder (nor a registered dataset name); a canonical dataset folder "
                        f"holds {', '.join(FILES)}.")
    spec, _ = read_spec_yaml(folder / SPEC_FILE)
    folder = folder.resolve()
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:8]
    fmt = DataFormat("canonical", tuple(str(folder / f) for f in FILES), read_canonical,
                     description=f"canonical folder {folder}")
    return DatasetEntry(spec=spec, formats=(fmt,), key=f"{spec.name}@{digest}")

