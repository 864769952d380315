"""The auxiliary-loss model: representation subspace mapping + unimodal auxiliary loss, audio + text.

Source: Xulong Du et al., "Integrating Representation Subspace Mapping with
Unimodal Auxiliary Loss for Attention-based Multimodal Emotion Recognition"
— only the presentation slides exist: their method figure is
not in the text, and no code is public. What the slides fix: audio + text,
attention-based encoders, a cross-modality attention block, a representation
subspace mapping loss L_sp, a unimodal auxiliary loss L_ua, 4-class IEMOCAP
and MSP-Improv reported as WA, F1 and per-class accuracy (Tables 3–7); Table 7
also puts L_ua on Bi-LSTM and Bi-GRU models, Table 5 compares GRU. Everything
else below is designed here, and each choice is named (config key in brackets).

The model, per utterance with audio a and text t (m ∈ {a, t}):

1. Encoder E_m [`encoder`]. ``attention`` (the slides' "attention-based"
   model): LayerNorm over the raw features, Linear(d_m → d) [`d_model` 128],
   sinusoidal positions, dropout, `layers` (2) post-LN Transformer encoder
   layers (`heads` 4, FFN `ff_dim` 256, ReLU, dropout `dropout` 0.2 on
   attention weights and residual branches), SDPA attention with padding
   masks. ``bilstm`` / ``gru`` / ``bigru`` (Tables 5 and 7): LayerNorm over the
   raw features, then `rnn_layers` (1) recurrent layers of output width d (a
   bidirectional one has d/2 per direction; the backward direction reads each
   sample's real steps reversed, so padding never reaches a real step), dropout.
   H_m = E_m(X_m) ∈ R^{L_m × d}.
2. Representation subspace mapping φ_m: a per-step Linear(d → d_s) +
   LayerNorm per modality [`subspace_dim` 128] maps H_m into one shared
   subspace, S_m = φ_m(H_m). (The mapping exists whether or not L_sp trains it.)
3. Unimodal representations: masked additive attention pooling per modality,
   u_m = Σ_τ softmax_τ(vᵀ tanh(W s_m,τ + b)) s_m,τ ∈ R^{d_s} (Bahdanau-style;
   padded steps get no weight).
4. L_sp [`subspace_loss`, weight `sp_weight` 1.0]: the two modalities of one
   utterance should land at the same point of the subspace:
   L_sp = mean_i ‖û_a,i − û_t,i‖² (û: L2-normalised, so 2 − 2 cos ∈ [0, 4]).
   A paired distance rather than a distribution distance (MMD, CMD): the
   pairs are known. Collapse to one constant point is not free: the same u_m
   feed L_ua and, through the fusion, the task loss.
5. L_ua [`unimodal_aux`, weight `ua_weight` 1.0]: one linear classifier per
   modality on u_m (strictly unimodal: before any cross-modal exchange),
   trained with the task loss (cross-entropy); L_ua is the mean over the
   modalities.
6. Cross-modality attention [`cross_attention`, `cross_layers` 1]: audio
   queries attend to the text subspace sequence and text queries to the audio
   one (pre-LN cross-attention layers, `heads` heads, FFN `ff_dim`, residuals,
   SDPA with the source's padding mask), then a second attention pooling per
   modality gives f_m. Without it, f_m = u_m.
7. Fusion and output: [f_a; f_t] → Linear(2 d_s → d_s) → ReLU → dropout →
   Linear(d_s → K) → softmax; the task loss is the cross-entropy.
8. Objective: L = L_task + `ua_weight`·L_ua + `sp_weight`·L_sp, each in
   float32 (autocast off); the parts are logged by name.
9. Training: Adam (lr 1e-3, no weight decay), batch 32, gradient-norm clip
   1.0, up to 50 epochs, the epoch with the best validation WA kept (the
   slides report WA first). The slides give no hyperparameters, so the
   per-dataset entries of the config are the same designed values. The small
   preset (d = d_s = 32, one layer) trains at lr 3e-3.
10. Padding: an empty modality (no real step) attends/pools uniformly over its
    zero padding, so its vectors stay finite.

Ablation switches: Table 6 rows are (`unimodal_aux`, `subspace_loss`,
`cross_attention`) = (✓✓✓), (✓✓✗), (✓✗✗), (✗✗✗); Table 7 crosses `encoder`
(``bilstm``, ``bigru``, ``attention`` = "Our Method") with `unimodal_aux`;
Table 5's GRU row is ``encoder: gru``; Table 3's unimodal rows are `modalities`
[audio] or [text] (then there is no L_sp and no cross-modality attention, and
the fused vector is the one modality's f_m).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from mmerbench.data.batching import Batch
from mmerbench.data.spec import DatasetSpec
from mmerbench.errors import MmerbenchError
from mmerbench.methods._layers import TransformerLayer, attention_mask, sinusoidal_positions
from mmerbench.methods.base import LossParts, Method, Output, output_size
from mmerbench.registry import register

ENCODERS = ("attention", "bilstm", "gru", "bigru")
MODALITIES = ("audio", "text")


class AuxLossConfigError(MmerbenchError, ValueError):
    """A setting the auxiliary-loss model cannot be built with (the CLI prints it as one sentence)."""


def reverse_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sample's first `lengths[b]` steps of x [B, L, D], padding left in place (an involution)."""
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    n = lengths.to(x.device)[:, None]
    idx = torch.where(t < n, n - 1 - t, t)
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[2]))


def subspace_mapping_loss(u_a: torch.Tensor, u_t: torch.Tensor) -> torch.Tensor:
    """L_sp: mean over the batch of ‖û_a − û_t‖² with û = u / ‖u‖ (= 2 − 2 cos), in float32."""
    return (F.normalize(u_a.float(), dim=1) - F.normalize(u_t.float(), dim=1)).pow(2).sum(1).mean()


class AttentionPool(nn.Module):
    """Masked additive attention pooling: Σ_τ softmax_τ(vᵀ tanh(W h_τ + b)) h_τ."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d, d)
        self.v = nn.Linear(d, 1, bias=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = mask | ~mask.any(1, keepdim=True)  # an empty sample pools uniformly over its padding
        logits = self.v(torch.tanh(self.proj(h))).squeeze(-1).float().masked_fill(~keep, float("-inf"))
        w = torch.softmax(logits, dim=1).to(h.dtype)
        return (w[..., None] * h).sum(1), w


class AttentionEncoder(nn.Module):
    """LayerNorm → Linear(in → d) + sinusoidal positions → post-LN Transformer layers."""

    def __init__(self, dim: int, d: int, *, layers: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.d = d
        self.norm_in = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, d)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(d, heads, ff_dim, dropout=dropout, attn_dropout=dropout, norm_first=False)
            for _ in range(layers)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.norm_in(x))
        h = self.drop(h + sinusoidal_positions(h.shape[1], self.d, device=h.device).to(h.dtype))
        am = attention_mask(mask, h.shape[1])
        for layer in self.layers:
            h = layer(h, mask=am)
        return h


class RecurrentEncoder(nn.Module):
    """LayerNorm → (Bi-)LSTM / (Bi-)GRU of output width d over the real steps (no packing: the backward
    direction reads each sample's real steps reversed; the forward one never sees the trailing padding)."""

    def __init__(self, dim: int, d: int, *, cell: str, bidirectional: bool, layers: int, dropout: float) -> None:
        super().__init__()
        if bidirectional and d % 2:
            raise AuxLossConfigError(f"A bidirectional encoder needs an even `d_model`, but got {d}.")
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        hidden = d // 2 if bidirectional else d
        self.norm_in = nn.LayerNorm(dim)
        self.fwd = nn.ModuleList()
        self.bwd = nn.ModuleList() if bidirectional else None
        for i in range(layers):
            width = dim if i == 0 else d
            self.fwd.append(rnn(width, hidden, batch_first=True))
            if self.bwd is not None:
                self.bwd.append(rnn(width, hidden, batch_first=True))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp_min(1)
        h = self.norm_in(x)
        # float32 even under bf16 autocast: cuDNN's RNN takes bf16 only from cuDNN 9.13.
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = h.float()
            for i, fwd in enumerate(self.fwd):
                out, _ = fwd(h)
                if self.bwd is not None:
                    back, _ = self.bwd[i](reverse_valid(h, lengths))
                    out = torch.cat([out, reverse_valid(back, lengths)], dim=-1)
                h = self.drop(out)
        return h


@register("auxloss")
class AuxLoss(Method):
    paper = ("Integrating Representation Subspace Mapping with Unimodal Auxiliary Loss for Attention-based "
             "Multimodal Emotion Recognition (Du et al.; slides)")
    tasks = ("multiclass",)
    required_modalities = ("audio", "text")

    def __init__(
        self,
        spec: DatasetSpec,
        *,
        modalities: Sequence[str] | None = ("audio", "text"),
        encoder: str = "attention",
        d_model: int = 128,
        heads: int = 4,
        layers: int = 2,
        ff_dim: int = 256,
        rnn_layers: int = 1,
        dropout: float = 0.2,
        subspace_dim: int = 128,
        cross_attention: bool = True,
        cross_layers: int = 1,
        unimodal_aux: bool = True,
        subspace_loss: bool = True,
        ua_weight: float = 1.0,
        sp_weight: float = 1.0,
        **hparams: Any,
    ) -> None:
        if isinstance(modalities, str):
            modalities = [modalities]
        wanted = list(modalities or MODALITIES)
        bad = [m for m in wanted if m not in MODALITIES]
        if bad:
            raise AuxLossConfigError(f"Expected `modalities` among {list(MODALITIES)}, but got {wanted}.")
        missing = [m for m in wanted if m not in spec.modalities]
        if missing:
            raise AuxLossConfigError(f"The auxiliary-loss model reads {', '.join(wanted)}; {spec.name!r} lacks "
                                     f"{', '.join(missing)}.")
        if encoder not in ENCODERS:
            raise AuxLossConfigError(f"Expected `encoder` in {ENCODERS}, but got {encoder!r}.")
        mods = [m for m in MODALITIES if m in wanted]
        super().__init__(spec, modalities=mods, **hparams)
        self.modalities = mods
        self.encoder_kind = encoder
        d, ds = int(d_model), int(subspace_dim)
        bimodal = len(mods) == 2
        self.use_ua = bool(unimodal_aux)
        self.use_sp = bool(subspace_loss) and bimodal
        self.ua_weight, self.sp_weight = float(ua_weight), float(sp_weight)

        def make_encoder(dim: int) -> nn.Module:
            if encoder == "attention":
                return AttentionEncoder(dim, d, layers=int(layers), heads=int(heads), ff_dim=int(ff_dim),
                                        dropout=float(dropout))
            cell = "lstm" if encoder == "bilstm" else "gru"
            return RecurrentEncoder(dim, d, cell=cell, bidirectional=encoder != "gru", layers=int(rnn_layers),
                                    dropout=float(dropout))

        self.encoders = nn.ModuleDict({m: make_encoder(spec.modalities[m].dim) for m in mods})
        self.mapping = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, ds), nn.LayerNorm(ds)) for m in mods})  # φ_m
        self.pool = nn.ModuleDict({m: AttentionPool(ds) for m in mods})
        k = output_size(spec)
        self.aux_heads = nn.ModuleDict({m: nn.Linear(ds, k) for m in mods}) if self.use_ua else None
        self.cross = None
        if cross_attention and bimodal:
            self.cross = nn.ModuleDict({
                m: nn.ModuleList(
                    TransformerLayer(ds, int(heads), int(ff_dim), dropout=float(dropout), attn_dropout=float(dropout),
                                     norm_first=True, cross=True)
                    for _ in range(int(cross_layers))
                )
                for m in mods
            })
            self.cross_pool = nn.ModuleDict({m: AttentionPool(ds) for m in mods})
        self.head = nn.Sequential(nn.Linear(len(mods) * ds, ds), nn.ReLU(), nn.Dropout(float(dropout)),
                                  nn.Linear(ds, k))

    def forward(self, batch: Batch) -> Output:
        aux: dict[str, torch.Tensor] = {}
        mask = {m: batch.masks[m] for m in self.modalities}
        s = {m: self.mapping[m](self.encoders[m](batch.inputs[m], mask[m])) for m in self.modalities}  # S_m
        u = {}
        for m in self.modalities:
            u[m], aux[f"pool_weights.{m}"] = self.pool[m](s[m], mask[m])
            aux[f"unimodal.{m}"] = u[m]
            if self.aux_heads is not None:
                aux[f"unimodal_logits.{m}"] = self.aux_heads[m](u[m])
        if self.cross is not None:
            f = {}
            for m in self.modalities:
                other = next(o for o in self.modalities if o != m)
                h = s[m]
                am = attention_mask(mask[other], h.shape[1])
                for layer in self.cross[m]:
                    h = layer(h, kv=s[other], mask=am)
                f[m], _ = self.cross_pool[m](h, mask[m])
        else:
            f = u
        scores = self.head(torch.cat([f[m] for m in self.modalities], dim=-1))
        return Output(scores=scores, aux=aux)

    def loss(self, batch: Batch, out: Output) -> LossParts:
        with torch.autocast(device_type=out.scores.device.type, enabled=False):  # float32 objective
            task = F.cross_entropy(out.scores.float(), batch.labels)
            parts = {"task": task}
            total = task
            if self.use_ua:
                parts["unimodal_aux"] = sum(F.cross_entropy(out.aux[f"unimodal_logits.{m}"].float(), batch.labels)
                                            for m in self.modalities) / len(self.modalities)
                total = total + self.ua_weight * parts["unimodal_aux"]
            if self.use_sp:
                parts["subspace"] = subspace_mapping_loss(out.aux["unimodal.audio"], out.aux["unimodal.text"])
                total = total + self.sp_weight * parts["subspace"]
        return LossParts(total=total, parts=parts)
