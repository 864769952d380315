"""HHMPN: heterogeneous hierarchical message passing for multi-modal multi-label emotion recognition.

Paper: Dong Zhang, Xincheng Ju, Wei Zhang, Junhui Li, Shoushan Li, Qiaoming Zhu,
Guodong Zhou, "Multi-modal Multi-label Emotion Recognition with Heterogeneous
Hierarchical Message Passing", AAAI 2021. Authors' code:
https://github.com/MANLP-suda/HHMPN (read for facts only).

The model has three kinds of message passing (paper §Approach, Fig. 2):

* **Feature-to-feature** (:class:`CrossModalEncoder`): a MulT-style encoder.
  Each modality is projected to ``d`` and, for every target modality, one
  cross-modal transformer per other modality lets the target's steps attend
  to the source's steps; the outputs are concatenated (``2d``) and passed to a
  self-attention "memory" transformer; a two-layer MLP and a linear map bring
  each modality's sequence back to ``d``. d = 512, 4 heads, 6 layers for both
  the cross-modal and the memory transformers (the memory's ``max(6, 3)``;
  ``mem_layers`` sets it apart, for the CPU preset only).
* **Feature-to-label** (:class:`LabelDecoderLayer`, first half): one learned
  query per label; one decoder stack per modality whose label states attend
  to that modality's encoded sequence.
* **Label-to-label** (:class:`LabelDecoderLayer`, second half): self-attention
  among the label states, masked by the label co-occurrence graph
  (:func:`cooccurrence_graph`): a label receives messages only from its
  neighbours (and itself).
* **Multi-angle fusion** (:class:`MultiAngleFusion`): the per-modality label
  states are concatenated (3·512 = 1536) → 1024 → 512, and a per-label linear
  read-out gives one logit per emotion (:class:`HHMPN`). BCE with logits.

The label graph is the training co-occurrence prior: counts ``c_ij`` (i ≠ j)
normalised by ``sqrt(n_i · n_j)``, plus the identity, binarised at 0.2. It is
computed in :meth:`HHMPN.setup` from the training split and kept in the
``label_graph`` buffer, so checkpoints carry it.

Choices the paper leaves open (or where we depart from the authors' code), named:

1. **Default graph before ``setup``**: all ones (every label may message every
   label, the identity included) -- the uninformed prior, the same graph as
   ``graph_mask: false``. ``setup`` replaces it; a loaded checkpoint restores it.
2. **A label never seen in training** (n_i = 0, where the authors' code divides
   0 by 0 and leaves NaN in the graph): its normalised counts are 0, so it is
   linked to itself only.
3. **Which modality each decoder reads**: the paper's own. The authors' code
   feeds its "text" decoder the vision memory through the head it names after
   text, its "visual" decoder the text memory and its "audio" decoder the
   audio memory (a swap in ``multran.py``). The three decoders, heads and
   fusion angles are alike, so this is a renaming of their parameters, not
   another model: the importer (:mod:`mmerbench.importers.hhmpn`) maps each
   authors' module to the one ours uses in its place.
4. **Multi-angle fusion**: a concat (3·512 = 1536) → 1024 → 512 MLP (the layers
   the authors' decoder defines as ``proj1``/``proj2``), with ReLU and the
   model dropout between. The authors' active code path instead weighs the
   three angles by a learned score (``angleFus``): ``fusion: angle``. Its
   softmax is called without a dimension, which on their 4-d score tensor
   normalises over the labels, not the angles: ``angle_softmax: labels``
   reproduces that (default ``angles``, what "weighing the angles" means). A
   plain mean is ``fusion: mean``. With ``m`` modalities the MLP is m·d → 2d → d.
5. **Read-out**: one weight vector and one bias per label on the fused label
   state (the authors' code: a bias-free Linear(d, C) whose diagonal is taken;
   its attempt to tie that Linear to the label embedding sets an attribute
   the forward never reads, so the two stay separate, as here).
6. **Encoder output back to d**: Linear(2d, 2d)–ReLU–dropout–Linear(2d, 2d)–
   Linear(2d, d), as in the authors' code (no residual).
7. **Encoder settings** are MulT's as the authors' code hard-codes them:
   √d embedding scale, sinusoidal positions as MulT's (fairseq) table —
   positions 1..L, sines then cosines [``enc_positions``: fairseq; vaswani =
   the interleaved 0-based table this model used before the parity check
   found the difference] —, pre-LayerNorm, causal mask on
   (``causal``), FFN 4·d, dropouts embed 0.25, attention 0.1 (0.0 when the
   keys are audio or vision), ReLU 0.1, residual 0.1, head 0.0. The
   cross-modal layers normalise queries and keys with separate LayerNorms
   (MulT shares one). Keys that are padding are masked everywhere.
8. **Decoder layers** follow the authors' ``DecoderLayer``: post-LN;
   cross-attention → FFN → label self-attention → FFN; d_inner 512, 8 heads,
   dropout 0.2 on attention weights and sub-layer outputs, none inside the FFN.
   Attention projections carry biases (the authors' have none; zero biases
   give their function). The label queries are one embedding table shared by
   the three decoders. **The authors' run has no label-to-label messages**:
   their ``GraphDecoder`` builds every layer with ``no_dec_self_att=True``, so
   the label self-attention (and with it the co-occurrence graph) is never
   built, while the second FFN stays. The paper's label-to-label message
   passing is one of its three kinds of messages, so ours keeps it;
   ``label_attention: false`` builds the authors' layer (cross-attention → FFN
   → FFN).
9. **Parameter count**, to the parameter (the parity suite checks it): ours
   378,858,502 at the paper config (aligned and unaligned alike); the
   authors' model at their ``begin.sh`` settings (6 labels) has 405,289,673.
   ours = authors' − modules their forward never calls − their angle fusion +
   our additions:

   - never called: MulT's 3072-wide ``proj1``/``proj2``/``out_layer``
     (20,453,888); a second 3×3-layer encoder with three input projections
     (14,394,368); node-attention and ``dense`` layers (35,976); the
     decoder's concat ``proj1``/``proj2`` (2,098,688), bypassed by the angle
     path — the same shapes as our concat fusion, which uses them;
   - their angle fusion (1,067,073), which we build only with ``fusion: angle``;
   - ours adds the label self-attention of the nine decoder layers with its
     LayerNorm (9,464,832, see 8; the bulk of the gap that remains after the
     unused modules), attention biases in the decoder's cross-attention
     (18,432), separate key LayerNorms in the 36 cross-modal layers (36,864)
     and read-out biases (6); and our concat fusion (2,098,688).

   In sums: 405,289,673 − (20,453,888 + 14,394,368 + 35,976 + 2,098,688) −
   1,067,073 + (9,464,832 + 18,432 + 36,864 + 6) + 2,098,688 = 378,858,502.
   The bulk sits in the 1024-wide memory transformers (FFN 4096:
   226,738,176) and the six 512-wide cross-modal transformers (113,528,832);
   the nine decoder layers hold 28,403,712 (18,938,880 with
   ``label_attention: false``).
10. **Model selection**: best validation micro-F1 (the paper: "the best F1
    score on the validation set"). Adam (0.9, 0.98), lr 1e-5, batch 64 stepped
    as the authors do, 8 accumulated micro-batches of 8 (``accumulate: 8``; the
    same gradient as one batch of 64 without dropout), no clipping, no
    schedule, 50 epochs.
11. **A single modality** (``modalities: [text]``): with no other modality to
    attend to, its "cross-modal" transformer attends to the modality itself
    and the memory is d wide.

Ablation switches (config keys): ``graph_mask`` (false: label self-attention
over all labels, the authors' ``label_mask none``), ``label_messages`` (false:
no label-to-label message passing at all, the authors' ``no_dec_self_att``),
``cross_modal`` (false: no feature-to-feature messages across modalities --
each "cross-modal" transformer attends to its own modality; same parameters),
``fusion`` (concat | angle | mean), ``modalities`` (decoders for a subset of
modalities), ``causal``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from mmerbench.data.batching import Batch
from mmerbench.data.dataset import Split
from mmerbench.data.spec import DatasetSpec
from mmerbench.methods._layers import TransformerLayer, attention_mask, sinusoidal_positions
from mmerbench.methods.base import Method, OptimSetup, Output
from mmerbench.registry import register

PAPER = ("Zhang et al., Multi-modal Multi-label Emotion Recognition with Heterogeneous "
         "Hierarchical Message Passing (AAAI 2021)")


def cooccurrence_graph(labels: np.ndarray | torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """The label-graph prior: a bool [C, C] adjacency from a multi-hot [N, C] training label matrix.

    A[i, j] = c_ij / sqrt(n_i · n_j) for i ≠ j (c_ij = samples with both labels,
    n_i = samples with label i; 0 where n_i · n_j = 0), plus the identity,
    binarised: an edge where the value is ≥ ``threshold``.
    """
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float64)
    if y.ndim != 2:
        raise ValueError(f"Expected `labels` to be a [N, C] multi-hot matrix, but got shape {tuple(y.shape)}.")
    y = (y > 0).double()
    counts = y.T @ y  # c_ij off the diagonal, n_i on it
    n = counts.diagonal().clone()
    denom = torch.sqrt(n[:, None] * n[None, :])
    norm = torch.where(denom > 0, counts / denom.clamp_min(1e-12), torch.zeros_like(counts))
    norm.fill_diagonal_(0.0)
    norm = norm + torch.eye(len(n), dtype=norm.dtype)
    return norm >= threshold


def fairseq_positions(length: int, dim: int, device=None) -> torch.Tensor:
    """MulT's (fairseq's) sinusoidal table [length, dim]: positions 1..L, sines then cosines,
    frequencies 10000^(−k/(dim/2 − 1)) — not the interleaved 0-based table of Vaswani et al."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, device=device, dtype=torch.float32) * -(np.log(10000.0) / (half - 1)))
    angle = torch.arange(1, length + 1, device=device, dtype=torch.float32)[:, None] * freq[None]
    table = torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)
    return torch.cat([table, table.new_zeros(length, dim - 2 * half)], dim=1)


class CrossModalEncoder(nn.Module):
    """A MulT transformer stack: √d-scaled inputs + sinusoidal positions, pre-LN layers, a final LayerNorm.

    With ``kv`` it is a cross-modal transformer (queries from the target, keys
    and values from the source, both embedded the same way); without, a
    self-attention transformer (the "memory").
    """

    def __init__(self, d: int, heads: int, layers: int, *, cross: bool, attn_dropout: float,
                 relu_dropout: float, res_dropout: float, embed_dropout: float, causal: bool,
                 positions: str = "fairseq") -> None:
        super().__init__()
        self.d, self.causal = d, causal
        self.positions = {"fairseq": fairseq_positions, "vaswani": sinusoidal_positions}[positions]
        self.embed_dropout = nn.Dropout(embed_dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(d, heads, 4 * d, dropout=res_dropout, attn_dropout=attn_dropout,
                             relu_dropout=relu_dropout, activation="relu", norm_first=True, cross=cross)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        pos = self.positions(x.shape[1], self.d, device=x.device).to(x.dtype)
        return self.embed_dropout(x * (self.d ** 0.5) + pos)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, kv: torch.Tensor | None = None,
                kv_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self._embed(x)
        if kv is None:
            keys, key_mask = None, x_mask
        else:
            keys, key_mask = self._embed(kv), kv_mask
        mask = attention_mask(key_mask, x.shape[1], causal=self.causal, k_len=key_mask.shape[1])
        for layer in self.layers:
            x = layer(x, keys, mask)
        return self.norm(x)


class ModalityEncoder(nn.Module):
    """Feature-to-feature message passing for one target modality (MulT's per-target branch).

    One cross-modal transformer per source modality → concatenation → memory
    transformer → MLP back to d. Output [B, L_target, d].
    """

    def __init__(self, target: str, sources: list[str], d: int, heads: int, layers: int, mem_layers: int, *,
                 attn_dropout: dict[str, float], mem_attn_dropout: float, relu_dropout: float,
                 res_dropout: float, embed_dropout: float, out_dropout: float, causal: bool,
                 positions: str = "fairseq") -> None:
        super().__init__()
        self.target, self.sources = target, sources
        kw = dict(relu_dropout=relu_dropout, res_dropout=res_dropout, embed_dropout=embed_dropout, causal=causal,
                  positions=positions)
        self.cross = nn.ModuleDict({
            s: CrossModalEncoder(d, heads, layers, cross=True, attn_dropout=attn_dropout[s], **kw) for s in sources
        })
        mem = d * len(sources)
        self.memory = CrossModalEncoder(mem, heads, mem_layers, cross=False, attn_dropout=mem_attn_dropout, **kw)
        self.head = nn.Sequential(nn.Linear(mem, mem), nn.ReLU(), nn.Dropout(out_dropout), nn.Linear(mem, mem))
        self.out = nn.Linear(mem, d)

    def forward(self, proj: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
                cross_modal: bool = True) -> torch.Tensor:
        t = self.target
        # cross_modal=False (ablation): each transformer's keys are the target itself.
        h = torch.cat([
            enc(proj[t], masks[t], proj[s] if cross_modal else proj[t], masks[s] if cross_modal else masks[t])
            for s, enc in self.cross.items()
        ], dim=-1)
        h = self.memory(h, masks[t])
        return self.out(self.head(h))


class FeedForward(nn.Module):
    """A post-LN position-wise FFN block alone: LN(x + dropout(W2 relu(W1 x)))."""

    def __init__(self, d: int, d_inner: int, dropout: float) -> None:
        super().__init__()
        self.ff1, self.ff2 = nn.Linear(d, d_inner), nn.Linear(d_inner, d)
        self.norm_ff = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm_ff(x + self.drop(self.ff2(torch.relu(self.ff1(x)))))


class LabelDecoderLayer(nn.Module):
    """Feature-to-label then label-to-label message passing (the authors' DecoderLayer, post-LN).

    Label states attend to the modality's encoded steps (cross-attention + FFN),
    then to each other under the label graph (self-attention + FFN).
    ``label_attention=False`` keeps the second FFN without the self-attention
    before it: the layer the authors' run builds (see choice 8).
    """

    def __init__(self, d: int, heads: int, d_inner: int, dropout: float, label_messages: bool,
                 label_attention: bool = True) -> None:
        super().__init__()
        kw = dict(dropout=dropout, attn_dropout=dropout, relu_dropout=0.0, activation="relu", norm_first=False)
        self.feature_to_label = TransformerLayer(d, heads, d_inner, cross=True, **kw)
        if not label_messages:
            self.label_to_label = None
        elif label_attention:
            self.label_to_label = TransformerLayer(d, heads, d_inner, **kw)
        else:
            self.label_to_label = FeedForward(d, d_inner, dropout)

    def forward(self, labels: torch.Tensor, feats: torch.Tensor, feat_mask: torch.Tensor | None,
                graph_mask: torch.Tensor | None) -> torch.Tensor:
        x = self.feature_to_label(labels, feats, feat_mask)
        if self.label_to_label is not None:
            x = self.label_to_label(x, None, graph_mask)
        return x


class MultiAngleFusion(nn.Module):
    """Fuse the per-modality label states [B, C, d] × m → [B, C, d].

    ``concat``: concat (m·d) → 2d → ReLU → dropout → d (the authors' ``proj1``/``proj2``: 1536 → 1024 → 512).
    ``angle``: the authors' active code path: a Linear(d, d) per angle, a score
    d → 32 → 1 per angle, softmax over angles (``softmax_over="labels"``: over
    the labels, what the authors' code computes), weighted sum, Linear(d, d).
    ``mean``: the average.
    """

    def __init__(self, kind: str, n: int, d: int, dropout: float, softmax_over: str = "angles") -> None:
        super().__init__()
        if kind not in ("concat", "angle", "mean"):
            raise ValueError(f"Expected `fusion` to be one of concat, angle, mean, but got {kind!r}.")
        if softmax_over not in ("angles", "labels"):
            raise ValueError(f"Expected `angle_softmax` to be angles or labels, but got {softmax_over!r}.")
        self.kind, self.softmax_dim = kind, 2 if softmax_over == "angles" else 1
        if kind == "concat":
            self.mlp = nn.Sequential(nn.Linear(n * d, 2 * d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(2 * d, d))
        elif kind == "angle":
            self.angles = nn.ModuleList(nn.Linear(d, d) for _ in range(n))
            self.score = nn.Sequential(nn.Linear(d, 32), nn.Linear(32, 1))
            self.out = nn.Linear(d, d)

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        if self.kind == "concat":
            return self.mlp(torch.cat(states, dim=-1))
        if self.kind == "mean":
            return torch.stack(states, dim=2).mean(2)
        a = torch.stack([f(s) for f, s in zip(self.angles, states)], dim=2)  # [B, C, m, d]
        w = torch.softmax(self.score(a), dim=self.softmax_dim)  # [B, C, m, 1]
        return self.out((w * a).sum(2))


@register("hhmpn")
class HHMPN(Method):
    paper = PAPER
    tasks = ("multilabel",)

    def __init__(self, spec: DatasetSpec, *, d_model: int = 512, d_inner: int = 512, heads: int = 8,
                 dec_layers: int = 3, dropout: float = 0.2, enc_heads: int = 4, enc_layers: int = 6,
                 mem_layers: int | None = None, enc_attn_dropout: float = 0.1, enc_attn_dropout_av: float = 0.0,
                 enc_relu_dropout: float = 0.1, enc_res_dropout: float = 0.1, enc_embed_dropout: float = 0.25,
                 enc_out_dropout: float = 0.0, causal: bool = True, enc_positions: str = "fairseq",
                 graph_mask: bool = True,
                 graph_threshold: float = 0.2, label_messages: bool = True, cross_modal: bool = True,
                 fusion: str = "concat", angle_softmax: str = "angles", label_attention: bool = True,
                 modalities: list[str] | None = None, **hparams: Any) -> None:
        super().__init__(spec, d_model=d_model, d_inner=d_inner, heads=heads, dec_layers=dec_layers,
                         dropout=dropout, enc_heads=enc_heads, enc_layers=enc_layers, mem_layers=mem_layers,
                         causal=causal, enc_positions=enc_positions, graph_mask=graph_mask, graph_threshold=graph_threshold,
                         label_messages=label_messages, cross_modal=cross_modal, fusion=fusion,
                         angle_softmax=angle_softmax, label_attention=label_attention,
                         modalities=modalities, **hparams)
        self.modalities = list(modalities or spec.modalities)
        self.graph_mask, self.graph_threshold = bool(graph_mask), float(graph_threshold)
        self.cross_modal = bool(cross_modal)
        if enc_positions not in ("fairseq", "vaswani"):
            raise ValueError(f"Expected `enc_positions` to be fairseq or vaswani, but got {enc_positions!r}.")
        d, c = d_model, spec.num_labels

        # Feature-to-feature message passing (MulT-style encoder).
        self.project = nn.ModuleDict({m: nn.Linear(spec.modalities[m].dim, d) for m in self.modalities})
        attn_drop = {m: (enc_attn_dropout if m == "text" else enc_attn_dropout_av) for m in self.modalities}
        self.encoders = nn.ModuleDict({
            t: ModalityEncoder(
                t, [s for s in self.modalities if s != t] or [t], d, enc_heads, enc_layers,
                max(enc_layers, 3) if mem_layers is None else int(mem_layers),
                attn_dropout=attn_drop, mem_attn_dropout=enc_attn_dropout, relu_dropout=enc_relu_dropout,
                res_dropout=enc_res_dropout, embed_dropout=enc_embed_dropout, out_dropout=enc_out_dropout,
                causal=causal, positions=enc_positions)
            for t in self.modalities
        })

        # Feature-to-label and label-to-label message passing: one decoder stack per modality.
        self.label_queries = nn.Embedding(c, d)
        self.decoders = nn.ModuleDict({
            m: nn.ModuleList(LabelDecoderLayer(d, heads, d_inner, dropout, label_messages, bool(label_attention))
                             for _ in range(dec_layers))
            for m in self.modalities
        })
        # The co-occurrence prior (bool [C, C], True = edge). Default before setup(): all ones.
        self.register_buffer("label_graph", torch.ones(c, c, dtype=torch.bool))

        # Multi-angle fusion and the per-label read-out.
        self.fusion = MultiAngleFusion(fusion, len(self.modalities), d, dropout, angle_softmax)
        self.readout_weight = nn.Parameter(torch.empty(c, d))
        self.readout_bias = nn.Parameter(torch.zeros(c))
        nn.init.xavier_normal_(self.readout_weight)

    def setup(self, train: Split) -> None:
        """Count the training split's label co-occurrence into the graph prior."""
        graph = cooccurrence_graph(train.labels, self.graph_threshold)
        if graph.shape != self.label_graph.shape:
            raise ValueError(f"Expected {tuple(self.label_graph.shape)} labels in the training split, "
                             f"but got {tuple(graph.shape)}.")
        with torch.no_grad():
            self.label_graph.copy_(graph)

    def forward(self, batch: Batch) -> Output:
        masks = {m: batch.masks[m] for m in self.modalities}
        proj = {m: self.project[m](batch.inputs[m]) for m in self.modalities}
        b = next(iter(proj.values())).shape[0]
        queries = self.label_queries.weight.unsqueeze(0).expand(b, -1, -1)
        graph = self.label_graph[None, None] if self.graph_mask else None  # [1, 1, C, C], True = may attend
        states = []
        for m in self.modalities:
            feats = self.encoders[m](proj, masks, self.cross_modal)
            feat_mask = attention_mask(masks[m], queries.shape[1])
            x = queries
            for layer in self.decoders[m]:
                x = layer(x, feats, feat_mask, graph)
            states.append(x)
        fused = self.fusion(states)  # [B, C, d]
        logits = (fused * self.readout_weight).sum(-1) + self.readout_bias
        return Output(scores=logits)

    def configure_optimizer(self, steps_per_epoch: int, epochs: int) -> OptimSetup:
        hp = self.hparams
        betas = tuple(float(v) for v in hp.get("betas", (0.9, 0.98)))
        opt = torch.optim.Adam(self.parameters(), lr=float(hp.get("lr", 1e-5)), betas=betas,
                               weight_decay=float(hp.get("weight_decay", 0.0)))
        return OptimSetup(opt)
