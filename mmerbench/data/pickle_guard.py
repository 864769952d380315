"""Bounds on what a pickle file can make the reader allocate, checked before allocating.

Refusing foreign code is not enough: the C unpickler allocates a counted
string (``BINBYTES8``, ``BYTEARRAY8``, ``FRAME``, ...) at its declared length
before reading it, grows its memo table to the largest index a ``PUT`` names,
and an allowed callable such as ``bytearray(2_000_000_000)`` or
``set(range(10**9))`` does the rest. A file of 33 bytes could ask for 2 GB.
So, before the real unpickler sees a file:

* :func:`scan` walks the opcodes without building anything (counted payloads
  are skipped with a seek, not read) and refuses a declared length longer than
  the rest of the file, or a memo index beyond the entries written so far
  (picklers number them densely);
* the allow-listed callables that build something from their arguments are
  replaced by checked versions (:func:`guarded_globals`): buffers only from
  bytes or text, sets only from a list or tuple, numpy's ``_reconstruct`` only
  up to a size the file could have carried, and every copy is charged to a
  per-load budget derived from the file's size (:func:`budget`);
* :func:`check_zip` refuses a zip (a ``torch.save`` file) whose members
  declare more uncompressed bytes than the archive holds; torch stores its
  members uncompressed, and its reader allocates the declared size.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import io
import math
import mmap
import pickletools
import zipfile
from typing import Any, BinaryIO, Iterator

import numpy as np

__all__ = ["NDARRAY", "readable_buffer", "TEXT_ENCODINGS", "Bomb", "budget", "charge", "check_zip", "guarded_globals", "scan"]

TEXT_ENCODINGS = {"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "l1", "utf-8", "utf8", "ascii"}

# Room for the small objects any pickle builds (dict keys, tiny arrays) beyond its own size.
_SLACK = 1 << 20
_MAX_DIMS = 64  # numpy's limit; also keeps a hostile `range` shape from being iterated


class Bomb(Exception):
    """A file asks for more memory than its size allows (carries the reason)."""


# ---------------------------------------------------------------------------- opcode scan

# Per opcode byte: how to step over its argument (no argument, fixed width, one or two
# text lines, or a length-prefixed payload) and whether it writes the memo.
_NONE, _FIXED, _LINE, _LINES2, _COUNTED, _STOP, _MEMOIZE = range(7)
_COUNT_WIDTH = {
    pickletools.TAKEN_FROM_ARGUMENT1: (1, False),
    pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
    pickletools.TAKEN_FROM_ARGUMENT4U: (4, False),
    pickletools.TAKEN_FROM_ARGUMENT8U: (8, False),
}


def _op_table() -> list[tuple | None]:
    table: list[tuple | None] = [None] * 256
    for op in pickletools.opcodes:
        arg, name = op.arg, op.name
        if name == "STOP":
            kind: tuple = (_STOP,)
        elif name == "MEMOIZE":
            kind = (_MEMOIZE,)
        elif arg is None:
            kind = (_NONE,)
        elif arg.n >= 0:
            kind = (_FIXED, arg.n, name)
        elif arg.n == pickletools.UP_TO_NEWLINE:
            kind = (_LINES2 if arg.name == "stringnl_noescape_pair" else _LINE, name)
        else:
            kind = (_COUNTED, *_COUNT_WIDTH[arg.n], name)
        table[ord(op.code)] = kind
    return table


_TABLE = _op_table()
_MEMO_PUT = {"BINPUT", "LONG_BINPUT"}


def scan(buf: Any, pos: int, end: int) -> int:
    """Walk one pickle in ``buf`` (bytes or an mmap) from ``pos`` to its STOP; returns the position after it.

    Raises :class:`Bomb` for a declared length past ``end`` or a memo index out of
    sequence; leaves anything else (unknown opcodes, truncation) to the real
    unpickler, which reports it. Payloads are stepped over, never copied.
    """
    memo = 0
    table = _TABLE
    while pos < end:
        kind = table[buf[pos]]
        pos += 1
        if kind is None:  # not an opcode: the unpickler will say so
            return pos
        k = kind[0]
        if k == _NONE:
            continue
        if k == _COUNTED:
            width, signed, name = kind[1], kind[2], kind[3]
            n = int.from_bytes(buf[pos:pos + width], "little", signed=signed)
            pos += width
            if n < 0 or n > end - pos:
                raise Bomb(f"a {name} opcode declares {n:,} bytes with only {max(end - pos, 0):,} left in the file")
            pos += n
        elif k == _FIXED:
            width, name = kind[1], kind[2]
            if name == "FRAME" or name in _MEMO_PUT:
                n = int.from_bytes(buf[pos:pos + width], "little")
                if name == "FRAME" and n > end - pos - width:
                    raise Bomb(f"a FRAME opcode declares {n:,} bytes with only {max(end - pos - width, 0):,} "
                               "left in the file")
                if name != "FRAME":
                    memo = _check_memo(n, memo)
            pos += width
        elif k == _LINE or k == _LINES2:
            nl = buf.find(b"\n", pos, end)
            if nl < 0:
                return end
            if kind[1] == "PUT":
                try:
                    memo = _check_memo(int(buf[pos:nl]), memo)
                except ValueError:
                    return end
            pos = nl + 1
            if k == _LINES2:
                nl = buf.find(b"\n", pos, end)
                pos = end if nl < 0 else nl + 1
        elif k == _MEMOIZE:
            memo += 1
        else:  # STOP
            return pos
    return pos


def readable_buffer(f: BinaryIO) -> Any:
    """The whole stream as a buffer to scan: a read-only mmap of a real file, else its bytes."""
    try:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):  # BytesIO, empty file, a pipe
        pos = f.tell()
        f.seek(0)
        data = f.read()
        f.seek(pos)
        return data


def _check_memo(index: int, count: int) -> int:
    if index > count:
        raise Bomb(f"a memo index of {index:,} where {count:,} entries were written")
    return max(count, index + 1)


# ---------------------------------------------------------------------------- per-load budget

_BUDGET: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("pickle_budget", default=None)


@contextlib.contextmanager
def budget(file_bytes: int) -> Iterator[None]:
    """Bound the bytes the guarded callables may build during one load by the file's size."""
    token = _BUDGET.set([2 * max(int(file_bytes), 0) + _SLACK, 0])  # [bytes left, checked arrays made]
    try:
        yield
    finally:
        _BUDGET.reset(token)


def charge(n: int, what: str) -> None:
    left = _BUDGET.get()
    if left is None:  # a guarded callable used outside a load: bound each call by the slack alone
        left = [_SLACK, 0]
    if n > left[0]:
        raise Bomb(f"{what} asks for {n:,} bytes, more than a file of this size can describe")
    left[0] -= n


# ---------------------------------------------------------------------------- checked callables


def _buffer_source(args: tuple, name: str) -> bytes:
    """What bytes()/bytearray() may be built from in a pickle: nothing, bytes, or text with its encoding."""
    if not args:
        return b""
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytes(args[0])
    if len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], str):
        if args[1].lower() in TEXT_ENCODINGS:
            return codecs.encode(args[0], args[1])
    kinds = ", ".join(type(a).__name__ for a in args)
    raise Bomb(f"{name}({kinds}) is not how a pickle stores {name} data")


def safe_bytearray(*args: Any) -> bytearray:
    """``bytearray`` from bytes or text only (never a size or an iterable)."""
    data = _buffer_source(args, "bytearray")
    charge(len(data), "bytearray")
    return bytearray(data)


def safe_bytes(*args: Any) -> bytes:
    """``bytes`` as protocol-2 pickles call it (``bytes()`` for an empty value, or from text)."""
    data = _buffer_source(args, "bytes")
    charge(len(data), "bytes")
    return data


def _items(args: tuple, name: str) -> tuple:
    if not args:
        return ()
    if len(args) == 1 and isinstance(args[0], (list, tuple, set, frozenset)):
        charge(len(args[0]), name)
        return tuple(args[0])
    raise Bomb(f"{name}({', '.join(type(a).__name__ for a in args)}) is not how a pickle stores a {name}")


def safe_set(*args: Any) -> set:
    """``set`` from a list or tuple the file spelled out (never a ``range`` or other lazy iterable)."""
    return set(_items(args, "set"))


def safe_frozenset(*args: Any) -> frozenset:
    return frozenset(_items(args, "frozenset"))


def _nbytes(shape: Any, dtype: Any) -> int:
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, tuple) or len(shape) > _MAX_DIMS or not all(isinstance(d, int) for d in shape):
        raise Bomb(f"an array shape of type {type(shape).__name__} is not how numpy pickles a shape")
    if any(d < 0 for d in shape):
        raise Bomb(f"an array shape {shape} has a negative dimension")
    return math.prod(shape) * np.dtype(dtype).itemsize


class _NdarrayName:
    """What ``numpy.ndarray`` resolves to in a plain pickle: an argument for ``_reconstruct`` only.

    Handing out the class itself would let ``NEWOBJ`` call ``ndarray.__new__(ndarray, shape)``,
    which allocates any shape the file names."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


NDARRAY = _NdarrayName()


class CheckedArray(np.ndarray):
    """What ``_reconstruct`` returns until the load ends: an ndarray whose ``__setstate__`` (the
    pickle's BUILD) refuses an object array whose value list does not match its shape. numpy's
    own ``__setstate__`` does not check: it reads past the end of a short list, into memory it
    does not own, which can crash the process. :func:`plain_arrays` turns these back into plain
    ndarrays."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) in (4, 5):
            shape, dtype, data = state[-4], state[-3], state[-1]
            if isinstance(dtype, np.dtype) and dtype.hasobject:
                n = math.prod(shape) if isinstance(shape, tuple) else -1
                if not isinstance(data, list) or len(data) != n:
                    have = f"{len(data)} values" if isinstance(data, list) else type(data).__name__
                    raise Bomb(f"an object array of shape {shape} holds {have}")
        super().__setstate__(state)


def safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` (an empty array that BUILD then fills), limited to plain ndarrays of a bounded size."""
    if subtype is not np.ndarray and subtype is not NDARRAY:
        raise Bomb(f"numpy _reconstruct of {getattr(subtype, '__name__', type(subtype).__name__)}")
    charge(_nbytes(shape, dtype), "numpy _reconstruct")
    state = _BUDGET.get()
    if state is not None:
        state[1] += 1
    return np._core.multiarray._reconstruct(CheckedArray, shape, dtype)


def plain_arrays(obj: Any) -> Any:
    """``obj`` with every :class:`CheckedArray` inside it (containers, object arrays) made a plain ndarray view."""
    import argparse

    state = _BUDGET.get()
    if state is not None and state[1] == 0:  # this load made no array: nothing to walk
        return obj
    kinds = (np.ndarray, dict, list, tuple, argparse.Namespace)

    def plain(v: Any) -> Any:
        if isinstance(v, CheckedArray):  # one view per array, so objects the file shares stay shared
            v = views.setdefault(id(v), (v, v.view(np.ndarray)))[1]
        if isinstance(v, tuple) and type(v) is tuple:
            return tuple(plain(x) for x in v) if any(_holds_arrays(x) for x in v) else v
        if isinstance(v, (dict, list, np.ndarray, argparse.Namespace)) and id(v) not in seen:
            seen.add(id(v))
            stack.append(v)
        return v

    def _holds_arrays(v: Any) -> bool:
        return isinstance(v, (np.ndarray, dict, list, tuple, argparse.Namespace))

    seen: set[int] = set()
    views: dict[int, tuple[CheckedArray, np.ndarray]] = {}  # keeps the key's array alive while its id is used
    stack: list[Any] = []
    top = plain(obj)
    while stack:  # iterative: a hostile file may nest deeper than the recursion limit
        c = stack.pop()
        if isinstance(c, dict):
            for k, x in list(c.items()):
                if isinstance(x, kinds):
                    c[k] = plain(x)
        elif isinstance(c, list):
            for i, x in enumerate(c):
                if isinstance(x, kinds):
                    c[i] = plain(x)
        elif isinstance(c, argparse.Namespace):
            for k, x in vars(c).items():
                setattr(c, k, plain(x))
        elif c.dtype.hasobject and c.dtype.fields is None:
            flat = c.reshape(-1) if c.flags.c_contiguous else None
            if flat is not None:
                for i in range(flat.size):
                    flat[i] = plain(flat[i])
    return top


def safe_scalar(dtype: Any, *args: Any) -> Any:
    charge(np.dtype(dtype).itemsize, "numpy scalar")
    return np._core.multiarray.scalar(dtype, *args)


def guarded_globals() -> dict[str, Any]:
    """``module.name`` → checked callable, replacing the unchecked ones an allow-list would hand out."""
    out: dict[str, Any] = {
        "builtins.bytearray": safe_bytearray,
        "builtins.bytes": safe_bytes,
        "builtins.set": safe_set,
        "builtins.frozenset": safe_frozenset,
        "copyreg._reconstructor": safe_reconstructor,
    }
    for pkg in ("numpy.core", "numpy._core"):
        for mod in ("multiarray", "_multiarray_umath"):
            out[f"{pkg}.{mod}._reconstruct"] = safe_reconstruct
            out[f"{pkg}.{mod}.scalar"] = safe_scalar
    return out


# ---------------------------------------------------------------------------- zip archives


def check_zip(path: Any, size: int) -> dict[str, int]:
    """Each member's declared uncompressed size (refusing totals beyond the archive's ``size``)."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return {}  # not a readable zip: torch's own reader reports it
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > size or total > size:
            raise Bomb(f"zip member {info.filename!r} declares {info.file_size:,} bytes uncompressed "
                       f"in a {size:,}-byte file")
    return {info.filename: info.file_size for info in infos}


def safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` for plain objects only (base ``object``, as protocol 0/1 pickles a Namespace).

    Any other base would call ``base.__new__``/``__init__`` with the file's state (e.g. an ndarray shape)."""
    if base is not object or not isinstance(cls, type):
        raise Bomb(f"copyreg._reconstructor with base {getattr(base, '__name__', repr(base))}")
    import copyreg

    return copyreg._reconstructor(cls, object, None)
