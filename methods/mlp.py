"""Early-fusion MLP on pooled features: the simplest neural reference.

Each modality is averaged over its real time steps (masked mean), the pooled
vectors are concatenated, layer-normalised and passed through a two-layer
MLP (Linear–ReLU–dropout–Linear). No paper: it is the neural counterpart of
the BR baseline (same input, a shared hidden layer instead of independent
logistic regressions) and the method the harness' own tests train.
"""

from __future__ import annotations

from torch import nn

from mmerbench.data.batching import Batch
from mmerbench.data.spec import DatasetSpec
from mmerbench.methods.base import Method, Output, masked_mean, output_size
from mmerbench.registry import register


@register("mlp")
class MLP(Method):
    paper = "early-fusion MLP on masked time-averaged features (reference, no paper)"
    tasks = ("multilabel", "multiclass", "regression", "binary")

    def __init__(self, spec: DatasetSpec, *, hidden: int = 256, dropout: float = 0.2,
                 modalities: list[str] | None = None, **hparams) -> None:
        super().__init__(spec, hidden=hidden, dropout=dropout, modalities=modalities, **hparams)
        self.modalities = list(modalities or spec.modalities)
        in_dim = sum(spec.modalities[m].dim for m in self.modalities)
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, output_size(spec)),
        )

    def forward(self, batch: Batch) -> Output:
        import torch

        pooled = torch.cat([masked_mean(batch.inputs[m], batch.masks[m]) for m in self.modalities], dim=-1)
        return Output(scores=self.net(pooled))
