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

numpy 1.x pickles name ``numpy.core.multiarray._reconstruct``; numpy 2 moved
the module to ``numpy._core``. Both spellings resolve to numpy 2's objects,
and ``numpy.core`` is never imported (it only warns in numpy 2).
"""

from __future__ import annotations

import _compat_pickle
import argparse
import codecs
import collections
import copyreg
import functools
import os
import pickle
import re
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mmerbench.errors import DataError

__all__ = ["SafeUnpickler", "safe_load", "safe_pickle_load", "safe_torch_load"]

# torch's legacy (pre-zip) format starts with this number, pickled on its own.
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_ZIP_MAGIC = b"PK\x03\x04"
_TEXT_ENCODINGS = {"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "l1", "utf-8", "utf8", "ascii"}


class _Refused(Exception):
    """Raised inside the unpickler for a global that is not allowed (carries the dotted name)."""


def _encode_text(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` limited to str → bytes with a text encoding (how protocol-2 pickles store bytes)."""
    if not isinstance(obj, str) or str(encoding).lower() not in _TEXT_ENCODINGS or errors != "strict":
        raise _Refused(f"_codecs.encode({type(obj).__name__}, {encoding!r})")
    return codecs.encode(obj, encoding)


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
            "builtins.set": set,
            "builtins.frozenset": frozenset,
            "builtins.complex": complex,
            "builtins.slice": slice,
            "builtins.range": range,
            "builtins.bytearray": bytearray,
            "builtins.object": object,  # the base class argument of copyreg._reconstructor
            # Protocol 0/1 pickles rebuild plain objects (e.g. a Namespace) with this;
            # it only calls __new__ of a class that itself had to pass this list.
            "copyreg._reconstructor": copyreg._reconstructor,
            "_codecs.encode": _encode_text,
        }
    )
    return out


class SafeUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only the names in :func:`allowed_globals`."""

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
    # `_codecs.encode`, OrderedDict and set; its NEWOBJ/BUILD checks also need
    # the dtype classes (a dtype's type is e.g. numpy.dtypes.Float32DType).
    pairs = [(obj, name) for name, obj in _numpy_globals().items()]
    pairs += [(argparse.Namespace, "argparse.Namespace"), (frozenset, "builtins.frozenset"),
              (slice, "builtins.slice"), (range, "builtins.range")]
    return pairs


_GLOBAL_IN_TORCH_MESSAGE = re.compile(r"GLOBAL ([\w.]+)")


def safe_torch_load(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` with numpy arrays and ``argparse.Namespace`` allowed; errors → DataError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(f"File {path} does not exist.")
    try:
        with torch.serialization.safe_globals(_torch_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _torch_reason(str(e))
        m = _GLOBAL_IN_TORCH_MESSAGE.search(reason)
        if m:  # torch strips the `builtins.` prefix from the name it reports
            name = m.group(1) if "." in m.group(1) else f"builtins.{m.group(1)}"
            raise DataError(_refused_message(name, path)) from None
        if "unrecognized function" in reason or reason.startswith("Can only"):
            raise DataError(_refused_message(reason.rstrip("."), path)) from None
        raise DataError(f"Could not read {path} as a torch file: it is truncated or corrupt ({reason}).") from None
    except PermissionError:
        raise DataError(f"Could not read {path}: permission denied.") from None
    except Exception as e:  # RuntimeError (bad zip), EOFError, ValueError, ... from a bad file
        raise DataError(
            f"Could not read {path} as a torch file: it is truncated, corrupt or not a torch.save file "
            f"({_first_line(e)})."
        ) from None


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
    try:
        torch_file = is_torch_file(path)
    except OSError as e:
        raise DataError(f"Could not read {path} ({_first_line(e)}).") from None
    if torch_file:
        return safe_torch_load(path)
    return safe_pickle_load(path)
