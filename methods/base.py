"""The Method base class: an nn.Module with a forward, a loss and a training step.

A method subclasses :class:`Method`, registers itself with
``@register("name")`` (mmerbench.registry) and keeps its paper's
hyperparameters in ``configs/<name>.yaml``. The runner calls, per batch,
``training_step(batch, optimizer)``; the default is forward → loss →
backward → clip → step, and methods whose step differs override it.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from mmerbench.data.batching import Batch, split_batch
from mmerbench.data.dataset import Split
from mmerbench.data.spec import DatasetSpec
from mmerbench.errors import MmerbenchError


@dataclass
class Output:
    scores: torch.Tensor  # logits (multilabel/binary/multiclass) or predictions (regression)
    aux: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class OptimSetup:
    """What the runner steps: the optimizer, an optional LR schedule, and how often to step it.

    ``interval`` is "step" (after every optimizer step, e.g. warm-up/decay) or
    "epoch" (after validation; a ReduceLROnPlateau is given the validation loss).
    """

    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    interval: str = "epoch"


@dataclass
class LossParts:
    total: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


def task_loss(spec: DatasetSpec, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BCE with logits for multi-label and binary, cross-entropy for multi-class, L1 for regression."""
    if spec.task == "multilabel":
        return F.binary_cross_entropy_with_logits(scores, labels)
    if spec.task == "binary":
        return F.binary_cross_entropy_with_logits(scores.reshape(-1), labels)
    if spec.task == "multiclass":
        return F.cross_entropy(scores, labels)
    return F.l1_loss(scores.reshape(-1), labels)


def to_probabilities(task: str, scores: torch.Tensor) -> torch.Tensor:
    """What the metrics score: sigmoid / softmax probabilities, or the regression output."""
    if task in ("multilabel",):
        return torch.sigmoid(scores)
    if task == "binary":
        return torch.sigmoid(scores.reshape(-1))
    if task == "multiclass":
        return torch.softmax(scores, dim=-1)
    return scores.reshape(-1)


def output_size(spec: DatasetSpec) -> int:
    return {"multilabel": spec.num_labels, "multiclass": spec.num_labels, "binary": 1, "regression": 1}[spec.task]


class Method(nn.Module, metaclass=ABCMeta):  # ABCMeta: forward is abstract
    kind: ClassVar[str] = "torch"
    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ("multilabel",)
    required_modalities: ClassVar[tuple[str, ...]] = ()  # modalities a dataset must have (empty: any set)
    config_package: ClassVar[str] = "mmerbench.methods"

    def __init__(self, spec: DatasetSpec, **hparams: Any) -> None:
        super().__init__()
        self.spec = spec
        self.hparams = dict(hparams)

    # -- the model ---------------------------------------------------------
    @abstractmethod
    def forward(self, batch: Batch) -> Output:
        """Scores for the batch (logits, or the regression output) and named auxiliary outputs."""

    def loss(self, batch: Batch, out: Output) -> LossParts:
        main = task_loss(self.spec, out.scores, batch.labels)
        return LossParts(total=main, parts={"task": main})

    def probabilities(self, out: Output) -> torch.Tensor:
        return to_probabilities(self.spec.task, out.scores)

    def setup(self, train: Split) -> None:
        """Called once, before training, with the training split (e.g. to count label
        co-occurrence for a graph prior). Anything learned here must live in a buffer
        or parameter, so checkpoints carry it. Default: nothing."""

    # -- training ------------------------------------------------------------
    def configure_optimizer(self, steps_per_epoch: int, epochs: int) -> OptimSetup:
        """Adam at `lr` (with `weight_decay`); no schedule unless a method says otherwise."""
        hp = self.hparams
        opt = torch.optim.Adam(self.parameters(), lr=float(hp.get("lr", 1e-3)),
                               weight_decay=float(hp.get("weight_decay", 0.0)))
        return OptimSetup(opt)

    # -- gradient accumulation -------------------------------------------------------
    @property
    def accumulate(self) -> int:
        """Micro-batches per optimizer step (the config's ``accumulate``; 1 = the whole batch at once)."""
        return int(self.hparams.get("accumulate", 1) or 1)

    def accumulation_refusal(self) -> str | None:
        """Why micro-batching would change this method's objective at its config, or None where the
        loss is a mean over samples (then Σ_micro (n_i/B)·loss_i has the full batch's gradient).
        Methods with terms that couple the samples of a batch override this."""
        return None

    def check_accumulation(self, batch_size: int | None = None) -> None:
        """One error sentence for an `accumulate` this method or batch size cannot take."""
        n = self.hparams.get("accumulate", 1)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise MmerbenchError(f"`accumulate` must be a whole number of micro-batches ≥ 1, but got {n!r}.")
        if n > 1:
            reason = self.accumulation_refusal()
            if reason:
                raise MmerbenchError(f"{self.name or type(self).__name__} cannot accumulate gradients over "
                                     f"micro-batches at this config: {reason}. Use accumulate: 1.")
            if batch_size is not None and n > int(batch_size):
                raise MmerbenchError(f"`accumulate` ({n}) is larger than the batch size ({batch_size}).")

    def accumulate_backward(self, batch: Batch,
                            objective: Callable[[Batch, int], tuple[LossParts, Any]]) -> tuple[LossParts, list]:
        """Backward of `objective` over the batch, in ``accumulate`` micro-batches.

        Each micro-batch's loss is scaled by its share of the batch (n_i / B, not 1/N: the last one
        may be smaller), so for a loss that is a mean over samples the summed gradients are the full
        batch's. Returns the loss parts as the same weighted means (detached) and what `objective`
        returned beside its loss for each micro-batch. One micro-batch: exactly the plain step.
        """
        if self.accumulate <= 1:
            parts, keep = objective(batch, 0)
            parts.total.backward()
            return parts, [keep]
        self.check_accumulation()
        sums: dict[str, torch.Tensor] = {}
        keeps = []
        for i, mb in enumerate(split_batch(batch, self.accumulate)):
            w = len(mb) / len(batch)
            parts, keep = objective(mb, i)
            (parts.total * w).backward()
            for name, v in {"total": parts.total, **parts.parts}.items():
                sums[name] = sums.get(name, 0.0) + v.detach().float() * w
            keeps.append(keep)
        total = sums.pop("total")
        return LossParts(total=total, parts=sums), keeps

    def training_step(self, batch: Batch, optimizer: torch.optim.Optimizer, autocast=nullcontext) -> LossParts:
        optimizer.zero_grad(set_to_none=True)

        def objective(mb: Batch, _i: int) -> tuple[LossParts, None]:
            with autocast():
                out = self(mb)
                return self.loss(mb, out), None

        parts, _ = self.accumulate_backward(batch, objective)
        clip = self.hparams.get("grad_clip")
        if clip:
            torch.nn.utils.clip_grad_norm_(self.parameters(), float(clip))
        optimizer.step()
        return parts


def set_layer_checkpointing(model: nn.Module, on: bool) -> int:
    """Turn activation checkpointing of every shared ``TransformerLayer`` in `model` on or off (the
    config's ``checkpoint_layers``: a memory/compute trade, not a model change); returns how many."""
    from mmerbench.methods._layers import TransformerLayer

    layers = [m for m in model.modules() if isinstance(m, TransformerLayer)]
    for layer in layers:
        layer.checkpoint = bool(on)
    return len(layers)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real time steps: x [B, L, D], mask [B, L] → [B, D] (0 where a sample has none)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def decay_groups(model: nn.Module, weight_decay: float,
                 no_decay: tuple[str, ...] = ("bias", "norm", "LayerNorm")) -> list[dict[str, Any]]:
    """Parameter groups with weight decay except on biases and normalisation weights (BERT's habit)."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (plain if any(k in name for k in no_decay) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def warmup_linear(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first `warmup` fraction of steps, then linear decay to 0."""
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
