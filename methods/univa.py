"""UniVA: unimodal valence-arousal driven contrastive learning for multimodal multi-label emotion recognition.

Paper: Wenjie Zheng, Jianfei Yu, Rui Xia, "A Unimodal Valence-Arousal Driven
Contrastive Learning Framework for Multimodal Multi-Label Emotion
Recognition", ACM MM 2024 (read from the oral's slides, whose equations are
not numbered, so they are cited by the slides' module names). Authors' code: https://github.com/NUSTM/UniVA (read
for facts only; nothing here is copied from it).

What each part implements:

* :class:`UtteranceEncoder` — per modality m: Linear(d_m → 768) → dropout,
  learned positions, an n_m-layer BERT encoder (12 heads, FFN 3072, GELU,
  post-LN, dropout 0.1), then :class:`AdditivePooling` (additive attention
  over the real steps) → the unimodal representation H_m [B, 768].
* :class:`UniVA` — concat(H_t, H_a, H_v) → Linear(3·768 → C) → log-softmax
  ("multimodal emotion prediction").
* Module 1, "VA scores acquisition": per-sample, per-modality (valence,
  arousal) come from the data (``Batch.extras["va_<modality>"]``, float
  [B, 2]); the label VA are the NRC-VAD entries of :data:`NRC_VAD`.
* Module 2, "VA-driven contrastive learning" — :func:`va_positives` (the
  distance d(u_m^i, u_m^j) = √(ΔV² + ΔA²); positives P(x_i) = {j ≠ i :
  d < ``va_threshold``}) and :func:`va_supcon_loss` (L_m^CL = −1/|P(x_i)|
  Σ_{p∈P(x_i)} log exp(H̃_i·H̃_p/τ) / Σ_{a∈A(x_i)} exp(H̃_i·H̃_a/τ), with
  A(x_i) every other sample of the batch).
* Module 3, "VA-driven emotion correlation prior" — :func:`label_similarity`
  (M_jl = cosine of the label VA vectors after min-max scaling each axis to
  [-1, 1]) and :func:`correlation_prior` (η = 1/N Σ_i Σ_{j,l} M_jl
  (ŷ_ij − ŷ_il)²).
* :meth:`UniVA.loss` — (1 − α)·[KL(ŷ ‖ y/|y|) + η] + α·L^CL, KL between the
  normalised multi-hot target and the predicted distribution.

Decision rule. The scores are a softmax over the C labels and a label is
predicted when its probability exceeds a threshold; the authors use 0.18
(``--set threshold=0.18``, what the paper's tables use). The harness default
stays the dataset's 0.5 so every method is scored under one protocol — but 0.5
on a softmax over 6–7 labels is a harsh rule: at most one label per sample
can pass it, so recall (and micro-F1) are capped on samples with several
emotions. ``probabilities()`` returns the softmax; the run records the rule.

Choices the paper leaves open (each one named; the config key in brackets):

1. **Encoder details** (the authors' code): the input Linear is followed by
   dropout [``fc_dropout``: 0.1]; learned positions, one row per step of the
   modality's sequence length, added without a LayerNorm; post-LN layers with
   LayerNorm ε 1e-12 [``layer_norm_eps``], dropout on attention weights and
   sub-layer outputs [``dropout``], none inside the FFN; torch's default
   initialisation (the code applies no BERT init). Attention is SDPA with
   padded keys masked.
2. **Additive pooling**: score_t = vᵀ tanh(P h_t + Q q) with a learned query q
   (drawn from N(0, 1)), softmax over the real steps in float32, H = Σ α_t h_t.
   A sample with no real step pools to zeros.
3. **Output dropout**: the authors' code applies dropout to the logits after
   the final Linear [``final_dropout``: 0.1]; kept.
4. **Text encoder** [``text_encoder``: features | a checkpoint]: the GloVe
   path (a Transformer over the given features) by default; UniVA-RoBERTa
   (``--preset roberta``) reads the raw text with a fine-tuned
   ``transformers`` encoder (methods/text_encoder.py). The slides give no
   details of that row; the authors' code does, and we follow it: the
   encoder's last hidden states go through the same Linear(H → d) and dropout
   and straight into the additive pooling over the utterance's word tokens
   (its [CLS]/<s> and [SEP]/</s> left out), with no learned positions and no
   text Transformer (``text_layers: 0``), nothing frozen (``text_freeze:
   none``; their code freezes only the unused pooler), one learning rate for
   the whole model (``text_lr`` = ``lr`` = 5e-5), and their MOSEI script's
   batch 12, 5 epochs, 5 audio and 3 vision layers, τ 0.7, α 0.45 (their M³ED
   script: batch 22, 10 epochs, τ 0.4, α 0.2, through ``--set``).
   One departure, by necessity: their code encodes the *whole dialogue* (all
   utterances of the video, up to 512 tokens, longest utterances cut first)
   and pools the tokens of the current utterance, so an utterance sees its
   neighbours' words; our samples are utterances without their dialogue, so
   the encoder reads the utterance alone, up to ``text_max_length`` tokens.
5. **KL target**: y/|y| (the normalised multi-hot); a sample with
   no label gets the uniform distribution (y/|y| is 0/0 there; uniform is
   what the authors' target gives such a sample, and its 1/C lies below 0.18:
   "no emotion" under their rule). The authors' code uses softmax(y)
   as the target [``kl_target``: normalised | softmax].
6. **KL scale** [``kl_reduction``: mean | batchmean; ``kl_scale``: 1000]: the
   slides weigh KL and η equally and give no scale; the authors' code takes
   the KL's mean over the B·C cells (torch's ``KLDivLoss(reduction="mean")``)
   times 1000, i.e. (1000/C)× the per-sample KL (≈ 167 on MOSEI). We keep
   the authors' scale: with the bare formula (batchmean, scale 1) η
   outweighs the KL — M has negative entries, and η is smallest when every
   sample gets the same one-hot prediction on the label least like the others
   (happy on MOSEI: η ≈ −3.5 against a KL of ~1) — and on the MOSEI twin
   training collapses to that prediction (the small preset at scale 0.1:
   validation micro-F1 0.25 from the fourth epoch on). At the authors' scale η
   and the contrastive term act as regularisers beside the KL.
7. **η** is computed on the softmax probabilities ŷ, squared differences, M
   fixed (a buffer), as on the slides. The authors' code instead takes the
   L2 norm of the log-probability differences across the batch and trains M
   as a parameter; not reproduced. η may be negative (see 6).
8. **Label VA scaling** [``va_scale``: minmax | raw]: ``minmax`` (default)
   scales each axis over the dataset's own labels to [-1, 1] (an axis whose
   values are all equal scales to 0) before M and the label-derived VA; the
   slides list the raw NRC-VAD values. Min-max is the authors' script (their
   released M matrices are built so), and with raw values, all in [0, 1],
   every cosine is positive: M would link every pair of emotions and lose
   the negative entries that set, e.g., happy against sad. ``raw`` uses the
   values as listed. Label names are matched case-insensitively with a few
   synonyms (angry → anger, …); an unknown name is an error unless
   [``label_va``] gives its (valence, arousal).
9. **Where the per-sample VA come from** [``va_source``: data | labels |
   none]. ``data`` (default, the paper): each modality's own (valence,
   arousal) from the dataset (``Batch.extras["va_<modality>"]``: M3ED in
   UniVA's release and the synthetic twins carry them); a dataset without
   them is refused at setup, with the two other choices named, rather than
   silently replaced. ``labels``: a sample's VA for every modality is the
   mean of its labels' scaled VA (NRC-VAD's neutral (0.5, 0.5), scaled with
   the same axis ranges, for a sample with no label); the positives are then
   samples with similar *labels*, so the "unimodal VA" contrastive loss
   becomes a label-supervised one — another method, which is why it must be
   asked for (MOSEI as we read it has no per-modality VA; the authors' MOSEI
   pickles do). ``none``: no contrastive term (as ``va_contrastive: false``).
   The choice is a model parameter, so the run's config records it.
   **Standardised data VA**
   [``va_standardize``: true]: the release's VA are raw model outputs and the
   authors' loader z-scores each modality's VA before the 0.1 threshold
   applies — with the *valence* axis' mean and std for both axes, and each
   split's own statistics. Both axes shifted by one number and divided by
   one number: distances only shrink by σ_valence, so this is an isotropic
   rescaling, and we reproduce it with the training split's statistics (ddof
   1, computed in :meth:`UniVA.setup`, kept in the ``va_stats`` buffer) for
   every split — VA only enter the contrastive loss, i.e. training, where
   the two agree. The label-derived fallback is used on its own scale.
10. **Contrastive details**: H̃ = H / ‖H‖ [``cl_normalize``: true; false = the
    authors' raw features]; per modality the mean over the anchors that have
    at least one positive (the slides' sum over x_i would grow with the
    batch; 1/|P| is undefined without positives); a batch without any
    positive pair contributes 0. The authors stack every feature twice (two
    identical "views"), which adds each anchor's own copy as a positive and
    to A(x_i) [``cl_duplicate_view``: false]. Modalities are averaged; the
    authors weight MOSEI's text loss 3× ((3·L_t + L_a + L_v)/3)
    [``cl_text_weight``: 1.0].
11. **Without VA-CL** (``va_contrastive: false``) the loss is KL + η (α drops
    out, as in the authors' code); without VA-ECP (``va_prior: false``) η is
    left out. The authors' MOSEI GloVe script runs without η (no
    ``--labelSimilar_regulari``); the paper's model has it, so it is on.
12. **Optimiser** (the authors' code): AdamW, weight decay 0, linear warm-up
    over the first 10% of steps then linear decay to 0 (per step), gradient
    clipping 1.0. Model selection on validation micro-F1 (the authors'), at
    the run's threshold. Per dataset: MOSEI as its GloVe run (layers text 7 /
    audio 3 / vision 5, τ 0.4, α 0.2, lr 7e-5, batch 32, 15 epochs); M3ED as
    the authors' M3ED GloVe script (layers 3 / 5 / 3, α 0.1, lr 5e-5).

Ablation switches: Table 2 — ``va_contrastive`` (w/o VA-CL), ``va_prior``
(w/o VA-ECP), both false (w/o VA-CL, VA-ECP). Table 3 — ``modalities``:
``[text, audio]`` (w/o vision), ``[text, vision]`` (w/o audio), ``[text]``
(w/o vision, audio), ``[audio]`` (w/o text, vision), ``[vision]`` (w/o
text, audio); the classifier then reads the concatenation of the kept ones.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmerbench.data.batching import Batch
from mmerbench.data.dataset import Split
from mmerbench.data.spec import DatasetSpec
from mmerbench.errors import DataError, MmerbenchError
from mmerbench.methods._layers import TransformerLayer, attention_mask
from mmerbench.methods.base import LossParts, Method, OptimSetup, Output, decay_groups, warmup_linear
from mmerbench.methods.text_encoder import FEATURES, PretrainedText, text_input, uses_encoder, with_text_lr
from mmerbench.registry import register

log = logging.getLogger(__name__)

#: NRC-VAD (valence, arousal) of the emotion labels (Mohammad, "Obtaining Reliable Human Ratings of Valence, Arousal, and Dominance
#: for 20,000 English Words", ACL 2018; the values UniVA uses).
NRC_VAD: dict[str, tuple[float, float]] = {
    "happy": (1.000, 0.735),
    "sad": (0.225, 0.333),
    "anger": (0.167, 0.865),
    "surprise": (0.875, 0.875),
    "disgust": (0.052, 0.775),
    "fear": (0.073, 0.840),
    "neutral": (0.5, 0.5),
}
SYNONYMS = {
    "happiness": "happy", "joy": "happy", "sadness": "sad", "angry": "anger", "surprised": "surprise",
    "disgusted": "disgust", "fearful": "fear",
}


def _float32(t: torch.Tensor):
    """Reductions that need float32 leave bf16 autocast."""
    return torch.autocast(device_type=t.device.type, enabled=False) if torch.is_autocast_enabled(t.device.type) \
        else nullcontext()


# -- Module 1 and 3: label VA and the similarity matrix M ----------------------------------------


def label_va_table(labels: Sequence[str], overrides: Mapping[str, Sequence[float]] | None = None) -> np.ndarray:
    """The raw (valence, arousal) of each label, [C, 2], from NRC-VAD (names matched case-insensitively)."""
    table = dict(NRC_VAD)
    for name, va in (overrides or {}).items():
        if not isinstance(va, (list, tuple)) or len(va) != 2:
            raise MmerbenchError(f"Expected `label_va[{name!r}]` to be [valence, arousal], but got {va!r}.")
        table[str(name).lower()] = (float(va[0]), float(va[1]))
    rows = []
    for name in labels:
        key = str(name).strip().lower()
        key = key if key in table else SYNONYMS.get(key, key)
        if key not in table:
            raise MmerbenchError(
                f"UniVA needs a valence/arousal value for every label, but {name!r} has no NRC-VAD entry "
                f"(known: {', '.join(sorted(table))}); give one with --set 'label_va={{{name}: [v, a]}}'."
            )
        rows.append(table[key])
    va = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(va).all():
        raise MmerbenchError("Expected finite label valence/arousal values in `label_va`.")
    return va


def minmax_scale(va: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Each axis min-max scaled to [-1, 1] using `reference`'s range (default: `va`'s own); a flat axis → 0."""
    ref = va if reference is None else reference
    lo, hi = ref.min(axis=0), ref.max(axis=0)
    span = hi - lo
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (va - lo) / safe * 2.0 - 1.0, 0.0)


def label_similarity(scaled_va: np.ndarray) -> np.ndarray:
    """M_jl = cosine similarity of the scaled label VA vectors (a zero vector has similarity 0)."""
    norm = np.linalg.norm(scaled_va, axis=1, keepdims=True)
    unit = scaled_va / np.where(norm > 0, norm, 1.0)
    return unit @ unit.T


def correlation_prior(probs: torch.Tensor, similarity: torch.Tensor) -> torch.Tensor:
    """η = 1/N Σ_i Σ_{j,l} M_jl (ŷ_ij − ŷ_il)² on probabilities [N, C], in float32."""
    with _float32(probs):
        p = probs.float()
        diff = (p[:, :, None] - p[:, None, :]).pow(2)
        return (diff * similarity.float()).sum((1, 2)).mean()


# -- Module 2: VA-driven supervised contrastive learning -----------------------------------------


def va_positives(va: torch.Tensor, threshold: float) -> torch.Tensor:
    """P as a bool [B, B]: j is a positive of i when i ≠ j and ‖VA_i − VA_j‖₂ < threshold."""
    with _float32(va):
        v = va.float()
        dist = (v[:, None, :] - v[None, :, :]).pow(2).sum(-1).sqrt()  # exact (cdist may use a matmul form)
    eye = torch.eye(v.shape[0], dtype=torch.bool, device=v.device)
    return (dist < threshold) & ~eye


def va_supcon_loss(features: torch.Tensor, positives: torch.Tensor, temperature: float, *,
                   normalize: bool = True, duplicate_view: bool = False) -> torch.Tensor:
    """L_m^CL: supervised contrastive loss over a batch [B, D] with the positive mask P [B, B].

    Per anchor i: −mean_{p∈P(i)} log softmax_{a≠i}(H̃_i·H̃_a/τ)[p]; the mean over the
    anchors with at least one positive (0 if none has). ``duplicate_view``: the authors'
    two identical views, i.e. the contrast set is the batch twice, minus the anchor itself
    once, and the anchor's copy is a positive.
    """
    with _float32(features):
        z = features.float()
        if normalize:
            z = F.normalize(z, dim=-1)
        b = z.shape[0]
        logits = z @ z.T / temperature  # [B, B]
        eye = torch.eye(b, dtype=torch.bool, device=z.device)
        pos = positives.to(torch.bool) & ~eye
        self_out = logits.masked_fill(eye, float("-inf"))
        if duplicate_view:
            logits_all = torch.cat([self_out, logits], dim=1)  # [B, 2B]: other samples, then every copy
            pos_all = torch.cat([pos, pos | eye], dim=1)
        else:
            logits_all, pos_all = self_out, pos
        log_prob = logits_all - torch.logsumexp(logits_all, dim=1, keepdim=True)
        n_pos = pos_all.sum(1)
        per_anchor = -(log_prob.masked_fill(~pos_all, 0.0)).sum(1) / n_pos.clamp_min(1)
        has = n_pos > 0
        if not bool(has.any()):
            return z.sum() * 0.0  # keeps the graph: every feature gets a (zero) gradient
        return per_anchor[has].mean()


# -- the encoders -----------------------------------------------------------------------------------


class AdditivePooling(nn.Module):
    """Additive attention pooling: α = softmax_t(vᵀ tanh(P h_t + Q q)) over real steps, H = Σ α_t h_t."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(d))
        self.p = nn.Linear(d, d)
        self.q = nn.Linear(d, d)
        self.v = nn.Linear(d, 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.v(torch.tanh(self.p(h) + self.q(self.query))).squeeze(-1)  # [B, L]
        with _float32(h):
            scores = scores.float().masked_fill(~mask, float("-inf"))
            has = mask.any(1, keepdim=True)
            alpha = torch.softmax(scores.masked_fill(~has, 0.0), dim=-1) * has  # no real step → zeros
            return torch.bmm(alpha[:, None, :], h.float()).squeeze(1)


def word_tokens(mask: torch.Tensor) -> torch.Tensor:
    """The utterance's own tokens: the attention mask without its first and last real token (the tokenizer's
    [CLS]/<s> and [SEP]/</s> of a single sentence), which the authors' pooling leaves out (choice 4)."""
    words = mask.clone()
    words[:, 0] = False
    last = (mask.long().sum(1) - 1).clamp(min=0)
    words[torch.arange(mask.shape[0], device=mask.device), last] = False
    return words


class UtteranceEncoder(nn.Module):
    """Linear(in → d) → dropout, + learned positions, post-LN BERT layers, additive pooling.

    ``positions=False`` (a pretrained text encoder's states, which carry their own): no position table."""

    def __init__(self, in_dim: int, length: int, d: int, heads: int, d_ff: int, layers: int, dropout: float,
                 fc_dropout: float, positions: bool = True) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, d)
        self.drop = nn.Dropout(fc_dropout)
        self.positions = nn.Embedding(length, d) if positions else None
        self.layers = nn.ModuleList(
            TransformerLayer(d, heads, d_ff, dropout=dropout, attn_dropout=dropout, relu_dropout=0.0,
                             activation="gelu", norm_first=False)
            for _ in range(layers)
        )
        self.pool = AdditivePooling(d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(x.shape[1], device=x.device)
        h = self.drop(self.embed(x))
        if self.positions is not None:
            h = h + self.positions(pos)[None]
        am = attention_mask(mask, x.shape[1])
        for layer in self.layers:
            h = layer(h, mask=am)
        return self.pool(h, mask)


@register("univa")
class UniVA(Method):
    paper = ("A Unimodal Valence-Arousal Driven Contrastive Learning Framework for Multimodal Multi-Label "
             "Emotion Recognition (Zheng et al., ACM MM 2024)")
    tasks = ("multilabel",)
    required_modalities = ("text", "audio", "vision")
    score_name = "softmax"

    def __init__(
        self,
        spec: DatasetSpec,
        *,
        modalities: Sequence[str] | None = None,
        d_model: int = 768,
        heads: int = 12,
        d_ff: int = 3072,
        dropout: float = 0.1,
        fc_dropout: float = 0.1,
        final_dropout: float = 0.1,
        layer_norm_eps: float = 1e-12,
        text_layers: int = 7,
        audio_layers: int = 3,
        vision_layers: int = 5,
        alpha: float = 0.2,
        temperature: float = 0.4,
        va_threshold: float = 0.1,
        va_contrastive: bool = True,
        va_prior: bool = True,
        kl_target: str = "normalised",
        kl_reduction: str = "mean",
        kl_scale: float = 1000.0,
        cl_normalize: bool = True,
        cl_duplicate_view: bool = False,
        cl_text_weight: float = 1.0,
        va_source: str = "data",
        va_scale: str = "minmax",
        va_standardize: bool = True,
        label_va: Mapping[str, Sequence[float]] | None = None,
        text_encoder: str = FEATURES,
        text_freeze: str = "none",
        text_max_length: int = 50,
        **hparams: Any,
    ) -> None:
        super().__init__(spec, modalities=modalities, **hparams)
        lacking = [m for m in self.required_modalities if m not in spec.modalities]
        if lacking:
            raise MmerbenchError(f"UniVA needs text, audio and vision; {spec.name!r} lacks {', '.join(lacking)}.")
        mods = list(modalities) if modalities else list(self.required_modalities)
        unknown = [m for m in mods if m not in self.required_modalities]
        if unknown or not mods:
            raise MmerbenchError(f"Expected `modalities` among text, audio, vision, but got {modalities!r}.")
        if kl_target not in ("normalised", "softmax"):
            raise MmerbenchError(f"Expected `kl_target` in normalised/softmax, but got {kl_target!r}.")
        if kl_reduction not in ("mean", "batchmean"):
            raise MmerbenchError(f"Expected `kl_reduction` in mean/batchmean, but got {kl_reduction!r}.")
        if va_source not in ("data", "labels", "none"):
            raise MmerbenchError(f"Expected `va_source` in data/labels/none, but got {va_source!r}.")
        if va_scale not in ("minmax", "raw"):
            raise MmerbenchError(f"Expected `va_scale` in minmax/raw, but got {va_scale!r}.")
        if not 0.0 <= float(alpha) <= 1.0:
            raise MmerbenchError(f"Expected `alpha` in [0, 1], but got {alpha!r}.")
        if float(temperature) <= 0:
            raise MmerbenchError(f"Expected a positive `temperature`, but got {temperature!r}.")
        self.modalities = [m for m in self.required_modalities if m in mods]  # text, audio, vision order
        self.alpha, self.temperature, self.va_threshold = float(alpha), float(temperature), float(va_threshold)
        self.contrastive, self.use_prior = bool(va_contrastive) and va_source != "none", bool(va_prior)
        self.kl_target, self.kl_reduction, self.kl_scale = kl_target, kl_reduction, float(kl_scale)
        self.cl_normalize, self.cl_duplicate_view = bool(cl_normalize), bool(cl_duplicate_view)
        self.cl_text_weight = float(cl_text_weight)
        self.va_source, self.va_standardize = va_source, bool(va_standardize)
        self._warned_fallback = False

        d = int(d_model)
        layers = {"text": text_layers, "audio": audio_layers, "vision": vision_layers}
        shapes = {m: (spec.modalities[m].dim, spec.modalities[m].length) for m in self.modalities}
        self.text_model = None
        if uses_encoder(text_encoder) and "text" in self.modalities:  # choice 4
            self.text_model = PretrainedText(text_encoder, freeze=text_freeze)
            shapes["text"] = (self.text_model.hidden_size, int(text_max_length))
        self.encoders = nn.ModuleDict({
            m: UtteranceEncoder(shapes[m][0], shapes[m][1], d, int(heads), int(d_ff),
                                int(layers[m]), float(dropout), float(fc_dropout),
                                positions=not (m == "text" and self.text_model is not None))
            for m in self.modalities
        })
        for module in self.encoders.modules():
            if isinstance(module, nn.LayerNorm):
                module.eps = float(layer_norm_eps)
        self.classifier = nn.Linear(len(self.modalities) * d, spec.num_labels)
        self.final_drop = nn.Dropout(float(final_dropout))

        # Module 1/3: the label VA (scaled to [-1, 1] per axis) and M.
        raw = label_va_table(spec.labels, label_va)
        if va_scale == "minmax":
            scaled = minmax_scale(raw)
            neutral = minmax_scale(np.asarray([NRC_VAD["neutral"]]), reference=raw)[0]
        else:
            scaled, neutral = raw, np.asarray(NRC_VAD["neutral"], dtype=np.float64)
        self.register_buffer("label_va", torch.tensor(scaled, dtype=torch.float32), persistent=False)
        self.register_buffer("neutral_va", torch.tensor(neutral, dtype=torch.float32), persistent=False)
        self.register_buffer("similarity", torch.tensor(label_similarity(scaled), dtype=torch.float32),
                             persistent=False)
        # Per modality the training split's valence mean and std (choice 9); identity until setup().
        self.register_buffer("va_stats", torch.tensor([[0.0, 1.0]] * len(self.modalities)))

    def setup(self, train: Split) -> None:
        """Refuse ``va_source: data`` without per-sample VA; the training split's valence mean and std (ddof 1)."""
        if self.contrastive and self.va_source == "data":
            lacking = [m for m in self.modalities if train.extras.get(f"va_{m}") is None]
            if lacking:
                raise MmerbenchError(
                    f"UniVA's contrastive loss reads each modality's valence/arousal, but {self.spec.name!r} has "
                    f"none for {', '.join(lacking)}; choose --set va_source=labels (label-derived VA: a "
                    f"label-supervised contrastive loss, another method) or --set va_source=none (no VA contrastive "
                    f"loss).")
        if not self.va_standardize:
            return
        stats = []
        for m in self.modalities:
            va = train.extras.get(f"va_{m}")
            if va is None:
                stats.append((0.0, 1.0))
                continue
            va = np.asarray(va, dtype=np.float64)
            if va.ndim != 2 or va.shape[1] != 2:
                raise DataError(f"Expected `va_{m}` of shape (N, 2) in the training split, but got {va.shape}.")
            v = va[np.isfinite(va[:, 0]), 0]
            std = float(v.std(ddof=1)) if v.size > 1 else 0.0
            stats.append((float(v.mean()) if v.size else 0.0, std if std > 0 else 1.0))
        with torch.no_grad():
            self.va_stats.copy_(torch.tensor(stats, dtype=self.va_stats.dtype))

    # -- the model ---------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> Output:
        seqs = {m: (batch.inputs[m], batch.masks[m]) for m in self.modalities}
        if "text" in seqs:
            seqs["text"] = text_input(self, batch)
            if self.text_model is not None:
                seqs["text"] = (seqs["text"][0], word_tokens(seqs["text"][1]))
        feats = {m: self.encoders[m](*seqs[m]) for m in self.modalities}  # H_m
        fused = torch.cat([feats[m] for m in self.modalities], dim=-1)
        logits = self.final_drop(self.classifier(fused))
        return Output(scores=logits, aux={f"features_{m}": f for m, f in feats.items()})

    def probabilities(self, out: Output) -> torch.Tensor:
        return torch.softmax(out.scores.float(), dim=-1)

    # -- VA per sample -------------------------------------------------------------------------------
    def fallback_va(self, labels: torch.Tensor) -> torch.Tensor:
        """Label-derived VA [B, 2]: the mean scaled VA of each sample's labels (neutral if it has none)."""
        y = labels.float()
        count = y.sum(1, keepdim=True)
        mean = (y @ self.label_va) / count.clamp_min(1.0)
        return torch.where(count > 0, mean, self.neutral_va.expand_as(mean))

    def sample_va(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per modality the [B, 2] (valence, arousal) the contrastive positives are drawn from."""
        out, missing = {}, []
        for m in self.modalities:
            va = batch.extras.get(f"va_{m}") if self.va_source == "data" else None
            if va is None:
                if self.va_source == "data":
                    raise DataError(f"UniVA (va_source: data) needs `va_{m}` in every batch, but this one lacks it.")
                missing.append(m)
                continue
            if va.ndim != 2 or va.shape != (len(batch), 2):
                raise DataError(f"Expected `va_{m}` of shape ({len(batch)}, 2), but got {tuple(va.shape)}.")
            if not bool(torch.isfinite(va).all()):
                raise DataError(f"Expected finite valence/arousal in `va_{m}`, but it holds NaN or inf.")
            out[m] = va.float()
            if self.va_standardize:
                mean, std = self.va_stats[self.modalities.index(m)]
                out[m] = (out[m] - mean) / std
        if missing:
            if not self._warned_fallback:
                self._warned_fallback = True
                log.warning("UniVA: va_source: labels; the contrastive positives use the label-derived VA "
                            "(mean NRC-VAD of each sample's labels) for %s.", ", ".join(missing))
            fb = self.fallback_va(batch.labels)
            out.update({m: fb for m in missing})
        return out

    # -- the objective -------------------------------------------------------------------------------
    def loss(self, batch: Batch, out: Output) -> LossParts:
        with _float32(out.scores):
            logits = out.scores.float()
            log_p = F.log_softmax(logits, dim=-1)
            y = batch.labels.float()
            if self.kl_target == "normalised":
                count = y.sum(1, keepdim=True)
                target = torch.where(count > 0, y / count.clamp_min(1.0), torch.full_like(y, 1.0 / y.shape[1]))
            else:
                target = torch.softmax(y, dim=-1)
            cells = y.shape[0] * (y.shape[1] if self.kl_reduction == "mean" else 1)
            kl = F.kl_div(log_p, target, reduction="sum") / max(cells, 1) * self.kl_scale
            parts = {"task": kl}
            main = kl
            if self.use_prior:
                eta = correlation_prior(log_p.exp(), self.similarity)
                parts["correlation_prior"] = eta
                main = main + eta
            if not self.contrastive:
                return LossParts(total=main, parts=parts)
            va = self.sample_va(batch)
            weights = {m: (self.cl_text_weight if m == "text" else 1.0) for m in self.modalities}
            cl = sum(weights[m] * va_supcon_loss(out.aux[f"features_{m}"], va_positives(va[m], self.va_threshold),
                                                  self.temperature, normalize=self.cl_normalize,
                                                  duplicate_view=self.cl_duplicate_view)
                     for m in self.modalities) / len(self.modalities)
            parts["contrastive"] = cl
            total = (1.0 - self.alpha) * main + self.alpha * cl
        return LossParts(total=total, parts=parts)

    def accumulation_refusal(self) -> str | None:
        if self.contrastive:
            return ("the VA-driven contrastive term draws its positives and negatives from the whole batch "
                    "(set va_contrastive=false for a loss that is a mean over samples)")
        return None

    # -- optimisation ------------------------------------------------------------------------------
    def configure_optimizer(self, steps_per_epoch: int, epochs: int) -> OptimSetup:
        hp = self.hparams
        groups = with_text_lr(decay_groups(self, float(hp.get("weight_decay", 0.0))), self.text_model,
                              float(hp.get("text_lr", 1e-5)))
        opt = torch.optim.AdamW(groups, lr=float(hp.get("lr", 7e-5)))
        sched = warmup_linear(opt, max(1, steps_per_epoch * epochs), float(hp.get("warmup", 0.1)))
        return OptimSetup(opt, sched, interval="step")
