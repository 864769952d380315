"""Query-chunked attention: the numbers of SDPA without dropout, reproducible with dropout, and used
only where the fused kernel cannot run and the score tensor passes the budget."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from mmerbench.methods._layers import (MultiheadAttention, TransformerLayer, attention_mask, chunked_attention,
                                       set_attention_chunking)
from mmerbench.methods.base import set_layer_checkpointing

from methods.helpers import build, tiny_batch


def _qkv(b=2, h=3, lq=17, lk=11, e=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, e, generator=g, requires_grad=True) for n in (lq, lk, lk)]


@pytest.mark.parametrize("rows", [1, 4, 17, 40])
@pytest.mark.parametrize("masked", [False, True])
def test_chunked_equals_sdpa_without_dropout(rows, masked):
    q, k, v = _qkv()
    mask = None
    if masked:
        km = torch.tensor([[True] * 11, [True] * 5 + [False] * 6])
        mask = attention_mask(km, 17, causal=True, k_len=11)  # key padding and MulT's causal limit
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    (gq, gk, gv) = torch.autograd.grad(ref.pow(2).sum(), (q, k, v))
    out = chunked_attention(q, k, v, mask, 0.0, rows=rows)
    (cq, ck, cv) = torch.autograd.grad(out.pow(2).sum(), (q, k, v))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    for a, b in ((cq, gq), (ck, gk), (cv, gv)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_chunked_dropout_is_deterministic_for_a_seed_and_replayed_in_backward():
    q, k, v = _qkv()

    def once(seed):
        torch.manual_seed(seed)
        out = chunked_attention(q, k, v, None, 0.3, rows=5)
        return out, torch.autograd.grad(out.pow(2).sum(), (q, k, v))

    (o1, g1), (o2, g2), (o3, _) = once(1), once(1), once(2)
    assert torch.equal(o1, o2) and all(torch.equal(a, b) for a, b in zip(g1, g2))
    assert not torch.equal(o1, o3)
    # The backward pass recomputes each block with the forward's dropout mask: its gradient is the one
    # of the same computation kept whole (no checkpoint), drawing the same masks in the same order.
    torch.manual_seed(1)
    scale = 8 ** -0.5
    blocks = []
    for lo in range(0, 17, 5):
        a = torch.softmax(q[:, :, lo:lo + 5] @ k.transpose(-2, -1) * scale, -1)
        blocks.append(F.dropout(a, 0.3, training=True) @ v)
    ref = torch.cat(blocks, dim=2)
    torch.testing.assert_close(o1, ref)
    for a, b in zip(g1, torch.autograd.grad(ref.pow(2).sum(), (q, k, v))):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_layer_chunks_only_above_the_budget_with_dropout_on_cpu(monkeypatch):
    calls = []
    import mmerbench.methods._layers as layers

    real = layers.chunked_attention
    monkeypatch.setattr(layers, "chunked_attention", lambda *a, **kw: calls.append(kw["rows"]) or real(*a, **kw))
    attn = MultiheadAttention(16, 4, dropout=0.1)
    x = torch.randn(2, 30, 16)
    attn.train()
    attn.chunk_budget = 2 * 4 * 30 * 30  # exactly the score tensor: not above it
    attn(x)
    assert calls == []
    attn.chunk_budget = 2 * 4 * 30 * 30 - 1
    attn(x)
    assert calls == [29]  # rows per block: budget // (B·H·Lk)
    calls.clear()
    attn.eval()  # no dropout: the fused kernel
    attn(x)
    attn.train()
    attn.dropout = 0.0
    attn(x)
    attn.chunk_budget = None
    attn.dropout = 0.1
    attn(x)
    assert calls == []


@pytest.mark.parametrize("method", ["mult", "hhmpn", "robmmr", "tailor"])
def test_methods_give_the_same_numbers_through_the_chunked_path(method):
    def run(chunk: bool):
        model, spec = build(method, "synth-mosei-aligned", preset="small", seed=0)
        model.eval()  # no dropout: chunked and fused must agree
        set_attention_chunking(model, 0 if chunk else None)
        batch = tiny_batch(spec, batch_size=3)
        with torch.enable_grad():
            parts = model.loss(batch, model(batch))
            parts.total.backward()
        return parts.total.detach(), {k: p.grad for k, p in model.named_parameters() if p.grad is not None}

    (l0, g0), (l1, g1) = run(False), run(True)
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-6)
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], rtol=1e-4, atol=1e-6, msg=k)


def test_chunking_inside_a_checkpointed_layer_replays_the_same_dropout():
    def grads(checkpoint: bool):
        torch.manual_seed(0)
        layer = TransformerLayer(16, 2, 32, dropout=0.1, attn_dropout=0.2)
        set_attention_chunking(layer, 0)
        set_layer_checkpointing(layer, checkpoint)
        x = torch.randn(3, 20, 16, requires_grad=True)
        torch.manual_seed(5)
        layer(x).pow(2).sum().backward()
        return x.grad

    torch.testing.assert_close(grads(True), grads(False))
