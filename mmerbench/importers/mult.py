"""MulT: the authors' ``MULTModel`` (yaohungt/Multimodal-Transformer, ``src/models.py``) into ours.

Their state dict, key by key:

* ``proj_{l,a,v}.weight`` → ``proj.{text,audio,vision}.weight`` (Conv1d, no bias, same shape);
* ``trans_{t}_with_{s}.*`` → ``crossmodal.{t}.{s}.*`` and ``trans_{t}_mem.*`` → ``memory.{t}.*``,
  where inside each encoder a layer's fused ``self_attn.in_proj_weight`` / ``in_proj_bias``
  ([3d, d] / [3d], rows q | k | v) is split into our ``attn.q/k/v``, ``self_attn.out_proj`` is
  ``attn.out``, ``fc1/fc2`` are ``ff1/ff2``, ``layer_norms.0/1`` are ``norm_attn/norm_ff``
  and the encoder's ``layer_norm`` is ``norm``;
* ``proj1``, ``proj2`` and ``out_layer`` → ``proj1``, ``proj2`` and ``out``.

Not read: each encoder's ``version`` buffer and its positional module's ``_float_tensor``
(placeholders, no parameters), and the crossmodal/memory stacks of targets our config does
not build (the authors always build all three memory transformers, also under ``--lonly``).
"""

from __future__ import annotations

import torch

from mmerbench.importers import WeightImportError, register_importer

LETTER = {"text": "l", "audio": "a", "vision": "v"}


def _encoder(state, theirs: str, ours: str, layers: int) -> dict[str, torch.Tensor]:
    found = {int(k.split(".")[2]) for k in state if k.startswith(f"{theirs}.layers.")}
    if found and len(found) != layers:  # the pattern that excuses unbuilt stacks must not hide extra layers
        raise WeightImportError(f"mult: the checkpoint's {theirs} has {len(found)} layers, ours has {layers}.")
    out: dict[str, torch.Tensor] = {}
    for i in range(layers):
        a, b = f"{theirs}.layers.{i}.", f"{ours}.layers.{i}."
        w, bias = state[a + "self_attn.in_proj_weight"], state[a + "self_attn.in_proj_bias"]
        for j, name in enumerate(("q", "k", "v")):
            out[f"{b}attn.{name}.weight"] = w.chunk(3, dim=0)[j]
            out[f"{b}attn.{name}.bias"] = bias.chunk(3, dim=0)[j]
        pairs = {"self_attn.out_proj": "attn.out", "fc1": "ff1", "fc2": "ff2",
                 "layer_norms.0": "norm_attn", "layer_norms.1": "norm_ff"}
        for src, dst in pairs.items():
            for p in ("weight", "bias"):
                out[f"{b}{dst}.{p}"] = state[f"{a}{src}.{p}"]
    for p in ("weight", "bias"):
        out[f"{ours}.norm.{p}"] = state[f"{theirs}.layer_norm.{p}"]
    return out


@register_importer("mult", unused=[r"trans_\w+\.version", r"trans_\w+\.embed_positions\._float_tensor",
                                   r"trans_[lav]_mem\..*", r"trans_[lav]_with_[lav]\..*"])
def mult(state, model) -> dict[str, torch.Tensor]:
    # The two broad patterns above only excuse stacks of targets we do not build: every stack we
    # build is read below, and a key read is never counted as unused.
    out: dict[str, torch.Tensor] = {}
    for m in model.proj:
        out[f"proj.{m}.weight"] = state[f"proj_{LETTER[m]}.weight"]
    n_cross = len(next(iter(next(iter(model.crossmodal.values())).values())).layers)
    for t in model.targets:
        for s in model.crossmodal[t]:
            theirs = f"trans_{LETTER[t]}_with_{LETTER[s]}" if s != t else f"trans_{LETTER[t]}"
            out.update(_encoder(state, theirs, f"crossmodal.{t}.{s}", n_cross))
        out.update(_encoder(state, f"trans_{LETTER[t]}_mem", f"memory.{t}", len(model.memory[t].layers)))
    for theirs, ours in (("proj1", "proj1"), ("proj2", "proj2"), ("out_layer", "out")):
        for p in ("weight", "bias"):
            out[f"{ours}.{p}"] = state[f"{theirs}.{p}"]
    return out
