"""Gradient accumulation (`accumulate: N`): micro-batches whose losses are weighted by their share of the
batch give the full batch's gradients wherever the loss is a mean over samples; methods whose loss
couples the samples of a batch refuse it in one sentence."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmerbench.data.batching import split_batch
from mmerbench.errors import MmerbenchError
from mmerbench.methods._layers import MultiheadAttention
from mmerbench.registry import METHODS, get_method
from mmerbench.runner import RunRequest, prepare, run

from methods.helpers import build, tiny_batch

TORCH_METHODS = [n for n in METHODS.names() if get_method(n).kind == "torch"]
# Where the default config couples samples, the setting that makes the loss a mean over samples.
SAMPLE_MEAN = {
    "univa": ("va_contrastive=false",),
}
REFUSED = {"carat", "tailor", "fdmer", "misa", "univa"}  # at their default configs


def _dataset(method: str) -> str:
    cls = get_method(method)
    if "multilabel" in cls.tasks:
        return "synth-mosei-aligned"
    return "synth-iemocap"


def _no_dropout(model: nn.Module) -> None:
    """Dropout off everywhere (modules, attention, and methods' functional dropout rates)."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, MultiheadAttention):
            m.dropout = 0.0
        for k, v in list(vars(m).items()):
            if "dropout" in k and isinstance(v, float):
                setattr(m, k, 0.0)


def _step_grads(method: str, accumulate: int, overrides=()):
    model, spec = build(method, _dataset(method), preset="small", seed=0,
                        overrides=(f"accumulate={accumulate}", *overrides))
    _no_dropout(model)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # a step that moves nothing: the gradients stay readable
    if hasattr(model, "configure_optimizer"):
        model.configure_optimizer(1, 1)  # methods that set up step state there (MISA's warm-up)
    torch.manual_seed(7)
    parts = model.training_step(tiny_batch(spec, batch_size=6, seed=3), opt)
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return parts, grads


def _exact_methods():
    out = []
    for name in TORCH_METHODS:
        overrides = SAMPLE_MEAN.get(name, ())
        model, _ = build(name, _dataset(name), preset="small", overrides=overrides)
        if model.accumulation_refusal() is None:
            out.append(pytest.param(name, overrides, id=name))
    return out


@pytest.mark.parametrize("micro", [4])  # 6 samples in 4 micro-batches: 2, 2, 1, 1 (unequal weights)
@pytest.mark.parametrize("method, overrides", _exact_methods())
def test_accumulated_gradients_equal_the_full_batch(method, overrides, micro):
    full_parts, full = _step_grads(method, 1, overrides)
    acc_parts, acc = _step_grads(method, micro, overrides)
    assert full.keys() == acc.keys() and full
    for k in full:
        torch.testing.assert_close(acc[k], full[k], rtol=1e-4, atol=1e-6, msg=k)
    torch.testing.assert_close(acc_parts.total.float(), full_parts.total.detach().float(), rtol=1e-5, atol=1e-6)


def test_the_exact_list_covers_the_paper_settings_named_in_the_issue():
    names = {p.values[0] for p in _exact_methods()}
    assert {"mlp", "mult", "hhmpn", "robmmr", "auxloss", "univa"} <= names


def test_robmmr_perturbs_with_the_full_batch_gradient():
    # APP's δ is built from the gradient after the first pass: with micro-batches, that of the whole batch.
    seen = {}
    from mmerbench.methods.robmmr import RobMMR

    original = RobMMR.perturbation_for

    def spy(self, params):
        seen[self.accumulate] = [p.grad.clone() for p in params]
        return original(self, params)

    RobMMR.perturbation_for = spy
    try:
        _step_grads("robmmr", 1)
        _step_grads("robmmr", 3)
    finally:
        RobMMR.perturbation_for = original
    for a, b in zip(seen[3], seen[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", sorted(REFUSED))
def test_coupled_losses_refuse_micro_batches_in_one_sentence(method, tmp_path):
    req = RunRequest(method=method, dataset=_dataset(method), preset="small", overrides=("accumulate=2",),
                     runs_dir=str(tmp_path / "runs"), progress=False)
    with pytest.raises(MmerbenchError, match="cannot accumulate gradients over micro-batches at this config: .+"):
        prepare(req)
    assert not (tmp_path / "runs").exists()  # refused before anything is written


@pytest.mark.parametrize("bad", ["accumulate=0", "accumulate=1.5", "accumulate=true", "accumulate=100"])
def test_bad_accumulate_values_are_one_error(bad):
    with pytest.raises(MmerbenchError, match="accumulate"):
        prepare(RunRequest(method="mlp", dataset="synth-mosei-aligned", preset="small", overrides=(bad,)))


def test_split_batch_keeps_order_and_every_sample():
    spec = build("mlp", "synth-mosei-aligned", preset="small")[1]
    batch = tiny_batch(spec, batch_size=7)
    parts = split_batch(batch, 3)
    assert [len(p) for p in parts] == [3, 2, 2]
    assert torch.equal(torch.cat([p.index for p in parts]), batch.index)
    for m in batch.inputs:
        assert torch.equal(torch.cat([p.inputs[m] for p in parts]), batch.inputs[m])
    assert len(split_batch(batch, 20)) == 7  # never an empty micro-batch


def test_run_with_accumulation_is_its_own_config(tmp_path):
    common = dict(method="mlp", dataset="synth-mosei-aligned", preset="small", epochs=2, scale=0.01,
                  device="cpu", progress=False, data_dir=str(tmp_path / "data"))
    (plain,) = run(RunRequest(runs_dir=str(tmp_path / "a"), overrides=("dropout=0",), **common))
    (acc,) = run(RunRequest(runs_dir=str(tmp_path / "b"), overrides=("dropout=0", "accumulate=4"), **common))
    assert acc.folder.parent.name != plain.folder.parent.name  # a setting like any other: in the hash
    # Without dropout, the same optimizer steps on the same gradients (up to float32 summation order).
    assert acc.metrics["test"] == pytest.approx(plain.metrics["test"], abs=1e-5)
