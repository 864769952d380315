"""MISA: the authors' ``MISA`` (declare-lab/MISA, ``src/models.py``) into ours, GloVe text path.

Their model names the modalities t, v, a; its state dict maps key by key:

* ``{t,v,a}rnn1`` / ``{t,v,a}rnn2`` (bidirectional LSTMs) → ``encoder.{m}.fwd1/fwd2.rnn`` (the
  ``*_l0`` tensors) and ``encoder.{m}.bwd1/bwd2.rnn`` (the ``*_l0_reverse`` tensors, renamed ``*_l0``);
  ``{t,v,a}layer_norm`` → ``encoder.{m}.norm``;
* ``project_{x}.project_{x}`` / ``project_{x}_layer_norm`` → ``project.{m}.0`` / ``.2``;
  ``private_{x}`` (its one Linear) → ``private.{m}.0``; ``shared.shared_1`` → ``shared.0``;
  ``recon_{x}.recon_{x}_1`` → ``recon.{m}``;
* ``transformer_encoder.layers.0``: the fused ``self_attn.in_proj_*`` split into ``fusion.attn.q/k/v``,
  ``self_attn.out_proj`` → ``fusion.attn.out``, ``linear1/2`` → ``ff1/2``, ``norm1/2`` → ``norm_attn/norm_ff``;
* ``fusion.fusion_layer_1`` / ``fusion_layer_3`` → ``head.0`` / ``head.3``. They stack the fused
  tokens as (private t, v, a, shared t, v, a), we in the dataset's order (t, a, v); the attention has
  no positions or masks, so the order only permutes the concatenation, and ``head.0``'s input
  columns are permuted to match: the same function, exactly;
* ``discriminator`` (their ``use_cmd_sim=False`` only) → ours under ``similarity: adversarial``, its
  output rows permuted from their modality ids (t 0, v 1, a 2) to ours.

Not read: ``embed.weight`` (their word-embedding table: our text input is already the GloVe vectors
it would look up) and ``sp_discriminator`` (built, never in the loss: their ``sp_weight`` is 0).
Their BERT text path (``use_bert=True``, their default) has no counterpart here: a checkpoint with
``bertmodel.*`` keys is refused (its key does not map). Our ``aux_steps`` (the warm-up's step count)
starts at 0.
"""

from __future__ import annotations

import torch

from mmerbench.importers import register_importer

LETTER = {"text": "t", "audio": "a", "vision": "v"}
THEIR_TOKENS = [("private", "text"), ("private", "vision"), ("private", "audio"),
                ("shared", "text"), ("shared", "vision"), ("shared", "audio")]
THEIR_DOMAIN = {"text": 0, "vision": 1, "audio": 2}


def _linear(state, theirs: str, ours: str) -> dict[str, torch.Tensor]:
    return {f"{ours}.weight": state[f"{theirs}.weight"], f"{ours}.bias": state[f"{theirs}.bias"]}


def _lstm(state, theirs: str, ours: str) -> dict[str, torch.Tensor]:
    out = {}
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        out[f"{ours[0]}.rnn.{name}_l0"] = state[f"{theirs}.{name}_l0"]
        out[f"{ours[1]}.rnn.{name}_l0"] = state[f"{theirs}.{name}_l0_reverse"]
    return out


@register_importer("misa", unused=[r"embed\.weight", r"sp_discriminator\..*"])
def misa(state, model) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {"aux_steps": torch.zeros_like(model.aux_steps)}
    mods = model.modalities
    for m in mods:
        x = LETTER[m]
        enc = f"encoder.{m}"
        out.update(_lstm(state, f"{x}rnn1", (f"{enc}.fwd1", f"{enc}.bwd1")))
        out.update(_lstm(state, f"{x}rnn2", (f"{enc}.fwd2", f"{enc}.bwd2")))
        out.update(_linear(state, f"{x}layer_norm", f"{enc}.norm"))
        out.update(_linear(state, f"project_{x}.project_{x}", f"project.{m}.0"))
        out.update(_linear(state, f"project_{x}.project_{x}_layer_norm", f"project.{m}.2"))
        private = {"t": "private_t_1", "v": "private_v_1", "a": "private_a_3"}[x]  # their names
        out.update(_linear(state, f"private_{x}.{private}", f"private.{m}.0"))
        out.update(_linear(state, f"recon_{x}.recon_{x}_1", f"recon.{m}"))
    out.update(_linear(state, "shared.shared_1", "shared.0"))

    t = "transformer_encoder.layers.0."
    w, b = state[t + "self_attn.in_proj_weight"], state[t + "self_attn.in_proj_bias"]
    for j, name in enumerate(("q", "k", "v")):
        out[f"fusion.attn.{name}.weight"], out[f"fusion.attn.{name}.bias"] = w.chunk(3)[j], b.chunk(3)[j]
    for theirs, ours in (("self_attn.out_proj", "attn.out"), ("linear1", "ff1"), ("linear2", "ff2"),
                         ("norm1", "norm_attn"), ("norm2", "norm_ff")):
        out.update(_linear(state, t + theirs, f"fusion.{ours}"))

    # Our tokens in our order, each a block of the head's input columns taken from theirs.
    w1 = state["fusion.fusion_layer_1.weight"]
    hidden = w1.shape[1] // len(THEIR_TOKENS)
    ours_tokens = [("private", m) for m in mods] + [("shared", m) for m in mods]
    blocks = [w1[:, THEIR_TOKENS.index(tok) * hidden:(THEIR_TOKENS.index(tok) + 1) * hidden] for tok in ours_tokens]
    out["head.0.weight"] = torch.cat(blocks, dim=1)
    out["head.0.bias"] = state["fusion.fusion_layer_1.bias"]
    out.update(_linear(state, "fusion.fusion_layer_3", "head.3"))

    if model.discriminator is not None:
        out.update(_linear(state, "discriminator.discriminator_layer_1", "discriminator.0"))
        rows = torch.tensor([THEIR_DOMAIN[m] for m in mods])
        out["discriminator.3.weight"] = state["discriminator.discriminator_layer_2.weight"][rows]
        out["discriminator.3.bias"] = state["discriminator.discriminator_layer_2.bias"][rows]
    return out
