"""FDMER: feature-disentangled multimodal emotion recognition.

Paper: Dingkang Yang, Shuai Huang, Haopeng Kuang, Yangtao Du, Lihua Zhang,
"Disentangled Representation Learning for Multimodal Emotion Recognition",
ACM Multimedia 2022 (doi:10.1145/3503161.3547754). No public code: everything
here is built from the paper; what it leaves open is listed below.

What each part implements ("Eq." = the paper's equations, "§" its sections):

* :class:`ModalityEncoder` — §3.2, Eq. 1: an n_m-layer Transformer encoder
  (Vaswani et al.: multi-head self-attention and a position-wise FFN, each with
  a residual connection followed by LayerNorm) over X_m at its own width d_m,
  then "fully connected layers" to a vector Z_m ∈ R^{d_k}; text 5, audio 4,
  visual 4 layers, d_k = 256 (§4.2).
* ``FDMER.common`` / ``FDMER.private`` — §3.3, Eqs. 2–3: one common encoder
  I(·; θ_I) shared by all modalities and one private encoder S_m(·; θ_m) per
  modality, each a two-layer perceptron with GeLU; C_m = I(Z_m), P_m = S_m(Z_m).
* :func:`consistency_loss` — Eqs. 4–5: per modality the similarity matrix of the
  L2-normalised common representations of a batch, S_m = Ĉ_m Ĉ_mᵀ (n × n), and
  L_con = mean over modality pairs of ‖S_m1 − S_m2‖_F².
* :func:`hsic` / :func:`disparity_loss` — Eqs. 6–7: HSIC(P_m1, P_m2) =
  (n−1)⁻² tr(U K_m1 U K_m2) with inner-product kernels K = P Pᵀ and the
  centring matrix U = I − (1/n) e eᵀ; L_dis = mean over modality pairs.
* :class:`ModalityDiscriminator` and :func:`additive_angular_margin_loss` —
  Eqs. 8–9: ĥ = F(h) = W_F h + b_F (d_k → d = 128); ĥ and each column of W_D
  L2-normalised, so the logits are cosines; the target class's cosine becomes
  cos(θ_y + τ) and all logits are scaled by α (τ = 0.5, α = 72, §4.2).
  Eq. 10 (L_ami, on C_m, behind a gradient-reversal layer) and Eq. 11 (L_ams,
  on P_m, no reversal) are reduced in :meth:`FDMER.loss`.
* :class:`CrossModalAttentionFusion` — §3.4, Eqs. 12–17: phase 1, each target
  F_ta ∈ {C, P_t, P_a, P_v} (C = Σ_m C_m) attends to the concatenated source
  F_so = [C, P_t, P_a, P_v] (Eq. 12), then Y_ta = LN(F_ta) + F_so→ta (Eq. 13)
  and Y_ta = f_δ(LN(Y_ta)) + Y_ta (Eq. 14); phase 2, adaptive attention
  μ_ta = qᵀ tanh(W_ta Y_ta + b_ta) (Eq. 15), ψ = softmax(μ) (Eq. 16),
  Y_fin = Σ ψ_ta Y_ta (Eq. 17); Y_fin → fully connected layers → output.
* :meth:`FDMER.loss` — Eq. 18: L_task + β(L_ami + L_ams) + γ(L_con + L_dis).
  L_task (§3.5): cross-entropy for classification (one logit with BCE for a
  binary task, softmax cross-entropy for a multi-class one), the **MSE** for
  regression (the shared ``task_loss`` would use L1), and a sigmoid head with
  BCE for multi-label emotions (our choice: the paper has no multi-label task).

Choices the paper leaves open (each one named; the config key in brackets):

1. Encoder width. Eq. 1 keeps X_m's own width d_m (300 / 74 / 35 on MOSEI), so
   the paper config runs each Transformer at d_m [`encoder_dim`: null]; an
   integer first maps X_m to that width with a Linear (the small preset's 32).
   Heads: the largest divisor of the width not above `max_heads` (8): text 300
   → 6, audio 74 → 2, vision 35 → 7 heads. FFN width `ff_mult` (4) × width,
   ReLU, dropout `dropout` (0.1, Vaswani et al.'s base-model rate) on
   attention weights, residual branches and the embedded input.
2. Input: LayerNorm over the raw features of each modality (raw COVAREP/FACET
   scales differ by orders of magnitude), sinusoidal positions added (no √d
   scaling).
3. Sequence → vector ("through the fully connected layers"): the mean of the
   encoder's outputs over the real time steps, then one Linear(width → d_k).
   Padded steps are masked from attention and from the mean.
4. Common / private encoders: Linear(d_k, d_k) → GeLU → Linear(d_k, d_k), no
   activation after the second layer; the hidden width is d_k.
5. Eq. 4 as printed (S_m = C_m · C_m^norᵀ) normalises one side only; following
   the work it cites for the constraint (AM-GCN, Wang et al. 2020) and "the
   normalised matrices", both sides are normalised (cosine similarities), so
   the loss does not grow with the scale of C_m. ‖·‖_F² is the plain sum over
   the n × n entries (not divided by n²), as Eq. 5.
6. HSIC with n < 2 (a last batch of one sample): (n−1)⁻² is undefined; the
   term is 0 (the centred kernels are 0 anyway). Computed as
   ‖(U P_1)ᵀ (U P_2)‖_F² / (n−1)², which equals the trace form for the linear
   kernel (a test compares both).
7. Eq. 9 is computed with cos(θ + τ) = cos θ cos τ − sin θ sin τ,
   sin θ = √max(1 − cos²θ, 1e-6) (θ ∈ [0, π]); for θ + τ > π this follows
   the equation as printed (ArcFace's code substitutes cos θ − τ sin τ there;
   we do not). With τ = 0 the loss is exactly the cross-entropy of α·cos θ.
   Eq. 8's W_D has no bias. Modality labels y_m: the modality's index in the
   dataset's modality order (text 0, audio 1, vision 2 on MOSEI).
8. Eqs. 10–11: (1/n) Σ_i Σ_m — the batch mean of each modality's loss, summed
   over the modalities. The gradient-reversal coefficient is 1 [`grl_coeff`].
   The discriminator learns from both terms; the reversed gradient of L_ami
   pushes the common encoder the other way. Which parameters the regularisers
   train [`regularizer_scope`]: the paper says three times that the
   discriminator "guide[s] the parameter learning of the common and private
   encoders", and that L_con / L_dis "constrain the projections" into the
   subspaces; so by default (`encoders`) L_ami, L_ams, L_con and L_dis train D,
   I and the S_m, and their gradients stop at Z_m (the encoders' outputs enter
   their path detached; the task loss still trains everything through the
   same I and S_m). `all` lets them reach the Transformers too. Measured on the
   MOSEI twin with the small preset: at the first step the regularisers'
   gradient on the Transformers is ~40× the task's (10× at the paper config),
   and with `all` the model stayed at the label marginals for 20 epochs
   (β, γ ×0.1 did not help: 10 epochs); with `encoders` it learns.
9. Eq. 12 is dimensionally a single query (the target, d_k) attending over
   F_so read as four d_k-wide tokens: W_Q and W_U (4d_k × 4d_k, no bias) map
   LN(F_so) as one vector, whose output is split into 4 keys and 4 values; each
   target has its own LN and W_G (d_k × d_k, no bias). As printed, the scores
   G Qᵀ are not divided by √d_k [`cmaf_scaled`: false]. One head.
10. f_δ (Eq. 14): one FFN shared by the four targets, Linear(d_k, ff_mult·d_k) →
    ReLU → dropout → Linear(·, d_k), with one LayerNorm; dropout on the
    attention output and the FFN branch. Eq. 15: W_ta, b_ta per target, q shared
    (no bias).
11. Head ("the fully connected layers"): Linear(in → d_k) → ReLU → dropout →
    Linear(d_k → outputs).
12. Optimiser: Adam at the paper's initial learning rate, no weight decay, no
    schedule (none is given), no gradient clipping [`grad_clip`: null].
    Batch sizes, epochs, lr, β, γ per dataset (§4.2); MOSEI's values serve the
    multi-label MOSEI sets too. Model selection: the validation metric the
    paper reports (MAE for sentiment, Acc-2 for humour, micro-F1 for
    multi-label emotions; `select`).
13. Loss precision: every loss is computed in float32 (autocast off), the
    encoders may run in bf16 under the runner's CUDA autocast.
14. BERT rows [`text_encoder`: features | a checkpoint; preset `bert`]: §4.1
    takes BERT-base-uncased's 768-dimensional hidden states as the text input
    X_t of Eq. 1 (methods/text_encoder.py), which here replace the text
    features: LayerNorm, the text Transformer and the mean over real tokens
    as for GloVe. The paper does not say whether BERT is fine-tuned or its
    learning rate: ours fine-tunes all of it (`text_freeze`: none, MISA's
    habit, which the paper compares against) at `text_lr` 2e-5 (BERT's usual
    fine-tuning rate) in its own Adam group, 50 tokens (`text_max_length`).

Ablation switches (Table 4):

* `modalities`: a subset, e.g. [text, audio] = "w/o Visual". With M modalities
  the discriminator has M classes and L_con, L_dis average over the M(M−1)/2
  pairs (Eqs. 5 and 7 divide by the 3 pairs of three modalities).
* `adversarial: false` = "w/o L_ami + L_ams" (no discriminator is built);
  `consistency: false` = "w/o L_con"; `disparity: false` = "w/o L_dis".
* `discriminator_loss: cross_entropy` = "Cross-Entropy Loss": Eq. 8's plain
  softmax(W_Dᵀ F(h)) with cross-entropy instead of Eq. 9.
* `representations`: `both` (FDMER), `common` ("w/o Private": only C in the
  fusion), `private` ("w/o Common": only the P_m), each keeping the
  representation learning and its losses; `none` ("Non-Disentangled"): no
  common/private encoders, discriminator or constraint losses; Z_m are fused.
* `fusion`: `cmaf` (FDMER), `concat` ("w/o CMAF": the representations
  concatenated), `add` ("Addition": their sum), `multiply` ("Multiplication":
  their element-wise product — the row cites Mittal et al.'s multiplicative
  fusion, a loss-level combination of per-modality classifiers that the paper
  does not say how it applied to regression; this is the plain Hadamard
  product, not that scheme).
* `cmaf_phase1: false` = "w/o Phase 1" (Y_ta = F_ta); `cmaf_phase2: false` =
  "w/o Phase 2" (Y_fin is the mean of the Y_ta: equal, not adaptive, weights).
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from mmerbench.data.batching import Batch
from mmerbench.data.spec import DatasetSpec
from mmerbench.errors import MmerbenchError
from mmerbench.methods._layers import TransformerLayer, attention_mask, grad_reverse, sinusoidal_positions
from mmerbench.methods.base import LossParts, Method, OptimSetup, Output, masked_mean, output_size, task_loss
from mmerbench.methods.text_encoder import FEATURES, PretrainedText, text_input, uses_encoder, with_text_lr
from mmerbench.registry import register

REPRESENTATIONS = ("both", "common", "private", "none")
FUSIONS = ("cmaf", "concat", "add", "multiply")
DISCRIMINATOR_LOSSES = ("angular", "cross_entropy")
REGULARIZER_SCOPES = ("encoders", "all")
LAYER_KEYS = {"text": "text_layers", "audio": "audio_layers", "vision": "vision_layers"}


class FDMERConfigError(MmerbenchError, ValueError):
    """A setting FDMER cannot be built with (the CLI prints it as one sentence)."""


# ---------------------------------------------------------------------------- losses


def additive_angular_margin_loss(cosine: torch.Tensor, target: torch.Tensor, *, scale: float,
                                 margin: float) -> torch.Tensor:
    """Eq. 9, averaged over the rows: cross-entropy of α·cos θ_m with the target's cos θ_y → cos(θ_y + τ).

    `cosine` [N, M] holds cos θ between each normalised input and each normalised
    class weight; `target` [N] the class indices. With `margin` 0 this is exactly
    ``F.cross_entropy(scale * cosine, target)``.
    """
    cos = cosine.float().clamp(-1.0, 1.0)
    cos_y = cos.gather(1, target[:, None])
    sin_y = (1.0 - cos_y * cos_y).clamp_min(1e-6).sqrt()
    shifted = cos_y * math.cos(margin) - sin_y * math.sin(margin)  # cos(θ_y + τ)
    logits = cos.scatter(1, target[:, None], shifted)
    return F.cross_entropy(scale * logits, target)


def consistency_loss(common: Sequence[torch.Tensor]) -> torch.Tensor:
    """Eqs. 4–5: mean over modality pairs of ‖Ĉ_a Ĉ_aᵀ − Ĉ_b Ĉ_bᵀ‖_F² (Ĉ: rows L2-normalised), float32."""
    sims = []
    for c in common:
        cn = F.normalize(c.float(), dim=1)
        sims.append(cn @ cn.t())
    pairs = list(combinations(sims, 2))
    return sum((a - b).pow(2).sum() for a, b in pairs) / len(pairs)


def hsic(p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    """Eq. 6 with inner-product kernels: (n−1)⁻² tr(U P₁P₁ᵀ U P₂P₂ᵀ) = ‖(UP₁)ᵀ(UP₂)‖_F² / (n−1)²; 0 if n < 2."""
    n = p1.shape[0]
    if n < 2:
        return p1.new_zeros((), dtype=torch.float32)
    a = p1.float() - p1.float().mean(0, keepdim=True)  # U P₁ (U is symmetric and idempotent)
    b = p2.float() - p2.float().mean(0, keepdim=True)
    return (a.t() @ b).pow(2).sum() / (n - 1) ** 2


def disparity_loss(private: Sequence[torch.Tensor]) -> torch.Tensor:
    """Eq. 7: mean over modality pairs of HSIC(P_a, P_b)."""
    pairs = list(combinations(private, 2))
    return sum(hsic(a, b) for a, b in pairs) / len(pairs)


# ---------------------------------------------------------------------------- modules


def _heads_for(width: int, max_heads: int) -> int:
    return max(h for h in range(1, max(1, max_heads) + 1) if width % h == 0)


class ModalityEncoder(nn.Module):
    """Eq. 1: LayerNorm'd input (+ optional Linear to `width`) + sinusoidal positions → n post-LN
    Transformer layers → masked mean over time → Linear(width → d_k)."""

    def __init__(self, dim: int, width: int | None, layers: int, d_k: int, *, max_heads: int, ff_mult: int,
                 dropout: float) -> None:
        super().__init__()
        width = int(width or dim)
        self.width = width
        self.heads = _heads_for(width, max_heads)
        self.norm_in = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, width) if width != dim else None
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(width, self.heads, ff_mult * width, dropout=dropout, attn_dropout=dropout,
                             activation="relu", norm_first=False)
            for _ in range(layers)
        )
        self.out = nn.Linear(width, d_k)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm_in(x)
        if self.proj is not None:
            h = self.proj(h)
        h = self.drop(h + sinusoidal_positions(h.shape[1], self.width, device=h.device).to(h.dtype))
        am = attention_mask(mask, h.shape[1])
        for layer in self.layers:
            h = layer(h, mask=am)
        return self.out(masked_mean(h, mask))


def _mlp(d: int) -> nn.Sequential:
    """A two-layer perceptron with GeLU (Eqs. 2–3)."""
    return nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))


class ModalityDiscriminator(nn.Module):
    """Eq. 8: ĥ = W_F h + b_F, then scores against the M columns of W_D (cosines when `normalised`)."""

    def __init__(self, d_k: int, d: int, classes: int, *, normalised: bool) -> None:
        super().__init__()
        self.f = nn.Linear(d_k, d)
        self.weight = nn.Parameter(torch.empty(classes, d))  # W_Dᵀ: one row per modality
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)  # nn.Linear's default
        self.normalised = normalised

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=h.device.type, enabled=False):  # cosines in float32
            z = self.f(h.float())
            w = self.weight
            if self.normalised:
                return F.normalize(z, dim=1) @ F.normalize(w, dim=1).t()  # cos θ_m
            return z @ w.t()


class CrossModalAttentionFusion(nn.Module):
    """§3.4: phase 1 (Eqs. 12–14) and phase 2 (Eqs. 15–17) over K representations of width d_k."""

    def __init__(self, d_k: int, k: int, *, ff_mult: int, dropout: float, phase1: bool, phase2: bool,
                 scaled: bool) -> None:
        super().__init__()
        self.k, self.scaled = k, scaled
        self.drop = nn.Dropout(dropout)
        self.phase1, self.phase2 = phase1, phase2
        if phase1:
            self.target_norms = nn.ModuleList(nn.LayerNorm(d_k) for _ in range(k))
            self.target_proj = nn.ModuleList(nn.Linear(d_k, d_k, bias=False) for _ in range(k))  # W_G_ta
            self.source_norm = nn.LayerNorm(k * d_k)
            self.source_key = nn.Linear(k * d_k, k * d_k, bias=False)  # W_Q_so
            self.source_value = nn.Linear(k * d_k, k * d_k, bias=False)  # W_U_so
            self.ff_norm = nn.LayerNorm(d_k)
            self.ff = nn.Sequential(nn.Linear(d_k, ff_mult * d_k), nn.ReLU(), nn.Dropout(dropout),
                                    nn.Linear(ff_mult * d_k, d_k))
        if phase2:
            self.score_proj = nn.ModuleList(nn.Linear(d_k, d_k) for _ in range(k))  # W_ta, b_ta
            self.query = nn.Parameter(torch.empty(d_k))  # the shared attention vector q
            nn.init.normal_(self.query, 0.0, d_k ** -0.5)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, K, d_k] → Y_fin [B, d_k] and the weights ψ [B, K]."""
        b, k, d = tokens.shape
        y = tokens
        if self.phase1:
            f_ta = torch.stack([norm(tokens[:, i]) for i, norm in enumerate(self.target_norms)], 1)  # LN(F_ta)
            g = torch.stack([proj(f_ta[:, i]) for i, proj in enumerate(self.target_proj)], 1)  # G_ta
            src = self.source_norm(tokens.reshape(b, k * d))  # LN(F_so)
            keys = self.source_key(src).view(b, 1, k, d)  # Q_so, as K tokens
            values = self.source_value(src).view(b, 1, k, d)  # U_so, as K tokens
            att = F.scaled_dot_product_attention(g[:, None], keys, values, scale=None if self.scaled else 1.0)
            y = f_ta + self.drop(att[:, 0])  # Eq. 13
            y = y + self.drop(self.ff(self.ff_norm(y)))  # Eq. 14
        if self.phase2:
            mu = torch.stack([torch.tanh(proj(y[:, i])) @ self.query for i, proj in enumerate(self.score_proj)], 1)
            psi = torch.softmax(mu.float(), dim=1).to(y.dtype)  # Eq. 16
        else:
            psi = y.new_full((b, k), 1.0 / k)
        return (psi[..., None] * y).sum(1), psi  # Eq. 17


# ---------------------------------------------------------------------------- the method


@register("fdmer")
class FDMER(Method):
    paper = "Disentangled Representation Learning for Multimodal Emotion Recognition (Yang et al., ACM MM 2022)"
    tasks = ("multilabel", "regression", "binary", "multiclass")
    required_modalities = ("text", "audio", "vision")  # any two of them with `modalities`

    def __init__(
        self,
        spec: DatasetSpec,
        *,
        modalities: Sequence[str] | None = None,
        d_k: int = 256,
        encoder_dim: int | None = None,
        text_layers: int = 5,
        audio_layers: int = 4,
        vision_layers: int = 4,
        max_heads: int = 8,
        ff_mult: int = 4,
        dropout: float = 0.1,
        discriminator_dim: int = 128,
        margin: float = 0.5,
        scale: float = 72.0,
        grl_coeff: float = 1.0,
        beta: float = 0.03,
        gamma: float = 0.04,
        adversarial: bool = True,
        consistency: bool = True,
        disparity: bool = True,
        discriminator_loss: str = "angular",
        representations: str = "both",
        fusion: str = "cmaf",
        cmaf_phase1: bool = True,
        cmaf_phase2: bool = True,
        cmaf_scaled: bool = False,
        regularizer_scope: str = "encoders",
        text_encoder: str = FEATURES,
        text_freeze: str = "none",
        **hparams: Any,
    ) -> None:
        if isinstance(modalities, str):
            modalities = [modalities]
        mods = [m for m in spec.modalities if m in (modalities or list(spec.modalities))]
        unknown = sorted(set(modalities or ()) - set(spec.modalities))
        if unknown:
            raise FDMERConfigError(f"Expected `modalities` among {list(spec.modalities)}, but got {list(modalities)}.")
        other = [m for m in mods if m not in LAYER_KEYS]
        known = [m for m in mods if m in LAYER_KEYS]
        if other and len(known) < 2:
            raise FDMERConfigError(f"FDMER needs two or more of text, audio and vision; {spec.name!r} has "
                                   f"{', '.join(known) or 'none of them'}.")
        if other:
            raise FDMERConfigError(f"FDMER encodes text, audio and vision; {spec.name!r} has {', '.join(other)} "
                                   f"as well: pick two or more of {', '.join(known)} with `modalities`.")
        if len(mods) < 2:
            raise FDMERConfigError(f"FDMER disentangles two or more modalities, but got {mods}.")
        if representations not in REPRESENTATIONS:
            raise FDMERConfigError(f"Expected `representations` in {REPRESENTATIONS}, but got {representations!r}.")
        if fusion not in FUSIONS:
            raise FDMERConfigError(f"Expected `fusion` in {FUSIONS}, but got {fusion!r}.")
        if discriminator_loss not in DISCRIMINATOR_LOSSES:
            raise FDMERConfigError(f"Expected `discriminator_loss` in {DISCRIMINATOR_LOSSES}, "
                                   f"but got {discriminator_loss!r}.")
        if regularizer_scope not in REGULARIZER_SCOPES:
            raise FDMERConfigError(f"Expected `regularizer_scope` in {REGULARIZER_SCOPES}, "
                                   f"but got {regularizer_scope!r}.")
        super().__init__(spec, modalities=mods, **hparams)
        self.modalities = mods
        self.regularizer_scope = regularizer_scope
        self.representations, self.fusion = representations, fusion
        self.margin, self.scale, self.grl_coeff = float(margin), float(scale), float(grl_coeff)
        self.beta, self.gamma = float(beta), float(gamma)
        disentangled = representations != "none"
        self.use_adversarial = bool(adversarial) and disentangled
        self.use_consistency = bool(consistency) and disentangled
        self.use_disparity = bool(disparity) and disentangled
        self.discriminator_loss = discriminator_loss
        d_k = int(d_k)
        layers = {"text": text_layers, "audio": audio_layers, "vision": vision_layers}

        dims = {m: spec.modalities[m].dim for m in mods}
        self.text_model = None
        if uses_encoder(text_encoder) and "text" in mods:  # choice 14: BERT's hidden states are X_t
            self.text_model = PretrainedText(text_encoder, freeze=text_freeze)
            dims["text"] = self.text_model.hidden_size
        self.encoders = nn.ModuleDict({
            m: ModalityEncoder(dims[m], encoder_dim, int(layers[m]), d_k, max_heads=int(max_heads),
                               ff_mult=int(ff_mult), dropout=float(dropout))
            for m in mods
        })
        self.common = _mlp(d_k) if disentangled else None  # I(·; θ_I), shared
        self.private = nn.ModuleDict({m: _mlp(d_k) for m in mods}) if disentangled else None  # S_m(·; θ_m)
        self.discriminator = (
            ModalityDiscriminator(d_k, int(discriminator_dim), len(mods),
                                  normalised=discriminator_loss == "angular")
            if self.use_adversarial else None
        )
        k = {"both": 1 + len(mods), "common": 1, "private": len(mods), "none": len(mods)}[representations]
        self.cmaf = (
            CrossModalAttentionFusion(d_k, k, ff_mult=int(ff_mult), dropout=float(dropout), phase1=bool(cmaf_phase1),
                                      phase2=bool(cmaf_phase2), scaled=bool(cmaf_scaled))
            if fusion == "cmaf" else None
        )
        head_in = k * d_k if fusion == "concat" else d_k
        self.head = nn.Sequential(nn.Linear(head_in, d_k), nn.ReLU(), nn.Dropout(float(dropout)),
                                  nn.Linear(d_k, output_size(spec)))

    # -- the model ---------------------------------------------------------
    def forward(self, batch: Batch) -> Output:
        aux: dict[str, torch.Tensor] = {}
        seqs = {m: (batch.inputs[m], batch.masks[m]) for m in self.modalities}
        if "text" in seqs:
            seqs["text"] = text_input(self, batch)
        z = {m: self.encoders[m](*seqs[m]) for m in self.modalities}  # Eq. 1
        if self.common is not None and self.private is not None:
            common = {m: self.common(z[m]) for m in self.modalities}  # Eq. 2
            private = {m: self.private[m](z[m]) for m in self.modalities}  # Eq. 3
            if self.regularizer_scope == "encoders":  # the regularisers' copies stop at Z_m (choice 8)
                zd = {m: z[m].detach() for m in self.modalities}
                reg_c = {m: self.common(zd[m]) for m in self.modalities}
                reg_p = {m: self.private[m](zd[m]) for m in self.modalities}
            else:
                reg_c, reg_p = common, private
            for m in self.modalities:
                aux[f"common.{m}"], aux[f"private.{m}"] = reg_c[m], reg_p[m]
            if self.discriminator is not None:  # Eqs. 10–11: GRL on C_m only
                for m in self.modalities:
                    aux[f"disc_common.{m}"] = self.discriminator(grad_reverse(reg_c[m], self.grl_coeff))
                    aux[f"disc_private.{m}"] = self.discriminator(reg_p[m])
            c = sum(common.values())  # C = Σ_m C_m
            tokens = {"both": [c] + [private[m] for m in self.modalities], "common": [c],
                      "private": [private[m] for m in self.modalities]}[self.representations]
        else:  # Non-Disentangled: the encoders' Z_m are fused directly
            tokens = [z[m] for m in self.modalities]
        stacked = torch.stack(tokens, 1)  # [B, K, d_k]
        if self.cmaf is not None:
            fused, psi = self.cmaf(stacked)
            aux["fusion_weights"] = psi
        elif self.fusion == "concat":
            fused = stacked.flatten(1)
        elif self.fusion == "add":
            fused = stacked.sum(1)
        else:
            fused = stacked.prod(1)
        return Output(scores=self.head(fused), aux=aux)

    def configure_optimizer(self, steps_per_epoch: int, epochs: int) -> OptimSetup:
        """Adam at a constant `lr` (§4.2); a text encoder's parameters at `text_lr` (choice 14)."""
        hp = self.hparams
        groups = with_text_lr([{"params": [p for p in self.parameters() if p.requires_grad]}], self.text_model,
                              float(hp.get("text_lr", 2e-5)))
        return OptimSetup(torch.optim.Adam(groups, lr=float(hp.get("lr", 1e-3)),
                                           weight_decay=float(hp.get("weight_decay", 0.0))))

    # -- the objective (Eq. 18) ----------------------------------------------------
    def loss(self, batch: Batch, out: Output) -> LossParts:
        with torch.autocast(device_type=out.scores.device.type, enabled=False):  # float32 objective
            return self._loss(batch, out)

    def accumulation_refusal(self) -> str | None:
        if self.use_consistency or self.use_disparity:
            return ("the consistency (Eqs. 4–5, batch similarity matrices) and disparity (Eq. 7, HSIC) "
                    "constraints compare the samples of a batch with each other")
        return None

    def _task(self, batch: Batch, out: Output) -> torch.Tensor:
        if self.spec.task == "regression":  # §3.5: mean squared error
            return F.mse_loss(out.scores.float().reshape(-1), batch.labels.float())
        return task_loss(self.spec, out.scores.float(), batch.labels)

    def _modality_loss(self, scores: torch.Tensor, m: str) -> torch.Tensor:
        target = torch.full((scores.shape[0],), self.modalities.index(m), dtype=torch.long, device=scores.device)
        if self.discriminator_loss == "angular":
            return additive_angular_margin_loss(scores, target, scale=self.scale, margin=self.margin)
        return F.cross_entropy(scores.float(), target)

    def _loss(self, batch: Batch, out: Output) -> LossParts:
        a, mods = out.aux, self.modalities
        task = self._task(batch, out)
        parts = {"task": task}
        total = task
        if self.use_adversarial:
            parts["adv_common"] = sum(self._modality_loss(a[f"disc_common.{m}"], m) for m in mods)  # L_ami
            parts["adv_private"] = sum(self._modality_loss(a[f"disc_private.{m}"], m) for m in mods)  # L_ams
            total = total + self.beta * (parts["adv_common"] + parts["adv_private"])
        constraint = None
        if self.use_consistency:
            parts["consistency"] = consistency_loss([a[f"common.{m}"] for m in mods])
            constraint = parts["consistency"]
        if self.use_disparity:
            parts["disparity"] = disparity_loss([a[f"private.{m}"] for m in mods])
            constraint = parts["disparity"] if constraint is None else constraint + parts["disparity"]
        if constraint is not None:
            total = total + self.gamma * constraint
        return LossParts(total=total, parts=parts)
