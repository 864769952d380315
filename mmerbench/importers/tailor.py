"""TAILOR: the authors' model (kniter1/TAILOR) state dict → :class:`~mmerbench.methods.tailor.Tailor`.

Accepted: the ``state_dict()`` of their ``TAILOR`` model, as their training
script saves it (``torch.save(model.state_dict(), ...)``), with or without a
``module.`` prefix (``DistributedDataParallel``). Their BERT-style layers map
one to one onto ours; their label read-out, one ``Linear(d, 1)`` shared by all
labels, is copied into each row of our per-label read-out (the same function);
their discriminator's output rows are reordered to our modality classes.
Unused on purpose: the six BERT poolers, computed but never reaching the
scores or the loss. Build our model with ``cme_argument_order: code`` to
compute what their code computes (see :mod:`mmerbench.methods.tailor`).
The unaligned build's CTC modules are not mapped (our aligner differs).
"""

from __future__ import annotations

from collections.abc import Mapping

from mmerbench.importers import register_importer
from mmerbench.importers.robmmr import copy, prefix_of

_ENCODERS = {"text": "bert", "vision": "visual", "audio": "audio"}
_PRIVATE = {"text": 0, "vision": 1, "audio": 2}  # their private_feature_extractor order
_THEIR_CLASS = _PRIVATE  # and their discriminator's modality classes
_CROSS = ("va_cross", "vat_cross", "pc_cross")  # Eq. 8's three CMEs, in order


def attention(state: Mapping, src: str, dst: str, out: str) -> dict:
    """BERT's query/key/value + output dense → our ``q/k/v/out``."""
    mapped = {}
    for theirs, ours in (("query", "q"), ("key", "k"), ("value", "v")):
        mapped.update(copy(state, f"{src}.{theirs}", f"{dst}.{ours}"))
    mapped.update(copy(state, out, f"{dst}.out"))
    return mapped


def bert_layers(state: Mapping, src: str, dst: str, layers: int) -> dict:
    out = {}
    for i in range(layers):
        s, d = f"{src}.encoder.layer.{i}", f"{dst}.layers.{i}"
        out.update(attention(state, f"{s}.attention.self", f"{d}.attn", f"{s}.attention.output.dense"))
        out.update(copy(state, f"{s}.attention.output.LayerNorm", f"{d}.norm_attn"))
        out.update(copy(state, f"{s}.intermediate.dense", f"{d}.ff1"))
        out.update(copy(state, f"{s}.output.dense", f"{d}.ff2"))
        out.update(copy(state, f"{s}.output.LayerNorm", f"{d}.norm_ff"))
    return out


@register_importer("tailor", unused=[r"(module\.)?\w+\.pooler\.dense\.(weight|bias)"])
def tailor(state: Mapping, model) -> dict:
    p = prefix_of(state)
    out = {}
    for m, name in _ENCODERS.items():
        src, dst = f"{p}{name}", f"encoders.{m}"
        short = {"text": "text", "vision": "visual", "audio": "audio"}[m]
        out.update(copy(state, f"{p}{short}_norm.{short}_norm2d", f"input_norms.{m}"))
        out.update(copy(state, f"{src}.embeddings.word_embeddings", f"{dst}.embed"))
        out[f"{dst}.positions.weight"] = state[f"{src}.embeddings.position_embeddings.weight"]
        out.update(copy(state, f"{src}.embeddings.LayerNorm", f"{dst}.norm"))
        out.update(bert_layers(state, src, dst, len(model.encoders[m].layers)))
        out.update(copy(state, f"{p}private_feature_extractor.{_PRIVATE[m]}.0", f"amr.private.{m}.0"))
    out.update(copy(state, f"{p}common_feature_extractor.0", "amr.common.0"))
    if model.amr.discriminator is not None:
        out.update(copy(state, f"{p}modal_discriminator.0", "amr.discriminator.0"))
        # Their modality classes are text 0, vision 1, audio 2; ours Eq. 3's vision 0, audio 1, text 2.
        rows = [_THEIR_CLASS[m] for m in ("vision", "audio", "text")]
        for n in ("weight", "bias"):
            out[f"amr.discriminator.3.{n}"] = state[f"{p}modal_discriminator.3.{n}"][rows]
    if model.amr.classifier is not None:
        out.update(copy(state, f"{p}common_classfier.0", "amr.classifier"))
    for i, name in enumerate(_CROSS[-len(model.cross):]):
        src, dst = f"{p}{name}", f"cross.{i}"
        out[f"{dst}.positions.weight"] = state[f"{src}.embeddings.position_embeddings.weight"]
        if model.cross[i].token_types is not None:
            out[f"{dst}.token_types.weight"] = state[f"{src}.embeddings.token_type_embeddings.weight"]
        out.update(copy(state, f"{src}.embeddings.LayerNorm", f"{dst}.norm"))
        out.update(bert_layers(state, src, dst, len(model.cross[i].layers)))
    dec, s = f"{p}decoder", f"{p}decoder.decoder.layer.0"
    out["decoder.labels.weight"] = state[f"{dec}.embeddings.word_embeddings.weight"]
    out.update(copy(state, f"{dec}.embeddings.LayerNorm", "decoder.label_norm"))
    out.update(attention(state, f"{s}.slf_attn.att", "decoder.self_attn", f"{s}.slf_attn.output.dense"))
    out.update(copy(state, f"{s}.slf_attn.output.LayerNorm", "decoder.self_norm"))
    out.update(attention(state, f"{s}.enc_attn.att", "decoder.cross_attn", f"{s}.enc_attn.output.dense"))
    out.update(copy(state, f"{s}.enc_attn.output.LayerNorm", "decoder.cross_norm"))
    out.update(copy(state, f"{s}.intermediate.dense", "decoder.ff1"))
    out.update(copy(state, f"{s}.output.dense", "decoder.ff2"))
    out.update(copy(state, f"{s}.output.LayerNorm", "decoder.ff_norm"))
    labels = model.decoder.head_weight.shape[0]
    out["decoder.head_weight"] = state[f"{p}cross_classifier.dense.weight"].expand(labels, -1).clone()
    out["decoder.head_bias"] = state[f"{p}cross_classifier.dense.bias"].expand(labels).clone()
    return out
