"""Batches cut from tensors already on the device, in an order drawn from a seeded generator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from mmerbench.data.dataset import Split
from mmerbench.data.spec import DatasetSpec


@dataclass
class Batch:
    inputs: dict[str, torch.Tensor]  # modality -> [B, L, D] float32
    masks: dict[str, torch.Tensor]  # modality -> [B, L] bool, True = real step
    labels: torch.Tensor  # multilabel/binary/regression float32, multiclass int64
    index: torch.Tensor  # positions in the split, [B]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    text_ids: torch.Tensor | None = None  # [B, T] int64 token ids, when the run reads text with a pretrained encoder
    text_mask: torch.Tensor | None = None  # [B, T] bool attention mask of those tokens

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def split_batch(batch: Batch, parts: int) -> list[Batch]:
    """The batch cut into `parts` contiguous micro-batches (sizes differ by at most one; never an
    empty one), in order: concatenated again they are the batch."""
    parts = max(1, min(int(parts), len(batch)))

    def cut(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return x.tensor_split(parts)

    inputs = {m: cut(x) for m, x in batch.inputs.items()}
    masks = {m: cut(x) for m, x in batch.masks.items()}
    extras = {k: cut(v) for k, v in batch.extras.items()}
    labels, index = cut(batch.labels), cut(batch.index)
    return [Batch(inputs={m: x[i] for m, x in inputs.items()}, masks={m: x[i] for m, x in masks.items()},
                  labels=labels[i], index=index[i], extras={k: v[i] for k, v in extras.items()})
            for i in range(parts)]


def label_tensor(spec: DatasetSpec, y: np.ndarray) -> torch.Tensor:
    if spec.task == "multiclass":
        return torch.as_tensor(np.asarray(y), dtype=torch.long)
    return torch.as_tensor(np.asarray(y), dtype=torch.float32)


class DeviceSplit:
    """One split held as device tensors (copied once), cut into batches by index."""

    def __init__(
        self, spec: DatasetSpec, split: Split, device: torch.device | str, modalities: list[str] | None = None,
        tokens: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.device = torch.device(device)
        mods = modalities or list(spec.modalities)
        # np.array(..., copy) turns a read-only memory map into an owned array torch can wrap.
        self.inputs = {m: torch.from_numpy(np.array(split.inputs[m], dtype=np.float32)).to(self.device) for m in mods}
        self.masks = {m: torch.from_numpy(np.array(split.masks[m], dtype=bool)).to(self.device) for m in mods}
        self.labels = label_tensor(spec, split.labels).to(self.device)
        self.extras = {k: torch.as_tensor(np.array(v)).to(self.device) for k, v in split.extras.items()}
        self.n = len(split)
        self.tokens = None if tokens is None else tuple(torch.as_tensor(np.asarray(t)).to(self.device) for t in tokens)

    def __len__(self) -> int:
        return self.n

    def take(self, idx: torch.Tensor) -> Batch:
        idx = idx.to(self.device)
        return Batch(
            inputs={m: x.index_select(0, idx) for m, x in self.inputs.items()},
            masks={m: x.index_select(0, idx) for m, x in self.masks.items()},
            labels=self.labels.index_select(0, idx),
            index=idx,
            extras={k: v.index_select(0, idx) for k, v in self.extras.items()},
            text_ids=None if self.tokens is None else self.tokens[0].index_select(0, idx),
            text_mask=None if self.tokens is None else self.tokens[1].index_select(0, idx),
        )

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        order = torch.randperm(self.n, generator=generator) if shuffle else torch.arange(self.n)
        stop = self.n - (self.n % batch_size) if drop_last else self.n
        for lo in range(0, stop, batch_size):
            yield self.take(order[lo : lo + batch_size])

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        return self.n // batch_size if drop_last else -(-self.n // batch_size)
