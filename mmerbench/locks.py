"""An OS file lock (``fcntl.flock``): held by one process at a time, released by the kernel when it dies."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if absent) for the ``with`` block.

    Yields True once the lock is held. With ``wait=False`` it yields False at once
    when another process holds it (and holds nothing). The lock file stays: removing
    it while another process waits on it would let a third lock a new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # as any file: the umask decides who may lock it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
