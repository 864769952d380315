"""Checks made before any work (data read, twin generated, run folder created): each one turns
what would fail minutes later, as a traceback and a half-written run folder, into one sentence now.

* the method can be built at the resolved config (its own checks of allowed values, shapes
  that do not fit), on torch's ``meta`` device: no memory, no initialisation;
* the validation metric ``select`` exists for the dataset's task;
* the run store can be written (nothing is created).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from mmerbench import metrics as metricslib
from mmerbench.errors import MmerbenchError

# Settings that must be above zero wherever a method has them (torch and scikit-learn
# accept some of these at construction and fail only once training starts).
POSITIVE = ("epochs", "batch_size", "lr", "max_iter", "C", "alpha")


def check_config(prep: Any) -> None:
    """Raise one MmerbenchError when the prepared run (``runner.Prepared``) cannot start."""
    method, spec, params = prep.request.method, prep.spec, prep.config["params"]
    for key in POSITIVE:
        value = params.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not value > 0:
            raise MmerbenchError(f"{method!r}: {key!r} must be above 0, but it is {value!r}.")
    if prep.cls.kind != "torch":
        return
    select = str(params.get("select", "loss"))
    if select != "loss":
        try:
            info = metricslib.metric_info(select)
        except (KeyError, ValueError):
            info = None
        if info is None or spec.task not in info.task:
            raise MmerbenchError(f"`select` must be 'loss' or a {spec.task} metric, but got {select!r}.")
    _check_builds(prep)


def _check_builds(prep: Any) -> None:
    import torch

    from mmerbench.runner import build_model

    try:
        with torch.device("meta"):
            build_model(prep, prep.spec)
    except MmerbenchError as e:
        raise MmerbenchError(f"{prep.request.method!r} cannot run this config: {e}") from None
    except Exception as e:  # torch's own checks (a head count that does not divide the width, ...)
        detail = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise MmerbenchError(f"{prep.request.method!r} cannot be built with this config ({detail}); "
                             f"see `mmerbench config show --method {prep.request.method} "
                             f"--dataset {prep.request.dataset}`.") from None


def check_store(root: Path) -> None:
    """The run store can be written: probed in place when it exists, else its nearest existing
    parent must be writable. Nothing is created, so a run refused later leaves no trace."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise MmerbenchError(f"The run store {root} is a file, not a folder; "
                             f"choose another with --runs-dir or $MMERBENCH_RUNS.")
    try:
        if root.is_dir():
            fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=root)
            os.close(fd)
            os.unlink(probe)
        else:
            parent = next(p for p in root.absolute().parents if p.exists())
            if not parent.is_dir():
                raise NotADirectoryError(20, "Not a directory", str(parent))
            os.rmdir(tempfile.mkdtemp(prefix=".write-test.", dir=parent))  # os.access trusts root
    except OSError as e:
        raise MmerbenchError(f"The run store {root} cannot be written ({e.strerror or e}); "
                             f"choose another with --runs-dir or $MMERBENCH_RUNS.") from None
