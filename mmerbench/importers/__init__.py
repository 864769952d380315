"""Weight import: state dicts saved by the authors' code, mapped into our models.

One module per method (``mmerbench/importers/<method>.py``), each registering
one mapping with :func:`register_importer`::

    @register_importer("mult")
    def mult(state: Mapping[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
        ...  # our key -> tensor, for every key of model.state_dict()

A mapping renames keys (and splits, fuses or transposes tensors where the two
codes lay out the same parameters differently); it reads the authors' tensors
as ``state[key]``. :func:`import_weights` then checks that the result covers
every key of our model with the right shape, and says in one sentence which
key does not map. Every key of the authors' state dict must be read by the
mapping or match one of its ``unused`` patterns (modules the authors build but
never call); anything else is an error too.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Mapping
from typing import Callable, Iterable

from mmerbench.errors import MmerbenchError

Mapping_ = Callable[..., dict]
_IMPORTERS: dict[str, tuple[Mapping_, tuple[str, ...]]] = {}
_DISCOVERED = False


class WeightImportError(MmerbenchError):
    """A checkpoint that does not map into our model, said in one sentence."""


def register_importer(name: str, *, unused: Iterable[str] = ()) -> Callable[[Mapping_], Mapping_]:
    """Register ``fn(state, model) -> our state dict`` as the importer of method ``name``.

    ``unused``: regular expressions of the authors' keys that our model has no
    place for on purpose (e.g. a pooler the authors build but never call).
    """

    def wrap(fn: Mapping_) -> Mapping_:
        if name in _IMPORTERS:
            raise ValueError(f"An importer for {name!r} is registered twice.")
        _IMPORTERS[name] = (fn, tuple(unused))
        return fn

    return wrap


def _discover() -> None:
    global _DISCOVERED
    if not _DISCOVERED:
        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
        _DISCOVERED = True


def importable_methods() -> list[str]:
    _discover()
    return sorted(_IMPORTERS)


class _Recorder(Mapping):
    """The authors' state dict, noting which keys a mapping reads."""

    def __init__(self, state: Mapping[str, object]):
        self.state, self.read = state, set()

    def __getitem__(self, key: str):
        value = self.state[key]
        self.read.add(key)
        return value

    def __iter__(self):
        return iter(self.state)

    def __len__(self) -> int:
        return len(self.state)


def import_weights(method: str, state: Mapping[str, object], model) -> dict[str, object]:
    """Our state dict for ``model`` from the authors' ``state``, checked key by key and shape by shape."""
    _discover()
    if method not in _IMPORTERS:
        known = ", ".join(sorted(_IMPORTERS)) or "none"
        raise WeightImportError(f"No importer of the authors' weights for method {method!r} (importers: {known}).")
    fn, unused = _IMPORTERS[method]
    ours = model.state_dict()
    rec = _Recorder(state)
    try:
        mapped = fn(rec, model)
    except KeyError as e:
        raise WeightImportError(f"The checkpoint lacks {e.args[0]!r}, which {method}'s importer needs.") from None
    for key, ref in ours.items():
        if key not in mapped:
            raise WeightImportError(f"{method}: our parameter {key!r} has no counterpart in the checkpoint.")
        got = mapped[key]
        if tuple(got.shape) != tuple(ref.shape):
            raise WeightImportError(f"{method}: {key!r} has shape {tuple(got.shape)} in the checkpoint, "
                                    f"ours is {tuple(ref.shape)}.")
    extra = sorted(set(mapped) - set(ours))
    if extra:
        raise WeightImportError(f"{method}: the importer produced {extra[0]!r}, which our model does not have.")
    left = [k for k in state if k not in rec.read and not any(re.fullmatch(p, k) for p in unused)]
    if left:
        raise WeightImportError(f"{method}: the checkpoint's {left[0]!r} maps to nothing in our model.")
    return mapped
