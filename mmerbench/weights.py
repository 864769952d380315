"""Reading a weights file without running code from it: the state dict inside, whatever the wrapping.

Accepted (all through ``torch.load(weights_only=True)``, never a plain unpickler):

* a state dict, as ``torch.save(model.state_dict(), path)`` writes it (MISA's ``.std`` files);
* a dict holding one under ``model``, ``state_dict`` or ``model_state_dict`` (our ``model.pt``,
  the usual training-loop checkpoints);
* a whole pickled module, as ``torch.save(model, path)`` writes it (MulT's ``pre_trained_models``).
  Its classes are not imported: every class the file names is replaced by an inert stand-in that
  only keeps the attributes the file stores, and the parameters and persistent buffers are read
  from those, under the names ``model.state_dict()`` would give them.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmerbench.errors import MmerbenchError

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")


class WeightsFileError(MmerbenchError):
    """A weights file that is missing, unreadable or holds no state dict."""


class _Stub:
    """Stands in for a class a pickled module names; holds its attributes, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_tensor_dict(obj: Any) -> bool:
    import torch

    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _module_state(obj: Any, prefix: str = "") -> dict[str, Any]:
    """A stand-in module's parameters and persistent buffers, keyed as ``state_dict()`` keys them."""
    import torch

    out: dict[str, Any] = {}
    d = getattr(obj, "__dict__", {})
    skip = d.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, t in (d.get(group) or {}).items():
            if isinstance(t, torch.Tensor) and not (group == "_buffers" and name in skip):
                out[prefix + name] = t.detach()
    for name, child in (d.get("_modules") or {}).items():
        if child is not None:
            out.update(_module_state(child, f"{prefix}{name}."))
    return out


def _load(path: Path, stubs: list[tuple[type, str]]) -> Any:
    import torch

    with torch.serialization.safe_globals(stubs):
        return torch.load(path, map_location="cpu", weights_only=True)


def load_state_dict(path: str | os.PathLike) -> "OrderedDict[str, Any]":
    """The state dict in ``path`` (see the module docstring for the formats); one-sentence errors."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"Weights file {path} does not exist." if not path.exists()
                               else f"Expected a weights file at {path}, found a folder.")
    try:
        try:
            obj = _load(path, [])
        except pickle.UnpicklingError:
            # A whole pickled module: stand-ins for exactly the classes the file names.
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            stubs = [(type(n.rsplit(".", 1)[-1], (_Stub,), {}), n) for n in names]
            obj = _load(path, stubs)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, AttributeError, TypeError) as e:
        from mmerbench.data.safe_pickle import _torch_reason

        reason = _torch_reason(str(e)) if str(e).strip() else type(e).__name__
        raise WeightsFileError(f"Could not read {path} as a torch.save file ({reason.rstrip('.')[:200]}).") from None
    if isinstance(obj, _Stub):
        state = _module_state(obj)
    elif _is_tensor_dict(obj):
        state = dict(obj)
    elif isinstance(obj, Mapping) and any(_is_tensor_dict(obj.get(k)) for k in WRAPPER_KEYS):
        state = dict(next(obj[k] for k in WRAPPER_KEYS if _is_tensor_dict(obj.get(k))))
    else:
        raise WeightsFileError(f"{path} holds no state dict (a {type(obj).__name__}; expected tensors by name, "
                               f"a dict with one under {', '.join(WRAPPER_KEYS)}, or a pickled module).")
    if not state:
        raise WeightsFileError(f"{path} holds a module without parameters.")
    return OrderedDict(state)
