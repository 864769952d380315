"""RobMMR: the authors' ``MMERModel`` (ShipingGe/MMER) state dict → :class:`~mmerbench.methods.robmmr.RobMMR`.

Accepted: the ``state_dict()`` their training script saves (``torch.save`` of
the bare model's state dict), with or without the ``module.`` prefix that
``DataParallel`` adds. The model must be built with ``decoder_norm: true``:
their emotion decoder ends with a LayerNorm that ours leaves out by default.

Their ``src1/src2/src3`` inputs are text (300), vision (35) and audio (74);
their attention layers keep query, key and value in one fused ``in_proj``
matrix, split here into our three projections. Nothing is left unused: every
tensor they save is called in their forward pass.
"""

from __future__ import annotations

from collections.abc import Mapping

from mmerbench.importers import WeightImportError, register_importer

_MODALITY = {"text": ("src1_linear", "text_base_encoder", "text_scorer_net"),
             "vision": ("src2_linear", "video_base_encoder", "video_scorer_net"),
             "audio": ("src3_linear", "audio_base_encoder", "audio_scorer_net")}


def prefix_of(state: Mapping) -> str:
    """``module.`` when the checkpoint was saved from a ``DataParallel`` wrapper."""
    return "module." if any(str(k).startswith("module.") for k in state) else ""


def attention(state: Mapping, src: str, dst: str) -> dict:
    """torch ``nn.MultiheadAttention`` (fused in_proj) → our ``q/k/v/out`` linears."""
    w, b = state[f"{src}.in_proj_weight"], state[f"{src}.in_proj_bias"]
    out = {}
    for i, name in enumerate(("q", "k", "v")):
        n = w.shape[0] // 3
        out[f"{dst}.{name}.weight"] = w[i * n:(i + 1) * n]
        out[f"{dst}.{name}.bias"] = b[i * n:(i + 1) * n]
    out[f"{dst}.out.weight"] = state[f"{src}.out_proj.weight"]
    out[f"{dst}.out.bias"] = state[f"{src}.out_proj.bias"]
    return out


def copy(state: Mapping, src: str, dst: str, names=("weight", "bias")) -> dict:
    return {f"{dst}.{n}": state[f"{src}.{n}"] for n in names}


def encoder(state: Mapping, src: str, dst: str, layers: int) -> dict:
    """Their post-LN encoder stack + final norm → our :class:`SequenceEncoder`."""
    out = copy(state, f"{src}.norm", f"{dst}.norm")
    for i in range(layers):
        s, d = f"{src}.layers.{i}", f"{dst}.layers.{i}"
        out.update(attention(state, f"{s}.self_attn", f"{d}.attn"))
        out.update(copy(state, f"{s}.linear1", f"{d}.ff1"))
        out.update(copy(state, f"{s}.linear2", f"{d}.ff2"))
        out.update(copy(state, f"{s}.norm1", f"{d}.norm_attn"))
        out.update(copy(state, f"{s}.norm2", f"{d}.norm_ff"))
    return out


def _layers(model_keys, prefix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in model_keys if k.startswith(prefix)})


@register_importer("robmmr")
def robmmr(state: Mapping, model) -> dict:
    p = prefix_of(state)
    ours = model.state_dict()
    if f"{p}emotion_decoder.norm.weight" in state and "decoder.norm.weight" not in ours:
        raise WeightImportError("robmmr: the checkpoint's emotion decoder ends with a LayerNorm; "
                                "build our model with `decoder_norm: true` to import it.")
    out = {}
    for m in model.modalities:
        lin, enc, scorer = _MODALITY[m]
        out.update(copy(state, f"{p}{lin}.0", f"embed.{m}.0"))
        out.update(copy(state, f"{p}{lin}.1", f"embed.{m}.1"))
        out.update(encoder(state, f"{p}{enc}", f"encoders.{m}", _layers(ours, f"encoders.{m}.layers.")))
        if model.scorers is not None:
            out.update(copy(state, f"{p}{scorer}.0", f"scorers.{m}"))
    out.update(encoder(state, f"{p}tri_modal_encoder", "trimodal", _layers(ours, "trimodal.layers.")))
    dec = f"{p}emotion_decoder"
    out["decoder.queries.weight"] = state[f"{dec}.emotion_queries.weight"]
    for i in range(_layers(ours, "decoder.layers.")):
        s, d = f"{dec}.layers.{i}", f"decoder.layers.{i}"
        out.update(attention(state, f"{s}.self_attn", f"{d}.self"))
        out.update(copy(state, f"{s}.norm1", f"{d}.self_norm"))
        out.update(attention(state, f"{s}.multihead_attn", f"{d}.cross"))
        out.update(copy(state, f"{s}.norm2", f"{d}.cross_norm"))
        out.update(copy(state, f"{s}.linear1", f"{d}.ff.0"))
        out.update(copy(state, f"{s}.linear2", f"{d}.ff.3"))
        out.update(copy(state, f"{s}.norm3", f"{d}.ff_norm"))
    if "decoder.norm.weight" in ours:
        out.update(copy(state, f"{dec}.norm", "decoder.norm"))
    out.update(copy(state, f"{dec}.classifier.0", "decoder.head"))
    return out
