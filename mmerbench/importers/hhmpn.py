"""HHMPN: the authors' ``LAMP`` model (MANLP-suda/HHMPN) mapped into :class:`~mmerbench.methods.hhmpn.HHMPN`.

Accepted: the ``state_dict()`` of their ``LAMP`` built by ``main.py`` with
``-encoder graph -decoder graph`` (their ``begin.sh``), as saved by their
``utils.save_model`` (``model.chkpt``: ``{"model": state_dict, "settings", "epoch"}``;
the caller passes the ``"model"`` entry), with or without the ``module.``
prefix ``nn.DataParallel`` adds.

What the mapping does:

* Their MulT encoder: ``in_proj_weight``/``in_proj_bias`` split into our q, k,
  v; their one pre-LayerNorm per attention block, which normalises queries and
  keys alike, fills both our query and key LayerNorms.
* Their MulT hands the text-named head the vision memory, the audio-named head
  the text memory and the vision-named head the audio memory, and feeds those
  outputs to the decoders named text, visual and audio (``multran.py``). Ours
  keeps one modality per branch, so each of their modules goes where ours
  computes the same thing: our text branch takes their text memory, their
  audio-named head, their visual decoder and their second fusion angle; our
  audio branch their audio memory, vision-named head, audio decoder and third
  angle; our vision branch their vision memory, text-named head, text decoder
  and first angle.
* Their decoder attention has no biases and their read-out none: ours get zeros.
* Position-wise FFNs are 1×1 convolutions there: the kernel axis is dropped.

Our model must be built as theirs computes (else :class:`WeightImportError`):
``fusion: angle``, ``angle_softmax: labels``, ``label_attention: false``
(their decoder layers have no label self-attention), all three modalities.
Not imported, on purpose: the modules their forward never calls (a second
encoder with its own input projections, MulT's ``proj1``/``proj2``/``out_layer``,
the decoder's ``proj1``/``proj2``/``dense``, two node-attention layers) and
the alias ``tgt_word_proj.weight`` of the label embedding. The label graph is
not in their checkpoint (their run never uses it); ours keeps the model's own.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from mmerbench.importers import WeightImportError, register_importer

# Our branch -> (their MulT letter of the memory, their head letter, their decoder stack, their fusion angle).
ROUTES = {
    "text": ("l", "a", "layer_visual_stack", 2),
    "audio": ("a", "v", "layer_audio_stack", 3),
    "vision": ("v", "l", "layer_text_stack", 1),
}
LETTER = {"text": "l", "audio": "a", "vision": "v"}
NEEDED = {"fusion": "angle", "angle_softmax": "labels", "label_attention": False}


def _check_config(model) -> None:
    for key, want in NEEDED.items():
        got = model.hparams.get(key)
        if got != want:
            raise WeightImportError(
                f"hhmpn: the authors' model computes `{key}: {str(want).lower()}`, this model was built with "
                f"{str(got).lower()}; build it with --set {key}={str(want).lower()} to import their weights.")
    if list(model.modalities) != ["text", "audio", "vision"]:
        raise WeightImportError(f"hhmpn: the authors' model reads text, audio and vision; this one reads "
                                f"{', '.join(model.modalities)}.")


def _mult_stack(state, src: str, dst: str, n_layers: int, out: dict, *, cross: bool) -> None:
    """One of their MulT TransformerEncoders (``src``) into one of our CrossModalEncoders (``dst``)."""
    for i in range(n_layers):
        s, d = f"{src}.layers.{i}", f"{dst}.layers.{i}"
        w, b = state[f"{s}.self_attn.in_proj_weight"], state[f"{s}.self_attn.in_proj_bias"]
        for part, wi, bi in zip("qkv", w.chunk(3), b.chunk(3)):
            out[f"{d}.attn.{part}.weight"], out[f"{d}.attn.{part}.bias"] = wi, bi
        for ours, theirs in (("attn.out", "self_attn.out_proj"), ("ff1", "fc1"), ("ff2", "fc2"),
                             ("norm_attn", "layer_norms.0"), ("norm_ff", "layer_norms.1")):
            out[f"{d}.{ours}.weight"] = state[f"{s}.{theirs}.weight"]
            out[f"{d}.{ours}.bias"] = state[f"{s}.{theirs}.bias"]
        if cross:  # their one LayerNorm normalises the keys too
            out[f"{d}.norm_kv.weight"] = state[f"{s}.layer_norms.0.weight"]
            out[f"{d}.norm_kv.bias"] = state[f"{s}.layer_norms.0.bias"]
    out[f"{dst}.norm.weight"], out[f"{dst}.norm.bias"] = state[f"{src}.layer_norm.weight"], state[f"{src}.layer_norm.bias"]


def _attention(state, src: str, dst: str, out: dict) -> None:
    """Their bias-free MultiHeadAttention + its post-LayerNorm into our attention and ``norm_attn``."""
    for ours, theirs in (("q", "w_qs"), ("k", "w_ks"), ("v", "w_vs"), ("out", "fc")):
        weight = state[f"{src}.{theirs}.weight"]
        out[f"{dst}.attn.{ours}.weight"], out[f"{dst}.attn.{ours}.bias"] = weight, torch.zeros(weight.shape[0])
    out[f"{dst}.norm_attn.weight"], out[f"{dst}.norm_attn.bias"] = state[f"{src}.layer_norm.weight"], \
        state[f"{src}.layer_norm.bias"]


def _ffn(state, src: str, dst: str, out: dict) -> None:
    """Their Conv1d(k=1) FFN + post-LayerNorm into our ff1/ff2/norm_ff."""
    for ours, theirs in (("ff1", "w_1"), ("ff2", "w_2")):
        out[f"{dst}.{ours}.weight"] = state[f"{src}.{theirs}.weight"].squeeze(-1)
        out[f"{dst}.{ours}.bias"] = state[f"{src}.{theirs}.bias"]
    out[f"{dst}.norm_ff.weight"], out[f"{dst}.norm_ff.bias"] = state[f"{src}.layer_norm.weight"], \
        state[f"{src}.layer_norm.bias"]


class _Prefixed(Mapping):
    """Their keys with ``nn.DataParallel``'s ``module.`` prefix, read through the recording mapping."""

    def __init__(self, state, prefix: str):
        self.state, self.prefix = state, prefix

    def __getitem__(self, key):
        return self.state[self.prefix + key]

    def __iter__(self):
        return (k[len(self.prefix):] for k in self.state)

    def __len__(self):
        return len(self.state)


@register_importer("hhmpn", unused=[
    r"(module\.)?encoder\.layer_(text|visual|audio)_stack\..*",
    r"(module\.)?encoder\.align_(text|visual|audio)\..*",
    r"(module\.)?encoder\.mult\.(proj1|proj2|out_layer)\..*",
    r"(module\.)?encoder\.mult\..*\.(version|embed_positions\._float_tensor)",
    r"(module\.)?decoder\.(proj1|proj2|dense|com_nodeattn|lyr_nodeattn)\..*",
    r"(module\.)?tgt_word_proj\.weight",
])
def hhmpn(state: Mapping[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    _check_config(model)
    prefix = "module." if any(k.startswith("module.") for k in state) else ""
    st = _Prefixed(state, prefix)
    ours = model.state_dict()
    out: dict = {}
    enc_layers = len(model.encoders["text"].cross[next(iter(model.encoders["text"].cross))].layers)
    mem_layers = len(model.encoders["text"].memory.layers)
    dec_layers = len(model.decoders["text"])
    for m, (mem, head, stack, angle) in ROUTES.items():
        out[f"project.{m}.weight"] = st[f"encoder.mult.align_{LETTER[m]}.weight"]
        out[f"project.{m}.bias"] = st[f"encoder.mult.align_{LETTER[m]}.bias"]
        for s in model.encoders[m].cross:
            _mult_stack(st, f"encoder.mult.trans_{mem}_with_{LETTER[s]}", f"encoders.{m}.cross.{s}", enc_layers, out,
                        cross=True)
        _mult_stack(st, f"encoder.mult.trans_{mem}_mem", f"encoders.{m}.memory", mem_layers, out, cross=False)
        for ours_key, theirs in (("head.0", f"trans_{head}1"), ("head.3", f"trans_{head}2"), ("out", f"out_layer_{head}")):
            out[f"encoders.{m}.{ours_key}.weight"] = st[f"encoder.mult.{theirs}.weight"]
            out[f"encoders.{m}.{ours_key}.bias"] = st[f"encoder.mult.{theirs}.bias"]
        for i in range(dec_layers):
            src, dst = f"decoder.{stack}.{i}", f"decoders.{m}.{i}"
            _attention(st, f"{src}.enc_attn", f"{dst}.feature_to_label", out)
            _ffn(st, f"{src}.pos_ffn1", f"{dst}.feature_to_label", out)
            _ffn(st, f"{src}.pos_ffn2", f"{dst}.label_to_label", out)
        k = model.modalities.index(m)
        out[f"fusion.angles.{k}.weight"] = st[f"decoder.multi_angle_fus.get_angle_{angle}.weight"]
        out[f"fusion.angles.{k}.bias"] = st[f"decoder.multi_angle_fus.get_angle_{angle}.bias"]
    for ours_key, theirs in (("score.0", "get_score_1"), ("score.1", "get_score_2"), ("out", "out_put")):
        out[f"fusion.{ours_key}.weight"] = st[f"decoder.multi_angle_fus.{theirs}.weight"]
        out[f"fusion.{ours_key}.bias"] = st[f"decoder.multi_angle_fus.{theirs}.bias"]
    out["label_queries.weight"] = st["decoder.tgt_word_emb.weight"]
    out["readout_weight"] = st["tgt_word_proj.linear.weight"]
    out["readout_bias"] = torch.zeros_like(ours["readout_bias"], device="cpu")
    out["label_graph"] = ours["label_graph"].clone()
    return out
