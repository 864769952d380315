"""UniVA: the authors' ``multimodal_t_a_v_model`` (NUSTM/UniVA, GloVe path) mapped into :class:`~mmerbench.methods.univa.UniVA`.

Accepted: the ``state_dict()`` of their model built by ``main.py`` with
``--text_plm_checkpoint glove`` (their GloVe scripts), as their
``save_checkpoint`` writes it (``best_model_*.pth``: ``{"model": state_dict,
"config": args}``; the caller passes the ``"model"`` entry), with or without a
``module.`` prefix. Their RoBERTa build (``--text_plm_checkpoint roberta-base``)
imports into ours with ``text_encoder`` set to the same checkpoint
(``--preset roberta``): ``text_plm.*`` becomes ``text_model.model.*``,
``text_linear_plm.0`` the text input Linear, and there is no text position
table or text Transformer on either side.

The mapping is a renaming, one tensor for one: per modality the input Linear
(``<m>_linear.0``, ``text_linear_glove.0``), the learned positions, each BERT
layer (self-attention q/k/v, its output dense and LayerNorm, intermediate and
output dense and LayerNorm), the additive attention (``query_vector``, ``P``,
``Q``, ``value``); then ``fc.0``. Their ``label_similar_matrix`` (built only
with ``--labelSimilar_regulari``, a trained parameter there) is not imported:
our M is the fixed matrix of the slides (the method's docstring, choice 7).
Our ``va_stats`` (data-VA standardisation) stay the model's own.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from mmerbench.importers import register_importer

THEIRS = {"text": ("text_linear_glove", "text_utt_level_transformer", "text_attention_mapping"),
          "audio": ("audio_linear", "audio_utt_level_transformer", "audio_attention_mapping"),
          "vision": ("vision_linear", "vision_utt_level_transformer", "vision_attention_mapping")}
LAYER = (("attn.q", "transformer_self_attention.selfatt.query"), ("attn.k", "transformer_self_attention.selfatt.key"),
         ("attn.v", "transformer_self_attention.selfatt.value"), ("attn.out", "transformer_self_attention.dense_norm.dense"),
         ("norm_attn", "transformer_self_attention.dense_norm.LayerNorm"), ("ff1", "intermediate.dense"),
         ("ff2", "output.dense"), ("norm_ff", "output.LayerNorm"))


@register_importer("univa", unused=[r"(module\.)?label_similar_matrix"])
def univa(state: Mapping[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    p = "module." if any(k.startswith("module.") for k in state) else ""
    out: dict[str, torch.Tensor] = {}

    def take(ours: str, theirs: str) -> None:
        out[f"{ours}.weight"], out[f"{ours}.bias"] = state[f"{p}{theirs}.weight"], state[f"{p}{theirs}.bias"]

    plm = getattr(model, "text_model", None) is not None
    if plm:
        prefix = f"{p}text_plm."
        out.update({f"text_model.model.{k[len(prefix):]}": v for k, v in state.items() if k.startswith(prefix)})
    for m in model.modalities:
        linear, encoder, pool = THEIRS[m]
        e = f"encoders.{m}"
        if m == "text" and plm:
            linear = "text_linear_plm"
        take(f"{e}.embed", f"{linear}.0")
        if model.encoders[m].positions is not None:
            out[f"{e}.positions.weight"] = state[f"{p}{encoder}.position_embeddings.weight"]
        for i in range(len(model.encoders[m].layers)):
            for ours, theirs in LAYER:
                take(f"{e}.layers.{i}.{ours}", f"{encoder}.layer.{i}.{theirs}")
        out[f"{e}.pool.query"] = state[f"{p}{pool}.query_vector"]
        for ours, theirs in (("p", "P"), ("q", "Q"), ("v", "value")):
            take(f"{e}.pool.{ours}", f"{pool}.{theirs}")
    take("classifier", "fc.0")
    out["va_stats"] = model.state_dict()["va_stats"].clone()
    return out
