"""MISA: modality-invariant and -specific representations.

Paper: Devamanyu Hazarika, Roger Zimmermann, Soujanya Poria, "MISA:
Modality-Invariant and -Specific Representations for Multimodal Sentiment
Analysis", ACM Multimedia 2020. Authors' repository:
https://github.com/declare-lab/MISA (``src/models.py``, ``src/solver.py``,
``src/utils/functions.py``, ``src/config.py``; read for facts, not copied).

What each part implements (paper §3):

* ``UtteranceLSTM`` — §3.2 "Modality Representation Learning", the utterance
  encoder the paper uses for audio, visual and (its GloVe variant) text: a
  bidirectional LSTM ("sLSTM"), LayerNorm over its outputs, a second
  bidirectional LSTM on the normalised outputs; hidden size = input size (the
  authors' ``hidden_sizes = input_sizes``). The **utterance vector** is the
  final hidden states of both layers and both directions, in the authors'
  order ``[h1→, h2→, h1←, h2←]`` (``cat((h1, h2), dim=2).permute(1, 0, 2)``),
  i.e. ``4 × hidden`` wide. Padding is skipped (valid steps come first): with
  packed sequences as the authors, or by reading each direction's padded run
  at the last real step (choice 13), so the final states are those of each
  sample's last real step (forward) and first step (backward).
* ``MISA.project`` — Linear(4·hidden → d_h) + ReLU + LayerNorm per modality
  (d_h = 128), giving u_m.
* ``MISA.private`` / ``MISA.shared`` — §3.3 "Modality-Invariant and -Specific
  Representations": one Linear + Sigmoid encoder per modality (h_m^p) and one
  Linear + Sigmoid shared by all modalities (h_m^c).
* ``MISA.recon`` — §3.5 reconstruction: a Linear per modality maps
  h_m^p + h_m^c back to u_m.
* ``MISA.fusion`` / ``MISA.head`` — §3.4 "Multimodal Fusion": the 2M vectors
  [h_t^p, h_a^p, h_v^p, h_t^c, h_a^c, h_v^c] as a length-2M sequence through a
  1-layer Transformer encoder (2 heads; torch's ``TransformerEncoderLayer``
  defaults the authors use: FFN 2048, dropout 0.1, ReLU, post-LayerNorm,
  built here from the shared SDPA ``TransformerLayer``), concatenated
  (2M·d_h = 768) → Linear(768 → 384) → dropout 0.5 → ReLU → Linear(384 → out).
* ``cmd`` — L_sim (§3.5): central moment discrepancy (Zellinger et al.
  2017) with K = 5 moments between the shared vectors of each modality pair,
  averaged over the pairs. The shared vectors are sigmoid outputs in [0, 1],
  so CMD's 1/|b−a|^k scaling is 1 and the authors' unscaled sum is the same.
* ``difference_loss`` — L_diff: soft orthogonality ‖H_cᵀ H_p‖_F² between the
  (batch-centred, row-L2-normalised) shared and private matrices of each
  modality, and between the private matrices of each modality pair, summed.
* ``MISA.loss`` — §3.5 Eq. L = L_task + α·L_sim + β·L_diff + γ·L_recon with
  the authors' α = 1.0 (``sim_weight``), β = 0.3 (``diff_weight``),
  γ = 1.0 (``recon_weight``); L_recon is the MSE between u_m and its
  reconstruction, averaged over modalities.
* ``ReloadBestOnPlateau`` — the authors' schedule (``solver.py``): after
  ``patience`` + 1 epochs without a validation loss ≤ the best, reload the best
  weights *and optimizer state*, halve the learning rate, and stop once
  ``trials`` such reloads are used (the authors' ``num_trials = 1``: the first
  reload is also the early stop).

Parameters, reconciled with the authors' code (the parity suite,
``tests/parity/test_misa.py``, checks each figure; MOSEI sentiment, 1 output):
ours 5,097,613 = their GloVe build (``use_bert=False``) − their word-embedding
table (|V| × 300: our text input is the GloVe vectors it looks up) − their
``sp_discriminator`` (516, never in the loss); we add nothing. Their default
BERT build has 110,915,473 = ours − our text LSTM (3,610,800) − our text
projection from 1200 (153,728) + BERT-base (109,482,240) + their projection
from 768 (98,432) + ``sp_discriminator`` (516) + the text LayerNorm they build
but do not call with BERT (1,200). With ``diff_norm: detached``,
``recon_target: attached`` and their weights imported, logits, every loss
term and one step's gradients agree with theirs to 1e-5 (their GloVe branch).

Task heads: sigmoid + BCE for multi-label (``task_loss``), cross-entropy for
multi-class, BCE on one logit for binary (the authors' humour run uses a
2-way softmax), and **MSE** for regression — the authors' sentiment criterion
(the shared ``task_loss`` would use L1).

Choices the paper (or its code) leaves open, made here and named:

1. **Text on GloVe features.** Our text inputs are GloVe vectors, so the
   text path is the authors' ``use_bert=False`` branch without its (frozen)
   embedding lookup: the same ``UtteranceLSTM`` as audio/visual, hidden 300.
2. **Per-modality lengths.** The authors pack all three modalities with the
   text lengths (their data is word-aligned). We pack each modality with its
   own mask's lengths, which is the same on aligned data and the only correct
   choice on unaligned data (text 50 steps, audio/visual 500).
3. **Empty modality.** A sample whose modality has no real step is given
   length 1 (it reads one zero padding step), so its vectors are finite.
4. **Initialisation.** The authors' ``solver.build`` sets every LSTM
   ``weight_hh`` orthogonal; we do the same. Everything else keeps PyTorch's
   defaults, as theirs does.
5. **Difference loss scale.** The paper writes ‖H_cᵀ H_p‖_F²; the authors'
   ``DiffLoss`` takes the *mean* of the squared entries (‖·‖_F² / d_h²) after
   centring each feature over the batch and L2-normalising each row (+ 1e-6).
   We follow the code's scale: β = 0.3 was tuned for it. (The row norm's
   gradient: choice 15.)
6. **CMD at a zero difference.** The authors' ``sum(·)**0.5`` has an infinite
   gradient when two moments coincide exactly (e.g. a batch of one sample:
   all centred moments are 0), giving NaN. We use ``linalg.vector_norm``,
   whose gradient at 0 is 0; the value is unchanged.
7. **Modality order** of the fused sequence is the dataset's (text, audio,
   vision); the authors stack (t, v, a). The fusion attention has no
   positions or masks, so the order only permutes the concatenation: the
   importer (:mod:`mmerbench.importers.misa`) permutes the head's input
   columns and the two compute the same function exactly (no switch needed).
8. **Dead modules dropped.** The authors build a shared/private
   "sp_discriminator" (Linear 128 → 4) whose loss weight is 0 in their
   config (``sp_weight`` 0.0); it gets no gradient and is not built here (516 parameters
   fewer than theirs). The adversarial modality discriminator exists only
   with ``similarity: adversarial`` (their ``use_cmd_sim=False``).
9. **Selection loss.** The authors select on the validation *task* loss
   (their ``eval`` computes only the criterion). ``eval_loss: task`` makes
   ``loss(...).total`` equal the task loss in eval mode (every part is still
   reported), so the runner's ``select: loss`` and the schedule see the
   authors' quantity; ``eval_loss: total`` uses the full objective.
10. **Gradient clipping.** The authors clip each gradient *value* to ±1.0
    (``clip_grad_value_``), not the norm. ``clip_mode: value`` (default)
    follows them; ``clip_mode: norm`` uses the runner's usual norm clipping.
11. **Early stop within a fixed-epoch runner.** The runner trains for
    ``epochs`` and has no early-stop hook. When ``ReloadBestOnPlateau`` has
    used its ``trials`` it reloads the best weights and sets the learning
    rate to 0; ``training_step`` then only evaluates the loss (no backward,
    no update), so the remaining epochs change nothing and cost a forward
    pass. The runner's own selection (strict <, the authors' is ≤) picks the
    same epoch. ``epochs`` (50) only caps training (the authors: 500 with the
    early stop).
12. **More or fewer modalities** (``modalities``): M modalities give 2M fused
    vectors (width 2M·d_h → M·d_h); L_sim and the private-private terms of
    L_diff run over the available pairs and are absent with one modality.
13. **Skipping the padding without PyTorch's packed CPU backward.** Each
    bidirectional layer is two one-direction LSTMs (exactly the parameters of
    ``nn.LSTM(bidirectional=True)``); the backward one reads each sample's real
    steps reversed (``reverse_valid``). ``packing: packed`` packs with the
    mask's lengths (``pack_padded_sequence``, as the authors); ``padded`` runs
    over the padded tensor and reads the state at step len−1, which equals the
    packed result because padding only follows the real steps. ``auto``
    (default) packs on CUDA and uses ``padded`` on the CPU, where the backward
    pass of a packed LSTM grows quadratically with the length (measured on
    this 2-core CPU, LSTM hidden 16: 13 s for a forward/backward of 64 unaligned
    samples of up to 500 steps packed, 0.6 s padded).
14. **Precision.** Under the runner's bf16 autocast (CUDA) the utterance
    LSTMs still run in float32 (cuDNN accepts bf16 RNNs only from 9.13; older
    builds raise), and every auxiliary loss is computed in float32.
15. **Gradient through L_diff's row norms** (``diff_norm``). The paper's
    L_diff is a soft orthogonality constraint; the authors' ``DiffLoss`` divides
    each centred row a_i by its norm but detaches the norm. Then the gradient
    is not orthogonal to the rows: Σ_i ⟨∂L/∂a_i, a_i⟩ = 2·L_diff > 0 (Euler's
    theorem: L_diff is quadratic in the normalised rows), so each step
    shortens the rows, and as the gradient scales with 1/‖a_i‖, faster as they
    get shorter — the private and shared vectors, and through them u_m, stop
    varying over the batch. ``attached`` (default) keeps the norm in the
    graph: the loss is then scale-free per row and its gradient only turns the
    rows, which is what an orthogonality constraint asks for. ``detached`` is
    the authors' code.
16. **Gradient through L_recon's target** (``recon_target``). The paper adds
    L_recon so that the private and shared vectors keep the details of u_m
    (§3.5: it guards against trivial representations). The authors do not
    detach u_m, so the cheapest way to lower L_recon is to make u_m itself
    easy to rebuild — e.g. constant. ``detached`` (default) makes u_m the
    constant target the paper describes; ``attached`` is the authors' code.
17. **Task-only warm-up** (``aux_warmup``, epochs; not in the paper, 0 in the
    paper config). For the first ``aux_warmup`` epochs training optimises the
    task loss alone; the auxiliary parts are still computed and logged, outside
    the graph, so the modules only they train (reconstruction layers, a
    discriminator) get no gradient rather than a zero one that would start
    Adam's step count. Validation always scores the full objective. The
    optimizer step count is kept in the buffer ``aux_steps``, so a resumed run
    and a reload of the best snapshot (choice 11) continue it.
18. **BERT text** (``text_encoder``: features | a checkpoint; preset ``bert``):
    the authors' ``use_bert=True`` branch — the encoder's last hidden states,
    averaged over the real tokens (their masked sum / token count), replace the
    text LSTM, and the text projection reads the hidden size (768). BERT is
    fine-tuned whole (``text_freeze``: none) in the one Adam at the authors'
    ``lr`` (``text_lr`` 1e-4 in the preset: their single learning rate);
    ``text_max_length`` 50 tokens.

Measured on the synthetic twins (synth-mosei-aligned, scale 0.2, seed 1, lr
1e-3 unless noted, hidden 32–64, LSTM 16–32; BR: 0.534 test micro-F1). The
twins hide each label's evidence at three time steps, which the utterance
LSTMs' final states pick up only after a few epochs; until then the task
gradient into u_m is weak and every auxiliary loss is lowered by u_m that do
not vary over the batch (their spread falls from ~0.8 to ~0, ReLUs of the
projection die).

* Authors' gradient flow (choices 15, 16 as their code), no warm-up: u_m
  collapses within the first epochs under L_diff alone, L_sim alone or
  L_recon alone, at lr 1e-4 … 1e-3, with the weights ×0.1, at the paper
  config, and with a sum-over-labels BCE (×6): the model predicts the label
  priors (0.450). The MSE sentiment twin behaves the same (synth-mosei-senti:
  corr 0.07 with the auxiliary losses, 0.25 without after 8 epochs), so the
  paper's weights tuned for an MSE task do not explain it.
* Authors' gradient flow after a 4-epoch task-only warm-up (the network has
  learned: valid micro-F1 0.45 and rising): within one epoch of the auxiliary
  losses joining, u_m collapses (valid micro-F1 → 0.41 = priors). With only the
  recon target detached the same happens; with only the L_diff norm attached
  the representation survives. So the authors' detached norm destroys even a
  trained representation.
* Choices 15 + 16 (defaults), no warm-up: the collapse is slower but still
  wins before the evidence is found (L_sim: CMD's norm has a unit-length
  gradient at any non-zero discrepancy, and only equal — e.g. constant —
  batches reach 0). Test 0.450.
* Choices 15 + 16 with a 4-epoch warm-up: the auxiliary losses join a network
  that already uses the evidence, u_m keeps its spread, and validation
  micro-F1 keeps rising with them (0.49 → 0.59 over epochs 5–11). This is
  the ``small`` preset: test micro-F1 0.591, 0.590, 0.546 (seeds 1–3; the
  authors' selection by validation loss).

Whether real data (whose task signal is present from the first step) needs
the warm-up is unknown here; the paper config keeps ``aux_warmup: 0``.

Ablations (the paper's ablation study: removing a modality or a loss; and
the code's alternative similarity loss): ``modalities`` (e.g. ``[audio,
vision]`` = "(−) language"); ``sim_weight: 0``, ``diff_weight: 0``,
``recon_weight: 0`` remove L_sim, L_diff, L_recon (the part disappears from
``LossParts``); ``similarity: adversarial`` replaces CMD by the authors'
domain-adversarial similarity (a discriminator Linear–ReLU–dropout–Linear over
the shared vectors behind gradient reversal, cross-entropy on the modality
identity; their ``use_cmd_sim=False``, ``reverse_grad_weight`` 1.0).
"""

from __future__ import annotations

from contextlib import nullcontext
from itertools import combinations
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmerbench.data.batching import Batch
from mmerbench.data.spec import DatasetSpec
from mmerbench.methods._layers import TransformerLayer, grad_reverse
from mmerbench.methods.base import LossParts, Method, OptimSetup, Output, output_size, task_loss
from mmerbench.methods.text_encoder import FEATURES, PretrainedText, text_input, uses_encoder, with_text_lr
from mmerbench.registry import register

# ---------------------------------------------------------------------------- losses


def cmd(x1: torch.Tensor, x2: torch.Tensor, moments: int = 5) -> torch.Tensor:
    """Central moment discrepancy between two samples [B, D] of values in [0, 1].

    ‖E[x1] − E[x2]‖₂ + Σ_{k=2..K} ‖E[(x1 − E x1)^k] − E[(x2 − E x2)^k]‖₂
    (Zellinger et al., ICLR 2017; the interval length is 1, so no scaling).
    """
    x1, x2 = x1.float(), x2.float()
    m1, m2 = x1.mean(0), x2.mean(0)
    c1, c2 = x1 - m1, x2 - m2
    total = torch.linalg.vector_norm(m1 - m2)
    for k in range(2, moments + 1):
        total = total + torch.linalg.vector_norm(c1.pow(k).mean(0) - c2.pow(k).mean(0))
    return total


def difference_loss(a: torch.Tensor, b: torch.Tensor, detach_norm: bool = False) -> torch.Tensor:
    """Soft orthogonality of two [B, D] matrices: mean of (Aᵀ B)² after centring each
    feature over the batch and L2-normalising each row (the authors' DiffLoss).

    With ``detach_norm`` (the authors' code) the row norms are constants to autograd, so the
    gradient gains a component along each row that shrinks it, larger as the row gets
    shorter; without it the loss is scale-free in each row and only the angles move.
    """
    a = a.float().flatten(1)
    b = b.float().flatten(1)
    a = a - a.mean(0, keepdim=True)
    b = b - b.mean(0, keepdim=True)
    na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    if detach_norm:
        na, nb = na.detach(), nb.detach()
    a = a / (na + 1e-6)
    b = b / (nb + 1e-6)
    return (a.t() @ b).pow(2).mean()


# ---------------------------------------------------------------------------- encoders


def reverse_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sample's first `lengths[b]` steps, leaving the padding after them in place
    (x [B, L, D]; an involution, so it also undoes itself)."""
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    n = lengths.to(x.device)[:, None]
    idx = torch.where(t < n, n - 1 - t, t)
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[2]))


class _Direction(nn.Module):
    """One direction of a bidirectional LSTM layer, over the real steps only.

    ``packed``: ``pack_padded_sequence`` with the lengths (the authors'); ``padded``:
    the LSTM runs over the padded tensor and the final state is read at step len−1.
    Valid steps come first, so in both the padding never reaches a real step's output;
    the backward direction runs forward over each sample's reversed real steps.
    """

    def __init__(self, dim: int, hidden: int, reverse: bool) -> None:
        super().__init__()
        self.reverse = reverse
        self.rnn = nn.LSTM(dim, hidden, batch_first=True)
        nn.init.orthogonal_(self.rnn.weight_hh_l0)  # the authors' solver.build

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, packed: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if self.reverse:
            x = reverse_valid(x, lengths)
        if packed:
            seq = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, (h, _) = self.rnn(seq)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
            final = h[0]
        else:
            out, _ = self.rnn(x)
            last = (lengths.to(x.device) - 1)[:, None, None].expand(-1, 1, out.shape[2])
            final = out.gather(1, last)[:, 0]
        if self.reverse:
            out = reverse_valid(out, lengths)
        return out, final


class MaskedMeanText(nn.Module):
    """The authors' BERT utterance vector: the hidden states' mean over real tokens (choice 18)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_dim = int(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)
        return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


class UtteranceLSTM(nn.Module):
    """sLSTM → LayerNorm → LSTM (both bidirectional) over the real steps; returns the
    utterance vector [h1→, h2→, h1←, h2←] of width 4·hidden.

    Each bidirectional layer is held as two one-direction LSTMs (the same parameters
    as ``nn.LSTM(bidirectional=True)``) so that both directions can skip the padding
    either by packing or by reading the padded run at each sample's last real step:
    ``packing`` "packed" (cuDNN's variable-length kernels), "padded" (PyTorch's CPU
    backward through a packed LSTM grows quadratically with the length), or "auto"
    (packed on CUDA, padded elsewhere). The two give the same numbers up to
    rounding (a test checks it).
    """

    def __init__(self, dim: int, hidden: int, packing: str = "auto") -> None:
        super().__init__()
        self.hidden, self.packing = hidden, packing
        self.fwd1, self.bwd1 = _Direction(dim, hidden, False), _Direction(dim, hidden, True)
        self.norm = nn.LayerNorm(2 * hidden)
        self.fwd2, self.bwd2 = _Direction(2 * hidden, hidden, False), _Direction(2 * hidden, hidden, True)

    @property
    def out_dim(self) -> int:
        return 4 * self.hidden

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        packed = self.packing == "packed" or (self.packing == "auto" and x.is_cuda)
        lengths = mask.sum(1).clamp_min(1)  # an empty sample reads one zero padding step
        # float32 even under bf16 autocast: cuDNN's RNN takes bf16 only from cuDNN 9.13.
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            o1f, h1f = self.fwd1(x, lengths, packed)
            o1b, h1b = self.bwd1(x, lengths, packed)
            normed = self.norm(torch.cat((o1f, o1b), dim=2))
            _, h2f = self.fwd2(normed, lengths, packed)
            _, h2b = self.bwd2(normed, lengths, packed)
        return torch.cat((h1f, h2f, h1b, h2b), dim=1)


# ---------------------------------------------------------------------------- schedule


def _detached_copy(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _detached_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_detached_copy(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_detached_copy(v) for v in obj)
    return obj


class ReloadBestOnPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """The authors' schedule on the validation loss (stepped once per epoch by the runner).

    A loss ≤ the best so far snapshots the model and optimizer and resets the
    patience; otherwise the patience drops by one, and when it goes below 0 the
    best snapshot is reloaded, the learning rate multiplied by ``factor`` and one
    trial used. With no trial left the learning rate is set to 0 (the authors
    stop training here) and ``stopped`` is True.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, model: nn.Module, *, factor: float, patience: int,
                 trials: int) -> None:
        super().__init__(optimizer, mode="min", factor=factor, patience=patience, threshold=0.0,
                         threshold_mode="abs")
        self.model = model
        self.trials_left = int(trials)
        self.patience_left = int(patience)
        self.stopped = False
        self.snapshot: dict[str, Any] | None = None

    def step(self, metrics: Any, epoch: Any = None) -> None:  # type: ignore[override]
        self.last_epoch += 1
        if self.stopped:
            return
        current = float(metrics)
        if current <= self.best:
            self.best = current
            self.patience_left = self.patience
            self.snapshot = {"model": _detached_copy(self.model.state_dict()),
                             "optimizer": _detached_copy(self.optimizer.state_dict())}
        else:
            self.patience_left -= 1
            if self.patience_left < 0:
                self.trials_left -= 1
                self.patience_left = self.patience
                if self.snapshot is not None:
                    state = dict(self.snapshot["model"])
                    if "aux_steps" in state:  # the step count goes on: a reload does not restart a warm-up
                        state["aux_steps"] = self.model.aux_steps.clone()
                    self.model.load_state_dict(state)
                    self.optimizer.load_state_dict(self.snapshot["optimizer"])
                for group in self.optimizer.param_groups:
                    group["lr"] = group["lr"] * self.factor
                if self.trials_left <= 0:
                    self.stopped = True
                    for group in self.optimizer.param_groups:
                        group["lr"] = 0.0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "model")}


# ---------------------------------------------------------------------------- the method

# Which weight (`weights` key) scales each auxiliary loss part.
_PART_WEIGHT = {"difference": "difference", "cmd": "similarity", "adversarial": "similarity",
                "reconstruction": "reconstruction"}


@register("misa")
class MISA(Method):
    paper = ("MISA: Modality-Invariant and -Specific Representations for Multimodal Sentiment Analysis "
             "(Hazarika et al., ACM MM 2020)")
    tasks = ("multilabel", "multiclass", "regression", "binary")

    def __init__(
        self,
        spec: DatasetSpec,
        *,
        modalities: Sequence[str] | None = None,
        hidden: int = 128,
        rnn_hidden: int | None = None,
        packing: str = "auto",
        heads: int = 2,
        ff_dim: int = 2048,
        fusion_dropout: float = 0.1,
        dropout: float = 0.5,
        cmd_moments: int = 5,
        diff_weight: float = 0.3,
        sim_weight: float = 1.0,
        recon_weight: float = 1.0,
        similarity: str = "cmd",
        reverse_grad_weight: float = 1.0,
        diff_norm: str = "attached",
        recon_target: str = "detached",
        aux_warmup: int = 0,
        eval_loss: str = "task",
        clip_mode: str = "value",
        patience: int | None = 6,
        trials: int = 1,
        lr_decay: float = 0.5,
        text_encoder: str = FEATURES,
        text_freeze: str = "none",
        **hparams: Any,
    ) -> None:
        mods = [m for m in spec.modalities if m in (modalities or list(spec.modalities))]
        if not mods:
            raise ValueError(f"Expected `modalities` among {list(spec.modalities)}, but got {modalities!r}")
        if similarity not in ("cmd", "adversarial"):
            raise ValueError(f"Expected `similarity` to be 'cmd' or 'adversarial', but got {similarity!r}")
        if packing not in ("auto", "packed", "padded"):
            raise ValueError(f"Expected `packing` to be 'auto', 'packed' or 'padded', but got {packing!r}")
        if eval_loss not in ("task", "total"):
            raise ValueError(f"Expected `eval_loss` to be 'task' or 'total', but got {eval_loss!r}")
        if clip_mode not in ("value", "norm"):
            raise ValueError(f"Expected `clip_mode` to be 'value' or 'norm', but got {clip_mode!r}")
        for key, value in (("diff_norm", diff_norm), ("recon_target", recon_target)):
            if value not in ("attached", "detached"):
                raise ValueError(f"Expected `{key}` to be 'attached' or 'detached', but got {value!r}")
        if int(aux_warmup) < 0:
            raise ValueError(f"Expected `aux_warmup` to be a number of epochs >= 0, but got {aux_warmup!r}")
        super().__init__(
            spec, modalities=mods, hidden=hidden, rnn_hidden=rnn_hidden, packing=packing, heads=heads, ff_dim=ff_dim,
            fusion_dropout=fusion_dropout, dropout=dropout, cmd_moments=cmd_moments, diff_weight=diff_weight,
            sim_weight=sim_weight, recon_weight=recon_weight, similarity=similarity,
            reverse_grad_weight=reverse_grad_weight, diff_norm=diff_norm, recon_target=recon_target,
            aux_warmup=aux_warmup, eval_loss=eval_loss, clip_mode=clip_mode,
            patience=patience, trials=trials, lr_decay=lr_decay, text_encoder=text_encoder,
            text_freeze=text_freeze, **hparams,
        )
        self.modalities = mods
        self.cmd_moments = int(cmd_moments)
        self.weights = {"difference": float(diff_weight), "similarity": float(sim_weight),
                        "reconstruction": float(recon_weight)}
        self.similarity, self.reverse_grad_weight = similarity, float(reverse_grad_weight)
        self.eval_loss, self.clip_mode = eval_loss, clip_mode
        self.detach_diff_norm, self.detach_recon_target = diff_norm == "detached", recon_target == "detached"
        self.aux_warmup = int(aux_warmup)
        self._warmup_steps, self._warmed = 0, False  # set from the epoch length in configure_optimizer
        # Optimizer steps taken, so the warm-up survives a resume (it is in the checkpoint).
        self.register_buffer("aux_steps", torch.zeros((), dtype=torch.long))
        self._schedule: ReloadBestOnPlateau | None = None

        # §3.2 utterance encoders and the projection to a common width d_h.
        self.encoder = nn.ModuleDict()
        self.project = nn.ModuleDict()
        self.text_model = None
        if uses_encoder(text_encoder) and "text" in mods:  # choice 18: the authors' BERT branch
            self.text_model = PretrainedText(text_encoder, freeze=text_freeze)
        for m in mods:
            dim = spec.modalities[m].dim
            if m == "text" and self.text_model is not None:
                enc = MaskedMeanText(self.text_model.hidden_size)
            else:
                enc = UtteranceLSTM(dim, rnn_hidden or dim, packing)
            self.encoder[m] = enc
            self.project[m] = nn.Sequential(nn.Linear(enc.out_dim, hidden), nn.ReLU(), nn.LayerNorm(hidden))
        # §3.3 private (one per modality) and shared (one) encoders; §3.5 reconstruction.
        self.private = nn.ModuleDict({m: nn.Sequential(nn.Linear(hidden, hidden), nn.Sigmoid()) for m in mods})
        self.shared = nn.Sequential(nn.Linear(hidden, hidden), nn.Sigmoid())
        self.recon = nn.ModuleDict({m: nn.Linear(hidden, hidden) for m in mods})
        # The code's alternative L_sim: a modality discriminator behind gradient reversal.
        self.discriminator = None
        if similarity == "adversarial" and sim_weight:
            self.discriminator = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                               nn.Linear(hidden, len(mods)))
        # §3.4 fusion: torch's TransformerEncoderLayer defaults (post-LN, ReLU, dropout everywhere).
        self.fusion = TransformerLayer(hidden, heads, ff_dim, dropout=fusion_dropout, attn_dropout=fusion_dropout,
                                       relu_dropout=fusion_dropout, activation="relu", norm_first=False)
        width = 2 * len(mods) * hidden
        self.head = nn.Sequential(nn.Linear(width, width // 2), nn.Dropout(dropout), nn.ReLU(),
                                  nn.Linear(width // 2, output_size(spec)))

    # -- the model ---------------------------------------------------------
    def forward(self, batch: Batch) -> Output:
        aux: dict[str, torch.Tensor] = {}
        private, shared = [], []
        for m in self.modalities:
            x, mask = text_input(self, batch) if m == "text" else (batch.inputs[m], batch.masks[m])
            u = self.project[m](self.encoder[m](x, mask))
            hp, hc = self.private[m](u), self.shared(u)
            aux[f"utterance.{m}"], aux[f"private.{m}"], aux[f"shared.{m}"] = u, hp, hc
            aux[f"recon.{m}"] = self.recon[m](hp + hc)
            private.append(hp)
            shared.append(hc)
        if self.discriminator is not None:
            reversed_shared = grad_reverse(torch.cat(shared, dim=0), self.reverse_grad_weight)
            aux["domain_logits"] = self.discriminator(reversed_shared)
        tokens = torch.stack(private + shared, dim=1)  # [B, 2M, d_h]: no padding, no positions
        fused = self.fusion(tokens).flatten(1)
        return Output(scores=self.head(fused), aux=aux)

    # -- the objective -------------------------------------------------------
    def _task(self, batch: Batch, out: Output) -> torch.Tensor:
        if self.spec.task == "regression":  # the authors' sentiment criterion
            return F.mse_loss(out.scores.float().reshape(-1), batch.labels)
        return task_loss(self.spec, out.scores.float(), batch.labels)

    def loss(self, batch: Batch, out: Output) -> LossParts:
        with torch.autocast(device_type=out.scores.device.type, enabled=False):  # float32 objective
            return self._loss(batch, out)

    def accumulation_refusal(self) -> str | None:
        if self.weights["difference"] or (self.weights["similarity"] and self.similarity == "cmd"
                                          and len(self.modalities) > 1):
            return ("the difference loss centres the features over the batch and CMD matches the batch's "
                    "moments, so both couple the samples of a batch")
        return None

    def aux_active(self) -> bool:
        """Whether the auxiliary losses are optimised: not in training during the ``aux_warmup`` epochs;
        validation always scores the full objective (so ``eval_loss: total`` compares like with like)."""
        if not self.training or self._warmed:
            return True
        self._warmed = int(self.aux_steps) >= self._warmup_steps  # read from the device only until then
        return self._warmed

    def _loss(self, batch: Batch, out: Output) -> LossParts:
        task = self._task(batch, out)
        active = self.aux_active()
        # In the warm-up the parts are logged but kept out of the graph: their own modules (the
        # reconstruction layers, a discriminator) then get no gradient at all, not a zero one that
        # would advance Adam's step count and skew its bias correction when they join.
        with nullcontext() if active else torch.no_grad():
            aux = self._aux_parts(out.aux)
        total = task
        if active:
            for name, value in aux.items():
                total = total + self.weights[_PART_WEIGHT[name]] * value
        if not self.training and self.eval_loss == "task":
            total = task  # the authors select and schedule on the validation task loss
        return LossParts(total=total, parts={"task": task, **aux})

    def _aux_parts(self, a: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mods, parts = self.modalities, {}
        if self.weights["difference"]:
            pairs = [(a[f"private.{m}"], a[f"shared.{m}"]) for m in mods]
            pairs += [(a[f"private.{x}"], a[f"private.{y}"]) for x, y in combinations(mods, 2)]
            parts["difference"] = sum(difference_loss(p, q, self.detach_diff_norm) for p, q in pairs)
        if self.weights["similarity"] and len(mods) > 1:
            if self.similarity == "cmd":
                pairs = list(combinations(mods, 2))
                parts["cmd"] = sum(cmd(a[f"shared.{x}"], a[f"shared.{y}"], self.cmd_moments)
                                   for x, y in pairs) / len(pairs)
            else:
                logits = a["domain_logits"].float()
                n = logits.shape[0] // len(mods)
                target = torch.arange(len(mods), device=logits.device).repeat_interleave(n)
                parts["adversarial"] = F.cross_entropy(logits, target)
        if self.weights["reconstruction"]:
            target = {m: a[f"utterance.{m}"].float() for m in mods}
            if self.detach_recon_target:  # the paper's fixed target (choice 16)
                target = {m: t.detach() for m, t in target.items()}
            parts["reconstruction"] = sum(F.mse_loss(a[f"recon.{m}"].float(), target[m]) for m in mods) / len(mods)
        return parts

    # -- training ------------------------------------------------------------
    def configure_optimizer(self, steps_per_epoch: int, epochs: int) -> OptimSetup:
        hp = self.hparams
        self._warmup_steps, self._warmed = self.aux_warmup * int(steps_per_epoch), False
        groups = with_text_lr([{"params": [p for p in self.parameters() if p.requires_grad]}], self.text_model,
                              float(hp.get("text_lr", hp.get("lr", 1e-4))))
        opt = torch.optim.Adam(groups, lr=float(hp.get("lr", 1e-4)), weight_decay=float(hp.get("weight_decay", 0.0)))
        patience = hp.get("patience")
        if patience is None:
            self._schedule = None
            return OptimSetup(opt)
        self._schedule = ReloadBestOnPlateau(opt, self, factor=float(hp["lr_decay"]), patience=int(patience),
                                             trials=int(hp["trials"]))
        return OptimSetup(opt, self._schedule, interval="epoch")

    def training_step(self, batch: Batch, optimizer: torch.optim.Optimizer, autocast=nullcontext) -> LossParts:
        if self._schedule is not None and self._schedule.stopped:
            # The authors have stopped training here: report the loss, change nothing.
            with torch.no_grad(), autocast():
                return self.loss(batch, self(batch))
        optimizer.zero_grad(set_to_none=True)

        def objective(mb: Batch, _i: int) -> tuple[LossParts, None]:
            with autocast():
                out = self(mb)
                return self.loss(mb, out), None

        parts, _ = self.accumulate_backward(batch, objective)
        clip = self.hparams.get("grad_clip")
        if clip:
            params = [p for p in self.parameters() if p.requires_grad]
            if self.clip_mode == "value":
                torch.nn.utils.clip_grad_value_(params, float(clip))
            else:
                torch.nn.utils.clip_grad_norm_(params, float(clip))
        optimizer.step()
        self.aux_steps += 1
        return parts
