"""TAILOR: versatile multi-modal learning for multi-label emotion recognition.

Paper: Yi Zhang, Mingyuan Chen, Jundong Shen, Chongjun Wang, "Tailor Versatile
Multi-Modal Learning for Multi-Label Emotion Recognition", AAAI 2022
(AAAI-22, Vol. 36). Authors' code: https://github.com/kniter1/TAILOR
(read for facts only; nothing here is copied from it).

What each class implements ("§" = a section of the paper's Methodology):

* :class:`UniModalEncoder` — § Uni-modal Extractor: LayerNorm on the raw
  features (done in :class:`Tailor`), a BERT-style embedding (Linear(in→d) +
  learned positions + LayerNorm + dropout) and an n-layer post-LN Transformer
  encoder (GELU, FFN size 256); text 6, vision 4, audio 4 layers.
* :class:`CTCAligner` — the alignment module for unaligned input (§ Experimental
  Results: "we include CTC (Graves et al. 2006) to be suitable for the unaligned
  setting"; the authors' code: a 2-layer LSTM mapping 500-step audio/vision to 50 steps).
* :class:`AdversarialRefinement` — § Adversarial Multi-modal Refinement: the
  shared common generator G (Eq. 1), the private extractors f_v, f_a, f_t
  (Eq. 1), the modality discriminator D (Eq. 2) fed the common features through
  a gradient-reversal layer (Eq. 4, L_C) and the private ones directly (Eq. 5,
  L_P), and the common-semantics classifier (Eq. 7, L_cml). The orthogonality
  loss (Eq. 6, L_diff) is reduced in :meth:`Tailor.loss`.
* :class:`CrossModalEncoder` — § Hierarchical Cross-Modal Encoder, Fig. 3: CME(A, B)
  = Transformer(cat(A, B) + positions + modality token embeddings).
* :class:`Tailor` builds HCME (Eq. 8) as a chain of CMEs along the fusion order
  ψ = [v, a, t, c]: Z^va = CME(P^v, P^a), Z^vat = CME(Z^va, P^t),
  M = CME(Z^vat, C) with C = C^v + C^a + C^t.
* :class:`LabelGuidedDecoder` — § Label-Guided Decoder: label embeddings,
  label self-attention (label correlations, Eqs. 9–12), cross-attention to M
  (label-modal dependence, Eq. 13), FFN with residuals and LayerNorms (Eq. 14),
  per-label linear scores (Eq. 15).
* :meth:`Tailor.loss` — Eq. 17: L_ml + α(L_C + L_P) + β L_diff + γ L_cml, and
  for unaligned input + `ctc_weight` · CTC (the authors' code; 0.5).

Choices the paper leaves open (each one named; the config key in brackets):

1. Positions of the uni-modal encoders: a learned table of `max_positions` (60,
   the authors' config) rows, grown to the encoder's input length when that is
   longer. Unaligned audio/vision are aligned to the text's 50 steps *before*
   their encoders (as in the authors' code), so 60 rows serve both MOSEI settings.
2. Alignment module: for each modality whose length differs from the text's
   (audio and vision on mosei-unaligned), a 2-layer LSTM whose hidden size is
   T+1 (T = the text length, 50: one output per target position plus a CTC
   blank, index 0) reads the layer-normalised raw features. A softmax over its
   outputs gives, per source step i, p_i(j) over target positions j; the aligned
   sequence is x'_j = Σ_i p_i(j) x_i over the *real* source steps (the MulT CTC
   baseline's pseudo-alignment: a probability-weighted sum of the source
   modality's own features, not of the target's). CTC targets: the target
   position sequence 1..n_t where n_t is the sample's real text length; input
   lengths are the sample's real source lengths; `F.ctc_loss` on the
   log-softmax, mean reduction (per-sample loss / target length, then batch
   mean), `zero_infinity` so a sample whose source is shorter than its text
   (or empty) adds nothing. The aligned steps are real where the text is real
   and the source modality has any real step. The audio and vision CTC losses
   are summed and weighted by `ctc_weight` (0.5, the authors' code). The
   alignment is not optional: C = C^v + C^a + C^t needs equal lengths.
3. Common generator / private extractors / discriminator sizes (the authors'
   code): G = Linear(d,d) → dropout 0.3 → tanh; f_m = Linear(d,d) →
   dropout 0.1 → tanh; D = Linear(d, d/2) → dropout 0.1 → ReLU → Linear(d/2, 3)
   [`discriminator_hidden`: 128; 0 gives Eq. 2's single linear map, without its
   per-position bias]. Modality classes v=0, a=1, t=2 (Eq. 3). GRL coefficient 1
   [`grl_coeff`].
4. L_C and L_P: cross-entropy averaged over a modality's real steps (padded
   steps are not classified), summed over the three modalities (Eqs. 4–5 sum
   over m). Both go through the same discriminator, which thus learns to tell
   modalities apart from both C and P while G is pushed (reversed gradient) to
   make C indistinguishable.
5. L_diff (Eq. 6; its leading minus sign is a typo — minimising it would reward
   redundancy): Σ_m ‖C^m (P^m)ᵀ‖_F² over real steps (padded steps zeroed),
   averaged over the batch, in float32. The authors' code also adds the three
   private–private pairs [`orthogonality_private_pairs`: false].
6. L_cml (Eq. 7): one shared Linear(d, l) classifier on each C^m, pooled by a
   masked mean over time (the paper does not say how a d×τ matrix becomes one
   prediction); the three BCEs are summed over m. The authors' code instead
   classifies the first step of C = ΣC^m once [`common_classifier_input`:
   per_modality | summed_first_step]. Unlike the code, no dropout or sigmoid is
   applied to the logits (BCE with logits).
7. L_ml: BCE with logits, mean over samples and labels (the code's
   `nn.BCELoss()`), so α, β, γ keep the scale the authors tuned.
8. HCME: each CME adds learned positions 0..(τ_A+τ_B−1) over the concatenation
   (padded steps keep their slots and are masked from attention), token types
   0 for A and 1 for B, then LayerNorm + dropout and `cross_layers` (3) post-LN
   layers. Position table: `cross_max_positions` (240 = 4·60), grown when the
   fused sequence is longer. Argument order follows Eq. 8 (CME(P^v, P^a), then
   CME(Z^va, P^t), then CME(Z^vat, C)); the authors' code concatenates
   (audio, vision) and (text, Z^va) — only positions and token types differ
   [`cme_argument_order`: paper | code: every CME but the last takes its two
   arguments the other way round, which is the code's order for ψ = vatc].
   Their LayerNorms use BERT's ε = 1e-12, ours torch's 1e-5 (with their weights
   the logits move by about 1e-4; tests/parity/test_tailor.py measures it).
   The CME's BERT pooler is omitted (nothing uses it). The mask of C is the union
   of the three modalities' masks (the code marks every step of C real).
9. Label-guided decoder: label queries Embedding(l, d) → LayerNorm → dropout (the
   code's embedding layer); one layer; attention dropout 0.3; the output
   projection of each attention is Eq. 12's W^L / Eq. 13's W^M. The per-label
   weights of Eq. 15 are separate (the authors' code shares one Linear(d, 1)).
10. Initialisation: BERT's (normal(0, `init_std` = 0.02) for linear and embedding
    weights, zero biases, unit LayerNorms); the LSTM keeps torch's default. The
    small preset sets `init_std: null` (torch's defaults): at d = 32 a 0.02
    initialisation makes the scores nearly independent of the input.
11. Optimiser: AdamW (BertAdam's weight decay is decoupled) with weight decay
    0.01 except on biases and LayerNorms, linear warm-up over the first 10% of
    steps then linear decay to 0 (stepped per batch), gradient clipping 1.0.
    lr 1e-5 aligned / 1e-4 unaligned (paper); the authors' script uses 5e-5.
12. Model selection: validation micro-F1 (the authors' script), on a copy of the
    weights; every test sample is scored (the runner).

Ablation switches (Table 3, aligned CMU-MOSEI):

* `amr_losses`: which refinement losses train the AMR module — `all` (12),
  `adv_diff` (3: L_adv + L_diff), `adv` (2: L_adv only), `none` (1: "w/o AMR").
  Rows (1)→(2)→(3)→(12) "gradually integrate L_adv, L_diff, L_cml", so "w/o AMR"
  keeps the extractors (C and P still exist, as in Fig. 6's "without
  adversarial training") and drops every refinement loss; the discriminator
  and common classifier are not built when their losses are off.
* `representations`: `both` (12), `common` (4: "w/ C^{v,a,t}") or `private`
  (5: "w/ P^{v,a,t}"). With one kind, HCME is the two CMEs over that kind's
  three modalities in the order ψ without its `c` (no mixed-grained step).
* `fusion_order`: ψ as a string over {v, a, t, c}, default `vatc`; rows (6)
  `vtac` and (7) `atvc`. Any permutation is accepted.
* `modality_token_embedding`: false for row (8) "w/o MTE".
* `label_decoder`: `label` (the decoder) or `identical` (row 9: a dense layer
  on the masked mean of M).
* `label_correlations` (label self-attention, LC) and `label_modal_attention`
  (cross-attention to M): row (10) "w/ LE" = both false, row (11) "w/ LE, LC" =
  correlations only, row (12) = both. Without the cross-attention each label
  reads M uniformly: Dep = W(mean of M's real steps), i.e. attention with equal
  weights (one linear map stands for W^V W^M).

Parameters against the authors' code (aligned MOSEI, their train.sh: 6/4/4
encoder layers, d = 256, 6 labels), to the parameter (tests/parity/test_tailor.py):

    ours 10,405,185 = authors' 10,798,652
                      − 394,752  six BERT poolers, Linear(256, 256) each (the text,
                                 vision and audio encoders' and the three CMEs'):
                                 computed, but their outputs reach neither the
                                 scores nor the loss
                      −     257  their label read-out, one Linear(256, 1) shared by
                                 all labels
                      +   1,542  ours: Eq. 15's separate weights per label,
                                 6 × (256 + 1)
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmerbench.data.batching import Batch
from mmerbench.data.spec import DatasetSpec
from mmerbench.errors import MmerbenchError
from mmerbench.methods._layers import MultiheadAttention, TransformerLayer, attention_mask, grad_reverse
from mmerbench.methods.base import (
    LossParts,
    Method,
    OptimSetup,
    Output,
    decay_groups,
    masked_mean,
    task_loss,
    warmup_linear,
)
from mmerbench.registry import register

MODALITY = {"v": "vision", "a": "audio", "t": "text"}
MODALITY_CLASS = {"vision": 0, "audio": 1, "text": 2}  # Eq. 3: O^v, O^a, O^t
AMR_LOSSES = {"all": ("adv", "diff", "cml"), "adv_diff": ("adv", "diff"), "adv": ("adv",), "none": ()}


def _no_autocast(t: torch.Tensor):
    """Reductions whose sums overflow bf16's precision run in float32."""
    return torch.autocast(device_type=t.device.type, enabled=False) if torch.is_autocast_enabled(t.device.type) \
        else nullcontext()


def _encoder_stack(d: int, heads: int, d_ff: int, layers: int, dropout: float) -> nn.ModuleList:
    """BERT layers: post-LN, GELU, dropout on attention probabilities and hidden states (none inside the FFN)."""
    return nn.ModuleList(
        TransformerLayer(d, heads, d_ff, dropout=dropout, attn_dropout=dropout, relu_dropout=0.0,
                         activation="gelu", norm_first=False)
        for _ in range(layers)
    )


class UniModalEncoder(nn.Module):
    """§ Uni-modal Extractor: Linear(in→d) + learned positions → LN → dropout → post-LN Transformer."""

    def __init__(self, in_dim: int, d: int, heads: int, d_ff: int, layers: int, dropout: float,
                 max_positions: int) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, d)
        self.positions = nn.Embedding(max_positions, d)
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)
        self.layers = _encoder_stack(d, heads, d_ff, layers, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(x.shape[1], device=x.device)
        h = self.drop(self.norm(self.embed(x) + self.positions(pos)[None]))
        am = attention_mask(mask, x.shape[1])
        for layer in self.layers:
            h = layer(h, mask=am)
        return h


class CTCAligner(nn.Module):
    """Maps a long source sequence to `target_len` steps (choice 2 in the module docstring).

    A 2-layer LSTM predicts, per source step, a distribution over the target
    positions plus a blank (index 0); the aligned sequence is the
    probability-weighted sum of the source's real steps.
    """

    def __init__(self, in_dim: int, target_len: int) -> None:
        super().__init__()
        self.target_len = target_len
        self.lstm = nn.LSTM(in_dim, target_len + 1, num_layers=2, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with _no_autocast(x):  # float32: the LSTM and the 500-step weighted sums stay out of bf16
            x = x.float()
            logits, _ = self.lstm(x)  # [B, Ls, T+1]; valid steps come first, so padding never feeds them
            probs = logits.softmax(-1)[..., 1:] * mask[..., None].to(logits.dtype)  # drop blank and padded steps
            aligned = torch.bmm(probs.transpose(1, 2), x)  # [B, T, D]
        return aligned, logits


def ctc_alignment_loss(logits: torch.Tensor, source_mask: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """CTC of the aligner's position predictions against the target positions 1..n (n = real target length)."""
    b, _, c = logits.shape
    targets = torch.arange(1, c, device=logits.device).expand(b, c - 1).contiguous()
    with _no_autocast(logits):
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # [Ls, B, T+1]
        return F.ctc_loss(log_probs, targets, source_mask.sum(1), target_mask.sum(1), blank=0,
                          reduction="mean", zero_infinity=True)


class AdversarialRefinement(nn.Module):
    """§ Adversarial Multi-modal Refinement: G (common), f_m (private), D (modality discriminator), common classifier."""

    def __init__(self, d: int, num_labels: int, *, common_dropout: float, private_dropout: float,
                 discriminator_hidden: int, discriminator_dropout: float, with_discriminator: bool,
                 with_classifier: bool) -> None:
        super().__init__()
        self.common = nn.Sequential(nn.Linear(d, d), nn.Dropout(common_dropout), nn.Tanh())  # G(·; θ_G)
        self.private = nn.ModuleDict({
            m: nn.Sequential(nn.Linear(d, d), nn.Dropout(private_dropout), nn.Tanh()) for m in MODALITY_CLASS
        })  # f_v, f_a, f_t
        self.discriminator: nn.Module | None = None
        if with_discriminator:
            if discriminator_hidden > 0:
                self.discriminator = nn.Sequential(
                    nn.Linear(d, discriminator_hidden), nn.Dropout(discriminator_dropout), nn.ReLU(),
                    nn.Linear(discriminator_hidden, len(MODALITY_CLASS)),
                )
            else:  # Eq. 2: softmax(Iᵀ W + b)
                self.discriminator = nn.Linear(d, len(MODALITY_CLASS))
        self.classifier = nn.Linear(d, num_labels) if with_classifier else None  # Eq. 7's ŷ^{j,m}

    def forward(self, h: torch.Tensor, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self.common(h), self.private[modality](h)


class CrossModalEncoder(nn.Module):
    """Fig. 3: Z = CME(A, B) = Transformer(LN(cat(A, B) + positions + modality token embeddings))."""

    def __init__(self, d: int, heads: int, d_ff: int, layers: int, dropout: float, max_positions: int,
                 token_types: bool) -> None:
        super().__init__()
        self.positions = nn.Embedding(max_positions, d)
        self.token_types = nn.Embedding(2, d) if token_types else None
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)
        self.layers = _encoder_stack(d, heads, d_ff, layers, dropout)

    def forward(self, a: torch.Tensor, a_mask: torch.Tensor, b: torch.Tensor,
                b_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([a, b], dim=1)
        mask = torch.cat([a_mask, b_mask], dim=1)
        e = x + self.positions(torch.arange(x.shape[1], device=x.device))[None]
        if self.token_types is not None:
            types = torch.cat([torch.zeros(a.shape[1], dtype=torch.long, device=x.device),
                               torch.ones(b.shape[1], dtype=torch.long, device=x.device)])
            e = e + self.token_types(types)[None]
        h = self.drop(self.norm(e))
        am = attention_mask(mask, x.shape[1])
        for layer in self.layers:
            h = layer(h, mask=am)
        return h, mask


class LabelGuidedDecoder(nn.Module):
    """§ Label-Guided Decoder (Eqs. 9–15): label queries attend to each other, then to M; per-label scores."""

    def __init__(self, num_labels: int, d: int, heads: int, d_ff: int, dropout: float, *,
                 label_correlations: bool, label_modal_attention: bool) -> None:
        super().__init__()
        self.labels = nn.Embedding(num_labels, d)  # L = [L_1; …; L_l]
        self.label_norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)
        # Eqs. 9–12: label correlations r = q kᵀ, S = softmax(r/√(d/h)) v, L = LN(L + S W^L)
        self.self_attn = MultiheadAttention(d, heads, dropout) if label_correlations else None
        self.self_norm = nn.LayerNorm(d) if label_correlations else None
        # Eq. 13: Dep_{M→L}; without it, a uniform read of M (see the module docstring)
        self.cross_attn = MultiheadAttention(d, heads, dropout) if label_modal_attention else None
        self.uniform_read = None if label_modal_attention else nn.Linear(d, d)
        self.cross_norm = nn.LayerNorm(d)
        # Eq. 14: H = LN(L̂ + FFN(L̂))
        self.ff1, self.ff2 = nn.Linear(d, d_ff), nn.Linear(d_ff, d)
        self.ff_norm = nn.LayerNorm(d)
        # Eq. 15: F_k = sigmoid(H_k W_k + b_k), one weight vector per label
        self.head_weight = nn.Parameter(torch.empty(num_labels, d))
        self.head_bias = nn.Parameter(torch.zeros(num_labels))

    def forward(self, m: torch.Tensor, m_mask: torch.Tensor) -> torch.Tensor:
        b = m.shape[0]
        idx = torch.arange(self.labels.num_embeddings, device=m.device)
        lab = self.drop(self.label_norm(self.labels(idx)))[None].expand(b, -1, -1)
        if self.self_attn is not None:
            lab = self.self_norm(lab + self.drop(self.self_attn(lab)))
        if self.cross_attn is not None:
            dep = self.cross_attn(lab, m, attention_mask(m_mask, lab.shape[1]))
        else:
            dep = self.uniform_read(masked_mean(m, m_mask))[:, None].expand_as(lab)
        lab = self.cross_norm(lab + self.drop(dep))
        h = self.ff_norm(lab + self.drop(self.ff2(F.gelu(self.ff1(lab)))))
        return (h * self.head_weight).sum(-1) + self.head_bias  # [B, l] logits


@register("tailor")
class Tailor(Method):
    paper = "Tailor Versatile Multi-Modal Learning for Multi-Label Emotion Recognition (Zhang et al., AAAI 2022)"
    tasks = ("multilabel",)
    required_modalities = ("text", "audio", "vision")

    def __init__(
        self,
        spec: DatasetSpec,
        *,
        d_model: int = 256,
        heads: int = 8,
        d_ff: int = 256,
        dropout: float = 0.3,
        text_layers: int = 6,
        audio_layers: int = 4,
        vision_layers: int = 4,
        max_positions: int = 60,
        cross_layers: int = 3,
        cross_max_positions: int = 240,
        common_dropout: float = 0.3,
        private_dropout: float = 0.1,
        discriminator_hidden: int = 128,
        discriminator_dropout: float = 0.1,
        grl_coeff: float = 1.0,
        alpha: float = 0.01,
        beta: float = 5e-6,
        gamma: float = 0.5,
        ctc_weight: float = 0.5,
        amr_losses: str = "all",
        representations: str = "both",
        fusion_order: str = "vatc",
        modality_token_embedding: bool = True,
        label_decoder: str = "label",
        label_correlations: bool = True,
        label_modal_attention: bool = True,
        common_classifier_input: str = "per_modality",
        orthogonality_private_pairs: bool = False,
        init_std: float | None = 0.02,
        cme_argument_order: str = "paper",
        **hparams: Any,
    ) -> None:
        super().__init__(spec, **hparams)
        missing = [m for m in MODALITY_CLASS if m not in spec.modalities]
        if missing:
            raise MmerbenchError(f"TAILOR needs text, audio and vision; {spec.name!r} lacks {', '.join(missing)}.")
        if amr_losses not in AMR_LOSSES:
            raise MmerbenchError(f"Expected `amr_losses` in {sorted(AMR_LOSSES)}, but got {amr_losses!r}.")
        if representations not in ("both", "common", "private"):
            raise MmerbenchError(f"Expected `representations` in both/common/private, but got {representations!r}.")
        order = str(fusion_order)
        if sorted(order) != sorted("vatc"):
            raise MmerbenchError(f"Expected `fusion_order` to be a permutation of 'vatc', but got {fusion_order!r}.")
        if label_decoder not in ("label", "identical"):
            raise MmerbenchError(f"Expected `label_decoder` in label/identical, but got {label_decoder!r}.")
        if cme_argument_order not in ("paper", "code"):
            raise MmerbenchError(f"Expected `cme_argument_order` in paper/code, but got {cme_argument_order!r}.")
        self.cme_swap = cme_argument_order == "code"
        if common_classifier_input not in ("per_modality", "summed_first_step"):
            raise MmerbenchError("Expected `common_classifier_input` in per_modality/summed_first_step, "
                                 f"but got {common_classifier_input!r}.")

        self.alpha, self.beta, self.gamma, self.ctc_weight = float(alpha), float(beta), float(gamma), float(ctc_weight)
        self.grl_coeff = float(grl_coeff)
        self.losses = AMR_LOSSES[amr_losses]
        self.representations = representations
        self.order = order if representations == "both" else order.replace("c", "")
        self.common_classifier_input = common_classifier_input
        self.orthogonality_private_pairs = bool(orthogonality_private_pairs)
        d = int(d_model)

        # Alignment (unaligned input): every modality whose length differs from the text's.
        tau = spec.modalities["text"].length
        self.input_norms = nn.ModuleDict({m: nn.LayerNorm(spec.modalities[m].dim) for m in MODALITY_CLASS})
        self.aligners = nn.ModuleDict({
            m: CTCAligner(spec.modalities[m].dim, tau) for m in MODALITY_CLASS if spec.modalities[m].length != tau
        })
        layers = {"text": text_layers, "audio": audio_layers, "vision": vision_layers}
        self.encoders = nn.ModuleDict({
            m: UniModalEncoder(spec.modalities[m].dim, d, heads, d_ff, int(layers[m]), dropout,
                               max(int(max_positions), tau))
            for m in MODALITY_CLASS
        })
        self.amr = AdversarialRefinement(
            d, spec.num_labels, common_dropout=common_dropout, private_dropout=private_dropout,
            discriminator_hidden=int(discriminator_hidden), discriminator_dropout=discriminator_dropout,
            with_discriminator="adv" in self.losses, with_classifier="cml" in self.losses,
        )
        fused_len = tau * len(self.order)
        self.cross = nn.ModuleList(
            CrossModalEncoder(d, heads, d_ff, int(cross_layers), dropout, max(int(cross_max_positions), fused_len),
                              bool(modality_token_embedding))
            for _ in range(len(self.order) - 1)
        )
        if label_decoder == "label":
            self.decoder: nn.Module | None = LabelGuidedDecoder(
                spec.num_labels, d, heads, d_ff, dropout, label_correlations=bool(label_correlations),
                label_modal_attention=bool(label_modal_attention))
            self.identical = None
        else:
            self.decoder, self.identical = None, nn.Linear(d, spec.num_labels)
        self.init_std = None if init_std is None else float(init_std)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """BERT's initialisation at `init_std`; with `init_std: null`, torch's defaults (the per-label
        weights then get 1/√d). 0.02 suits d = 256; at the small preset's d = 32 it leaves the scores
        almost independent of the input (each 0.02-initialised d×d map has gain ~0.02·√d), and training
        stalls at the label marginals, hence the preset's null."""
        std = self.init_std
        if isinstance(module, LabelGuidedDecoder):
            nn.init.normal_(module.head_weight, 0.0, std if std is not None else module.head_weight.shape[1] ** -0.5)
        if std is None:
            return
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # -- the model ---------------------------------------------------------------
    def forward(self, batch: Batch) -> Output:
        aux: dict[str, torch.Tensor] = {}
        x = {m: self.input_norms[m](batch.inputs[m]) for m in MODALITY_CLASS}
        mask = {m: batch.masks[m] for m in MODALITY_CLASS}
        for m, aligner in self.aligners.items():  # unaligned: audio/vision → the text's steps
            x[m], aux[f"ctc_logits_{m}"] = aligner(x[m], mask[m])
            aux[f"ctc_source_mask_{m}"] = mask[m]
            mask[m] = batch.masks["text"] & mask[m].any(1, keepdim=True)
        h = {m: self.encoders[m](x[m], mask[m]) for m in MODALITY_CLASS}  # V, A, T

        common, private = {}, {}
        for m in MODALITY_CLASS:  # Eq. 1; padded steps zeroed so they add nothing to C or the losses
            keep = mask[m][..., None].to(h[m].dtype)
            c, p = self.amr(h[m], m)
            common[m], private[m] = c * keep, p * keep
            aux[f"common_{m}"], aux[f"private_{m}"], aux[f"mask_{m}"] = common[m], private[m], mask[m]
        c_sum = common["vision"] + common["audio"] + common["text"]  # C = C^v + C^a + C^t
        c_mask = mask["vision"] | mask["audio"] | mask["text"]

        if self.amr.discriminator is not None:  # Eqs. 4–5: D(GRL(C^m)) and D(P^m)
            for m in MODALITY_CLASS:
                aux[f"disc_common_{m}"] = self.amr.discriminator(grad_reverse(common[m], self.grl_coeff))
                aux[f"disc_private_{m}"] = self.amr.discriminator(private[m])
        if self.amr.classifier is not None:  # Eq. 7
            if self.common_classifier_input == "per_modality":
                for m in MODALITY_CLASS:
                    aux[f"common_logits_{m}"] = self.amr.classifier(masked_mean(common[m], mask[m]))
            else:
                aux["common_logits_sum"] = self.amr.classifier(c_sum[:, 0])

        # Eq. 8: HCME along ψ
        kind = {"both": private, "private": private, "common": common}[self.representations]
        streams = {k: (kind[MODALITY[k]], mask[MODALITY[k]]) for k in "vat"}
        streams["c"] = (c_sum, c_mask)
        z, z_mask = streams[self.order[0]]
        for i, (cme, key) in enumerate(zip(self.cross, self.order[1:])):
            if self.cme_swap and i < len(self.cross) - 1:  # the authors' code: CME(P^a, P^v), CME(P^t, Z^va)
                z, z_mask = cme(*streams[key], z, z_mask)
            else:
                z, z_mask = cme(z, z_mask, *streams[key])

        if self.decoder is not None:
            scores = self.decoder(z, z_mask)
        else:  # Table 3 row (9), "w/ identical"
            scores = self.identical(masked_mean(z, z_mask))
        return Output(scores=scores, aux=aux)

    # -- the objective (Eq. 17) ------------------------------------------------------
    def loss(self, batch: Batch, out: Output) -> LossParts:
        aux = out.aux
        ml = task_loss(self.spec, out.scores, batch.labels)  # Eq. 16
        parts = {"task": ml}
        total = ml
        if "adv" in self.losses:
            lc = sum(self._modality_ce(aux[f"disc_common_{m}"], aux[f"mask_{m}"], m) for m in MODALITY_CLASS)
            lp = sum(self._modality_ce(aux[f"disc_private_{m}"], aux[f"mask_{m}"], m) for m in MODALITY_CLASS)
            parts["adv_common"], parts["adv_private"] = lc, lp
            total = total + self.alpha * (lc + lp)
        if "diff" in self.losses:
            pairs = [(aux[f"common_{m}"], aux[f"private_{m}"]) for m in MODALITY_CLASS]
            if self.orthogonality_private_pairs:
                p = [aux[f"private_{m}"] for m in MODALITY_CLASS]
                pairs += [(p[0], p[1]), (p[0], p[2]), (p[1], p[2])]
            diff = sum(self._orthogonality(a, b) for a, b in pairs)
            parts["orthogonality"] = diff
            total = total + self.beta * diff
        if "cml" in self.losses:
            keys = [k for k in aux if k.startswith("common_logits_")]
            cml = sum(task_loss(self.spec, aux[k], batch.labels) for k in keys)
            parts["common_semantic"] = cml
            total = total + self.gamma * cml
        if self.aligners:
            ctc = sum(ctc_alignment_loss(aux[f"ctc_logits_{m}"], aux[f"ctc_source_mask_{m}"], batch.masks["text"])
                      for m in self.aligners)
            parts["ctc"] = ctc
            total = total + self.ctc_weight * ctc
        return LossParts(total=total, parts=parts)

    def accumulation_refusal(self) -> str | None:
        if "adv" in self.losses:
            return ("the adversarial modality cross-entropy (Eqs. 4–5) is a mean over the real time steps of "
                    "the whole batch, not over samples, so micro-batches would weigh steps differently")
        return None

    @staticmethod
    def _modality_ce(logits: torch.Tensor, mask: torch.Tensor, modality: str) -> torch.Tensor:
        """Eqs. 4–5 for one modality: cross-entropy against O^m, averaged over real steps."""
        target = torch.full(mask.shape, MODALITY_CLASS[modality], dtype=torch.long, device=mask.device)
        ce = F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), reduction="none").view(mask.shape)
        m = mask.to(ce.dtype)
        return (ce * m).sum() / m.sum().clamp_min(1.0)

    @staticmethod
    def _orthogonality(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Eq. 6 for one pair: ‖A Bᵀ‖_F² per sample (over time steps), mean over the batch, in float32."""
        with _no_autocast(a):
            return torch.bmm(a.float(), b.float().transpose(1, 2)).pow(2).sum((1, 2)).mean()

    # -- optimisation ------------------------------------------------------------
    def configure_optimizer(self, steps_per_epoch: int, epochs: int) -> OptimSetup:
        hp = self.hparams
        opt = torch.optim.AdamW(decay_groups(self, float(hp.get("weight_decay", 0.01))), lr=float(hp.get("lr", 1e-5)))
        sched = warmup_linear(opt, max(1, steps_per_epoch * epochs), float(hp.get("warmup", 0.1)))
        return OptimSetup(opt, sched, interval="step")
