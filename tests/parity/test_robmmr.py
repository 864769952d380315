"""RobMMR against the authors' MMERModel (ShipingGe/MMER) at their training script's settings.

Their script: 3 encoder layers per stack, 1 decoder layer, d 512, FFN 1024, 8
heads, the asymmetric loss on sigmoid outputs scaled by 1000 / labels. Our
model is switched to their decoder (``decoder_norm: true``). Their inputs have
no padding mask, so the batches here are full length.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmerbench.importers import import_weights
from mmerbench.methods.robmmr import asymmetric_loss
from mmerbench.runner import parameter_count

from methods.helpers import build, count_parameters, tiny_batch
from parity.conftest import authors_repo, on_path

LABELS = 6


def authors_model(dropout: float = 0.1):
    with on_path(authors_repo("MMER"), "models", "utils"):
        from models.modeling import MMERModel
        from utils.loss_functions import AsymmetricLossOptimized
        torch.manual_seed(1)
        model = MMERModel(num_encoder_layers=3, num_decoder_layers=1, d_model=512, dim_feedforward=1024,
                          dropout=dropout)
    return model, AsymmetricLossOptimized(gamma_neg=2, gamma_pos=1)


def no_dropout(model: nn.Module) -> None:
    """Their embedding and read-out dropouts are fixed at 0.1 whatever the argument: switch every one off."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, nn.MultiheadAttention):
            m.dropout = 0.0


def full_batch(spec, seed: int):
    batch = tiny_batch(spec, batch_size=4, seed=seed)
    for m in batch.masks:
        batch.masks[m][:] = True
        batch.inputs[m] = torch.randn(batch.inputs[m].shape, generator=torch.Generator().manual_seed(seed + 7))
    return batch


def their_inputs(batch):
    return batch.inputs["text"], batch.inputs["vision"], batch.inputs["audio"]


def logits_hook(model):
    """Their decoder returns sigmoid outputs; the pre-sigmoid logits are read off the classifier
    (its first call in a forward pass: the second is the masked pass)."""
    seen = {}

    def hook(module, args, out):
        seen.setdefault("logits", out.squeeze(-1).permute(1, 0))  # returns None: their output is kept

    model.emotion_decoder.classifier.register_forward_hook(hook)
    return seen


def pair(dropout: float = 0.1):
    theirs, asl = authors_model(dropout)
    ours, spec = build("robmmr", "mosei-aligned", overrides=["decoder_norm=true", f"dropout={dropout}"])
    ours.load_state_dict(import_weights("robmmr", theirs.state_dict(), ours))
    return theirs, ours, spec, asl


def test_parameters_reconcile():
    theirs, _ = authors_model()
    authors = count_parameters(theirs)
    decoder_norm = 2 * 512  # their final decoder LayerNorm, off in ours by default
    assert parameter_count("robmmr", "mosei-aligned") == authors - decoder_norm == 28_611_076
    ours, _ = build("robmmr", "mosei-aligned", overrides=["decoder_norm=true"])
    assert count_parameters(ours) == authors == 28_612_100


def test_logits_and_task_loss_match():
    theirs, ours, spec, asl = pair()
    theirs.eval(), ours.eval()
    seen = logits_hook(theirs)
    for seed in (0, 1):
        batch = full_batch(spec, seed)
        seen.clear()
        with torch.no_grad():
            probs, _ = theirs(*their_inputs(batch))
            logits = ours(batch).scores
        d_logits = (logits - seen["logits"]).abs().max()
        assert d_logits <= 1e-5
        assert (torch.sigmoid(logits) - probs).abs().max() <= 1e-6
        # Their loss: ASL on probabilities, summed, / batch / labels × 1000; ours: summed over labels, batch mean.
        mine = asymmetric_loss(logits, batch.labels) * 1000 / LABELS
        d_loss = (mine - asl(probs, batch.labels)).abs()
        assert d_loss <= 1e-5 * mine.abs().clamp_min(1)
        print(f"\nRobMMR max |Δ| logits {float(d_logits):.1e}, task loss {float(d_loss):.1e} (of {float(mine):.1f})")


def test_gradients_of_one_training_step_match():
    """The clean-input loss's gradient, dropout off, on every parameter it reaches."""
    theirs, ours, spec, asl = pair(dropout=0.0)
    no_dropout(theirs)
    theirs.train(), ours.train()
    batch = full_batch(spec, 3)
    probs, _ = theirs(*their_inputs(batch))
    asl(probs, batch.labels).backward()
    out = ours(batch)
    (asymmetric_loss(out.scores, batch.labels) * 1000 / LABELS).backward()
    grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p)) for k, p in theirs.named_parameters()}
    want = import_weights("robmmr", grads, ours)
    worst = absolute = 0.0
    for name, p in ours.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        diff = float((g - want[name]).abs().max())
        worst = max(worst, diff / float(want[name].abs().max().clamp_min(1.0)))
        absolute = max(absolute, diff)
    print(f"\nRobMMR gradients: max |Δ| {absolute:.1e} (relative to each tensor's largest, {worst:.1e})")
    assert worst <= 1e-5


def test_departures_measured():
    """Where we depart on purpose, the effect on the same weights and batch (printed with -s).

    * masked pass: ours zeroes exactly the k highest-scored steps (hard mask, soft gradient); theirs
      multiplies by 1 − A with A their soft plan's column of anchor 0 (the k lowest-scored steps);
    * APP: ours is KL between Bernoulli outputs per label under one global gradient norm; theirs is
      ``F.kl_div`` of a softmax over the six sigmoid outputs, each tensor normalised on its own.
    """
    theirs, ours, spec, asl = pair(dropout=0.0)
    no_dropout(theirs)
    theirs.train(), ours.train()
    batch = full_batch(spec, 5)
    with torch.no_grad():
        probs, masked_probs = theirs(*their_inputs(batch))
        out = ours(batch)
    theirs_masked = asl(masked_probs, batch.labels)
    ours_masked = asymmetric_loss(out.aux["perturbed_logits"], batch.labels) * 1000 / LABELS
    print(f"\nRobMMR masked-pass loss: ours {float(ours_masked):.4f}, theirs {float(theirs_masked):.4f}")
    assert torch.isfinite(ours_masked) and torch.isfinite(theirs_masked)
    # Ours masks exactly min(k, n) = 24 steps per sample and modality; theirs only softly.
    for m in ours.modalities:
        assert out.aux[f"mask_{m}"].sum(1).tolist() == [24] * len(batch)
