"""Peak memory of one shared transformer layer's forward + backward, with and without query chunking.

    python benchmarks/bench_attention_memory.py                       # L=1050, B=8, H=8, d=64, dropout 0.1
    python benchmarks/bench_attention_memory.py --length 500 --batch 16 --budgets none 2**25 2**22

Each variant runs in a fresh child process (CPU, float32, training mode with attention dropout, so
the fused kernel cannot run and torch would hold the whole [B, H, L, L] probability tensor and its
dropout mask for the backward pass). The child reports its peak resident memory
(``ru_maxrss``) above what it held just before the forward pass, and the seconds of the
forward + backward (median of ``--repeats``). ``none`` is today's path: no chunking;
a number is :data:`mmerbench.methods._layers.CHUNK_BUDGET`-style budget in score elements.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def _budget(text: str) -> int | None:
    """'none', '33554432' or '2**25'."""
    if text == "none":
        return None
    base, _, power = text.partition("**")
    return int(base) ** int(power) if power else int(base)


def _child(args: argparse.Namespace) -> dict:
    import torch

    from mmerbench.methods._layers import TransformerLayer, set_attention_chunking

    torch.manual_seed(0)
    layer = TransformerLayer(args.d_model, args.heads, 4 * args.d_model, dropout=0.1, attn_dropout=args.dropout)
    layer.train()
    budget = _budget(args.budget)
    set_attention_chunking(layer, budget)
    x = torch.randn(args.batch, args.length, args.d_model, requires_grad=True)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        layer(x).pow(2).mean().backward()
        times.append(time.perf_counter() - t)
        x.grad = None
        layer.zero_grad(set_to_none=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scores = args.batch * args.heads * args.length ** 2
    return {"budget": args.budget, "peak_mib_above_start": round((peak - base) / 1024, 1),
            "seconds": round(statistics.median(times), 3), "score_tensor_mib": round(scores * 4 / 2**20, 1)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=1050)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--budgets", nargs="+", default=["none", "2**25", "2**22"])
    ap.add_argument("--budget", help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args)))
        return
    common = ["--length", str(args.length), "--batch", str(args.batch), "--heads", str(args.heads),
              "--d-model", str(args.d_model), "--dropout", str(args.dropout), "--repeats", str(args.repeats)]
    print(f"one TransformerLayer, B={args.batch} H={args.heads} L={args.length} d={args.d_model}, "
          f"attention dropout {args.dropout}, CPU float32, forward + backward")
    print(f"{'budget':>8} | {'peak MiB':>9} | {'seconds':>7}")
    rows = []
    for b in args.budgets:  # one at a time: a shared machine, no two measurements at once
        out = subprocess.run([sys.executable, __file__, "--child", "--budget", b, *common],
                             capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{b:>8} | {row['peak_mib_above_start']:>9} | {row['seconds']:>7}")
    print(f"(one [B, H, L, L] float32 tensor: {rows[0]['score_tensor_mib']} MiB)")


if __name__ == "__main__":
    main()
