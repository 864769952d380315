"""MulT against the authors' MULTModel (yaohungt/Multimodal-Transformer), driven from where it lies.

Their run script's settings (``main.py`` defaults: d = 30, 5 heads, 5 crossmodal layers, 3 memory
layers, attention mask on), all three targets, 6 outputs, at our aligned MOSEI shapes. Ours is
switched to their behaviour where we depart on purpose: ``use_masks: false`` (no padding masks,
last step L-1), ``future_mask: offset`` (their buffered future mask) and ``positions: authors``
(their fairseq table). Their code has no multi-label criterion (it trains MOSEI sentiment with L1);
the loss compared is ours, BCE with logits, applied to their logits. One torch-2 fix in the
adapter: their ``make_positions`` result is made contiguous before their ``.view``.
"""

from __future__ import annotations

import argparse

import pytest
import torch
from torch.nn import functional as F

from mmerbench.data.batching import Batch
from mmerbench.data.registry import get_entry
from mmerbench.importers import import_weights
from mmerbench.registry import get_method

from parity.conftest import authors_repo, on_path

DATASET = "mosei-aligned"
AUTHORS_SWITCHES = dict(use_masks=False, future_mask="offset", positions="authors")
DROPOUTS = ("embed_dropout", "attn_dropout", "relu_dropout", "res_dropout", "out_dropout")


def _authors_model(dropout: bool):
    spec = get_entry(DATASET).spec
    hp = argparse.Namespace(
        orig_d_l=spec.modalities["text"].dim, orig_d_a=spec.modalities["audio"].dim,
        orig_d_v=spec.modalities["vision"].dim, vonly=True, aonly=True, lonly=True, num_heads=5, layers=5,
        attn_dropout=0.1, attn_dropout_a=0.0, attn_dropout_v=0.0, relu_dropout=0.1, res_dropout=0.1,
        out_dropout=0.0, embed_dropout=0.25, attn_mask=True, output_dim=spec.num_labels)
    if not dropout:
        for k in vars(hp):
            if "dropout" in k:
                setattr(hp, k, 0.0)
    with on_path(authors_repo("Multimodal-Transformer"), "src", "modules"):
        import modules.position_embedding as pe
        from src.models import MULTModel

        make_positions = pe.make_positions
        # torch 2: their positions come back non-contiguous (masked_scatter_ on an expanded buffer)
        # and their `.view` then refuses them.
        pe.make_positions = lambda *a, **k: make_positions(*a, **k).contiguous()
        torch.manual_seed(0)
        return MULTModel(hp)


def _our_model(dropout: bool):
    from methods.helpers import params_for

    spec = get_entry(DATASET).spec
    p = params_for("mult", DATASET, overrides=[f"{k}={v}" for k, v in AUTHORS_SWITCHES.items()])
    if not dropout:
        p.update({k: 0.0 for k in DROPOUTS}, attn_dropout_by_source={})
    return get_method("mult")(spec, **p), spec


def _batch(spec, seed: int = 0, batch_size: int = 4) -> Batch:
    """Random features; samples 1.. end in zero padding (their positions give it none, as ours under the switch)."""
    g = torch.Generator().manual_seed(seed)
    inputs, masks = {}, {}
    for m, ms in spec.modalities.items():
        x = torch.randn(batch_size, ms.length, ms.dim, generator=g)
        lengths = torch.tensor([ms.length] + [ms.length - 7 * i for i in range(1, batch_size)])
        mask = torch.arange(ms.length)[None, :] < lengths[:, None]
        inputs[m], masks[m] = x * mask[..., None], mask
    labels = (torch.rand(batch_size, spec.num_labels, generator=g) < 0.4).float()
    return Batch(inputs=inputs, masks=masks, labels=labels, index=torch.arange(batch_size))


def _pair(dropout: bool):
    theirs = _authors_model(dropout)
    ours, spec = _our_model(dropout)
    ours.load_state_dict(import_weights("mult", theirs.state_dict(), ours))
    return theirs, ours, spec


def _their_logits(theirs, batch):
    return theirs(batch.inputs["text"], batch.inputs["audio"], batch.inputs["vision"])[0]


def test_parameters_equal_the_authors_to_the_parameter():
    theirs = _authors_model(dropout=True)
    ours, _ = _our_model(dropout=True)
    n_theirs = sum(p.numel() for p in theirs.parameters())
    unused = 0  # they build no module they do not call (all three targets in use)
    additions = 0
    assert sum(p.numel() for p in ours.parameters()) == n_theirs - unused + additions == 1_074_636


def test_eval_logits_and_loss_match():
    theirs, ours, spec = _pair(dropout=True)
    theirs.eval(), ours.eval()
    for seed in (0, 1):
        batch = _batch(spec, seed)
        with torch.no_grad():
            a = _their_logits(theirs, batch)
            out = ours(batch)
            loss = ours.loss(batch, out)
        ref = F.binary_cross_entropy_with_logits(a, batch.labels)
        gap, loss_gap = float((out.scores - a).abs().max()), abs(float(loss.total) - float(ref))
        print(f"MulT seed {seed}: max |Δ logits| = {gap:.3g}, |Δ loss| = {loss_gap:.3g}")
        assert gap <= 1e-5
        assert set(loss.parts) <= {"task"}
        assert loss_gap <= 1e-6


def test_one_training_step_has_the_same_gradients():
    theirs, ours, spec = _pair(dropout=False)
    theirs.train(), ours.train()
    batch = _batch(spec, 2)
    F.binary_cross_entropy_with_logits(_their_logits(theirs, batch), batch.labels).backward()
    ours.loss(batch, ours(batch)).total.backward()
    grads = {k: p.grad for k, p in theirs.named_parameters()}
    mapped = import_weights("mult", {**dict(theirs.named_buffers()), **grads}, ours)
    worst = max(float((p.grad - mapped[k]).abs().max()) for k, p in ours.named_parameters())
    print(f"MulT: max |Δ grad| = {worst:.3g}")
    assert worst <= 1e-5, worst


@pytest.mark.parametrize("switch", sorted(AUTHORS_SWITCHES))
def test_each_departure_is_what_separates_us(switch):
    """With one of the three switches back at our default, the logits differ (each switch is needed)."""
    theirs, ours, spec = _pair(dropout=True)
    p = dict(ours.hparams)
    default = {"use_masks": True, "future_mask": "relative", "positions": "sinusoidal"}[switch]
    p[switch] = default
    other = get_method("mult")(spec, **p)
    other.load_state_dict(ours.state_dict())
    theirs.eval(), other.eval()
    batch = _batch(spec, 0)
    with torch.no_grad():
        gap = float((other(batch).scores - _their_logits(theirs, batch)).abs().max())
    print(f"MulT departure {switch}={default}: max |Δ logits| = {gap:.3g}")
    if switch == "future_mask":
        assert gap <= 1e-5  # aligned MOSEI: equal lengths, both rules are the usual causal mask
    else:
        assert gap > 1e-4
