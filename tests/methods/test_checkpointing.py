"""`checkpoint_layers`: recomputing the shared transformer layers in the backward pass changes memory,
not the numbers — the same loss and gradients with dropout on, for every method built on them."""

from __future__ import annotations

import pytest
import torch

from mmerbench.methods._layers import TransformerLayer
from mmerbench.methods.base import set_layer_checkpointing
from mmerbench.runner import RunRequest, run

from methods.helpers import build, tiny_batch

ALIGNED = "synth-mosei-aligned"


def _loss_and_grads(method: str, checkpoint: bool):
    model, spec = build(method, ALIGNED, preset="small", seed=0)
    n = set_layer_checkpointing(model, checkpoint)
    model.train()  # dropout on: the recomputation must replay the same masks
    batch = tiny_batch(spec, batch_size=4)
    torch.manual_seed(123)
    parts = model.loss(batch, model(batch))
    parts.total.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return n, parts.total.detach(), grads


@pytest.mark.parametrize("method", ["mult", "hhmpn", "tailor", "robmmr"])
def test_checkpointed_layers_give_the_same_loss_and_gradients(method):
    n, loss, grads = _loss_and_grads(method, False)
    n_ck, loss_ck, grads_ck = _loss_and_grads(method, True)
    assert n == n_ck > 0
    torch.testing.assert_close(loss_ck, loss)
    assert grads_ck.keys() == grads.keys()
    for k in grads:
        torch.testing.assert_close(grads_ck[k], grads[k], rtol=1e-5, atol=1e-7, msg=k)


def test_checkpointing_stores_fewer_activations():
    layer = TransformerLayer(32, 4, 64, dropout=0.1)
    x = torch.randn(8, 50, 32, requires_grad=True)

    def saved_bytes(on: bool) -> int:
        layer.checkpoint = on
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            layer(x).sum()
        return total

    assert saved_bytes(True) < saved_bytes(False) / 4


def test_eval_and_no_grad_skip_the_checkpoint(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("checkpointed outside training with autograd")

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", refuse)
    layer = TransformerLayer(16, 2, 32)
    layer.checkpoint = True
    x = torch.randn(2, 5, 16, requires_grad=True)
    layer.eval()
    layer(x)  # eval, autograd on
    layer.train()
    with torch.no_grad():
        layer(x)  # training mode, no autograd
    with pytest.raises(AssertionError, match="checkpointed"):
        layer(x)  # training with autograd: the one case that checkpoints


def test_run_with_checkpoint_layers_matches_the_plain_run(tmp_path):
    common = dict(method="mult", dataset=ALIGNED, preset="small", epochs=1, scale=0.01, device="cpu",
                  progress=False, data_dir=str(tmp_path / "data"))
    (plain,) = run(RunRequest(runs_dir=str(tmp_path / "a"), **common))
    (ck,) = run(RunRequest(runs_dir=str(tmp_path / "b"), overrides=("checkpoint_layers=true",), **common))
    assert ck.folder != plain.folder  # its own config hash: the setting is recorded with the run
    assert ck.metrics["test"] == pytest.approx(plain.metrics["test"], abs=1e-6)


def test_out_of_memory_is_one_error_naming_the_memory_switches(tmp_path, monkeypatch):
    # The CUDA path, exercised on the CPU: the runner turns torch's OutOfMemoryError into one sentence.
    from mmerbench.errors import MmerbenchError
    from mmerbench.methods.mult import MulT
    from mmerbench import results

    def no_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(MulT, "training_step", no_memory)
    req = RunRequest(method="mult", dataset=ALIGNED, preset="small", epochs=1, scale=0.01, device="cpu",
                     progress=False, data_dir=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs"))
    with pytest.raises(MmerbenchError, match=r"ran out of cpu memory at batch size \d+; try --set checkpoint_layers"):
        run(req)
    assert results.collect(tmp_path / "runs").empty  # nothing half-done reads as a result
