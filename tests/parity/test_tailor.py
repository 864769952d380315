"""TAILOR against the authors' model (kniter1/TAILOR), built at their train.sh settings (aligned MOSEI).

Only the parameter reconciliation is here so far: construction, no forward pass.
Their ``file_utils`` imports ``boto3``/``botocore`` (S3 downloads never used for
local configs): the adapter stands in empty modules for them at import time.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from mmerbench.importers import import_weights
from mmerbench.runner import parameter_count

from methods.helpers import build, tiny_batch
from parity.conftest import authors_repo, on_path

LABELS = 6

D = 256
POOLER = D * D + D  # BERT pooler: Linear(d, d), computed but its output reaches neither scores nor loss
TRAIN_SH = ["--do_train", "--aligned", "--output_dir", "unused", "--visual_num_hidden_layers", "4",
            "--bert_num_hidden_layers", "6", "--audio_num_hidden_layers", "4"]


def authors_model(monkeypatch):
    repo = authors_repo("TAILOR")
    pytest.importorskip("requests")  # their file_utils needs it at import time
    for name in ("boto3", "botocore", "botocore.exceptions"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["botocore.exceptions"].ClientError = Exception
    monkeypatch.setattr(sys, "argv", ["train.py", *TRAIN_SH])
    with on_path(repo, "src", "train", "util"):
        import train
        from src.models.models import TAILOR
        args = train.get_args()
        torch.manual_seed(1)
        return TAILOR.from_pretrained(args.bert_model, args.visual_model, args.audio_model, args.cross_model,
                                      args.decoder_model, task_config=args)


def test_parameters_reconcile(monkeypatch):
    model = authors_model(monkeypatch)
    named = dict(model.named_parameters())
    authors = sum(p.numel() for p in named.values())
    poolers = sum(p.numel() for k, p in named.items() if ".pooler." in k)
    shared_head = sum(p.numel() for k, p in named.items() if k.startswith("cross_classifier."))
    per_label_head = 6 * (D + 1)  # ours: Eq. 15's separate weights per label
    assert poolers == 6 * POOLER  # text, vision, audio encoders and the three CMEs
    assert shared_head == D + 1
    assert authors == 10_798_652
    assert parameter_count("tailor", "mosei-aligned") == authors - poolers - shared_head + per_label_head \
        == 10_405_185


def full_batch(spec, seed: int, batch_size: int = 3):
    batch = tiny_batch(spec, batch_size=batch_size, seed=seed)
    g = torch.Generator().manual_seed(seed + 7)
    for m in batch.masks:  # their aligned inputs carry no padding here: full length
        batch.masks[m][:] = True
        batch.inputs[m] = torch.randn(batch.inputs[m].shape, generator=g)
    return batch


def their_call(model, batch, training: bool):
    ones = {m: torch.ones(batch.masks[m].shape, dtype=torch.long) for m in batch.masks}
    labels = torch.arange(LABELS)
    return model(batch.inputs["text"], ones["text"], batch.inputs["vision"], ones["vision"],
                 batch.inputs["audio"], ones["audio"], labels, torch.ones(LABELS, dtype=torch.long),
                 groundTruth_labels=batch.labels, training=training)


def logits_hook(model):
    seen = {}

    def hook(module, args, out):
        seen["logits"] = out.view(-1, LABELS)  # returns None: their output is kept

    model.cross_classifier.dense.register_forward_hook(hook)
    return seen


def ours_like_theirs(theirs, eps: float = 1e-12, overrides=()):
    """Our model at their settings with their weights; their LayerNorms use ε = 1e-12 (BERT's), ours 1e-5."""
    ours, spec = build("tailor", "mosei-aligned", overrides=["cme_argument_order=code", *overrides])
    ours.load_state_dict(import_weights("tailor", theirs.state_dict(), ours))
    for m in ours.modules():
        if isinstance(m, nn.LayerNorm):
            m.eps = eps
    return ours, spec


def test_logits_match(monkeypatch):
    theirs = authors_model(monkeypatch)
    ours, spec = ours_like_theirs(theirs)
    default_eps, _ = ours_like_theirs(theirs, eps=1e-5)
    for model in (theirs, ours, default_eps):
        model.eval()
    seen = logits_hook(theirs)
    for seed in (0, 1):
        batch = full_batch(spec, seed)
        with torch.no_grad():
            _, _, probs = their_call(theirs, batch, training=False)
            logits = ours(batch).scores
            eps_effect = (default_eps(batch).scores - logits).abs().max()
        delta = (logits - seen["logits"]).abs().max()
        print(f"\nTAILOR max |Δ| logits {float(delta):.1e} (LayerNorm ε 1e-5 instead of 1e-12: {float(eps_effect):.1e})")
        assert delta <= 1e-5
        assert (torch.sigmoid(logits) - probs).abs().max() <= 1e-6


def test_loss_and_gradients_of_one_training_step_match(monkeypatch):
    """Training mode, dropout off, our model switched to the code's loss (the common classifier on the first
    step of C, the private–private orthogonality pairs): the task loss, the whole Eq. 17 objective, and the
    gradient of that objective on every parameter."""
    theirs = authors_model(monkeypatch)
    for m in theirs.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    ours, spec = ours_like_theirs(theirs, overrides=[
        "common_classifier_input=summed_first_step", "orthogonality_private_pairs=true", "dropout=0.0",
        "common_dropout=0.0", "private_dropout=0.0", "discriminator_dropout=0.0"])
    theirs.train(), ours.train()
    batch = full_batch(spec, 3)
    total, _, _, probs = their_call(theirs, batch, training=True)
    out = ours(batch)
    parts = ours.loss(batch, out)
    d_task = (parts.parts["task"] - nn.functional.binary_cross_entropy(probs, batch.labels)).abs()
    d_total = (parts.total - total).abs()
    print(f"\nTAILOR max |Δ| task loss {float(d_task):.1e}, Eq. 17 total {float(d_total):.1e} (of {float(total):.3f})")
    assert d_task <= 1e-6 and d_total <= 1e-6 * max(1.0, float(total))  # float32 sums of ~10³ terms
    total.backward()
    parts.total.backward()
    grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p)) for k, p in theirs.named_parameters()}
    want = import_weights("tailor", grads, ours)
    # Their shared read-out's gradient is the sum over labels of our per-label ones.
    want["decoder.head_weight"] = grads["cross_classifier.dense.weight"]
    want["decoder.head_bias"] = grads["cross_classifier.dense.bias"]
    got = {k: (p.grad if p.grad is not None else torch.zeros_like(p)) for k, p in ours.named_parameters()}
    got["decoder.head_weight"] = got["decoder.head_weight"].sum(0, keepdim=True)
    got["decoder.head_bias"] = got["decoder.head_bias"].sum(0, keepdim=True)
    worst = absolute = 0.0
    for name, g in got.items():
        diff = float((g - want[name]).abs().max())
        worst = max(worst, diff / float(want[name].abs().max().clamp_min(1.0)))
        absolute = max(absolute, diff)
    print(f"TAILOR gradients: max |Δ| {absolute:.1e} (relative to each tensor's largest, {worst:.1e})")
    assert worst <= 1e-5
