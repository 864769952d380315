"""CARAT: the authors' model (chengzju/CARAT) state dict → :class:`~mmerbench.methods.carat.Carat`.

Accepted: the ``state_dict()`` of their ``CARAT`` model as their training script
saves it (``torch.save(model.state_dict(), ...)``), with or without a
``module.`` prefix, built for text, vision and audio. Their per-modality
modules become our per-modality entries; their fusion layers read the sources
in the order text, vision, audio and ours in the dataset's modality order, so
the fusion weights' input blocks are reordered. Their vision/audio position
tables have 500 rows of which aligned input reads the first ones: we keep as
many rows as ours has. Their queue labels are floats (random at the start,
contrastive class codes once filled): a class code is renumbered to our
modality order, any other entry becomes our "empty" (−1). Unused on purpose: the three BERT poolers (computed,
never reaching scores or loss). The unaligned build's CTC modules are not
mapped (ours has no alignment module).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from mmerbench.importers import register_importer
from mmerbench.importers.robmmr import copy, prefix_of
from mmerbench.importers.tailor import bert_layers

_NAME = {"text": "text", "vision": "visual", "audio": "audio"}
_FUSION = {"audio": "tv2a", "vision": "ta2v", "text": "va2t"}  # the fusion layer that rebuilds each modality
_THEIR_SOURCES = ("text", "vision", "audio")


def queue_labels(labels: torch.Tensor, mods: list[str], c: int) -> torch.Tensor:
    """Their contrastive classes j + C·(2i + absent), i in their modality order, → ours (i in our order);
    anything else (their random start) → −1, our empty slot."""
    k = labels.round().long()
    valid = (labels == labels.round()) & (k >= 0) & (k < 2 * c * len(_THEIR_SOURCES))
    k = k.clamp(0, 2 * c * len(_THEIR_SOURCES) - 1)
    j, q = k % c, k // c
    source, absent = q // 2, q % 2
    ours = torch.tensor([mods.index(s) if s in mods else -1 for s in _THEIR_SOURCES])[source]
    valid &= ours >= 0
    return torch.where(valid, j + c * (2 * ours + absent), torch.full_like(k, -1))


@register_importer("carat", unused=[r"(module\.)?\w+\.pooler\.dense\.(weight|bias)"])
def carat(state: Mapping, model) -> dict:
    p = prefix_of(state)
    mods = model.modalities
    out = {}
    for m in mods:
        n, src, dst = _NAME[m], f"{p}{_NAME[m]}", f"encoders.{m}"
        out.update(copy(state, f"{p}{n}_norm.norm2d", f"input_norms.{m}"))
        out.update(copy(state, f"{src}.embeddings.word_embeddings", f"{dst}.embed"))
        rows = model.encoders[m].positions.weight.shape[0]
        out[f"{dst}.positions.weight"] = state[f"{src}.embeddings.position_embeddings.weight"][:rows]
        out.update(copy(state, f"{src}.embeddings.LayerNorm", f"{dst}.norm"))
        out.update(bert_layers(state, src, dst, len(model.encoders[m].layers)))
        out[f"label_attention.{m}.score.weight"] = state[f"{p}{n}_attention.attention.weight"]
        out.update(copy(state, f"{p}proj_{n}.linear.0", f"projectors.{m}.0"))
        out.update(copy(state, f"{p}proj_{n}.output", f"projectors.{m}.2"))
        out.update(copy(state, f"{p}de_proj_{n}.linear.0", f"decoders.{m}.0"))
        out.update(copy(state, f"{p}de_proj_{n}.output", f"decoders.{m}.2"))
        w = state[f"{p}{_FUSION[m]}.output.weight"]
        d = w.shape[1] // len(_THEIR_SOURCES)
        blocks = {s: w[:, i * d:(i + 1) * d] for i, s in enumerate(_THEIR_SOURCES)}
        out[f"fusion.{m}.weight"] = torch.cat([blocks[s] for s in mods], dim=1)
        out[f"fusion.{m}.bias"] = state[f"{p}{_FUSION[m]}.output.bias"]
    out.update(copy(state, f"{p}agg.linear.0", "aggregator.0"))
    out.update(copy(state, f"{p}agg.output", "aggregator.2"))
    out["classifier"] = torch.stack([state[f"{p}{_NAME[m]}_clf_weight"] for m in mods])
    out["pos_protos"] = torch.stack([state[f"{p}{_NAME[m]}_pos_protos"] for m in mods])
    out["neg_protos"] = torch.stack([state[f"{p}{_NAME[m]}_neg_protos"] for m in mods])
    out["queue"] = state[f"{p}queue"]
    out["queue_label"] = queue_labels(state[f"{p}queue_label"].reshape(-1), mods, model.spec.num_labels)
    out["queue_ptr"] = state[f"{p}queue_ptr"].reshape(())
    return out
