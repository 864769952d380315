"""What every registered neural method must do (after scikit-learn's estimator checks and timm's model tests).

Runs over the registry, so a new method gets these tests for free: builds for
every registered dataset whose task it supports, at the paper config and the
`small` preset; a forward/backward on a tiny batch gives a finite loss and a
finite gradient on every trainable parameter; the same seed gives the same
loss and gradients; the output has the task's shape.
"""

from __future__ import annotations

import pytest
import torch

from mmerbench.data.registry import DATASETS
from mmerbench.methods.base import LossParts, Output
from mmerbench.registry import METHODS, get_method

from methods.helpers import build, tiny_batch

TORCH_METHODS = [n for n in METHODS.names() if get_method(n).kind == "torch"]


def _supports(method: str, spec) -> bool:
    cls = get_method(method)
    return spec.task in cls.tasks and set(getattr(cls, "required_modalities", ())) <= set(spec.modalities)


def _cases():
    for name in TORCH_METHODS:
        for ds in DATASETS.names():
            if DATASETS.get(ds).synthetic and _supports(name, DATASETS.get(ds).spec):
                yield pytest.param(name, ds, id=f"{name}-{ds}")


def _step(model, batch):
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(batch)
    parts = model.loss(batch, out)
    parts.total.backward()
    return out, parts


@pytest.mark.parametrize("method, dataset", list(_cases()))
def test_forward_backward_small(method, dataset):
    model, spec = build(method, dataset, preset="small")
    batch = tiny_batch(spec)
    out, parts = _step(model, batch)
    assert isinstance(out, Output) and isinstance(parts, LossParts)
    want = {"multilabel": (3, spec.num_labels), "multiclass": (3, spec.num_labels)}.get(spec.task)
    if want:
        assert tuple(out.scores.shape) == want
    else:
        assert out.scores.reshape(-1).shape == (3,)
    assert torch.isfinite(parts.total) and all(torch.isfinite(v) for v in parts.parts.values())
    assert "task" in parts.parts
    exempt = getattr(model, "no_grad_params", ())
    for name, p in model.named_parameters():
        if not p.requires_grad or any(e in name for e in exempt):
            continue
        assert p.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    probs = model.probabilities(out)
    if spec.task in ("multilabel", "binary", "multiclass"):
        assert ((probs >= 0) & (probs <= 1)).all()


@pytest.mark.parametrize("method, dataset", list(_cases()))
def test_same_seed_same_loss_and_gradients(method, dataset):
    results = []
    for _ in range(2):
        model, spec = build(method, dataset, preset="small", seed=5)
        torch.manual_seed(11)  # dropout
        _, parts = _step(model, tiny_batch(spec))
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((parts.total.detach(), grads))
    (la, ga), (lb, gb) = results
    assert torch.equal(la, lb)
    assert all(torch.equal(a, b) for a, b in zip(ga, gb))


@pytest.mark.parametrize("method, dataset", list(_cases()))
def test_empty_modality_stays_finite(method, dataset):
    """A sample whose modality has no real step (all masked) must not produce NaN."""
    model, spec = build(method, dataset, preset="small")
    batch = tiny_batch(spec)
    for m in batch.masks:
        batch.masks[m][1] = False
        batch.inputs[m][1] = 0
    model.eval()
    with torch.no_grad():
        out = model(batch)
    assert torch.isfinite(out.scores).all()


@pytest.mark.parametrize("method", TORCH_METHODS)
def test_paper_config_builds(method):
    """The paper config (no preset) builds for the first dataset each method supports."""
    ds = next(d for d in DATASETS.names() if _supports(method, DATASETS.get(d).spec))
    model, spec = build(method, ds)
    assert sum(p.numel() for p in model.parameters()) > 0
