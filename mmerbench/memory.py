"""Fit a training run into a memory budget (``run --max-memory 20GB``).

The runner turns on, in this order, until the estimate fits: nothing; ``checkpoint_layers`` (the same
numbers, about a third more compute); then ``accumulate`` = 2, 4, 8, … micro-batches (with
checkpointing), only where the method's loss is a mean over samples, so that accumulation is exact
(:meth:`Method.accumulation_refusal`). Query-chunked attention needs no choice: it is always on above
its budget (:data:`mmerbench.methods._layers.CHUNK_BUDGET`) and the estimate sees it. The picks
become ordinary config settings (``--set``), so the run is the same run, in the same folder, as one
asking for them by hand; the estimate is written beside them in the run's ``config.yaml``.

The estimate (bytes) is the sum of

* **state**: parameters × 4 bytes × 4 (weights, gradients, two Adam moments);
* **data**: every split as float32 device tensors (the runner copies them once);
* **activations**: the bytes autograd keeps for the backward pass, counted (each storage once) on
  one training forward pass + loss over ``PROBE`` real training samples at the config's
  settings, per sample × the micro-batch size × ``HEADROOM`` for the backward pass's transients;
* **base**: the process itself on CPU (the interpreter, torch and the libraries; 0 on CUDA,
  where the budget is the device's memory).

README ("Memory budget") gives the estimate against the measured peak on two configs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mmerbench.errors import MmerbenchError

PROBE = 2  # samples in the probe forward pass
HEADROOM = 1.5  # backward transients (gradients of activations, one recomputed layer) over what is saved
CPU_BASE = 600 * 2**20  # resident size of a CPU run before its data and model (python, torch, numpy, sklearn)
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str) -> int:
    """'20GB' (10⁹), '20GiB' or '20G' (2³⁰), '512MB', '1.5e9' → bytes; one error sentence otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).upper() if m else None
    import math

    if m is None or unit not in _UNITS or not 0 < float(m.group(1)) * _UNITS[unit] < math.inf:
        raise MmerbenchError(f"Expected a memory size such as 20GB, 16GiB or 512MB, but got {text!r}.")
    return int(float(m.group(1)) * _UNITS[unit])


@dataclass
class Plan:
    checkpoint_layers: bool
    accumulate: int
    estimate: int  # bytes
    budget: int
    parts: dict[str, int] = field(default_factory=dict)

    def overrides(self, params: dict[str, Any]) -> tuple[str, ...]:
        """The picks as `--set` items, for the settings they change."""
        out = []
        if self.checkpoint_layers != bool(params.get("checkpoint_layers", False)):
            out.append(f"checkpoint_layers={'true' if self.checkpoint_layers else 'false'}")
        if self.accumulate != int(params.get("accumulate", 1)):
            out.append(f"accumulate={self.accumulate}")
        return tuple(out)

    def record(self) -> dict[str, Any]:
        gib = 2**30
        return {"max_memory_gib": round(self.budget / gib, 2), "estimate_gib": round(self.estimate / gib, 2),
                "parts_gib": {k: round(v / gib, 3) for k, v in self.parts.items()},
                "checkpoint_layers": self.checkpoint_layers, "accumulate": self.accumulate}


def saved_bytes(model, batch, autocast) -> int:
    """Bytes autograd holds for the backward pass after a training forward + loss (each storage once)."""
    import torch

    seen: dict[int, int] = {}

    def pack(t):
        if t.device.type != "meta":
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast():
        model.loss(batch, model(batch)).total
    return sum(seen.values())


def data_bytes(dataset, modalities) -> int:
    total = 0
    for s in ("train", "valid", "test"):
        split = dataset[s]
        for m in modalities:
            total += split.inputs[m].size * 4 + split.masks[m].size
        total += getattr(split.labels, "size", 0) * 8
    return total


def estimate(prep, dataset, device: str, *, checkpoint: bool, accumulate: int) -> tuple[int, dict[str, int]]:
    """The estimate above for one choice of settings (a probe on real training samples)."""
    import torch

    from mmerbench.data.batching import DeviceSplit
    from mmerbench.methods.base import set_layer_checkpointing
    from mmerbench.runner import autocast_factory, run_dtype

    p = prep.config["params"]
    spec = dataset.spec
    mods = p.get("modalities") or list(spec.modalities)
    torch.manual_seed(0)
    model = prep.cls(spec, **p)
    model.setup(dataset["train"])
    model = model.to(device)
    set_layer_checkpointing(model, checkpoint)
    n_params = sum(t.numel() for t in model.parameters() if t.requires_grad)
    probe = DeviceSplit(spec, dataset["train"], device, mods).take(torch.arange(min(PROBE, len(dataset["train"]))))
    per_sample = saved_bytes(model, probe, autocast_factory(device, run_dtype(prep.config, device))) / len(probe)
    micro = -(-int(p["batch_size"]) // max(1, accumulate))
    parts = {"state": n_params * 16, "data": data_bytes(dataset, mods),
             "activations": int(per_sample * micro * HEADROOM), "base": 0 if device.startswith("cuda") else CPU_BASE}
    return sum(parts.values()), parts


def plan(prep, dataset, device: str, budget: int) -> Plan:
    """The first setting, in the order of the module's docstring, whose estimate fits `budget`."""
    p = prep.config["params"]
    if prep.cls.kind != "torch":
        raise MmerbenchError(f"--max-memory applies to neural methods; {prep.request.method!r} is a baseline.")
    batch = int(p["batch_size"])
    ck0, acc0 = bool(p.get("checkpoint_layers", False)), int(p.get("accumulate", 1))
    with_meta = _exact(prep, dataset.spec)
    tried = []
    acc = acc0
    while True:
        for ck in ([ck0] if ck0 or "checkpoint_layers" not in p else [False, True]):
            est, parts = estimate(prep, dataset, device, checkpoint=ck, accumulate=acc)
            tried.append((est, ck, acc))
            if est <= budget:
                return Plan(ck, acc, est, budget, parts)
        if not with_meta or acc >= batch or "accumulate" not in p:
            break
        acc = min(batch, acc * 2)
    best = min(tried)
    why = "" if with_meta else " (its loss couples the samples of a batch, so it cannot accumulate)"
    raise MmerbenchError(
        f"{prep.request.method!r} at batch size {batch} needs about {best[0] / 2**30:.1f} GiB even with "
        f"checkpoint_layers={str(best[1]).lower()} and accumulate={best[2]}{why}; the budget is "
        f"{budget / 2**30:.1f} GiB: lower --set batch_size or raise --max-memory.")


def _exact(prep, spec) -> bool:
    import torch

    with torch.device("meta"):
        model = prep.cls(spec, **prep.config["params"])
    return model.accumulation_refusal() is None
