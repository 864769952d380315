"""MulT: the Multimodal Transformer for unaligned multimodal language sequences.

Paper: Yao-Hung Hubert Tsai, Shaojie Bai, Paul Pu Liang, J. Zico Kolter,
Louis-Philippe Morency, Ruslan Salakhutdinov, "Multimodal Transformer for
Unaligned Multimodal Language Sequences", ACL 2019.
Authors' repository: https://github.com/yaohungt/Multimodal-Transformer
(hyperparameters from its latest ``main.py``, the defaults "for unaligned MOSEI").

What each part implements (paper section 3):

* ``MulT.proj`` — §3.3 "Temporal convolutions": a Conv1d per modality
  (kernel 1, **no bias**, as the authors' ``proj_l/a/v``) mapping every
  modality to a common width d (30).
* ``_Encoder`` — §3.3 "Positional embedding" and §3.2 "Crossmodal
  transformers", Eq. (4)–(6): inputs scaled by √d, sinusoidal positions added,
  embedding dropout; D layers of pre-LayerNorm (cross- or self-) attention +
  position-wise FFN (width 4d) with residuals; a final LayerNorm.
* ``_CrossmodalLayer`` — one crossmodal attention block, Eq. (3)/(5): queries
  from the target modality, keys/values from the source modality's low-level
  (layer-0) features, the *same* pre-LayerNorm applied to both (the authors'
  ``maybe_layer_norm(0, ·)`` on query, key and value).
* ``MulT.crossmodal`` — for each target modality the crossmodal transformers
  from every other modality (two, for text/audio/vision); ``MulT.memory`` —
  §3.3 "Self-attention transformers and prediction": their outputs
  concatenated (2d) and passed through a self-attention transformer of
  ``max(layers, 3)`` layers; the last step of each memory sequence is
  concatenated (6d) and passed through a residual block
  (Linear–ReLU–dropout–Linear, plus its input) and the output Linear.

Outputs: a sigmoid head with BCE (multi-label; the paper has none — MOSEI
emotions are the field's later use), L1 regression (the authors' sentiment
criterion), cross-entropy (multi-class) and BCE (binary), all via
``Method.loss``/``task_loss``. No CTC: MulT reads unaligned input as it is.

Choices the paper (or its code) leaves open, made here and named:

1. **Padding masks** (``use_masks``, default true). The authors' code passes
   no key-padding mask and predicts from the literally last step, although the
   public MOSEI arrays are zero-padded. We mask padded keys in every
   attention and read the last *real* step (``last_valid``) of each memory
   sequence. ``use_masks: false`` reproduces the authors (no padding masks,
   step L-1).
2. **Future mask with unequal lengths** (``attn_mask``, default true as in
   the authors' ``--attn_mask``; ``future_mask``). The authors' buffered future
   mask lets query i see keys j ≤ i + |Lk − Lq|; for equal lengths that is the
   usual causal mask, for text (50) ← audio (500) it hides only the last 450−i
   audio steps from text step i. Our default ``relative`` uses the shared
   ``attention_mask(causal=True, k_len=…)``: query i sees the first
   ⌈(i+1)·Lk/Lq⌉ keys, i.e. the source up to the same *relative* time.
   ``future_mask: offset`` reproduces the authors' rule exactly. Both are the
   usual causal mask on the aligned set. The mask uses the padded lengths.
3. **Attention dropout per source.** The authors' ``get_network`` picks a
   crossmodal transformer's attention dropout by its *source* (key/value)
   modality (``la`` = text ← audio uses ``attn_dropout_a``); the memory
   transformers use the text value. Here: ``attn_dropout_by_source`` (audio
   0.0, vision 0.0) and ``attn_dropout`` (0.1) for every other source and the
   memory transformers.
4. **Embedding dropout** (0.25) is applied, as in the authors' code, to the
   raw text features before the projection (``input_dropout_modalities``) and
   after scaling + positions in every encoder, to queries and to sources. The
   authors drop keys and values with two independent masks; we embed the
   source once (one mask for both).
5. **Positions** (``positions``, default ``sinusoidal``). The sinusoidal table
   of the shared layers (interleaved sin/cos, frequencies 10000^(-2i/d),
   positions 0…L-1). The authors' fairseq table is another function of the
   step: sin | cos halves with frequencies 10000^(-j/(d/2-1)), positions from
   1, and a zero vector wherever a step's first feature is exactly 0 (so the
   zero padding of the public arrays gets no position). ``positions: authors``
   computes theirs; with the same weights the two give different outputs, so
   the parity suite (and an imported checkpoint) needs it. The memory
   transformer, an encoder like the others, scales by √(2d) and adds positions
   again (as the authors').
6. **Initialisation**: attention and FFN weights Xavier-uniform, biases zero
   (the authors'; we initialise q, k, v separately rather than one [3d, d]
   block); projections and head keep PyTorch's defaults, as theirs do.
7. **Always project.** The authors skip the Conv1d when a modality already has
   width d; we always project (no MOSEI modality has width 30). With
   ``conv_kernel`` > 1 (a switch; the authors' code uses 1) the convolution
   zero-pads, so the last real step sees zero padding.
8. **More or fewer modalities.** The paper has three; with M modalities each
   target gets M−1 crossmodal transformers (memory width (M−1)·d). One
   modality needs ``fusion: late``.

Parameters: ours = the authors' exactly (1,074,636 at aligned MOSEI with 6
outputs, the three targets): they build no module they do not call and we
add none. The parity suite (``tests/parity/test_mult.py``) imports their
``MULTModel``'s weights (:mod:`mmerbench.importers.mult`) and compares
logits, loss and gradients with ``use_masks: false``, ``future_mask: offset``
and ``positions: authors``.

Ablations (paper Table 3, rows that are model changes): ``targets`` picks the
target modalities (``[text]`` = the authors' ``--lonly``, i.e. [V,A → L]);
``fusion: late`` replaces every crossmodal transformer by a self-attention
transformer on the target itself (late fusion of unimodal transformers);
``attn_mask: false`` drops the future mask.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from mmerbench.data.batching import Batch
from mmerbench.data.spec import DatasetSpec
from mmerbench.errors import MmerbenchError
from mmerbench.methods._layers import TransformerLayer, attention_mask, last_valid, sinusoidal_positions
from mmerbench.methods.base import Method, OptimSetup, Output, output_size
from mmerbench.registry import register

FUTURE_MASKS = ("relative", "offset")
FUSIONS = ("crossmodal", "late")
POSITIONS = ("sinusoidal", "authors")


def authors_positions(x: torch.Tensor) -> torch.Tensor:
    """The authors' (fairseq) positions for x [B, L, D]: [B, L, D], zero where x[..., 0] is exactly 0."""
    b, length, dim = x.shape
    half = dim // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float32, device=x.device) * -(math.log(10000) / (half - 1)))
    angle = torch.arange(1, length + 1, dtype=torch.float32, device=x.device)[:, None] * freq[None, :]
    table = torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)
    if dim % 2:
        table = F.pad(table, (0, 1))
    return table[None].to(x.dtype) * (x[..., :1] != 0).to(x.dtype)


class MulTConfigError(MmerbenchError, ValueError):
    """A setting MulT cannot be built with (the CLI prints it as one sentence)."""


class _CrossmodalLayer(TransformerLayer):
    """Crossmodal attention block (Eq. 5): one pre-LayerNorm shared by the target and the source."""

    def __init__(self, d_model: int, heads: int, d_ff: int, **kw: Any) -> None:
        super().__init__(d_model, heads, d_ff, cross=False, norm_first=True, **kw)

    def _layer(self, x: torch.Tensor, kv: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        assert kv is not None  # normalised here, inside the layer, so `checkpoint_layers` recomputes it too
        return super()._layer(x, self.norm_attn(kv), mask)


class _Encoder(nn.Module):
    """√d-scaled input + sinusoidal positions + dropout → D attention layers → LayerNorm (Eq. 4–6)."""

    def __init__(self, d_model: int, heads: int, layers: int, d_ff: int, *, cross: bool, attn_dropout: float,
                 relu_dropout: float, res_dropout: float, embed_dropout: float,
                 positions: str = "sinusoidal") -> None:
        super().__init__()
        self.d_model, self.cross, self.positions = d_model, cross, positions
        self.scale = math.sqrt(d_model)
        self.drop = nn.Dropout(embed_dropout)
        layer = _CrossmodalLayer if cross else TransformerLayer
        self.layers = nn.ModuleList(
            layer(d_model, heads, d_ff, dropout=res_dropout, attn_dropout=attn_dropout, relu_dropout=relu_dropout)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.positions == "authors":
            return self.drop(self.scale * x + authors_positions(x))
        pos = sinusoidal_positions(x.shape[1], self.d_model, device=x.device)
        return self.drop(self.scale * x + pos.to(x.dtype))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, source: torch.Tensor | None = None) -> torch.Tensor:
        h = self.embed(x)
        kv = self.embed(source) if self.cross else None  # the source's low-level features feed every layer
        for layer in self.layers:
            h = layer(h, kv, mask)
        return self.norm(h)


@register("mult")
class MulT(Method):
    paper = "Multimodal Transformer for Unaligned Multimodal Language Sequences (Tsai et al., ACL 2019)"
    tasks = ("multilabel", "multiclass", "regression", "binary")

    def __init__(
        self,
        spec: DatasetSpec,
        *,
        modalities: Sequence[str] | None = None,
        targets: Sequence[str] | str | None = None,
        fusion: str = "crossmodal",
        d_model: int = 30,
        heads: int = 5,
        layers: int = 5,
        mem_layers: int | None = None,
        ffn_ratio: int = 4,
        conv_kernel: int = 1,
        embed_dropout: float = 0.25,
        input_dropout_modalities: Sequence[str] = ("text",),
        attn_dropout: float = 0.1,
        attn_dropout_by_source: dict[str, float] | None = None,
        relu_dropout: float = 0.1,
        res_dropout: float = 0.1,
        out_dropout: float = 0.0,
        attn_mask: bool = True,
        future_mask: str = "relative",
        use_masks: bool = True,
        positions: str = "sinusoidal",
        **hparams: Any,
    ) -> None:
        mods = [m for m in spec.modalities if m in (modalities or list(spec.modalities))]
        if isinstance(targets, str):
            targets = [targets]
        tgts = [m for m in mods if m in (targets or mods)]
        unknown = sorted(set(targets or ()) - set(mods))
        if unknown or not tgts:
            raise MulTConfigError(f"Expected `targets` to be among the modalities {mods}, but got {targets!r}")
        if fusion not in FUSIONS:
            raise MulTConfigError(f"Expected `fusion` to be one of {FUSIONS}, but got {fusion!r}")
        if future_mask not in FUTURE_MASKS:
            raise MulTConfigError(f"Expected `future_mask` to be one of {FUTURE_MASKS}, but got {future_mask!r}")
        if fusion == "crossmodal" and len(mods) < 2:
            raise MulTConfigError(f"Crossmodal fusion needs two or more modalities, but got {mods}; use fusion=late")
        if positions not in POSITIONS:
            raise MulTConfigError(f"Expected `positions` to be one of {POSITIONS}, but got {positions!r}")
        if conv_kernel % 2 != 1:
            raise MulTConfigError(f"Expected an odd `conv_kernel`, but got {conv_kernel}")
        super().__init__(
            spec, modalities=mods, targets=tgts, fusion=fusion, d_model=d_model, heads=heads, layers=layers,
            mem_layers=mem_layers, ffn_ratio=ffn_ratio, conv_kernel=conv_kernel, embed_dropout=embed_dropout,
            input_dropout_modalities=list(input_dropout_modalities), attn_dropout=attn_dropout,
            attn_dropout_by_source=dict(attn_dropout_by_source or {}), relu_dropout=relu_dropout,
            res_dropout=res_dropout, out_dropout=out_dropout, attn_mask=attn_mask, future_mask=future_mask,
            use_masks=use_masks, positions=positions, **hparams,
        )
        self.modalities, self.targets, self.fusion = mods, tgts, fusion
        self.attn_mask, self.future_mask, self.use_masks = bool(attn_mask), future_mask, bool(use_masks)
        self.embed_dropout, self.out_dropout = embed_dropout, out_dropout
        self.input_dropout_modalities = set(input_dropout_modalities)
        by_source = dict(attn_dropout_by_source or {})
        mem_layers = max(layers, 3) if mem_layers is None else mem_layers
        common = dict(relu_dropout=relu_dropout, res_dropout=res_dropout, embed_dropout=embed_dropout,
                      positions=positions)

        # §3.3 temporal convolutions: every modality in use to width d (Conv1d, no bias, as the authors).
        self.used = [m for m in mods if m in tgts or any(m in self.sources(t) for t in tgts)]
        self.proj = nn.ModuleDict({
            m: nn.Conv1d(spec.modalities[m].dim, d_model, conv_kernel, padding=conv_kernel // 2, bias=False)
            for m in self.used
        })
        # §3.2 crossmodal transformers source → target (or self-attention on the target: late fusion).
        self.crossmodal = nn.ModuleDict()
        self.memory = nn.ModuleDict()
        for t in tgts:
            self.crossmodal[t] = nn.ModuleDict({
                s: _Encoder(d_model, heads, layers, ffn_ratio * d_model, cross=(s != t),
                            attn_dropout=by_source.get(s, attn_dropout), **common)
                for s in self.sources(t)
            })
            width = d_model * len(self.sources(t))
            # §3.3 self-attention ("memory") transformer over the concatenated crossmodal outputs.
            self.memory[t] = _Encoder(width, heads, mem_layers, ffn_ratio * width, cross=False,
                                      attn_dropout=attn_dropout, **common)
        combined = d_model * sum(len(self.sources(t)) for t in tgts)
        # Residual block and output layer.
        self.proj1 = nn.Linear(combined, combined)
        self.proj2 = nn.Linear(combined, combined)
        self.out = nn.Linear(combined, output_size(spec))
        self._init_attention()

    def sources(self, target: str) -> list[str]:
        """The modalities a target attends to: every other one (crossmodal), itself (late fusion)."""
        if self.fusion == "late":
            return [target]
        return [m for m in self.modalities if m != target]

    def _init_attention(self) -> None:
        """Xavier-uniform attention/FFN weights and zero biases, as the authors' fairseq-derived layers."""
        for mod in self.modules():
            if isinstance(mod, TransformerLayer):
                a = mod.attn
                for lin in (a.q, a.k, a.v, a.out, mod.ff1, mod.ff2):
                    nn.init.xavier_uniform_(lin.weight)
                    nn.init.zeros_(lin.bias)

    # -- masks ------------------------------------------------------------------
    def _mask(self, key_mask: torch.Tensor, q_len: int) -> torch.Tensor | None:
        """SDPA mask for queries of length q_len over keys with `key_mask` (padding and/or future)."""
        km = key_mask if self.use_masks else None
        k_len = key_mask.shape[1]
        if not self.attn_mask:
            return attention_mask(km, q_len)
        if self.future_mask == "relative":
            return attention_mask(km, q_len, causal=True, k_len=k_len)
        # The authors' buffered future mask: query i sees keys j <= i + |Lk - Lq|.
        qi = torch.arange(q_len, device=key_mask.device)
        kj = torch.arange(k_len, device=key_mask.device)
        future = (kj[None, :] <= qi[:, None] + abs(k_len - q_len))[None, None]
        pad = attention_mask(km, q_len)
        return future if pad is None else pad & future

    def _last(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return last_valid(h, mask) if self.use_masks else h[:, -1]

    # -- the model --------------------------------------------------------------
    def forward(self, batch: Batch) -> Output:
        masks = {m: batch.masks[m] for m in self.used}
        z = {}
        for m in self.used:
            x = batch.inputs[m]
            if m in self.input_dropout_modalities:
                x = F.dropout(x, p=self.embed_dropout, training=self.training)
            z[m] = self.proj[m](x.transpose(1, 2)).transpose(1, 2)  # [B, L, d]
        last = []
        for t in self.targets:
            lt = z[t].shape[1]
            h = torch.cat([enc(z[t], self._mask(masks[s], lt), source=z[s] if s != t else None)
                           for s, enc in self.crossmodal[t].items()], dim=-1)
            h = self.memory[t](h, self._mask(masks[t], lt))
            last.append(self._last(h, masks[t]))
        feats = torch.cat(last, dim=-1)
        hidden = self.proj2(F.dropout(F.relu(self.proj1(feats)), p=self.out_dropout, training=self.training))
        return Output(scores=self.out(hidden + feats), aux={"features": feats})

    # -- training -----------------------------------------------------------------
    def configure_optimizer(self, steps_per_epoch: int, epochs: int) -> OptimSetup:
        """Adam; ReduceLROnPlateau on the validation loss (the authors' ``when`` = patience)."""
        hp = self.hparams
        opt = torch.optim.Adam(self.parameters(), lr=float(hp.get("lr", 1e-3)))
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", patience=int(hp.get("lr_patience", 20)), factor=float(hp.get("lr_factor", 0.1)))
        return OptimSetup(opt, sched, interval="epoch")
