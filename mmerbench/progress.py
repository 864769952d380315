"""Progress on stderr for the slow steps a user would otherwise watch in silence: generating a twin,
reading a dataset's files, and the batches of an epoch that takes long.

Off unless a command turns it on (``with showing(True):``), so the library and the tests stay
quiet, and ``-q`` keeps a command quiet. Bars are tqdm's, as the runner's epoch bar.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from typing import Any, Iterator

_ON: contextvars.ContextVar[bool] = contextvars.ContextVar("mmerbench_progress", default=False)

# An epoch's batch bar appears only once the epoch has run this long: short epochs stay one line.
SLOW_EPOCH_S = 10.0


@contextlib.contextmanager
def showing(on: bool) -> Iterator[None]:
    token = _ON.set(bool(on))
    try:
        yield
    finally:
        _ON.reset(token)


def enabled() -> bool:
    return _ON.get()


def bar(total: int | None, desc: str, *, unit: str = "it", delay: float = 0.0, **kwargs: Any):
    """A tqdm bar on stderr; a disabled (silent, still countable) one when progress is off."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, delay=delay, leave=False, file=sys.stderr,
                disable=not enabled(), dynamic_ncols=True, **kwargs)


def note(line: str) -> None:
    """One line on stderr when progress is on (a step with no count to show, e.g. reading one file)."""
    if enabled():
        print(line, file=sys.stderr, flush=True)
