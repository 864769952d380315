"""MISA against the authors' MISA (declare-lab/MISA), driven from where it lies.

Setting: the paper's task, MOSEI sentiment (regression, their MSE criterion), at their run script's
settings (``src/config.py``: hidden 128, dropout 0.5, ReLU, LSTM cells, CMD similarity, weights
0.3 / 1.0 / 1.0). Their default text encoder is BERT; ours reads GloVe features, so the computation
is compared in the setting both support, their ``use_bert=False`` branch with the word-embedding
lookup replaced by the identity (our input is the GloVe vectors it would look up). The BERT build is
only counted. Ours is switched to their behaviour where we depart on purpose: ``diff_norm: detached``
and ``recon_target: attached`` (their gradient flow); the token order (t, v, a) vs our (t, a, v) is
taken up by the importer (it permutes the fusion head's input columns). Their loss terms are their
``Solver``'s own methods. Adapter: ``gensim`` (imported by their solver for data preparation only)
is stood in for by an empty module while their code is imported; their BERT loaders are replaced
by a BERT built from a default config (no download).
"""

from __future__ import annotations

import sys
import types
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from mmerbench.data.batching import Batch
from mmerbench.data.registry import get_entry
from mmerbench.importers import import_weights
from mmerbench.registry import get_method

from parity.conftest import authors_repo, on_path

DATASET = "mosei-senti"
AUTHORS_SWITCHES = dict(diff_norm="detached", recon_target="attached", packing="packed")
NAMES = ("models", "utils", "solver", "config", "data_loader", "create_dataset")


@contextmanager
def _their_code():
    saved = sys.modules.get("gensim")
    sys.modules["gensim"] = types.ModuleType("gensim")
    try:
        repo = authors_repo("MISA") / "src"
        pytest.importorskip("transformers")  # their models.py imports it at import time
        with on_path(repo, *NAMES):
            import models
            import solver
            import utils

            yield models, solver, utils
    finally:
        if saved is None:
            sys.modules.pop("gensim", None)
        else:
            sys.modules["gensim"] = saved


def _config(dropout: float = 0.5, use_bert: bool = False, vocab: int = 10):
    spec = get_entry(DATASET).spec
    return types.SimpleNamespace(
        embedding_size=spec.modalities["text"].dim, visual_size=spec.modalities["vision"].dim,
        acoustic_size=spec.modalities["audio"].dim, num_classes=1, dropout=dropout, activation=nn.ReLU,
        rnncell="lstm", use_bert=use_bert, word2id=dict.fromkeys(range(vocab)), hidden_size=128,
        use_cmd_sim=True, reverse_grad_weight=1.0, diff_weight=0.3, sim_weight=1.0, sp_weight=0.0,
        recon_weight=1.0, data="mosei")


def _authors(dropout: bool):
    with _their_code() as (models, solver, utils):
        torch.manual_seed(0)
        cfg = _config(0.5 if dropout else 0.0)
        model = models.MISA(cfg)
        if not dropout:  # torch's TransformerEncoderLayer keeps its own dropout (0.1)
            for mod in model.modules():
                if isinstance(mod, nn.Dropout):
                    mod.p = 0.0
                if isinstance(mod, nn.MultiheadAttention):
                    mod.dropout = 0.0
        losses = types.SimpleNamespace(model=model, train_config=cfg, loss_diff=utils.DiffLoss(),
                                       loss_recon=utils.MSE(), loss_cmd=utils.CMD(),
                                       domain_loss_criterion=nn.CrossEntropyLoss())
        return model, losses, solver.Solver


def _ours(dropout: bool):
    from methods.helpers import params_for

    spec = get_entry(DATASET).spec
    p = params_for("misa", DATASET, overrides=[f"{k}={v}" for k, v in AUTHORS_SWITCHES.items()])
    if not dropout:
        p.update(dropout=0.0, fusion_dropout=0.0)
    return get_method("misa")(spec, **p), spec


def _pair(dropout: bool):
    theirs, losses, solver = _authors(dropout)
    theirs.embed = nn.Identity()  # our text input is the GloVe vectors their lookup returns
    ours, spec = _ours(dropout)
    state = theirs.state_dict()
    state["embed.weight"] = torch.zeros(10, 300)  # the table they save (replaced above), never read
    ours.load_state_dict(import_weights("misa", state, ours))
    return theirs, losses, solver, ours, spec


def _batch(spec, seed: int, batch_size: int = 4) -> Batch:
    """Random features, aligned (one length per sample, as their loader), longest first (their packing)."""
    g = torch.Generator().manual_seed(seed)
    length = spec.modalities["text"].length
    lengths = torch.tensor([length - 9 * i for i in range(batch_size)])
    mask = torch.arange(length)[None, :] < lengths[:, None]
    inputs = {m: torch.randn(batch_size, length, ms.dim, generator=g) * mask[..., None]
              for m, ms in spec.modalities.items()}
    masks = {m: mask for m in spec.modalities}
    labels = torch.empty(batch_size).uniform_(-3, 3, generator=g)
    return Batch(inputs=inputs, masks=masks, labels=labels, index=torch.arange(batch_size))


def _their_forward(theirs, batch):
    x = {m: batch.inputs[m].transpose(0, 1) for m in batch.inputs}  # their layout: [L, B, D]
    lengths = batch.masks["text"].sum(1)
    return theirs(x["text"], x["vision"], x["audio"], lengths, None, None, None)


def _their_losses(losses, solver, y_tilde, batch):
    cfg = losses.train_config
    parts = {"task": nn.MSELoss()(y_tilde, batch.labels[:, None]),
             "difference": solver.get_diff_loss(losses), "cmd": solver.get_cmd_loss(losses),
             "reconstruction": solver.get_recon_loss(losses)}
    total = (parts["task"] + cfg.diff_weight * parts["difference"] + cfg.sim_weight * parts["cmd"]
             + cfg.recon_weight * parts["reconstruction"])
    return total, parts


def test_logits_and_every_loss_term_match():
    theirs, losses, solver, ours, spec = _pair(dropout=True)
    theirs.eval(), ours.eval()
    for seed in (0, 1):
        batch = _batch(spec, seed)
        with torch.no_grad():
            a = _their_forward(theirs, batch)
            _, parts = _their_losses(losses, solver, a, batch)  # their Solver reads the forward's attributes
            out = ours(batch)
            mine = ours.loss(batch, out)  # eval: every part reported (the total is the task loss, as theirs)
        gap = float((out.scores - a).abs().max())
        assert set(mine.parts) == set(parts)
        part_gap = max(abs(float(mine.parts[k]) - float(parts[k])) for k in parts)
        print(f"MISA seed {seed}: max |Δ logits| = {gap:.3g}, max |Δ loss term| = {part_gap:.3g}")
        assert gap <= 1e-5 and part_gap <= 1e-5


def test_one_training_step_has_the_same_loss_and_gradients():
    theirs, losses, solver, ours, spec = _pair(dropout=False)
    theirs.train(), ours.train()
    batch = _batch(spec, 2)
    total, _ = _their_losses(losses, solver, _their_forward(theirs, batch), batch)
    mine = ours.loss(batch, ours(batch)).total
    total.backward()
    mine.backward()
    grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p)) for k, p in theirs.named_parameters()}
    grads["embed.weight"] = torch.zeros(10, 300)
    mapped = import_weights("misa", grads, ours)
    worst = max(float((p.grad - mapped[k]).abs().max()) for k, p in ours.named_parameters())
    print(f"MISA: training |Δ total loss| = {abs(float(mine) - float(total)):.3g}, max |Δ grad| = {worst:.3g}")
    assert abs(float(mine) - float(total)) <= 1e-5
    assert worst <= 1e-5
    assert theirs.sp_discriminator[0].weight.grad is None  # built, never in their loss


def test_our_defaults_change_only_the_gradients():
    """diff_norm / recon_target change the gradient flow, not the values: measured here."""
    theirs, losses, solver, ours, spec = _pair(dropout=False)
    p = {**ours.hparams, "diff_norm": "attached", "recon_target": "detached"}
    mine = get_method("misa")(spec, **p)
    mine.load_state_dict(ours.state_dict())
    batch = _batch(spec, 3)
    a, b = ours.loss(batch, ours(batch)), mine.loss(batch, mine(batch))
    assert abs(float(a.total) - float(b.total)) <= 1e-6
    a.total.backward(), b.total.backward()
    gap = max(float((p1.grad - p2.grad).abs().max()) for p1, p2 in zip(ours.parameters(), mine.parameters()))
    print(f"MISA departure diff_norm=attached + recon_target=detached: max |Δ grad| = {gap:.3g}")
    assert gap > 1e-5


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameters_reconcile_to_the_parameter():
    vocab = 10  # their embedding table is |V| x 300 (their MOSEI vocabulary); itemised, not counted below
    ours, spec = _ours(dropout=True)
    theirs, _, _ = _authors(dropout=True)
    sp = _count(theirs.sp_discriminator)
    embed = _count(theirs.embed)
    assert sp == 128 * 4 + 4 and embed == vocab * 300
    assert _count(ours) == _count(theirs) - embed - sp  # GloVe build: no other difference, no addition

    # Their default (BERT) build, constructed only: BERT-base from its default config (no download).
    from transformers import BertConfig, BertModel

    with _their_code() as (models, _, _):
        models.BertConfig = types.SimpleNamespace(from_pretrained=lambda *a, **k: BertConfig(**k))
        models.BertModel = types.SimpleNamespace(from_pretrained=lambda *a, config=None, **k: BertModel(config))
        bert_build = models.MISA(_config(use_bert=True))
    bert = _count(bert_build.bertmodel)
    text_lstm = _count(ours.encoder["text"])
    project_glove, project_bert = _count(ours.project["text"][0]), 768 * 128 + 128
    tnorm = _count(bert_build.tlayer_norm)  # built in the BERT build too, never called there
    print(f"MISA: ours {_count(ours):,}; authors' GloVe build {_count(theirs):,} (|V| = {vocab}); "
          f"authors' BERT build {_count(bert_build):,} (BERT {bert:,})")
    assert _count(bert_build) == (_count(ours) - text_lstm - project_glove + bert + project_bert + sp + tnorm)
