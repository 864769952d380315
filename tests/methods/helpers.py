"""Helpers for method tests: tiny random batches at a spec's real shapes, configs, parameter counts."""

from __future__ import annotations

import torch

from mmerbench.config import resolve
from mmerbench.data.batching import Batch
from mmerbench.data.registry import get_entry
from mmerbench.data.spec import DatasetSpec
from mmerbench.registry import get_method


def params_for(method: str, dataset: str, preset: str | None = None, overrides=()) -> dict:
    cls = get_method(method)
    spec = get_entry(dataset).spec
    cfg = resolve(method, cls.config_package, dataset=dataset, base_dataset=spec.base_name, preset=preset,
                  overrides=list(overrides), base={"threshold": spec.threshold})
    p = cfg["params"]
    if p.get("modalities", "absent") is None:
        p["modalities"] = list(spec.modalities)
    return p


def build(method: str, dataset: str, preset: str | None = None, overrides=(), seed: int = 0):
    spec = get_entry(dataset).spec
    torch.manual_seed(seed)
    return get_method(method)(spec, **params_for(method, dataset, preset, overrides)), spec


def tiny_batch(spec: DatasetSpec, batch_size: int = 3, seed: int = 0) -> Batch:
    """Random features at the spec's real lengths; sample 0 full length, the others shorter; VA extras."""
    g = torch.Generator().manual_seed(seed)
    inputs, masks = {}, {}
    for m, ms in spec.modalities.items():
        x = torch.randn(batch_size, ms.length, ms.dim, generator=g)
        lengths = torch.tensor([ms.length] + [max(1, ms.length // (i + 2)) for i in range(1, batch_size)])
        mask = torch.arange(ms.length)[None, :] < lengths[:, None]
        inputs[m], masks[m] = x * mask[..., None], mask
    if spec.task == "multilabel":
        labels = (torch.rand(batch_size, spec.num_labels, generator=g) < 0.4).float()
        labels[0] = 0  # one sample with no label
    elif spec.task == "multiclass":
        labels = torch.randint(0, spec.num_labels, (batch_size,), generator=g)
    elif spec.task == "binary":
        labels = torch.randint(0, 2, (batch_size,), generator=g).float()
    else:
        labels = torch.empty(batch_size).uniform_(-3, 3, generator=g)
    # Per-modality valence/arousal, as the synthetic twins carry them (UniVA's default reads them).
    extras = {f"va_{m}": torch.rand(batch_size, 2, generator=g) * 2 - 1 for m in spec.modalities}
    return Batch(inputs=inputs, masks=masks, labels=labels, index=torch.arange(batch_size), extras=extras)


def assert_padding_ignored(model: torch.nn.Module, spec: DatasetSpec, atol: float = 1e-5) -> None:
    """Padded steps (mask False) filled with large noise leave the eval-mode scores unchanged."""
    model.eval()
    batch = tiny_batch(spec)
    with torch.no_grad():
        before = model(batch).scores
        for m in batch.inputs:
            pad = ~batch.masks[m]
            batch.inputs[m][pad] = torch.randn(int(pad.sum()), batch.inputs[m].shape[-1]) * 5
        after = model(batch).scores
    assert torch.allclose(before, after, atol=atol)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
