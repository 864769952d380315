"""Names read from files, and the paths the writers build from them.

A dataset folder is written by anyone, and some of its names (the spec's
name, modality and extra names, split names) become folder and file names in
the cache and the run store. Two lines of defence keep every write inside its
root:

* where a name enters (the spec and reader layer), :func:`check_name` holds
  it to one rule — letters, digits, ``_``, ``.``, ``-``, not starting with a
  dot, at most :data:`MAX_NAME` characters — and :func:`check_distinct`
  refuses names that differ only in case (one file on a case-insensitive
  file system);
* where a path is written (the cache and the run store), :func:`join` takes a
  root and plain names, resolves the result (following symlinks) and refuses
  anything outside the root, so a name that slipped past the first check
  still cannot write elsewhere.

Label names never reach a path (they become metric keys and table headers,
which the renderers escape), so :func:`check_label` is looser: printable
text, any script. Sample ids never reach a path either and are not checked.
"""

from __future__ import annotations

import os
import re
import reprlib
from collections.abc import Iterable
from pathlib import Path

from mmerbench.errors import DataError

MAX_NAME = 100  # well below a file system's 255 bytes, with room for suffixes such as ".mask.npy"
MAX_LABEL = 64
NAME_RULE = f"letters, digits, '_', '.' and '-' only, not starting with '.', at most {MAX_NAME} characters"
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 2, 4, 4


def shown(value: object) -> str:
    """repr() of a value, cut short: an error about a 10,000-character name, or about a YAML alias
    nested to millions of items, stays one readable line (and is never expanded in full)."""
    return _REPR.repr(value)


def is_plain_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= MAX_NAME and _NAME.fullmatch(name) is not None


def check_name(name: object, *, where: str, field: str) -> str:
    """``name`` when it is a plain name; else a DataError naming the file (``where``) and the field."""
    if not is_plain_name(name):
        raise DataError(f"{where}: {field} {shown(name)} is not a plain name ({NAME_RULE}).")
    return name  # type: ignore[return-value]


def check_label(name: object, *, where: str, field: str = "label name") -> str:
    """A label name: printable text of 1 to :data:`MAX_LABEL` characters without surrounding spaces."""
    if (not isinstance(name, str) or not name or len(name) > MAX_LABEL or not name.isprintable()
            or name != name.strip()):
        raise DataError(f"{where}: {field} {shown(name)} is not a label name (printable text of 1 to "
                        f"{MAX_LABEL} characters, no control characters, no leading or trailing spaces).")
    return name


def check_distinct(names: Iterable[str], *, where: str, field: str) -> None:
    """Refuse two names that are equal, or equal but for case (one file on macOS and Windows)."""
    seen: dict[str, str] = {}
    for n in names:
        other = seen.get(n.casefold())
        if other is not None:
            how = "occurs twice" if other == n else f"and {shown(other)} differ only in case"
            raise DataError(f"{where}: {field} {shown(n)} {how}; each must be distinct, ignoring case.")
        seen[n.casefold()] = n


def _is_component(name: object) -> bool:
    return (isinstance(name, str) and name not in ("", ".", "..") and "\x00" not in name and "/" not in name
            and os.sep not in name and (os.altsep is None or os.altsep not in name)
            and len(name.encode("utf-8", "surrogateescape")) <= 255)


def join(root: str | os.PathLike, *names: str) -> Path:
    """``root/names...`` for plain file or folder names, refused (DataError) unless it stays inside ``root``.

    The check resolves the path, so a symlink already inside the root that
    points elsewhere is refused as well. The path returned is not resolved.
    """
    root = Path(root)
    for name in names:
        if not _is_component(name):
            raise DataError(f"Refused to write under {root}: {shown(name)} is not a plain file or folder name.")
    path = root.joinpath(*names)
    check_inside(path, root, action="write")
    return path


def check_inside(path: str | os.PathLike, root: str | os.PathLike, *, action: str = "write") -> None:
    """Refuse (DataError) a path that resolves, symlinks followed, outside ``root``."""
    try:
        inside = Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError, ValueError):  # a symlink loop, say
        inside = False
    if not inside:
        raise DataError(f"Refused to {action} {path}: it resolves outside {root} (through a symlink or '..').")
