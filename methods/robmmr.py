"""RobMMR: robust multi-modal multi-label emotion recognition by adversarial masking and perturbation.

Paper: Ge et al., "Learning Robust Multi-Modal Representation for Multi-Label
Emotion Recognition via Adversarial Masking and Perturbation", WWW 2023; only
the poster is at hand, so the facts come from it and from the authors'
published settings (ShipingGe/MMER), and every detail they leave open is
designed here and named below. Nothing is copied from any public code.

What each piece implements (poster numbering):

* :class:`RobMMR` embeds each modality with Linear(in → d) + LayerNorm + dropout
  (no positional encoding), encodes it with its uni-modal encoder (E^t, E^v, E^a)
  (:class:`SequenceEncoder`: post-LN Transformer layers and a final LayerNorm),
  encodes the concatenation of the uni-modal sequences with the tri-modal
  encoder E^m (same kind), and decodes one learned query per label with the
  emotion decoder D (:class:`EmotionDecoder`) → Linear(d, 1) → sigmoid (Eqs. 1–3:
  the model and its multi-label objective).
* Adversarial temporal masking (ATM, Fig. 3, Eq. 6): per modality a scorer
  s = Sigmoid(H W + b) on the uni-modal encoding H; m = T(s) with T a
  differentiable top-k (:func:`soft_topk`, entropic optimal transport solved by
  log-domain Sinkhorn iterations); m_j = 0 for the k highest-scored steps and 1
  otherwise. The masked input embeddings go through the model again and their
  loss is added with weight `mask_weight`. A gradient-reversal layer between
  the mask and the scorer makes the scorer maximise the masked-input loss.
* Adversarial parameter perturbation (APP, Fig. 2c): in :meth:`RobMMR.training_step`,
  after the backward pass the tri-modal encoder's parameters θ become
  θ + ε g/‖g‖ (g their gradient), the clean input is scored again, KL(perturbed ‖
  clean) on the sigmoid outputs is back-propagated, and θ is restored (copied
  back, bit for bit) before the optimizer step.
* Loss: the asymmetric loss (:func:`asymmetric_loss`; Ridnik et al. 2021,
  γ− = 2, γ+ = 1, clip 0.05) + `mask_weight` · (masked-input loss) +
  `app_weight` · KL. [`loss`: `asl` (default) | `bce`.] The poster's Eq. 3
  writes the multi-label objective as binary cross-entropy, while the authors
  trained with the asymmetric loss; the default follows the training that
  produced the reported numbers, and `bce` (ASL with γ± = 0 and no clipping:
  binary cross-entropy summed over labels) is the poster's equation. The
  choice applies to every term that scores labels (clean, masked, FGSM/PGD).

Choices the poster leaves open (config key in brackets):

1. **Scorer input and reversal.** The scorer reads the clean pass's uni-modal
   encoding H^m, detached: only the scorer is adversarial; the encoders are not
   pushed to make masking worse. The reversal (coefficient `atm_grl_coeff`, 0.1)
   sits on the scores, before the top-k [`atm_grl`: false = row "−adversarial
   gradient reversal": the scorer then helps the model, masking what matters least].
2. **The relaxation** (Xie et al. 2020, "Differentiable top-k with optimal
   transport"): the n real scores of a sequence are transported to the two
   anchors {0, 1} with marginals μ_i = 1/n and ν = ((n−k)/n, k/n), cost
   (s_i − y_j)², entropy weight `atm_epsilon` (0.1), `atm_iterations` (100)
   Sinkhorn iterations in the log domain, float32, vectorised over the batch.
   The soft indicator is A_i = n Γ_{i,1}. Padded steps carry no mass. The
   iterations run without autograd and the gradient is the implicit one of the
   Sinkhorn fixed point (see :func:`soft_topk`): exact at convergence, and the
   backward pass does not unroll a hundred iterations.
3. **"Exactly k".** k_i = min(`atm_k`, n_i) for a sequence with n_i real steps:
   a sequence no longer than k is masked entirely (NEMu's one-step picture is
   always dropped in the masked pass). The applied mask is hard: exactly the k_i
   highest-scored real steps (ties broken by position) are zeroed, never a
   padded one; the gradient reaches the scorer through the soft indicator
   (straight-through: hard + soft − sg(soft)). The soft indicator sums to k_i
   exactly after the last (column) Sinkhorn update, and tends to the hard
   indicator as ε → 0.
4. **Masking** zeroes the masked steps' input embeddings; they stay in the
   attention (as zero vectors) so sequence lengths and masks do not change.
5. **APP details.** ‖g‖ is the global norm over the perturbed modules'
   parameters (g = 0 gives no perturbation); g is the gradient of the whole
   first-pass loss (clean + masked); the perturbed pass sees the clean input
   with fresh dropout; the clean scores are the KL's fixed target (detached); the
   KL gradient taken at θ + δ is added to the clean gradient (the optimizer then
   steps once, from θ). KL is Bernoulli per label, summed over labels, batch
   mean, weight `app_weight` (1). Which modules are perturbed: `app_modules`
   ([trimodal]; Fig. 4b also tries `unimodal` and `decoder`).
6. **Loss reduction.** ASL and KL are summed over labels and averaged over the
   batch; the focusing weights keep their gradient.
7. **Decoder.** `dec_layers` (1) post-LN layers: label self-attention, cross-
   attention to the tri-modal sequence, FFN (ReLU, `d_ff`), dropout 0.1, one
   shared Linear(d, 1) read-out. The authors' code adds a final LayerNorm(d)
   after the decoder layers (2·d = 1,024 parameters at d = 512: the whole
   parameter gap between the two, 28,611,076 here against 28,612,100); the
   poster shows none, so it is off by default [`decoder_norm`: true = the
   authors' decoder]. Rows "−Attention" / "−FFN" of Table 2 are read
   as the decoder's label self-attention [`decoder_self_attention`] and its FFN
   [`decoder_ffn`].
8. **Tri-modal sequence.** The uni-modal encodings are concatenated along time
   (their masks too) with no positional or modality embeddings (the poster has
   none). Unaligned inputs need no alignment: each modality keeps its own length.
9. **Optimisation.** AdamW lr 5e-5, weight decay 0.01 (not on biases and
   LayerNorms), cosine decay to 0 stepped per batch with no warm-up [`warmup`:
   0.0], gradient clipping 1.0 [`grad_clip`], batch 128, 20 epochs [`epochs`;
   the poster gives none], selection on validation Jaccard accuracy (`acc`).

Ablation switches (Table 2 rows that are model or training changes):

* `modalities`: a subset (rows "−E^t and x^t" …; NEMu's "−E^t" drops lyrics and
  comments together: `modalities=[picture, audio]`).
* `trimodal_encoder`: false = "−E^m" (the decoder reads the concatenated
  uni-modal sequences). `decoder`: `classifier` = "−D (+ classifier over E^m)":
  Linear(d, labels) on the masked mean of the tri-modal sequence.
* `input_perturbation`: `atm` (full model) | `none` ("−ATM strategy") |
  `random_mask` ("−M^t, M^v, M^a (+ random mask)": k random real steps) |
  `fgsm` | `pgd` (L∞ attacks on the input embeddings: ε `attack_epsilon` 0.1;
  PGD `pgd_steps` 3 of size `pgd_alpha` 0.05 from δ = 0) | `erasing` (random
  erasing: with probability `erasing_prob` 0.5, a span of min(k, n) consecutive
  real steps at a uniform start is replaced by N(0, 1) noise) | `gaussian`
  (+ N(0, `noise_std`²), `noise_std` 0.1). All of them feed the second pass,
  weighted by `mask_weight`.
* `app`: `adversarial` | `random` ("−g (+ random perturbation)": δ = ε r/‖r‖,
  r ~ N(0, I)) | `none` ("−APP strategy").
* `encoder`: `transformer` | `lstm` ("−Transformer (+LSTM)": bidirectional
  LSTMs with d/2 units per direction and the same number of layers, for the
  uni-modal and the tri-modal encoders; real steps are packed, so padding never
  enters a recurrence).
* Rows "−ATM and APP (+ X)" combine `app=none` with `input_perturbation=X`.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmerbench.data.batching import Batch
from mmerbench.data.spec import DatasetSpec
from mmerbench.errors import MmerbenchError
from mmerbench.methods._layers import MultiheadAttention, TransformerLayer, attention_mask, grad_reverse
from mmerbench.methods.base import LossParts, Method, OptimSetup, Output, decay_groups, masked_mean
from mmerbench.registry import register

PERTURBATIONS = ("atm", "none", "random_mask", "fgsm", "pgd", "erasing", "gaussian")
APP_KINDS = ("adversarial", "random", "none")
APP_MODULES = {"unimodal": "encoders.", "trimodal": "trimodal.", "decoder": "decoder."}
_NEG = -1.0e4  # log-mass of "no mass" (padded steps, an empty anchor): exp() of it is exactly 0 in float32


def _float32(t: torch.Tensor):
    """Autocast off: the Sinkhorn iterations, the losses and the LSTMs run in float32."""
    return torch.autocast(device_type=t.device.type, enabled=False) if torch.is_autocast_enabled(t.device.type) \
        else nullcontext()


# ------------------------------------------------------------------------------- the top-k


def hard_topk(scores: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Bool [B, L]: the min(k, n_i) highest-scored real steps of each row (ties: the earlier step)."""
    n = mask.sum(1)
    kk = n.clamp(max=int(k))
    s = scores.float().masked_fill(~mask, float("-inf"))
    order = torch.sort(s, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(s.shape[1], device=s.device).expand_as(order))
    return (rank < kk[:, None]) & mask


def soft_topk(scores: torch.Tensor, mask: torch.Tensor, k: int, epsilon: float = 0.1,
              iterations: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable top-k by entropic optimal transport (choice 2 of the module docstring).

    scores [B, L] (any real values; RobMMR's are in (0, 1)), mask [B, L] bool (True = real).
    Returns (soft, hard): soft [B, L] float32 in [0, 1], differentiable, whose real entries
    sum to k_i = min(k, n_i) per row and which is 0 on padded steps; hard [B, L] bool, the
    k_i highest-scored real steps. Rows without a real step give zeros.

    With two anchors the plan's second column is Γ_i1 = μ_i σ(x_i + Δ), x_i = (C_i0 − C_i1)/ε =
    (2 s_i − 1)/ε, Δ = (g_1 − g_0)/ε the difference of the column potentials; Sinkhorn's fixed
    point is the Δ* with Σ_i σ(x_i + Δ*) = k_i. The iterations (log domain) run without
    autograd; the gradient is the implicit one of that fixed point, dΔ*/dx_j = −σ'_j / Σ_i σ'_i
    (exact at convergence; at ε = 0.1 a hundred iterations converge to float32 precision), so
    the backward pass costs O(L), not `iterations` unrolled steps. The last update fits the
    columns: soft = k_i σ(x + Δ) / Σ σ(x + Δ).
    """
    if k < 1:
        raise MmerbenchError(f"Expected the top-k `k` to be at least 1, but got {k}.")
    if epsilon <= 0:
        raise MmerbenchError(f"Expected the top-k `epsilon` to be positive, but got {epsilon}.")
    hard = hard_topk(scores, mask, k)
    with _float32(scores):
        s = scores.float()
        eps = float(epsilon)
        real = mask | ~mask.any(1, keepdim=True)  # an empty row: pretend all real, zeroed at the end
        keep = (mask & mask.any(1, keepdim=True)).to(s.dtype)
        n = real.sum(1).to(s.dtype)  # [B]
        kk = torch.minimum(n, torch.full_like(n, float(k)))
        with torch.no_grad():
            log_mu = torch.where(real, -torch.log(n)[:, None], torch.full_like(s, _NEG))  # [B, L]
            nu = torch.stack([(n - kk) / n, kk / n], dim=1)  # [B, 2]
            log_nu = torch.where(nu > 0, torch.log(nu.clamp_min(1e-30)), torch.full_like(nu, _NEG))
            cost = (s.detach()[:, :, None] - torch.tensor([0.0, 1.0], device=s.device)) ** 2 / eps  # [B, L, 2]
            f = torch.zeros_like(s)  # potentials, in units of ε
            g = torch.zeros_like(nu)
            for _ in range(int(iterations)):
                f = log_mu - torch.logaddexp(g[:, None, 0] - cost[..., 0], g[:, None, 1] - cost[..., 1])
                g = log_nu - torch.logsumexp(f[:, :, None] - cost, dim=1)
            delta = g[:, 1] - g[:, 0]  # Δ
        x = (2.0 * s - 1.0) / eps
        with torch.no_grad():
            t = torch.sigmoid(x + delta[:, None])
            slope = t * (1 - t) * real.to(t.dtype)  # σ'
            total = slope.sum(1, keepdim=True)
            w = torch.where(total > 0, slope / total.clamp_min(1e-30), torch.zeros_like(slope))
        # Δ with the implicit gradient: its value is Δ*, its derivative −Σ_j w_j dx_j.
        delta_g = delta - ((x - x.detach()) * w).sum(1)
        a = torch.sigmoid(x + delta_g[:, None]) * real.to(x.dtype)
        soft = kk[:, None] * a / a.sum(1, keepdim=True).clamp_min(1e-30) * keep
    return soft, hard


# ------------------------------------------------------------------------------- the losses


def asymmetric_loss(logits: torch.Tensor, targets: torch.Tensor, *, gamma_neg: float = 2.0,
                    gamma_pos: float = 1.0, clip: float = 0.05, eps: float = 1e-8) -> torch.Tensor:
    """ASL (Ridnik et al. 2021): −Σ_labels [y (1−p)^γ+ log p + (1−y) p_m^γ− log(1−p_m)], batch mean.

    p = sigmoid(logits), p_m = max(p − clip, 0) (probability shifting of the
    negatives). With γ± = 0 and clip = 0 it is the binary cross-entropy summed
    over labels.
    """
    with _float32(logits):
        z, y = logits.float(), targets.float()
        p = torch.sigmoid(z)
        log_p = F.logsigmoid(z)
        if clip > 0:
            p_m = (p - clip).clamp_min(0.0)
            log_not_p_m = torch.log((1.0 - p_m).clamp_min(eps))
        else:
            p_m, log_not_p_m = p, F.logsigmoid(-z)
        pos = y * log_p
        neg = (1.0 - y) * log_not_p_m
        if gamma_pos:
            pos = pos * (1.0 - p).pow(gamma_pos)
        if gamma_neg:
            neg = neg * p_m.pow(gamma_neg)
        return -(pos + neg).sum(-1).mean()


def bernoulli_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(Bern(σ(p)) ‖ Bern(σ(q))) summed over labels, batch mean, in float32."""
    with _float32(p_logits):
        p, q = p_logits.float(), q_logits.float()
        pp = torch.sigmoid(p)
        kl = pp * (F.logsigmoid(p) - F.logsigmoid(q)) + (1 - pp) * (F.logsigmoid(-p) - F.logsigmoid(-q))
        return kl.sum(-1).mean()


# ------------------------------------------------------------------------------- the model


class SequenceEncoder(nn.Module):
    """Post-LN Transformer layers + a final LayerNorm, or (ablation) a packed bidirectional LSTM."""

    def __init__(self, kind: str, d: int, heads: int, d_ff: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.kind = kind
        if kind == "transformer":
            self.layers = nn.ModuleList(
                TransformerLayer(d, heads, d_ff, dropout=dropout, attn_dropout=dropout, activation="relu",
                                 norm_first=False)
                for _ in range(layers))
            self.norm = nn.LayerNorm(d)
        else:
            self.lstm = nn.LSTM(d, d // 2, num_layers=layers, batch_first=True, bidirectional=True,
                                dropout=dropout if layers > 1 else 0.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "transformer":
            am = attention_mask(mask, x.shape[1])
            for layer in self.layers:
                x = layer(x, mask=am)
            return self.norm(x)
        return self._lstm(x, mask)

    def _lstm(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Real steps first (the tri-modal concatenation interleaves padding), packed, then put back.
        order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices
        idx = order[..., None].expand_as(x)
        lengths = mask.sum(1).clamp_min(1).cpu()
        with _float32(x):
            compact = torch.gather(x.float(), 1, idx)
            packed = nn.utils.rnn.pack_padded_sequence(compact, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
            back = torch.zeros_like(out).scatter(1, idx, out)
        return back * mask[..., None].to(back.dtype)


class EmotionDecoder(nn.Module):
    """One learned query per label; post-LN layers of label self-attention, cross-attention, FFN; Linear(d, 1)."""

    def __init__(self, num_labels: int, d: int, heads: int, d_ff: int, layers: int, dropout: float, *,
                 self_attention: bool, ffn: bool, norm: bool = False) -> None:
        super().__init__()
        self.queries = nn.Embedding(num_labels, d)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList()
        for _ in range(layers):
            layer = nn.ModuleDict({"cross": MultiheadAttention(d, heads, dropout), "cross_norm": nn.LayerNorm(d)})
            if self_attention:
                layer["self"] = MultiheadAttention(d, heads, dropout)
                layer["self_norm"] = nn.LayerNorm(d)
            if ffn:
                layer["ff"] = nn.Sequential(nn.Linear(d, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d))
                layer["ff_norm"] = nn.LayerNorm(d)
            self.layers.append(layer)
        self.norm = nn.LayerNorm(d) if norm else None  # the authors' final LayerNorm (`decoder_norm`)
        self.head = nn.Linear(d, 1)

    def forward(self, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        q = self.queries.weight[None].expand(memory.shape[0], -1, -1)
        am = attention_mask(memory_mask, q.shape[1])
        for layer in self.layers:
            if "self" in layer:
                q = layer["self_norm"](q + self.drop(layer["self"](q)))
            q = layer["cross_norm"](q + self.drop(layer["cross"](q, memory, am)))
            if "ff" in layer:
                q = layer["ff_norm"](q + self.drop(layer["ff"](q)))
        if self.norm is not None:
            q = self.norm(q)
        return self.head(q).squeeze(-1)  # [B, labels]


@register("robmmr")
class RobMMR(Method):
    paper = ("Learning Robust Multi-Modal Representation for Multi-Label Emotion Recognition via Adversarial "
             "Masking and Perturbation (Ge et al., WWW 2023)")
    tasks = ("multilabel",)

    def __init__(
        self,
        spec: DatasetSpec,
        *,
        modalities: list[str] | None = None,
        d_model: int = 512,
        heads: int = 8,
        d_ff: int = 1024,
        dropout: float = 0.1,
        uni_layers: int = 3,
        tri_layers: int = 3,
        dec_layers: int = 1,
        encoder: str = "transformer",
        trimodal_encoder: bool = True,
        decoder: str = "label",
        decoder_self_attention: bool = True,
        decoder_ffn: bool = True,
        decoder_norm: bool = False,
        input_perturbation: str = "atm",
        atm_k: int = 24,
        atm_epsilon: float = 0.1,
        atm_iterations: int = 100,
        atm_grl: bool = True,
        atm_grl_coeff: float = 0.1,
        mask_weight: float = 0.1,
        attack_epsilon: float = 0.1,
        pgd_steps: int = 3,
        pgd_alpha: float = 0.05,
        erasing_prob: float = 0.5,
        noise_std: float = 0.1,
        app: str = "adversarial",
        app_epsilon: float = 1.0,
        app_weight: float = 1.0,
        app_modules: list[str] | str = ("trimodal",),
        asl_gamma_neg: float = 2.0,
        asl_gamma_pos: float = 1.0,
        asl_clip: float = 0.05,
        loss: str = "asl",
        **hparams: Any,
    ) -> None:
        super().__init__(spec, **hparams)
        mods = list(spec.modalities) if modalities is None else ([modalities] if isinstance(modalities, str)
                                                                 else list(modalities))
        unknown = [m for m in mods if m not in spec.modalities]
        if unknown or not mods:
            raise MmerbenchError(f"Unknown modalities {unknown} for {spec.name!r}: it has {', '.join(spec.modalities)}.")
        self.modalities = [m for m in spec.modalities if m in mods]
        for key, value, allowed in (("encoder", encoder, ("transformer", "lstm")),
                                    ("decoder", decoder, ("label", "classifier")),
                                    ("input_perturbation", input_perturbation, PERTURBATIONS),
                                    ("app", app, APP_KINDS),
                                    ("loss", loss, ("asl", "bce"))):
            if value not in allowed:
                raise MmerbenchError(f"Expected `{key}` in {'/'.join(allowed)}, but got {value!r}.")
        app_modules = [app_modules] if isinstance(app_modules, str) else list(app_modules)
        bad = [m for m in app_modules if m not in APP_MODULES]
        if bad:
            raise MmerbenchError(f"Expected `app_modules` among {'/'.join(APP_MODULES)}, but got {bad}.")
        if app != "none" and "trimodal" in app_modules and not trimodal_encoder:
            raise MmerbenchError("APP perturbs the tri-modal encoder, which `trimodal_encoder: false` removes; "
                                 "set `app_modules` to unimodal/decoder or `app: none`.")
        d = int(d_model)
        if encoder == "lstm" and d % 2:
            raise MmerbenchError(f"The LSTM encoder needs an even `d_model` (d/2 units per direction), got {d}.")

        self.perturbation, self.app, self.app_modules = input_perturbation, app, app_modules
        self.k, self.atm_epsilon, self.atm_iterations = int(atm_k), float(atm_epsilon), int(atm_iterations)
        self.atm_grl, self.atm_grl_coeff = bool(atm_grl), float(atm_grl_coeff)
        self.mask_weight, self.app_epsilon, self.app_weight = float(mask_weight), float(app_epsilon), float(app_weight)
        self.attack_epsilon, self.pgd_steps, self.pgd_alpha = float(attack_epsilon), int(pgd_steps), float(pgd_alpha)
        self.erasing_prob, self.noise_std = float(erasing_prob), float(noise_std)
        # `loss: bce` is ASL with no focusing and no clipping: binary cross-entropy summed over labels.
        self.asl = {"gamma_neg": float(asl_gamma_neg), "gamma_pos": float(asl_gamma_pos), "clip": float(asl_clip)} \
            if loss == "asl" else {"gamma_neg": 0.0, "gamma_pos": 0.0, "clip": 0.0}
        checks = {"atm_k": (atm_k, self.k >= 1, "at least 1"),
                  "atm_epsilon": (atm_epsilon, self.atm_epsilon > 0, "positive"),
                  "atm_iterations": (atm_iterations, self.atm_iterations >= 1, "at least 1"),
                  "pgd_steps": (pgd_steps, self.pgd_steps >= 1, "at least 1"),
                  "erasing_prob": (erasing_prob, 0.0 <= self.erasing_prob <= 1.0, "in [0, 1]")}
        for key in ("mask_weight", "app_epsilon", "app_weight", "attack_epsilon", "pgd_alpha", "noise_std"):
            value = getattr(self, key)
            checks[key] = (value, value >= 0, "non-negative")
        for key, (value, ok, want) in checks.items():
            if not ok:
                raise MmerbenchError(f"Expected `{key}` to be {want}, but got {value}.")

        self.embed = nn.ModuleDict({
            m: nn.Sequential(nn.Linear(spec.modalities[m].dim, d), nn.LayerNorm(d), nn.Dropout(dropout))
            for m in self.modalities})
        self.encoders = nn.ModuleDict({
            m: SequenceEncoder(encoder, d, heads, d_ff, int(uni_layers), dropout) for m in self.modalities})
        self.trimodal = SequenceEncoder(encoder, d, heads, d_ff, int(tri_layers), dropout) if trimodal_encoder \
            else None
        if decoder == "label":
            self.decoder: nn.Module = EmotionDecoder(spec.num_labels, d, heads, d_ff, int(dec_layers), dropout,
                                                     self_attention=bool(decoder_self_attention),
                                                     ffn=bool(decoder_ffn), norm=bool(decoder_norm))
        else:
            self.decoder = nn.Linear(d, spec.num_labels)
        self.scorers = nn.ModuleDict({m: nn.Linear(d, 1) for m in self.modalities}) \
            if input_perturbation == "atm" else None

    # -- the model -------------------------------------------------------------------
    def _embed(self, batch: Batch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        return ({m: self.embed[m](batch.inputs[m]) for m in self.modalities},
                {m: batch.masks[m] for m in self.modalities})

    def _encode(self, e: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]):
        h = {m: self.encoders[m](e[m], masks[m]) for m in self.modalities}
        seq = torch.cat([h[m] for m in self.modalities], dim=1)
        seq_mask = torch.cat([masks[m] for m in self.modalities], dim=1)
        if self.trimodal is not None:
            seq = self.trimodal(seq, seq_mask)
        if isinstance(self.decoder, EmotionDecoder):
            logits = self.decoder(seq, seq_mask)
        else:  # "−D (+ classifier over E^m)"
            logits = self.decoder(masked_mean(seq, seq_mask))
        return logits, h

    def forward(self, batch: Batch) -> Output:
        e, masks = self._embed(batch)
        logits, h = self._encode(e, masks)
        aux: dict[str, torch.Tensor] = {}
        if self.training and self.perturbation != "none" and self.mask_weight > 0:
            e_pert = self._perturb_inputs(e, h, masks, logits, batch.labels, aux)
            if e_pert is not None:
                aux["perturbed_logits"], _ = self._encode(e_pert, masks)
        return Output(scores=logits, aux=aux)

    def _perturb_inputs(self, e, h, masks, logits, labels, aux):
        """The second pass's input embeddings (ATM or the ablations' replacements)."""
        kind = self.perturbation
        if kind in ("atm", "random_mask"):
            out = {}
            for m in self.modalities:
                if kind == "atm":
                    s = torch.sigmoid(self.scorers[m](h[m].detach()).squeeze(-1))  # Eq. 6: Sigmoid(HW + b)
                    if self.atm_grl:
                        s = grad_reverse(s, self.atm_grl_coeff)
                    soft, hard = soft_topk(s, masks[m], self.k, self.atm_epsilon, self.atm_iterations)
                    a = hard.to(soft.dtype) + (soft - soft.detach())  # exact mask forward, soft gradient backward
                    aux[f"atm_scores_{m}"] = s.detach()
                else:
                    hard = hard_topk(torch.rand(masks[m].shape, device=e[m].device), masks[m], self.k)
                    a = hard.to(e[m].dtype)
                aux[f"mask_{m}"] = hard
                out[m] = e[m] * (1.0 - a.to(e[m].dtype))[..., None]  # m_j = 0 on the k selected steps
            return out
        if kind == "gaussian":
            return {m: e[m] + self.noise_std * torch.randn_like(e[m]) * masks[m][..., None].to(e[m].dtype)
                    for m in self.modalities}
        if kind == "erasing":
            out = {}
            for m in self.modalities:
                mask = masks[m]
                n = mask.sum(1)
                span = n.clamp(max=self.k)
                start = (torch.rand(n.shape, device=n.device) * (n - span + 1)).floor().long()
                pos = torch.arange(mask.shape[1], device=n.device)[None]
                hit = (pos >= start[:, None]) & (pos < (start + span)[:, None]) & mask
                hit &= (torch.rand(n.shape, device=n.device) < self.erasing_prob)[:, None]
                aux[f"mask_{m}"] = hit
                out[m] = torch.where(hit[..., None], torch.randn_like(e[m]), e[m])
            return out
        if not torch.is_grad_enabled():
            return None
        real = {m: masks[m][..., None].to(e[m].dtype) for m in self.modalities}
        if kind == "fgsm":
            grads = torch.autograd.grad(asymmetric_loss(logits, labels, **self.asl), [e[m] for m in self.modalities],
                                        retain_graph=True)
            return {m: e[m] + (self.attack_epsilon * g.sign() * real[m]).detach()
                    for m, g in zip(self.modalities, grads)}
        # pgd: `pgd_steps` signed-gradient steps of size `pgd_alpha` in the L∞ ball of radius `attack_epsilon`
        base = {m: e[m].detach() for m in self.modalities}
        delta = {m: torch.zeros_like(base[m]) for m in self.modalities}
        for _ in range(self.pgd_steps):
            for m in self.modalities:
                delta[m].requires_grad_(True)
            loss = asymmetric_loss(self._encode({m: base[m] + delta[m] for m in self.modalities}, masks)[0],
                                   labels, **self.asl)
            grads = torch.autograd.grad(loss, [delta[m] for m in self.modalities])
            delta = {m: (delta[m] + self.pgd_alpha * g.sign() * real[m]).clamp(-self.attack_epsilon,
                                                                             self.attack_epsilon).detach()
                     for m, g in zip(self.modalities, grads)}
        return {m: e[m] + delta[m] for m in self.modalities}

    # -- the objective -------------------------------------------------------------------
    def loss(self, batch: Batch, out: Output) -> LossParts:
        task = asymmetric_loss(out.scores, batch.labels, **self.asl)
        parts, total = {"task": task}, task
        if "perturbed_logits" in out.aux:
            masked = asymmetric_loss(out.aux["perturbed_logits"], batch.labels, **self.asl)
            parts["masked"] = masked
            total = total + self.mask_weight * masked
        return LossParts(total=total, parts=parts)

    # -- training: APP around the optimizer step -------------------------------------------------
    def _app_parameters(self) -> list[torch.nn.Parameter]:
        prefixes = tuple(APP_MODULES[m] for m in self.app_modules)
        return [p for n, p in self.named_parameters() if n.startswith(prefixes) and p.requires_grad]

    def perturbation_for(self, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
        """δ = ε g/‖g‖ (adversarial, g the current gradients) or ε r/‖r‖ (random), one global norm."""
        with torch.no_grad():
            if self.app == "adversarial":
                g = [p.grad.detach() if p.grad is not None else torch.zeros_like(p) for p in params]
            else:
                g = [torch.randn_like(p) for p in params]
            norm = torch.sqrt(sum((x.float() ** 2).sum() for x in g))
            scale = torch.where(norm > 0, self.app_epsilon / norm.clamp_min(1e-30), torch.zeros_like(norm))
            return [(x.float() * scale).to(x.dtype) for x in g]

    def training_step(self, batch: Batch, optimizer: torch.optim.Optimizer, autocast=nullcontext) -> LossParts:
        # With `accumulate`, both passes run over the same micro-batches: the first accumulates the full
        # batch's gradient, which APP's adversarial δ needs, before any parameter moves.
        optimizer.zero_grad(set_to_none=True)

        def clean_pass(mb: Batch, _i: int) -> tuple[LossParts, torch.Tensor]:
            with autocast():
                out = self(mb)
                return self.loss(mb, out), out.scores.detach()

        parts, cleans = self.accumulate_backward(batch, clean_pass)
        total = parts.total.detach()
        if self.app != "none" and self.app_weight > 0:
            params = self._app_parameters()
            delta = self.perturbation_for(params)
            saved = [p.detach().clone() for p in params]

            def perturbed_pass(mb: Batch, i: int) -> tuple[LossParts, None]:
                with autocast():
                    e, masks = self._embed(mb)
                    perturbed, _ = self._encode(e, masks)
                    kl = bernoulli_kl(perturbed, cleans[i])
                return LossParts(total=self.app_weight * kl, parts={"app_kl": kl}), None

            try:
                with torch.no_grad():
                    for p, d in zip(params, delta):
                        p.add_(d)
                kl = self.accumulate_backward(batch, perturbed_pass)[0].parts["app_kl"]
            finally:  # θ back, bit for bit, whatever happened
                with torch.no_grad():
                    for p, s in zip(params, saved):
                        p.copy_(s)
            parts.parts["app_kl"] = kl.detach()
            total = total + self.app_weight * kl.detach()
        clip = self.hparams.get("grad_clip")
        if clip:
            torch.nn.utils.clip_grad_norm_(self.parameters(), float(clip))
        optimizer.step()
        return LossParts(total=total, parts={k: v.detach() for k, v in parts.parts.items()})

    def configure_optimizer(self, steps_per_epoch: int, epochs: int) -> OptimSetup:
        hp = self.hparams
        opt = torch.optim.AdamW(decay_groups(self, float(hp.get("weight_decay", 0.01))), lr=float(hp.get("lr", 5e-5)))
        total = max(1, steps_per_epoch * epochs)
        warm = int(total * float(hp.get("warmup", 0.0)))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            progress = min(1.0, (step - warm) / max(1, total - warm))
            return 0.5 * (1.0 + math.cos(math.pi * progress))

        return OptimSetup(opt, torch.optim.lr_scheduler.LambdaLR(opt, factor), interval="step")
