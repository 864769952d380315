"""CMU-MultimodalSDK computational sequences (``.csd``): read and write, never trusting the file.

A ``.csd`` file is HDF5 in the layout of the SDK's ``write_CSD``
(``mmsdk/mmdatasdk/computational_sequence/file_ops.py``)::

    /<root name>/data/<entry id>/features    [n, d] numbers (words: [n, 1] byte strings)
    /<root name>/data/<entry id>/intervals   [n, 2] start and end, in seconds
    /<root name>/metadata/<key>              one variable-length string each, JSON-encoded

An entry is a video (or, once aligned, a segment ``<video>[<i>]``). HDF5 holds
no code, but a file can still point elsewhere or ask for a lot of memory, so
:class:`CsdFile` refuses, each with one sentence:

* anything that is not a plain (hard-linked) group or dataset: external and
  soft links, virtual datasets and datasets stored in external files (they
  read other files);
* a missing ``data`` or ``metadata`` group, more than one top-level group, an
  entry without ``features`` or ``intervals``;
* object, variable-length or compound dtypes where numbers are expected
  (byte strings only where words are allowed), feature arrays that are not
  2-D, interval arrays that are not ``[n, 2]``, row counts that differ;
* arrays that declare more bytes than the file could hold (uncompressed:
  more than its size; compressed: more than deflate's 1032:1 can expand to),
  checked from the header before anything is read;
* NaN or infinite interval bounds, and an interval that ends before it starts.

Rows out of time order are not an error: the real MOSI opinion labels have
them (video ``VbQk4H8hgr0``). :meth:`CsdFile.read` sorts a feature
sequence's rows by start time (stably, as the SDK's ``mmdataset.sort``
does) on request, and keeps a label sequence's row order, which numbers its
segments (the SDK's ids ``<video>[<row>]``).

Non-finite feature values (COVAREP holds ``-inf``) become 0 and are counted,
as in every other reader. :func:`write_csd` writes the same layout (tests,
and exporting a twin).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmerbench.data.dataset import zero_nonfinite
from mmerbench.errors import DataError
from mmerbench.safepath import shown

DEFLATE_MAX_RATIO = 1032  # the most deflate can expand: a bound for compressed datasets
MAX_METADATA_BYTES = 1 << 20  # one metadata value (a bib entry, a description) is far smaller
EXTRA = "csd"  # pip install "mmerbench[csd]"


def h5py_module():
    """h5py, or one sentence naming the extra that installs it."""
    try:
        import h5py
    except ImportError:
        raise DataError('Reading .csd files needs h5py, which is not installed; install it with '
                        f'pip install "mmerbench[{EXTRA}]" (or pip install h5py).') from None
    return h5py


@dataclass
class CsdSummary:
    name: str
    dim: int
    entries: int
    intervals: int
    text: bool  # the features are words (byte strings), not numbers
    metadata: dict[str, Any] = field(default_factory=dict)


class CsdFile:
    """One computational sequence, opened read-only; entries are read one at a time with :meth:`read`."""

    def __init__(self, path: str | os.PathLike):
        h5py = h5py_module()
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise DataError(f"{self.path} is not a file (expected a CMU-MultimodalSDK .csd computational sequence).")
        self.file_size = self.path.stat().st_size
        try:
            self._h5 = h5py.File(self.path, "r")
        except OSError as e:
            raise DataError(f"{self.path} is not a readable HDF5 file, so not a .csd computational sequence "
                            f"({str(e).splitlines()[0] if str(e) else type(e).__name__}).") from None
        try:
            self._open()
        except BaseException:
            self._h5.close()
            raise

    # ------------------------------------------------------------------ structure

    def _open(self) -> None:
        h5py = h5py_module()
        roots = list(self._h5.keys())
        if len(roots) != 1:
            raise DataError(f"{self.path}: expected one top-level group (the sequence's root name), but found "
                            f"{len(roots)}{': ' + shown(roots) if roots else ''}.")
        self.root_key = roots[0]
        root = self._child(self._h5, self.root_key, h5py.Group, "the top-level group")
        self._data = self._child(root, "data", h5py.Group, "the data group")
        meta = self._child(root, "metadata", h5py.Group, "the metadata group")
        self.metadata = {k: self._meta_value(meta, k) for k in meta.keys()}
        name = self.metadata.get("root name", self.root_key)
        self.name = name if isinstance(name, str) and name else self.root_key
        self.entries: list[str] = list(self._data.keys())

    def _child(self, group: Any, key: str, kind: type, what: str) -> Any:
        h5py = h5py_module()
        link = group.get(key, getlink=True)
        if link is None:
            raise DataError(f"{self.path}: {what} {shown(key)} is missing (under {shown(group.name)}).")
        if not isinstance(link, h5py.HardLink):
            raise DataError(f"{self.path}: {what} {shown(group.name + '/' + key)} is a link elsewhere "
                            f"({type(link).__name__}); a .csd file holds its own data.")
        obj = group[key]
        if not isinstance(obj, kind):
            raise DataError(f"{self.path}: {what} {shown(obj.name)} is not an HDF5 "
                            f"{'group' if kind is h5py.Group else 'dataset'}.")
        if isinstance(obj, h5py.Dataset):
            if obj.is_virtual or obj.external:
                raise DataError(f"{self.path}: {shown(obj.name)} is stored in other files (virtual or external "
                                "dataset); a .csd file holds its own data.")
        return obj

    def _meta_value(self, meta: Any, key: str) -> Any:
        h5py = h5py_module()
        try:
            ds = self._child(meta, key, h5py.Dataset, "the metadata entry")
        except DataError:
            return None  # the SDK itself tolerates odd metadata; nothing below depends on it
        if ds.dtype.kind not in "OSU" or ds.size != 1 or h5py.check_string_dtype(ds.dtype) is None:
            return None
        raw = ds[()] if ds.shape == () else ds[0]
        if isinstance(raw, bytes):
            raw = raw[:MAX_METADATA_BYTES].decode("utf-8", "replace")
        if not isinstance(raw, str) or len(raw) > MAX_METADATA_BYTES:
            return None
        try:
            return json.loads(raw)  # the SDK stores json.dumps(value)
        except ValueError:
            return raw

    # ------------------------------------------------------------------ entries

    def shapes(self, entry: str, *, text_ok: bool = False) -> tuple[int, int, bool]:
        """``(n, d, text)`` of an entry, from its headers alone (nothing read)."""
        iv, ft = self._datasets(entry)
        return iv.shape[0], ft.shape[1], ft.dtype.kind == "S"

    def _datasets(self, entry: str) -> tuple[Any, Any]:
        h5py = h5py_module()
        where = f"{self.path}: entry {shown(entry)}"
        g = self._child(self._data, entry, h5py.Group, "the entry")
        iv = self._child(g, "intervals", h5py.Dataset, "the intervals dataset")
        ft = self._child(g, "features", h5py.Dataset, "the features dataset")
        if len(iv.shape) != 2 or iv.shape[1] != 2:
            raise DataError(f"{where}: intervals have shape {iv.shape}; expected [n, 2] (start, end).")
        if len(ft.shape) != 2:
            raise DataError(f"{where}: features have shape {ft.shape}; expected [n, d].")
        if ft.shape[0] != iv.shape[0]:
            raise DataError(f"{where}: {ft.shape[0]} feature rows for {iv.shape[0]} intervals; "
                            "they must match row for row.")
        if iv.dtype.kind not in "fiu":
            raise DataError(f"{where}: intervals have dtype {iv.dtype}; expected numbers.")
        if ft.dtype.kind not in "fiuS" or (ft.dtype.kind == "S" and ft.shape[1] != 1):
            raise DataError(f"{where}: features have dtype {ft.dtype}; expected numbers (or one word per row).")
        for ds in (iv, ft):
            declared = int(np.prod(ds.shape, dtype=np.int64)) * ds.dtype.itemsize
            limit = self.file_size * (DEFLATE_MAX_RATIO if ds.compression else 1)
            if declared > limit:
                raise DataError(f"{where}: {ds.name.rsplit('/', 1)[-1]} declare {declared:,} bytes, more than "
                                f"a {self.file_size:,}-byte file can hold; the file is truncated or corrupt.")
        return iv, ft

    def read(self, entry: str, *, text_ok: bool = False, sort: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
        """``(intervals float64 [n, 2], features [n, d], non-finite count)`` of one entry, checked.

        Features are float32 (non-finite set to 0), or byte strings when
        ``text_ok`` and the sequence holds words. ``sort`` puts the rows in
        order of start time (stable), which alignment needs.
        """
        iv_ds, ft_ds = self._datasets(entry)
        where = f"{self.path}: entry {shown(entry)}"
        if ft_ds.dtype.kind == "S" and not text_ok:
            raise DataError(f"{where}: features are words (byte strings), not numbers; use a feature sequence "
                            "(e.g. the word vectors), not the timestamped words, as a modality.")
        try:
            iv = np.asarray(iv_ds[()], dtype=np.float64)
            ft = ft_ds[()]
        except (OSError, ValueError) as e:
            raise DataError(f"{where}: could not be read, the file is truncated or corrupt ({e}).") from None
        check_intervals(iv, where)
        if sort and iv.shape[0] > 1 and (np.diff(iv[:, 0]) < 0).any():
            order = np.argsort(iv[:, 0], kind="stable")
            iv, ft = iv[order], ft[order]
        count = 0
        if ft.dtype.kind != "S":
            ft, count = zero_nonfinite(np.asarray(ft, dtype=np.float32))
        return iv, ft, count

    def summary(self) -> CsdSummary:
        """Name, feature dimension, entries and total intervals, from headers only."""
        dims, total, text = set(), 0, False
        for e in self.entries:
            n, d, t = self.shapes(e)
            dims.add(d)
            total += n
            text = text or t
        if len(dims) > 1:
            raise DataError(f"{self.path}: entries have different feature dimensions {sorted(dims)}.")
        return CsdSummary(self.name, dims.pop() if dims else 0, len(self.entries), total, text, dict(self.metadata))

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> "CsdFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def check_intervals(iv: np.ndarray, where: str) -> None:
    """Finite bounds, and no interval ending before it starts."""
    if not np.isfinite(iv).all():
        raise DataError(f"{where}: intervals hold NaN or infinite times.")
    if (iv[:, 1] < iv[:, 0]).any():
        i = int(np.argmax(iv[:, 1] < iv[:, 0]))
        raise DataError(f"{where}: interval {i} ends ({iv[i, 1]:g} s) before it starts ({iv[i, 0]:g} s).")


def write_csd(path: str | os.PathLike, name: str, entries: dict[str, tuple[np.ndarray, np.ndarray]],
              metadata: dict[str, Any] | None = None) -> Path:
    """Write ``{entry: (intervals [n, 2], features [n, d])}`` in the SDK's ``write_CSD`` layout."""
    h5py = h5py_module()
    path = Path(path)
    meta = {"root name": name, "computational sequence description": name, "dimension names": [],
            "computational sequence version": "1.0", "alignment compatible": True, "dataset name": name,
            "dataset version": "1.0", "creator": "mmerbench", "contact": "", "featureset bib citation": "",
            "dataset bib citation": ""}
    meta.update(metadata or {})
    with h5py.File(path, "w") as f:
        root = f.create_group(name)
        data = root.create_group("data")
        for key, (iv, ft) in entries.items():
            g = data.create_group(key)
            g.create_dataset("features", data=ft)
            g.create_dataset("intervals", data=np.asarray(iv, dtype=np.float64))
        md = root.create_group("metadata")
        for k, v in meta.items():
            ds = md.create_dataset(k, (1,), dtype=h5py.special_dtype(vlen=str))
            ds[0] = json.dumps(v)
    return path
