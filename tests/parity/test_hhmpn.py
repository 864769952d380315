"""HHMPN against the authors' LAMP (MANLP-suda/HHMPN, ``-encoder graph -decoder graph``, their begin.sh).

Their MulT encoder hard-codes d 512 and 6 layers, which is ~400 M parameters: the
numbers are compared at their code's structure with 2 layers per MulT stack
(patched into their ``multran.TransformerEncoder`` at import), and the full
build is counted on the meta device only.

Torch-2/CPU fixes applied here, never in their files: ``Tensor.cuda`` is the
identity; the chunks ``in_proj_qkv``/``in_proj_kv`` return are cloned before
their in-place ``q *= scaling``; ``make_positions`` returns a
contiguous tensor (their ``view`` needs one).
"""

from __future__ import annotations

import argparse
import types

import numpy as np
import pytest
import torch

from mmerbench.data.batching import Batch
from mmerbench.data.registry import get_entry
from mmerbench.importers import import_weights
from mmerbench.methods.hhmpn import HHMPN
from mmerbench.runner import parameter_count

from parity.conftest import authors_repo, on_path

LAYERS = 2  # per MulT stack in the reduced build (theirs: 6)
BEGIN_SH = dict(d_model=512, d_word_vec=512, d_inner_hid=512, n_layers_enc=3, n_layers_dec=3, n_head=8, n_head2=8,
                d_k=64, d_v=64, dropout=0.2, dec_dropout=0.2, dec_dropout2=False, encoder="graph", decoder="graph",
                enc_transform="", onehot=False, no_enc_pos_embedding=False, no_dec_self_att=False, loss="ce",
                attn_type="softmax", label_mask="prior", matching_mlp=False, graph_conv=False, int_preds=False,
                proj_share_weight=True, embs_share_weight=False)  # config_args sets proj_share_weight for graph
OURS_AS_THEIRS = dict(fusion="angle", angle_softmax="labels", label_attention=False)


@pytest.fixture(scope="module")
def lamp():
    """Their modules, imported once with the CPU/torch-2 fixes; the MulT depth set by ``lamp.layers``."""
    repo = authors_repo("HHMPN") / "HHMPN"
    pytest.importorskip("six")  # their utils/evals.py needs it at import time
    mp = pytest.MonkeyPatch()
    mp.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    with on_path(repo, "lamp", "utils", "train", "config_args"):
        import lamp.Models
        import lamp.multihead_attention as mha
        import lamp.multran as multran
        import lamp.position_embedding as pe
        import train
        import utils.utils as their_utils

        qkv, kv = mha.MultiheadAttention.in_proj_qkv, mha.MultiheadAttention.in_proj_kv
        mp.setattr(mha.MultiheadAttention, "in_proj_qkv", lambda self, x: tuple(t.clone() for t in qkv(self, x)))
        mp.setattr(mha.MultiheadAttention, "in_proj_kv", lambda self, x: tuple(t.clone() for t in kv(self, x)))
        positions = pe.make_positions
        mp.setattr(pe, "make_positions", lambda *a: positions(*a).contiguous())
        full = multran.TransformerEncoder

        ns = types.SimpleNamespace(Models=lamp.Models, train=train, utils=their_utils, layers=LAYERS)
        mp.setattr(multran, "TransformerEncoder",
                   lambda *a, **kw: full(*a, **({**kw, "layers": ns.layers} if ns.layers else kw)))
        yield ns
    mp.undo()


def build_theirs(lamp, graph: torch.Tensor):
    return lamp.Models.LAMP(6, 60, 60, 60, 6, 300, 35, 74, label_adj_matrix=graph.double(), **BEGIN_SH)


def spec():
    return get_entry("mosei-aligned").spec


def batch(seed: int, pad: int = 0, b: int = 3, length: int = 8) -> tuple[Batch, tuple, torch.Tensor]:
    """Ours and their inputs for one random batch; ``pad`` leading steps of the last sample are zero rows."""
    g = torch.Generator().manual_seed(seed)
    sp = spec()
    inputs = {m: torch.randn(b, length, s.dim, generator=g) for m, s in sp.modalities.items()}
    masks = {m: torch.ones(b, length, dtype=torch.bool) for m in sp.modalities}
    for m in sp.modalities:
        if pad:
            inputs[m][-1, :pad] = 0.0
            masks[m][-1, :pad] = False
    labels = (torch.rand(b, 6, generator=g) < 0.4).float()
    labels[0, :2] = torch.tensor([1.0, 0.0])
    ours = Batch(inputs=inputs, masks=masks, labels=labels, index=torch.arange(b))
    pos = torch.arange(1, length + 1).repeat(b, 1)
    src = (inputs["text"], pos, inputs["vision"], pos, inputs["audio"], pos)
    # Their targets: BOS, label ids + 4 (after UNK, BOS, EOS, PAD), EOS, padding.
    tgt = torch.zeros(b, 9, dtype=torch.long)
    for i, row in enumerate(labels):
        ids = [2] + [int(j) + 4 for j in torch.nonzero(row).flatten()] + [3]
        tgt[i, :len(ids)] = torch.tensor(ids)
    return ours, src, tgt


@pytest.fixture(scope="module")
def pair(lamp):
    torch.manual_seed(0)
    graph = torch.eye(6)
    theirs = build_theirs(lamp, graph)
    ours = HHMPN(spec(), enc_layers=LAYERS, mem_layers=LAYERS, dec_layers=3, **OURS_AS_THEIRS)
    ours.load_state_dict(import_weights("hhmpn", theirs.state_dict(), ours))
    return theirs.eval(), ours.eval()


def their_loss(lamp, theirs, src, tgt):
    opt = argparse.Namespace(binary_relevance=True, tgt_vocab_size=6, attns_loss=False, int_preds=False)
    loss, gold, _ = lamp.train.train_batch(theirs, None, opt, 1, (src, None, tgt))
    return loss, gold


def test_logits_and_loss_match_in_eval_mode(lamp, pair):
    theirs, ours = pair
    for seed in (1, 2):
        b, src, tgt = batch(seed)
        with torch.no_grad():
            want = theirs(src, None, None, None)[0]
            got = ours(b).scores
            print(f"hhmpn logits: max|Δ| = {(got - want).abs().max().item():.2e}")
            assert (got - want).abs().max().item() <= 1e-5
            loss, gold = their_loss(lamp, theirs, src, tgt)
            torch.testing.assert_close(gold, b.labels)  # the same targets
            ours_loss = ours.loss(b, ours(b))
            assert set(ours_loss.parts) == {"task"}
            print(f"hhmpn BCE: |Δ| = {abs(ours_loss.total.item() - loss.item()):.2e}")
            assert abs(ours_loss.total.item() - loss.item()) <= 1e-6


def _flat(model) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}


def test_gradients_of_one_training_step_match(lamp, pair):
    """Dropout off (eval mode). Their one LayerNorm per MulT attention normalises queries and keys: its
    gradient is the sum of our two. The zero biases ours adds get gradients theirs has no place for."""
    theirs, ours = pair
    b, src, tgt = batch(3)
    theirs.zero_grad(), ours.zero_grad()
    their_loss(lamp, theirs, src, tgt)[0].backward()
    ours.loss(b, ours(b)).total.backward()
    want = import_weights("hhmpn", _flat(theirs), ours)
    got = _flat(ours)
    worst = 0.0
    for key, g in got.items():
        if key.endswith("norm_kv.weight") or key.endswith("norm_kv.bias"):
            continue
        if ".attn." in key and key.startswith("decoders.") and key.endswith(".bias") or key == "readout_bias":
            continue  # our additions (zero at import)
        if ".cross." in key and ".norm_attn." in key:
            g = g + got[key.replace("norm_attn", "norm_kv")]
        scale = want[key].abs().max().item()
        # The key biases' true gradient is zero (a shift of every score of a query): rounding noise only.
        err = (g - want[key]).abs().max().item() / max(scale, 1e-3)
        if err > worst:
            worst, where = err, key
    print(f"hhmpn gradients: worst max|Δ| / max|g| = {worst:.2e} ({where})")
    assert worst <= 1e-4, (worst, where)  # relative to each tensor's largest entry


def test_padding_is_the_recorded_departure(lamp, pair):
    """Their MulT encoder attends to padded steps (no key mask); ours masks them. Real steps only: equal
    (above); with padding the padded sample differs, the others do not."""
    theirs, ours = pair
    b, src, _ = batch(4, pad=3)
    with torch.no_grad():
        diff = (ours(b).scores - theirs(src, None, None, None)[0]).abs()
    print(f"hhmpn padding departure: max|Δ logit| = {diff[-1].max().item():.3g} on the padded sample")
    assert diff[:-1].max().item() <= 1e-5
    assert diff[-1].max().item() > 1e-4


def test_parameters_reconcile_at_the_begin_sh_settings(lamp):
    """ours = authors' − modules never called − their angle fusion + our additions (the docstring's list)."""
    lamp.layers = None  # their full 6-layer MulT
    graph = torch.eye(6)  # their decoder reads it with .item(): not on the meta device
    try:
        with torch.device("meta"):
            theirs = build_theirs(lamp, graph)
    finally:
        lamp.layers = LAYERS
    count = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    authors = count(theirs)
    assert authors == 405_289_673
    enc, dec = theirs.encoder, theirs.decoder
    never_called = (sum(count(s) for s in (enc.layer_text_stack, enc.layer_visual_stack, enc.layer_audio_stack,
                                           enc.align_text, enc.align_visual, enc.align_audio))
                    + sum(count(getattr(enc.mult, n)) for n in ("proj1", "proj2", "out_layer"))
                    + sum(count(getattr(dec, n)) for n in ("com_nodeattn", "lyr_nodeattn", "dense", "proj1", "proj2")))
    assert never_called == 14_394_368 + 20_453_888 + 35_976 + 2_098_688
    angle = count(dec.multi_angle_fus)
    assert angle == 1_067_073
    d = 512
    label_attention = 9 * (4 * d * d + 4 * d + 2 * d)
    decoder_attention_biases, key_norms, readout_bias = 9 * 4 * d, 36 * 2 * d, 6
    concat_fusion = 1536 * 1024 + 1024 + 1024 * 512 + 512
    ours = parameter_count("hhmpn", "mosei-aligned")
    assert ours == (authors - never_called - angle + label_attention + decoder_attention_biases + key_norms
                    + readout_bias + concat_fusion) == 378_858_502
    with torch.device("meta"):
        as_theirs = HHMPN(spec(), **OURS_AS_THEIRS)
    assert count(as_theirs) == authors - never_called + decoder_attention_biases + key_norms + readout_bias


def test_the_importer_refuses_a_model_built_otherwise(lamp, pair):
    from mmerbench.importers import WeightImportError

    theirs, _ = pair
    other = HHMPN(spec(), enc_layers=LAYERS, mem_layers=LAYERS, dec_layers=3, fusion="angle", angle_softmax="labels")
    with pytest.raises(WeightImportError, match="label_attention"):
        import_weights("hhmpn", theirs.state_dict(), other)
    state = dict(theirs.state_dict())
    state.pop("decoder.tgt_word_emb.weight")
    _, ours = pair
    with pytest.raises(WeightImportError, match="decoder.tgt_word_emb.weight"):
        import_weights("hhmpn", state, ours)
    prefixed = {f"module.{k}": v for k, v in theirs.state_dict().items()}  # nn.DataParallel's checkpoint
    assert np.isfinite(sum(v.float().sum().item() for v in import_weights("hhmpn", prefixed, ours).values()))
