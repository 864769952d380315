"""CARAT: contrastive feature reconstruction and aggregation for multi-modal multi-label emotion recognition.

Paper: Cheng Peng, Ke Chen, Lidan Shou, Gang Chen, "CARAT: Contrastive Feature
Reconstruction and Aggregation for Multi-Modal Multi-Label Emotion Recognition",
AAAI 2024 (arXiv 2312.10201). Authors' code: https://github.com/chengzju/CARAT
(read for facts only; nothing here is copied from it). The paper's text was not
at hand, so the pieces are named after its components rather than its equation
numbers; the facts come from the authors' code and training scripts.

What each piece implements:

* **Uni-modal encoders** — TAILOR's (imported from :mod:`mmerbench.methods.tailor`):
  LayerNorm on the raw features, Linear(in → 256) + learned positions + LayerNorm
  + dropout, post-LN BERT layers (8 heads, FFN 256, GELU, dropout 0.3); text 6,
  vision 4, audio 4 layers.
* **Label-wise attention** (:class:`LabelAttention`): per modality m and label j,
  u^m_j = Σ_t softmax_t(w_j · h^m_t) h^m_t over the real steps — one
  label-specific feature per (modality, label).
* **Contrastive representation learning**: a projector per modality
  (256 → 128 → ReLU → 64) maps u^m_j to a latent z^m_j; a supervised contrastive
  loss (:func:`supervised_contrastive_loss`, T = 0.07) pulls together latents of
  the same modality, label and polarity (present / absent), against the current
  batch and a queue of 8,192 past latents. Positive and negative prototypes per
  (modality, label) are moving averages (momentum 0.99) of the normalised latents
  of samples with / without the label (:func:`momentum_prototypes`).
* **Reconstruction-based fusion** (the paper's two rounds, FRR and SRR): a decoder
  per modality (64 → 128 → ReLU → 256) reconstructs r^m_j from z^m_j; to rebuild
  modality m, its own slot is filled by the decoded prototype mixture
  Σ_± softmax(⟨ẑ^m_j, p^m_{j,±}⟩) p^m_{j,±} (training) or the nearer prototype
  (inference), the others by their reconstructions, and a fusion layer per target
  modality f^m: Linear(M·256 → 256) gives a^m_j (first round); the second round
  applies the same f^m to the first round's outputs of all modalities: b^m_j.
* **Classifiers**: per modality a weight vector per label (no bias) scores u, a
  and b; the M scores of a label are max-pooled over modalities (the most
  informative modality per label).
* **Shuffle-based aggregation**: an aggregator Linear(C·256 → 256) → ReLU →
  Linear(256 → C) reads, per sample and modality, the concatenated label
  features b^m_{1..C}; in training the label features are also shuffled — for each
  (label, modality) across samples and for each (label, sample) across modalities —
  and the aggregator classifies the shuffled rows against the labels they came
  from.
* **Prediction**: the mean of the aggregator's sigmoid averaged over modalities
  and the sigmoid of the max-pooled second-round classifier.
* **Loss** (the authors' script's weights): BCE(max-pooled b scores)
  + 0.01·BCE(u scores) + 0.1·BCE(a scores) + 1.0·contrastive
  + 1.0·Σ_m MSE(r^m, u^m) + 1.0·Σ_m MSE(a^m, u^m) + 0.0·Σ_m MSE(b^m, u^m)
  + 1.0·BCE(aggregator) + 0.1·BCE(shuffled aggregator).

Choices (config key in brackets) where the sources leave room or where we depart
from the authors' code:

1. **Training state is buffers**: the prototypes (`pos_protos`, `neg_protos`,
   [M, C, proj]) and the queue (`queue` [Q, proj], `queue_label` [Q], `queue_ptr`),
   so a checkpoint carries them and a resumed run continues exactly. They change
   only in :meth:`Carat.training_step`, after the optimizer step (never while
   scoring valid/test).
2. **Prototype update**: per sample in batch order, p ← m·p + (1 − m)·ẑ, as the
   authors' loop does, computed in closed form (no loop):
   p ← m^n p + (1 − m) Σ_t m^{n−t} ẑ_t over the n samples that update it.
   Prototypes start at zero (the code's start): before any update every slot is
   filled with the decoded zero vector.
3. **Queue**: starts empty (label −1: neither positive nor in the denominator),
   where the code starts with random vectors labelled by random floats (negatives
   only). Each training step enqueues every latent of the batch (u, a and b latents
   of every modality and label: B·3M·C) as a ring buffer [`queue_size`].
4. **Contrastive labels**: label j of modality m (index i) gets class
   j + C·(2i + [absent]) — positives share modality, label and polarity; the latents
   of a, b inherit their modality's class. Temperature 0.07, base temperature 0.07
   [`temperature`, `base_temperature`]; anchors without a positive are skipped.
   The anchors are the batch's latents; the authors' code, which reuses its
   anchor count for the size of batch + queue, also makes every queue entry an
   anchor (tests/parity/test_carat.py measures the two on the same inputs).
5. **Alignment**: none. The label-wise attention pools each modality at its own
   rate, so unaligned MOSEI's 500-step audio and vision are encoded as they are
   (learned positions grown to the sequence length). The authors' unaligned branch
   passes audio/vision through a CTC module that no loss trains and that keeps
   500 steps by default; it is not reproduced.
6. **Empty modality**: a sample whose modality has no real step gets zero label
   features for it (no NaN from an all-masked softmax).
7. **Initialisation**: BERT's normal(0, `init_std` = 0.02) in the encoders (as the
   authors apply theirs before building the heads); Xavier-uniform weights for
   the label attention, projectors, decoders, fusion layers and aggregator;
   Kaiming-uniform (a = √5) for the classifier weights. The small preset sets
   `init_std: null` (torch's defaults), as TAILOR's does.
8. **Optimiser**: AdamW with weight decay 0.01 except on biases and LayerNorms,
   linear warm-up over 10% of the steps then linear decay (BertAdam's schedule,
   with Adam's bias correction, which BertAdam omits), clipping 1.0, lr 5e-5,
   batch 64, 20 epochs; selection on validation micro-F1 (the authors' script).
9. **Decision rule**: the dataset's threshold (0.5, the common protocol); the
   authors' 0.25 with `--set threshold=0.25`. The valid loss the runner logs has
   the deterministic parts only (no contrastive or shuffled term outside training).
10. **Modalities**: any number (`modalities`, a subset for ablations); layers per
    modality from `text_layers` / `audio_layers` / `vision_layers`, `other_layers`
    for other names. The loss weights above double as the paper's ablation
    switches (e.g. `cl_weight=0` removes contrastive learning,
    `shuffle_aug_clf_weight=0` the shuffled aggregation).

Parameters against the authors' code (aligned MOSEI, their train.sh: 6/4/4
encoder layers, d = 256, 6 labels), to the parameter (tests/parity/test_carat.py):

    ours 6,937,080 = authors' 7,359,736
                     − 197,376  three BERT poolers, Linear(256, 256) each (text,
                                vision, audio encoders): computed, but their
                                outputs reach neither the scores nor the loss
                     − 225,280  rows 60–499 of their 500-row vision and audio
                                position tables, 2 × 440 × 256: aligned MOSEI has
                                60 steps, so those rows are never read (ours have
                                `max_positions` = 60 rows, grown when longer)
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
from mmerbench.methods.base import LossParts, Method, OptimSetup, Output, decay_groups, warmup_linear
from mmerbench.methods.tailor import UniModalEncoder
from mmerbench.registry import register

LAYER_KEYS = {"text": "text_layers", "audio": "audio_layers", "vision": "vision_layers"}


def _float32(t: torch.Tensor):
    return torch.autocast(device_type=t.device.type, enabled=False) if torch.is_autocast_enabled(t.device.type) \
        else nullcontext()


def supervised_contrastive_loss(anchors: torch.Tensor, anchor_labels: torch.Tensor, others: torch.Tensor,
                                other_labels: torch.Tensor, temperature: float = 0.07,
                                base_temperature: float = 0.07) -> torch.Tensor:
    """SupCon (Khosla et al. 2020) of normalised `anchors` [N, p] against themselves and `others` [Q, p].

    For anchor i: −(T/T_b) · mean over its positives P(i) of
    log( exp(a_i·c_p/T) / Σ_{c ≠ a_i} exp(a_i·c/T) ), where the contrast set is the
    anchors (without i itself) and the others whose label is ≥ 0 (label −1 = an empty
    queue slot, left out); positives share the anchor's label. Mean over anchors that
    have a positive; 0 when none has. Float32.
    """
    with _float32(anchors):
        a = anchors.float()
        contrast = torch.cat([a, others.float()], dim=0)
        labels = torch.cat([anchor_labels, other_labels])
        n = a.shape[0]
        logits = a @ contrast.T / temperature  # [N, N + Q]
        valid = torch.ones_like(logits, dtype=torch.bool)
        valid[:, :n].fill_diagonal_(False)
        valid[:, n:] &= (other_labels >= 0)[None, :]
        logits = logits - logits.masked_fill(~valid, float("-inf")).amax(1, keepdim=True).detach()
        log_denominator = torch.log((logits.exp() * valid).sum(1, keepdim=True))
        log_prob = logits - log_denominator
        positive = (anchor_labels[:, None] == labels[None, :]) & valid
        count = positive.sum(1)
        mean_log_prob = (log_prob * positive).sum(1) / count.clamp_min(1)
        has = count > 0
        if not bool(has.any()):
            return a.sum() * 0.0
        return -(temperature / base_temperature) * mean_log_prob[has].mean()


def momentum_prototypes(protos: torch.Tensor, feats: torch.Tensor, select: torch.Tensor,
                        momentum: float) -> torch.Tensor:
    """Sequential moving averages in closed form (choice 2 of the module docstring).

    protos [C, p]; feats [B, C, p]; select [B, C] bool (sample b updates prototype c).
    Equals, for each c, running p ← m p + (1 − m) f_b over the selected b in batch order.
    """
    sel = select.to(feats.dtype)
    n = sel.sum(0)  # [C]
    rank = sel.cumsum(0)  # 1..n among the selected, in order
    weight = sel * (1.0 - momentum) * torch.pow(torch.full_like(sel, momentum), n[None, :] - rank)
    return torch.pow(torch.full_like(n, momentum), n)[:, None] * protos + torch.einsum("bc,bcp->cp", weight, feats)


class LabelAttention(nn.Module):
    """Label-wise attention: one query vector per label over a modality's real steps → [B, C, d]."""

    def __init__(self, d: int, num_labels: int) -> None:
        super().__init__()
        self.score = nn.Linear(d, num_labels, bias=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        any_real = mask.any(1, keepdim=True)
        keys = mask | ~any_real  # an empty sequence: attend anywhere, then zeroed
        logits = self.score(h).transpose(1, 2).masked_fill(~keys[:, None, :], float("-inf"))  # [B, C, L]
        weights = torch.softmax(logits.float(), dim=-1).to(h.dtype) * any_real[:, :, None].to(h.dtype)
        return weights @ h


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


@register("carat")
class Carat(Method):
    paper = ("CARAT: Contrastive Feature Reconstruction and Aggregation for Multi-Modal Multi-Label Emotion "
             "Recognition (Peng et al., AAAI 2024)")
    tasks = ("multilabel",)

    def __init__(
        self,
        spec: DatasetSpec,
        *,
        modalities: list[str] | None = None,
        d_model: int = 256,
        heads: int = 8,
        d_ff: int = 256,
        dropout: float = 0.3,
        text_layers: int = 6,
        audio_layers: int = 4,
        vision_layers: int = 4,
        other_layers: int = 4,
        max_positions: int = 60,
        proj_size: int = 64,
        proto_momentum: float = 0.99,
        queue_size: int = 8192,
        temperature: float = 0.07,
        base_temperature: float = 0.07,
        lsr_clf_weight: float = 0.01,
        aug_clf_weight: float = 0.1,
        cl_weight: float = 1.0,
        recon_mse_weight: float = 1.0,
        aug_mse_weight: float = 1.0,
        beta_mse_weight: float = 0.0,
        total_aug_clf_weight: float = 1.0,
        shuffle_aug_clf_weight: float = 0.1,
        init_std: float | None = 0.02,
        **hparams: Any,
    ) -> None:
        super().__init__(spec, **hparams)
        mods = list(spec.modalities) if modalities is None else ([modalities] if isinstance(modalities, str)
                                                                 else list(modalities))
        unknown = [m for m in mods if m not in spec.modalities]
        if unknown or not mods:
            raise MmerbenchError(f"Unknown modalities {unknown} for {spec.name!r}: it has {', '.join(spec.modalities)}.")
        if not 0.0 <= float(proto_momentum) < 1.0:
            raise MmerbenchError(f"Expected `proto_momentum` in [0, 1), but got {proto_momentum}.")
        if int(queue_size) < 1 or float(temperature) <= 0 or float(base_temperature) <= 0:
            raise MmerbenchError("Expected a positive `queue_size`, `temperature` and `base_temperature`.")
        self.modalities = [m for m in spec.modalities if m in mods]
        self.momentum = float(proto_momentum)
        self.temperature, self.base_temperature = float(temperature), float(base_temperature)
        self.weights = {"lsr_clf": float(lsr_clf_weight), "aug_clf": float(aug_clf_weight),
                        "contrastive": float(cl_weight), "recon_mse": float(recon_mse_weight),
                        "aug_mse": float(aug_mse_weight), "beta_mse": float(beta_mse_weight),
                        "agg_clf": float(total_aug_clf_weight), "shuffle_agg_clf": float(shuffle_aug_clf_weight)}
        d, c, p, nm = int(d_model), spec.num_labels, int(proj_size), len(self.modalities)
        layers = {"text": text_layers, "audio": audio_layers, "vision": vision_layers}

        self.input_norms = nn.ModuleDict({m: nn.LayerNorm(spec.modalities[m].dim) for m in self.modalities})
        self.encoders = nn.ModuleDict({
            m: UniModalEncoder(spec.modalities[m].dim, d, heads, d_ff, int(layers.get(m, other_layers)), dropout,
                               max(int(max_positions), spec.modalities[m].length))
            for m in self.modalities})
        self.init_std = None if init_std is None else float(init_std)
        if self.init_std is not None:
            self.encoders.apply(self._bert_init)
            self.input_norms.apply(self._bert_init)
        self.label_attention = nn.ModuleDict({m: LabelAttention(d, c) for m in self.modalities})
        self.projectors = nn.ModuleDict({m: _mlp([d, d // 2, p]) for m in self.modalities})
        self.decoders = nn.ModuleDict({m: _mlp([p, d // 2, d]) for m in self.modalities})
        self.fusion = nn.ModuleDict({m: nn.Linear(nm * d, d) for m in self.modalities})
        self.aggregator = _mlp([c * d, d, c])
        for module in (self.label_attention, self.projectors, self.decoders, self.fusion, self.aggregator):
            for sub in module.modules():
                if isinstance(sub, nn.Linear):
                    nn.init.xavier_uniform_(sub.weight)
        self.classifier = nn.Parameter(torch.empty(nm, c, d))
        for i in range(nm):
            nn.init.kaiming_uniform_(self.classifier.data[i], a=math.sqrt(5))

        self.register_buffer("pos_protos", torch.zeros(nm, c, p))
        self.register_buffer("neg_protos", torch.zeros(nm, c, p))
        self.register_buffer("queue", torch.zeros(int(queue_size), p))
        self.register_buffer("queue_label", torch.full((int(queue_size),), -1, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def _bert_init(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, self.init_std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # -- the model -------------------------------------------------------------------------
    def _scores(self, feats: torch.Tensor) -> torch.Tensor:
        """[B, M, C, d] label features → [B, C] logits: per-modality label classifiers, max over modalities."""
        return torch.einsum("bmcd,mcd->bmc", feats, self.classifier.to(feats.dtype)).amax(1)

    def _fill(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, M, C, p] latents → the prototype mixture (training) or the nearer prototype (inference)."""
        zn = F.normalize(latents.float(), dim=-1)
        protos = torch.stack([self.pos_protos, self.neg_protos], dim=-2)  # [M, C, 2, p]
        sim = torch.softmax(torch.einsum("bmcp,mcnp->bmcn", zn, protos), dim=-1)
        if self.training:
            fill = torch.einsum("bmcn,mcnp->bmcp", sim, protos)
        else:  # the authors' strict >: at a tie (e.g. zero prototypes) the negative one
            pos = (sim[..., 0] > sim[..., 1]).to(protos.dtype)[..., None]
            fill = pos * self.pos_protos + (1 - pos) * self.neg_protos
        return fill.to(latents.dtype)

    def _fuse(self, slots: torch.Tensor) -> torch.Tensor:
        """slots [B, M(target), M(source), C, d] → f^m(concat over sources) per target m → [B, M, C, d]."""
        out = []
        for i, m in enumerate(self.modalities):
            x = slots[:, i].permute(0, 2, 1, 3).flatten(2)  # [B, C, M·d]
            out.append(self.fusion[m](x))
        return torch.stack(out, dim=1)

    def forward(self, batch: Batch) -> Output:
        u = torch.stack([self.label_attention[m](self.encoders[m](self.input_norms[m](batch.inputs[m]),
                                                                  batch.masks[m]), batch.masks[m])
                         for m in self.modalities], dim=1)  # [B, M, C, d]
        z = torch.stack([self.projectors[m](u[:, i]) for i, m in enumerate(self.modalities)], dim=1)  # [B, M, C, p]
        recon = torch.stack([self.decoders[m](z[:, i]) for i, m in enumerate(self.modalities)], dim=1)
        fill = self._fill(z)
        filled = torch.stack([self.decoders[m](fill[:, i]) for i, m in enumerate(self.modalities)], dim=1)
        nm = len(self.modalities)
        eye = torch.eye(nm, dtype=torch.bool, device=u.device)[None, :, :, None, None]
        # Round 1: modality m's slot from its prototypes, the others from their reconstructions.
        slots = torch.where(eye, filled[:, None], recon[:, None])  # [B, M, M, C, d]
        aug = self._fuse(slots)
        beta = self._fuse(aug[:, None].expand(-1, nm, -1, -1, -1))  # round 2: every slot from round 1
        clf_u, clf_aug, clf_beta = self._scores(u), self._scores(aug), self._scores(beta)
        b, _, c, d = beta.shape
        agg = self.aggregator(beta.reshape(b, nm, c * d))  # [B, M, C]
        with _float32(agg):
            prob = 0.5 * (torch.sigmoid(agg.float()).mean(1) + torch.sigmoid(clf_beta.float()))
        aux = {"u": u, "recon": recon, "aug": aug, "beta": beta, "z": z, "clf_u": clf_u, "clf_aug": clf_aug,
               "clf_beta": clf_beta, "agg": agg, "prob": prob}
        if self.training:
            aux["z_aug"] = torch.stack([self.projectors[m](aug[:, i]) for i, m in enumerate(self.modalities)], 1)
            aux["z_beta"] = torch.stack([self.projectors[m](beta[:, i]) for i, m in enumerate(self.modalities)], 1)
            sample, modality = self._shuffle_indices(b, nm, c, beta.device)
            label = torch.arange(c, device=beta.device).expand(b, nm, c)
            aux["agg_shuffled"] = self.aggregator(beta[sample, modality, label].reshape(b, nm, c * d))
            aux["shuffle_sample"] = sample
        scores = torch.logit(prob.clamp(1e-6, 1 - 1e-6))
        return Output(scores=scores, aux=aux)

    @staticmethod
    def _shuffle_indices(b: int, nm: int, c: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, M, C] source sample and source modality of every shuffled label feature: a permutation of
        the samples per (label, modality) and of the modalities per (label, sample)."""
        sample = torch.argsort(torch.rand(c, nm, b, device=device), dim=-1).permute(2, 1, 0)
        modality = torch.argsort(torch.rand(c, b, nm, device=device), dim=-1).permute(1, 2, 0)
        return sample, modality

    def probabilities(self, out: Output) -> torch.Tensor:
        return out.aux["prob"]

    # -- the objective --------------------------------------------------------------------------
    def contrastive_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """[B, C] multi-hot → [B, M, C] classes j + C·(2i + [absent]) (choice 4)."""
        c = labels.shape[1]
        i = torch.arange(len(self.modalities), device=labels.device)[None, :, None]
        j = torch.arange(c, device=labels.device)[None, None, :]
        absent = (labels < 0.5).long()[:, None, :]
        return j + c * (2 * i + absent)

    def _latents(self, out: Output, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every latent of the batch (u, a, b of each modality and label), normalised, with its class."""
        z = torch.stack([out.aux["z"], out.aux["z_aug"], out.aux["z_beta"]], dim=1)  # [B, 3, M, C, p]
        cls = self.contrastive_labels(labels)[:, None].expand(-1, 3, -1, -1)
        return F.normalize(z.float().reshape(-1, z.shape[-1]), dim=-1), cls.reshape(-1)

    def loss(self, batch: Batch, out: Output) -> LossParts:
        y = batch.labels.float()
        aux, w = out.aux, self.weights
        nm = len(self.modalities)

        def bce(logits, target):
            with _float32(logits):
                return F.binary_cross_entropy_with_logits(logits.float(), target)

        def mse(a, b):
            with _float32(a):
                return nm * F.mse_loss(a.float(), b.float())  # Σ over modalities of per-modality means

        parts = {"task": bce(aux["clf_beta"], y)}  # the max-pooled second-round classifier
        parts["lsr_clf"] = bce(aux["clf_u"], y)
        parts["aug_clf"] = bce(aux["clf_aug"], y)
        parts["recon_mse"] = mse(aux["recon"], aux["u"])
        parts["aug_mse"] = mse(aux["aug"], aux["u"])
        if w["beta_mse"]:
            parts["beta_mse"] = mse(aux["beta"], aux["u"])
        parts["agg_clf"] = bce(aux["agg"], y[:, None].expand(-1, nm, -1))
        if "z_aug" in aux:
            if w["contrastive"]:
                feats, cls = self._latents(out, batch.labels)
                parts["contrastive"] = supervised_contrastive_loss(
                    feats, cls, self.queue, self.queue_label, self.temperature, self.base_temperature)
            label = torch.arange(y.shape[1], device=y.device).expand_as(aux["shuffle_sample"])
            parts["shuffle_agg_clf"] = bce(aux["agg_shuffled"], y[aux["shuffle_sample"], label])
        total = parts["task"]
        for name, value in parts.items():
            if name != "task":
                total = total + w[name] * value
        return LossParts(total=total, parts=parts)

    def accumulation_refusal(self) -> str | None:
        return ("its objective couples the samples of a batch (the supervised contrastive term compares "
                "every latent with the batch's others and the queue, the shuffled aggregation permutes "
                "labels within the batch) and the queue and prototypes move once per batch")

    # -- training: the state updates after the step ------------------------------------------------
    def training_step(self, batch: Batch, optimizer: torch.optim.Optimizer, autocast=nullcontext) -> LossParts:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            out = self(batch)
            parts = self.loss(batch, out)
        parts.total.backward()
        clip = self.hparams.get("grad_clip")
        if clip:
            torch.nn.utils.clip_grad_norm_(self.parameters(), float(clip))
        optimizer.step()
        with torch.no_grad():
            self.update_state(out, batch.labels)
        return LossParts(total=parts.total.detach(), parts={k: v.detach() for k, v in parts.parts.items()})

    @torch.no_grad()
    def update_state(self, out: Output, labels: torch.Tensor) -> None:
        """Enqueue the batch's latents (ring buffer) and move the prototypes (choices 1–3)."""
        if "z_aug" in out.aux:
            feats, cls = self._latents(out, labels)
            q = self.queue.shape[0]
            if feats.shape[0] > q:
                feats, cls = feats[-q:], cls[-q:]
            idx = (self.queue_ptr + torch.arange(feats.shape[0], device=feats.device)) % q
            self.queue[idx] = feats.to(self.queue.dtype)
            self.queue_label[idx] = cls
            self.queue_ptr.copy_((self.queue_ptr + feats.shape[0]) % q)
        zn = F.normalize(out.aux["z"].detach().float(), dim=-1)  # [B, M, C, p]
        present = labels >= 0.5
        for i in range(len(self.modalities)):
            self.pos_protos[i] = momentum_prototypes(self.pos_protos[i], zn[:, i], present, self.momentum)
            self.neg_protos[i] = momentum_prototypes(self.neg_protos[i], zn[:, i], ~present, self.momentum)

    def configure_optimizer(self, steps_per_epoch: int, epochs: int) -> OptimSetup:
        hp = self.hparams
        opt = torch.optim.AdamW(decay_groups(self, float(hp.get("weight_decay", 0.01))), lr=float(hp.get("lr", 5e-5)))
        sched = warmup_linear(opt, max(1, steps_per_epoch * epochs), float(hp.get("warmup", 0.1)))
        return OptimSetup(opt, sched, interval="step")
