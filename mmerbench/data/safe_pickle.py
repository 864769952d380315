"""Unpickling that never runs code from a data file.

Public dataset releases are pickles (plain ones, and ``torch.save`` files,
which are pickles inside a zip or behind a magic number). Unpickling a file
can call any importable function it names, so we never use ``pickle.load``
or ``torch.load(weights_only=False)`` on them. Instead:

* :class:`SafeUnpickler` resolves only an explicit allow-list of
  ``module.name`` strings (numpy array reconstruction and dtypes,
  ``collections.OrderedDict``, ``argparse.Namespace``, a few builtins). The
  name is checked as a string before anything is imported; any other name is
  refused with a :class:`~mmerbench.errors.DataError` and never called.
* :func:`safe_torch_load` calls ``torch.load(weights_only=True)`` (torch's own
  restricted unpickler, which also blocks ``os``/``sys`` outright) with the
  same numpy and ``argparse.Namespace`` globals added through
  ``torch.serialization.safe_globals``.
* :func:`safe_load` picks one of the two by looking at the file's bytes.

Before either unpickler runs, :mod:`mmerbench.data.pickle_guard` bounds what
the file can make it allocate (declared lengths, memo indices, zip member
sizes, and the allowed callables' arguments), and a ``torch.save`` file's
pickle is first walked by :class:`SafeUnpickler` with torch's own names
standing in as inert placeholders, so torch's loader only sees files that
passed the same checks.

numpy 1.x pickles name ``numpy.core.multiarray._reconstruct``; numpy 2 moved
the module to ``numpy._core``. Both spellings resolve to numpy 2's objects,
and ``numpy.core`` is never imported (it only warns in numpy 2).
"""

from __future__ import annotations

import _compat_pickle
import argparse
import codecs
import collections
import functools
import io
import mmap
import os
import pickle
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mmerbench.data import pickle_guard
from mmerbench.data.pickle_guard import TEXT_ENCODINGS, Bomb
from mmerbench import progress
from mmerbench.errors import DataError

__all__ = ["SafeUnpickler", "safe_load", "safe_pickle_load", "safe_torch_load"]

# torch's legacy (pre-zip) format starts with this number, pickled on its own.
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_ZIP_MAGIC = b"PK\x03\x04"


class _Refused(Exception):
    """Raised inside the unpickler for a global that is not allowed (carries the dotted name)."""


def _encode_text(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` limited to str → bytes with a text encoding (how protocol-2 pickles store bytes)."""
    if not isinstance(obj, str) or str(encoding).lower() not in TEXT_ENCODINGS or errors != "strict":
        raise _Refused(f"_codecs.encode({type(obj).__name__}, {encoding!r})")
    out = codecs.encode(obj, encoding)
    pickle_guard.charge(len(out), "_codecs.encode")
    return out


@functools.lru_cache(maxsize=1)
def _numpy_globals() -> dict[str, Any]:
    """The numpy objects a pickled array, dtype or scalar needs, under every name numpy has used."""
    import numpy.dtypes

    core = np._core  # numpy >= 2
    objs = {
        "multiarray._reconstruct": core.multiarray._reconstruct,
        "multiarray.scalar": core.multiarray.scalar,
        "_multiarray_umath._reconstruct": core.multiarray._reconstruct,
        "_multiarray_umath.scalar": core.multiarray.scalar,
        "numeric._frombuffer": core.numeric._frombuffer,
    }
    out: dict[str, Any] = {}
    for pkg in ("numpy.core", "numpy._core"):
        for suffix, obj in objs.items():
            out[f"{pkg}.{suffix}"] = obj
    out["numpy.ndarray"] = np.ndarray
    out["numpy.dtype"] = np.dtype
    for name in dir(numpy.dtypes):
        cls = getattr(numpy.dtypes, name)
        if isinstance(cls, type) and issubclass(cls, np.dtype):
            out[f"numpy.dtypes.{name}"] = cls
    return out


@functools.lru_cache(maxsize=1)
def allowed_globals() -> dict[str, Any]:
    """Every ``module.name`` a plain pickle may reference, mapped to the object it resolves to."""
    out = dict(_numpy_globals())
    out.update(
        {
            "collections.OrderedDict": collections.OrderedDict,
            "argparse.Namespace": argparse.Namespace,
            "builtins.complex": complex,
            "builtins.slice": slice,
            "builtins.range": range,  # lazy; the guarded set/bytes builders refuse it as a source
            "builtins.object": object,  # the base class argument of copyreg._reconstructor
            "_codecs.encode": _encode_text,
        }
    )
    # set, frozenset, bytes, bytearray, numpy's _reconstruct/scalar and copyreg._reconstructor
    # (protocol 0/1 plain objects such as a Namespace) in their checked versions.
    out.update(pickle_guard.guarded_globals())
    out["numpy.ndarray"] = pickle_guard.NDARRAY
    return out


class SafeUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only the names in :func:`allowed_globals`.

    :meth:`load` first scans the pickle's opcodes (:func:`pickle_guard.scan`) and then
    loads it under an allocation budget derived from the stream's size; a stream that
    cannot seek is read into memory first.
    """

    def __init__(self, file: BinaryIO, **kwargs: Any) -> None:
        if not (hasattr(file, "seekable") and file.seekable()):
            file = io.BytesIO(file.read())
        self._stream = file
        super().__init__(file, **kwargs)

    def load(self) -> Any:
        f = self._stream
        start = f.tell()
        end = f.seek(0, os.SEEK_END)
        f.seek(start)
        buf = pickle_guard.readable_buffer(f)
        try:
            pickle_guard.scan(buf, start, end)
        finally:
            if isinstance(buf, mmap.mmap):
                buf.close()
        with pickle_guard.budget(end - start):
            return pickle_guard.plain_arrays(super().load())

    def find_class(self, module: str, name: str) -> Any:
        module, name = str(module), str(name)
        # Python 2 spellings (`__builtin__`, `copy_reg`; protocol < 3 pickles use them), mapped as strings.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        obj = allowed_globals().get(f"{module}.{name}")
        if obj is None:
            raise _Refused(f"{module}.{name}")
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("a persistent id (an external object reference)")


def _refused_message(what: str, path: Path | str) -> str:
    return (
        f"Refused to unpickle `{what}` from {path}: it is not an allowed type; "
        "the file may be corrupt or hostile."
    )


def _bomb_message(why: str, path: Path | str) -> str:
    return f"Refused {path}: {why}; the file is truncated, corrupt or hostile."


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def safe_pickle_load(path: str | os.PathLike) -> Any:
    """Load a plain pickle with :class:`SafeUnpickler`; any failure is a one-sentence DataError."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _unpickle(f, path)
    except FileNotFoundError:
        raise DataError(f"File {path} does not exist.") from None
    except IsADirectoryError:
        raise DataError(f"Expected a file at {path}, but it is a folder.") from None
    except PermissionError:
        raise DataError(f"Could not read {path}: permission denied.") from None


def _unpickle(f: BinaryIO, path: Path) -> Any:
    try:
        # latin1 lets numpy arrays pickled by Python 2 load; Python 3 pickles are unaffected.
        return SafeUnpickler(f, encoding="latin1").load()
    except _Refused as e:
        raise DataError(_refused_message(str(e), path)) from None
    except Bomb as e:
        raise DataError(_bomb_message(str(e), path)) from None
    except DataError:
        raise
    except Exception as e:  # EOFError, UnpicklingError, ValueError, MemoryError, ... from a bad file
        raise DataError(
            f"Could not unpickle {path}: the file is truncated, corrupt or not a pickle ({_first_line(e)})."
        ) from None


def _torch_safe_globals() -> list[tuple[Any, str]]:
    # torch looks a GLOBAL up by its dotted string, so an (object, name) pair
    # lets `numpy.core.multiarray._reconstruct` (numpy 1.x files) resolve to
    # numpy 2's function without importing `numpy.core`. torch already allows
    # `_codecs.encode`, OrderedDict, set and bytearray (its own, unchecked: the
    # walk in _walk_torch_file vets their arguments first); its NEWOBJ/BUILD
    # checks also need the dtype classes (a dtype's type is e.g.
    # numpy.dtypes.Float32DType) and the real ndarray class.
    names = {**_numpy_globals(), **pickle_guard.guarded_globals()}
    pairs = [(obj, name) for name, obj in names.items()
             if name.startswith("numpy") or name in ("builtins.frozenset", "builtins.bytes")]
    pairs += [(argparse.Namespace, "argparse.Namespace"), (slice, "builtins.slice"), (range, "builtins.range"),
              # BUILD on what the guarded _reconstruct returns; no file can name it (the walk refuses it)
              (pickle_guard.CheckedArray, "mmerbench.data.pickle_guard.CheckedArray")]
    return pairs


class _Inert:
    """Stands in for a torch name while a torch file's pickle is walked: accepts any call and state."""

    dotted = "torch"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Inert":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


@functools.lru_cache(maxsize=None)
def _inert_type(dotted: str) -> type:
    return type(dotted.rsplit(".", 1)[-1], (_Inert,), {"dotted": dotted})


def _storage_itemsize(storage_type: Any) -> int:
    """Bytes per element of a storage class named in a torch file (``torch.FloatStorage`` → 4)."""
    import torch

    sizes = {name: dtype.itemsize for dtype, name in torch.storage._dtype_to_storage_type_map().items()}
    return int(sizes.get(storage_type.dotted.rsplit(".", 1)[-1], 1))  # UntypedStorage counts bytes


class _TorchWalk(SafeUnpickler):
    """:class:`SafeUnpickler` with torch's names inert: checks a torch file's pickle, builds nothing of torch.

    Each tensor storage the pickle declares is summed (``storages``) so the caller can
    compare it with the bytes the file holds before torch allocates them."""

    def __init__(self, file: BinaryIO, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.storages: dict[str, int] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = str(module)
        if module == "torch" or module.startswith("torch."):
            return _inert_type(f"{module}.{name}")
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[4], int)
                and isinstance(pid[1], type) and issubclass(pid[1], _Inert)):
            raise _Refused("a persistent id that is not a torch storage")
        if pid[4] < 0:
            raise Bomb(f"a storage of {pid[4]} elements")
        self.storages[str(pid[2])] = pid[4] * _storage_itemsize(pid[1])
        return _Inert()


def _walk_torch_file(path: Path) -> None:
    """Vet a torch file before torch reads it: zip member sizes, the pickle's opcodes, names and
    callables (via :class:`_TorchWalk`), and the storage sizes it declares against the bytes there."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
    if head == _ZIP_MAGIC:
        members = pickle_guard.check_zip(path, size)
        pkl = [n for n in members if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pkl) != 1:
            return  # not torch's layout: torch's reader reports it
        prefix = pkl[0][: -len("data.pkl")]
        with zipfile.ZipFile(path) as z:
            raw = z.read(pkl[0])
        walk = _TorchWalk(io.BytesIO(raw), encoding="latin1")
        walk.load()
        for key, nbytes in walk.storages.items():
            have = members.get(f"{prefix}data/{key}", 0)
            if nbytes > have:
                raise Bomb(f"tensor storage {key!r} declares {nbytes:,} bytes where the archive holds {have:,}")
    elif head[:1] == b"\x80":  # the legacy format: five pickles, then the storages' bytes
        with open(path, "rb") as f:
            loads = [_TorchWalk(f, encoding="latin1") for _ in range(5)]
            for walk in loads:  # each starts where the previous pickle stopped
                walk.load()
        total = sum(loads[3].storages.values())
        if total > size:
            raise Bomb(f"tensor storages declare {total:,} bytes in a {size:,}-byte file")


_GLOBAL_IN_TORCH_MESSAGE = re.compile(r"GLOBAL ([\w.]+)")
# torch's messages suggest turning its safety off; that advice is never passed on.
_UNSAFE_ADVICE = re.compile(r"weights_only|can still be loaded|trust|add_safe_globals|safe_globals", re.I)


def safe_torch_load(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` with numpy arrays and ``argparse.Namespace`` allowed, after
    :func:`_walk_torch_file` vetted the file; errors → DataError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(f"File {path} does not exist.")
    try:
        _walk_torch_file(path)
        with torch.serialization.safe_globals(_torch_safe_globals()), pickle_guard.budget(path.stat().st_size):
            return pickle_guard.plain_arrays(torch.load(path, map_location="cpu", weights_only=True))
    except _Refused as e:
        raise DataError(_refused_message(str(e), path)) from None
    except Bomb as e:
        raise DataError(_bomb_message(str(e), path)) from None
    except pickle.UnpicklingError as e:
        reason = _torch_reason(str(e))
        m = _GLOBAL_IN_TORCH_MESSAGE.search(reason)
        if m:  # torch strips the `builtins.` prefix from the name it reports
            name = m.group(1) if "." in m.group(1) else f"builtins.{m.group(1)}"
            raise DataError(_refused_message(name, path)) from None
        if "unrecognized function" in reason or reason.startswith("Can only"):
            raise DataError(_refused_message(_plain(reason).rstrip("."), path)) from None
        raise DataError(f"Could not read {path} as a torch file: it is truncated or corrupt ({_plain(reason)}).") from None
    except PermissionError:
        raise DataError(f"Could not read {path}: permission denied.") from None
    except Exception as e:  # RuntimeError (bad zip), EOFError, ValueError, ... from a bad file
        raise DataError(
            f"Could not read {path} as a torch file: it is truncated, corrupt or not a torch.save file "
            f"({_plain(_first_line(e))})."
        ) from None


def _plain(reason: str) -> str:
    """torch's reason without its advice to load the file unsafely."""
    if _UNSAFE_ADVICE.search(reason):
        return "its pickle is not one the weights-only loader accepts"
    return reason


def _torch_reason(message: str) -> str:
    """The unpickler's own words from torch's long weights-only message (they follow its first blank line)."""
    m = re.search(r"WeightsUnpickler error: (.+)", message)
    if m and m.group(1).strip():
        return m.group(1).strip()
    parts = [p.strip() for p in message.split("\n\n") if p.strip()]
    body = parts[1] if len(parts) > 1 and parts[0].startswith("Weights only load failed") else message
    lines = [ln.strip() for ln in body.strip().splitlines() if ln.strip()]
    return lines[0] if lines else "unreadable pickle"


@functools.lru_cache(maxsize=1)
def _legacy_torch_prefixes() -> tuple[bytes, ...]:
    return tuple(pickle.dumps(_TORCH_LEGACY_MAGIC, protocol=p) for p in range(2, pickle.HIGHEST_PROTOCOL + 1))


def is_torch_file(path: str | os.PathLike) -> bool:
    """True for a ``torch.save`` file: a zip (torch >= 1.6), the legacy magic-number format, or a tar (oldest)."""
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(_ZIP_MAGIC) or head.startswith(_legacy_torch_prefixes()):
        return True
    if head[:1] != b"\x80":  # a binary pickle starts with PROTO; only then skip the tar probe
        try:
            return tarfile.is_tarfile(path)
        except OSError:
            return False
    return False


def safe_load(path: str | os.PathLike) -> Any:
    """Load a pickle or a ``torch.save`` file (chosen by content, not by name) without running code from it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"File {path} does not exist." if not path.exists() else f"Expected a file at {path}.")
    progress.note(f"reading {path} ({path.stat().st_size / 2**20:,.0f} MiB)")
    try:
        torch_file = is_torch_file(path)
    except OSError as e:
        raise DataError(f"Could not read {path} ({_first_line(e)}).") from None
    if torch_file:
        return safe_torch_load(path)
    return safe_pickle_load(path)
