"""Building blocks shared by the neural methods (attention through scaled_dot_product_attention).

Masks follow the data layer: a boolean ``[B, L]`` with True for a real step.

Attention runs through the fused kernel where it can. On CPU with attention dropout in training,
torch falls back to its reference path, which holds the whole ``[B, H, Lq, Lk]`` probability tensor
(and its dropout mask) for the backward pass: 4.5 GB per layer at MOSEI's unaligned lengths. Above
:data:`CHUNK_BUDGET` score elements that case is computed in blocks of query rows instead, each
block recomputed in the backward pass (:func:`chunked_attention`), so no more than one block of
scores is alive at a time.
"""

from __future__ import annotations

import math

import torch
import torch.utils.checkpoint
from torch import nn
from torch.nn import functional as F


def attention_mask(key_mask: torch.Tensor | None, q_len: int, *, causal: bool = False,
                   k_len: int | None = None) -> torch.Tensor | None:
    """A boolean SDPA mask [B or 1, 1, Lq, Lk] (True = may attend) from a key mask and/or causality.

    A query whose every key is masked would get NaN from the softmax; such
    rows attend to all keys instead (the keys are zero padding, so the output
    stays finite and is masked out downstream).
    """
    mask = None
    if key_mask is not None:
        k_len = key_mask.shape[1]
        km = key_mask | ~key_mask.any(dim=1, keepdim=True)
        mask = km[:, None, None, :]
    if causal:
        assert k_len is not None
        # Query i may see keys up to its relative position (MulT's buffered future mask
        # for sequences of different lengths).
        qi = torch.arange(q_len, device=key_mask.device if key_mask is not None else None)
        kj = torch.arange(k_len, device=qi.device)
        limit = torch.ceil((qi + 1) * (k_len / q_len)).long()
        causal_mask = kj[None, :] < limit[:, None]
        causal_mask = causal_mask[None, None]
        mask = causal_mask if mask is None else (mask & causal_mask)
    return mask


#: Score elements (B·H·Lq·Lk) above which attention that cannot use the fused kernel is computed in
#: query blocks: 2**28 is 1 GiB in float32. Blocks cost time on the CPU (each is recomputed in the
#: backward pass: about 2x one layer's attention time, benchmarks/bench_attention_memory.py), so the
#: budget leaves the configs that fit alone and cuts the giants (RobMMR's unaligned paper config holds
#: 4.5 GB tensors). Per layer: ``MultiheadAttention.chunk_budget``; None turns chunking off.
CHUNK_BUDGET = 2**28


def _attend_block(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                  dropout_p: float, scale: float) -> torch.Tensor:
    """softmax(q kᵀ · scale, masked) → dropout → · v for one block of query rows (SDPA's math path)."""
    s = torch.matmul(q, k.transpose(-2, -1)) * scale
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    a = torch.softmax(s, dim=-1)
    if dropout_p > 0:
        a = F.dropout(a, dropout_p, training=True)
    return torch.matmul(a, v)


def chunked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                      dropout_p: float = 0.0, *, rows: int) -> torch.Tensor:
    """Attention of q [B, H, Lq, E] over k, v [B, H, Lk, E] in blocks of `rows` query rows.

    The same softmax(q kᵀ/√E) v as SDPA (equal within float32 rounding without dropout). Each block
    is activation-checkpointed when gradients are needed: its scores and probabilities are dropped
    after the forward pass and recomputed in the backward pass, with the dropout mask replayed from
    the saved RNG state, so a seed gives the same numbers every time. Dropout draws differ from
    SDPA's own (another order of random numbers), as they would between two kernels.
    """
    lq = q.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1])
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    outs = []
    for lo in range(0, lq, max(1, int(rows))):
        qc = q[..., lo:lo + rows, :]
        mc = None if mask is None else (mask[..., lo:lo + rows, :] if mask.shape[-2] > 1 else mask)
        if grad:
            outs.append(torch.utils.checkpoint.checkpoint(_attend_block, qc, k, v, mc, dropout_p, scale,
                                                          use_reentrant=False))
        else:
            outs.append(_attend_block(qc, k, v, mc, dropout_p, scale))
    return torch.cat(outs, dim=-2)


class MultiheadAttention(nn.Module):
    chunk_budget: int | None = CHUNK_BUDGET

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, d_kv: int | None = None) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by {heads} heads")
        d_kv = d_kv or d_model
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_kv, d_model)
        self.v = nn.Linear(d_kv, d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        kv = x if kv is None else kv
        b, lq, d = x.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, t.shape[1], h, d // h).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(kv)), split(self.v(kv))
        p = self.dropout if self.training else 0.0
        rows = self.chunk_rows(b, lq, k.shape[2], p, x.device)
        if rows is None:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            o = chunked_attention(q, k, v, mask, p, rows=rows)
        return self.out(o.transpose(1, 2).reshape(b, lq, d))


    def chunk_rows(self, b: int, lq: int, lk: int, dropout_p: float, device: torch.device) -> int | None:
        """Query rows per block, or None for the fused kernel: chunks only where SDPA would fall back
        to its reference path (dropout on CPU; CUDA's kernels take dropout) and B·H·Lq·Lk passes the
        budget (a budget of 0 always chunks: the tests' way through this path)."""
        budget = self.chunk_budget
        if budget is None:
            return None
        if budget == 0:
            return max(1, lq // 4)
        if dropout_p <= 0 or device.type == "cuda":
            return None
        cells = b * self.heads * lk
        return None if cells * lq <= budget else max(1, budget // cells)


def set_attention_chunking(model: nn.Module, budget: int | None) -> int:
    """Set the chunking budget (score elements; None = off) of every shared attention in `model`."""
    mods = [m for m in model.modules() if isinstance(m, MultiheadAttention)]
    for m in mods:
        m.chunk_budget = budget
    return len(mods)


class TransformerLayer(nn.Module):
    """Self- or cross-attention + position-wise FFN with residuals; pre- or post-LayerNorm.

    ``checkpoint`` (off; :func:`mmerbench.methods.base.set_layer_checkpointing` turns it on from a
    config's ``checkpoint_layers``): in training, keep only the layer's inputs and recompute its
    inside during the backward pass — the same numbers (dropout masks are replayed from the saved
    RNG state) for about a third more compute and a fraction of the activation memory.
    """

    checkpoint: bool = False

    def __init__(self, d_model: int, heads: int, d_ff: int, *, dropout: float = 0.1, attn_dropout: float = 0.0,
                 relu_dropout: float | None = None, activation: str = "relu", norm_first: bool = True,
                 cross: bool = False) -> None:
        super().__init__()
        self.norm_first, self.cross = norm_first, cross
        self.attn = MultiheadAttention(d_model, heads, attn_dropout)
        self.ff1, self.ff2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.act = {"relu": F.relu, "gelu": F.gelu}[activation]
        self.norm_attn, self.norm_ff = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.norm_kv = nn.LayerNorm(d_model) if cross and norm_first else None
        self.drop = nn.Dropout(dropout)
        self.drop_ff = nn.Dropout(dropout if relu_dropout is None else relu_dropout)

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.checkpoint and self.training and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(self._layer, x, kv, mask, use_reentrant=False)
        return self._layer(x, kv, mask)

    def _layer(self, x: torch.Tensor, kv: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        if self.norm_first:
            q = self.norm_attn(x)
            k = q if kv is None else (self.norm_kv(kv) if self.norm_kv is not None else kv)
            x = x + self.drop(self.attn(q, k, mask))
            x = x + self.drop(self.ff2(self.drop_ff(self.act(self.ff1(self.norm_ff(x))))))
        else:
            x = self.norm_attn(x + self.drop(self.attn(x, kv, mask)))
            x = self.norm_ff(x + self.drop(self.ff2(self.drop_ff(self.act(self.ff1(x))))))
        return x


def sinusoidal_positions(length: int, dim: int, device=None) -> torch.Tensor:
    """[length, dim] sine/cosine position table (Vaswani et al. 2017)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    i = torch.arange(0, dim, 2, device=device, dtype=torch.float32)
    angle = pos / torch.pow(10000.0, i / dim)
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : dim // 2])
    return table


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coeff * grad, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity forward, gradient multiplied by -coeff backward (Ganin & Lempitsky 2015)."""
    return _GradReverse.apply(x, coeff)


def last_valid(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x [B, L, D] → the last real step of each sample [B, D] (step L-1 when a sample has none)."""
    idx = torch.where(mask.any(1), mask.long().cumsum(1).argmax(1), torch.full_like(mask[:, 0], x.shape[1] - 1, dtype=torch.long))
    return x[torch.arange(x.shape[0], device=x.device), idx]


def init_scale(dim: int) -> float:
    return math.sqrt(dim)
