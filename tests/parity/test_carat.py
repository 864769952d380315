"""CARAT against the authors' model (chengzju/CARAT), built at their train.sh settings (aligned MOSEI).

Adapter fixes: empty ``boto3``/``botocore`` modules for their ``file_utils``
(S3 downloads, never used for local configs), the ``numpy`` import their
``models.py`` uses as ``np`` without importing it, and (during their training
forward only) a ``view`` that needs ``reshape`` under torch 2.
"""

from __future__ import annotations

import sys
import types

import numpy
import pytest
import torch

from mmerbench.importers import import_weights
from mmerbench.runner import parameter_count

from methods.helpers import build, tiny_batch
from parity.conftest import authors_repo, on_path

LABELS = 6

D = 256
POOLER = D * D + D  # BERT pooler: Linear(d, d), computed but its output reaches neither scores nor loss
TRAIN_SH = ["--do_train", "--epochs=20", "--lr", "5e-5", "--gpu_id", "1", "--seed", "1",
            "--visual_num_hidden_layers", "4", "--text_num_hidden_layers", "6", "--audio_num_hidden_layers", "4",
            "--binary_threshold", "0.25", "--recon_mse_weight", "1.0", "--aug_mse_weight", "1.0",
            "--beta_mse_weight", "0.0", "--lsr_clf_weight", "0.01", "--recon_clf_weight", "0.0",
            "--aug_clf_weight", "0.1", "--shuffle_aug_clf_weight", "0.1", "--total_aug_clf_weight", "1.0",
            "--cl_weight", "1.0", "--aligned"]
ALIGNED_LENGTH = 60  # aligned MOSEI: every modality has 60 steps, so position rows 60.. are never read


def authors_model(monkeypatch):
    repo = authors_repo("CARAT")
    pytest.importorskip("requests")  # their file_utils needs it at import time
    for name in ("boto3", "botocore", "botocore.exceptions"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["botocore.exceptions"].ClientError = Exception
    monkeypatch.setattr(sys, "argv", ["main.py", *TRAIN_SH])
    with on_path(repo, "main", "models", "utils", "util", "dataloaders"):
        import main
        import models.models as authors
        authors.np = numpy
        args = main.get_args()
        torch.manual_seed(1)
        return authors.CARAT.from_pretrained(args.text_model, args.visual_model, args.audio_model, task_config=args)


def test_parameters_reconcile(monkeypatch):
    model = authors_model(monkeypatch)
    named = dict(model.named_parameters())
    authors = sum(p.numel() for p in named.values())
    poolers = sum(p.numel() for k, p in named.items() if ".pooler." in k)
    assert poolers == 3 * POOLER  # text, vision, audio encoders
    unread_rows = 0
    for m in ("visual", "audio"):
        table = named[f"{m}.embeddings.position_embeddings.weight"]
        assert tuple(table.shape) == (500, D)
        unread_rows += (table.shape[0] - ALIGNED_LENGTH) * D
    assert tuple(named["text.embeddings.position_embeddings.weight"].shape) == (ALIGNED_LENGTH, D)
    assert authors == 7_359_736
    assert parameter_count("carat", "mosei-aligned") == authors - poolers - unread_rows == 6_937_080


def full_batch(spec, seed: int, batch_size: int = 3):
    batch = tiny_batch(spec, batch_size=batch_size, seed=seed)
    g = torch.Generator().manual_seed(seed + 7)
    for m in batch.masks:  # their aligned inputs: full length
        batch.masks[m][:] = True
        batch.inputs[m] = torch.randn(batch.inputs[m].shape, generator=g)
    return batch


def view_or_reshape(monkeypatch):
    """Torch-2 fix for their shuffled aggregation: ``view`` of an advanced-indexing result whose strides
    follow the permuted index tensors; a ``reshape`` gives the same values."""
    view = torch.Tensor.view

    def patched(self, *shape):
        try:
            return view(self, *shape)
        except RuntimeError:
            return self.reshape(*shape)

    monkeypatch.setattr(torch.Tensor, "view", patched)


def their_call(model, batch, training: bool):
    ones = {m: torch.ones(batch.masks[m].shape, dtype=torch.long) for m in batch.masks}
    return model(batch.inputs["text"], ones["text"], batch.inputs["vision"], ones["vision"],
                 batch.inputs["audio"], ones["audio"], torch.arange(LABELS), torch.ones(LABELS, dtype=torch.long),
                 groundTruth_labels=batch.labels, training=training)


def pair(monkeypatch, overrides=()):
    theirs = authors_model(monkeypatch)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # trained-like prototypes: unit vectors, so the nearer one is a real choice
        for name, buf in theirs.named_buffers():
            if name.endswith("_protos"):
                buf.copy_(torch.nn.functional.normalize(torch.randn(buf.shape, generator=g), dim=-1))
    ours, spec = build("carat", "mosei-aligned", overrides=list(overrides))
    ours.load_state_dict(import_weights("carat", theirs.state_dict(), ours))
    for m in ours.modules():  # their LayerNorms: BERT's eps 1e-12
        if isinstance(m, torch.nn.LayerNorm):
            m.eps = 1e-12
    return theirs, ours, spec


def test_scores_match(monkeypatch):
    theirs, ours, spec = pair(monkeypatch)
    theirs.eval(), ours.eval()
    for seed in (0, 1):
        batch = full_batch(spec, seed)
        with torch.no_grad():
            probs = their_call(theirs, batch, training=False)[-1]
            out = ours(batch)
        d_prob = (out.aux["prob"] - probs).abs().max()
        d_logit = (out.scores - torch.logit(probs.clamp(1e-6, 1 - 1e-6))).abs().max()
        print(f"\nCARAT max |Δ| scores (probability) {float(d_prob):.1e}, logit {float(d_logit):.1e}")
        assert d_prob <= 1e-6 and d_logit <= 1e-5


def test_loss_and_gradients_of_one_training_step_match(monkeypatch):
    """Training mode, dropout off, a filled queue (unit latents with class codes) on both sides.

    Compared exactly: every term but two, and the gradient of their sum. Left out on both sides (weight 0):
    the shuffled aggregation (its shuffles come from different random generators) and the contrastive
    term, a departure: their anchors include the 8,192 queue entries (the anchor count is overwritten by
    the size of batch + queue), ours are the batch's latents only. The contrastive term is checked against
    their own loss function with the batch as anchors, and the departure's size is printed."""
    theirs, ours, spec = pair(monkeypatch, overrides=["dropout=0.0", "shuffle_aug_clf_weight=0.0", "cl_weight=0.0"])
    theirs.task_config.shuffle_aug_clf_weight = 0.0
    theirs.task_config.cl_weight = 0.0
    for m in theirs.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        theirs.queue.copy_(torch.nn.functional.normalize(torch.randn(theirs.queue.shape, generator=g), dim=-1))
        theirs.queue_label.copy_(torch.randint(0, 6 * LABELS, theirs.queue_label.shape, generator=g).float())
        queue, queue_label = theirs.queue.clone(), theirs.queue_label.clone()
        ours.load_state_dict(import_weights("carat", theirs.state_dict(), ours))
    theirs.train(), ours.train()
    batch = full_batch(spec, 3)
    out = ours(batch)  # before theirs: their forward enqueues and moves the prototypes
    parts = ours.loss(batch, out)
    with monkeypatch.context() as patch:
        view_or_reshape(patch)
        total = their_call(theirs, batch, training=True)[0]
    d_total = (parts.total - total).abs()
    print(f"\nCARAT max |Δ| loss (all terms but contrastive and shuffled) {float(d_total):.1e} (of {float(total):.4f})")
    assert d_total <= 1e-6 * max(1.0, float(total))

    # The contrastive term: their loss function, their class codes, their feature order, the batch as anchors.
    with torch.no_grad():
        z = [out.aux[k] for k in ("z", "z_aug", "z_beta")]  # [B, M, C, p], M in our order
        order = [ours.modalities.index(m) for m in ("text", "vision", "audio")]
        feats = torch.stack([zz[:, i] for zz in z for i in order], dim=1)
        feats = torch.nn.functional.normalize(feats.reshape(-1, feats.shape[-1]), dim=-1)
        labels = torch.cat([theirs.get_cl_labels(batch.labels, times=3).reshape(-1, 1), queue_label])
        n = feats.shape[0]
        mask, neg_mask = theirs.get_cl_mask(labels, n)
        batch_anchors = theirs.criterion_cl(torch.cat([feats, queue]), mask, neg_mask, n)
        all_anchors = theirs.criterion_cl(torch.cat([feats, queue]), *theirs.get_cl_mask(labels, labels.shape[0]),
                                          labels.shape[0])
        ours.weights["contrastive"] = 1.0  # the term itself, out of the compared sum (loss() does not enqueue)
        ours_cl = ours.loss(batch, out).parts["contrastive"]
    print(f"CARAT contrastive: ours {float(ours_cl):.5f}, theirs with batch anchors {float(batch_anchors):.5f}, "
          f"theirs as run (queue entries as anchors too) {float(all_anchors):.5f}")
    assert (ours_cl - batch_anchors).abs() <= 1e-5 * max(1.0, float(batch_anchors))

    total.backward()
    parts.total.backward()
    grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p)) for k, p in theirs.named_parameters()}
    grads.update(dict(theirs.named_buffers()))
    want = import_weights("carat", grads, ours)
    worst = absolute = 0.0
    for name, p in ours.named_parameters():
        got = p.grad if p.grad is not None else torch.zeros_like(p)
        diff = float((got - want[name]).abs().max())
        worst = max(worst, diff / float(want[name].abs().max().clamp_min(1.0)))
        absolute = max(absolute, diff)
    print(f"CARAT gradients: max |Δ| {absolute:.1e} (relative to each tensor's largest, {worst:.1e})")
    assert worst <= 1e-5
