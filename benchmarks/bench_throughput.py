"""Training throughput (samples/s) and peak memory of each neural method at its paper config.

    python benchmarks/bench_throughput.py                          # every method, both MOSEI twins, this device
    python benchmarks/bench_throughput.py --methods tailor mult --datasets synth-mosei-aligned --steps 5
    python benchmarks/bench_throughput.py --preset small           # the CPU presets instead of the paper configs

Each (method, dataset) runs in its own process, so peak memory is that
configuration's alone: on CUDA ``torch.cuda.max_memory_allocated`` (reset
before timing), on CPU the process' peak resident set size (which includes
the Python interpreter and torch itself, ~0.3 GB). Batches have the paper's
batch size and the twin's real shapes (random features, full-length masks,
random per-modality valence/arousal extras for methods that read them);
after ``--warmup`` steps, ``--steps`` optimizer steps are timed (CUDA:
synchronised before reading the clock). Figures are the method's own
``training_step`` (forward, loss, backward, clip, step) — no data loading.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _labels(spec, n: int, g):
    """Random targets of the spec's task: multi-label 0/1 rows, class indices, binary 0/1, sentiment."""
    import torch

    if spec.task == "multilabel":
        return (torch.rand(n, spec.num_labels, generator=g) < 0.3).float()
    if spec.task == "multiclass":
        return torch.randint(0, spec.num_labels, (n,), generator=g)
    if spec.task == "binary":
        return torch.randint(0, 2, (n,), generator=g).float()
    return torch.rand(n, generator=g) * 6 - 3


def _supports(method: str, dataset: str) -> bool:
    from mmerbench.data.registry import get_entry
    from mmerbench.registry import get_method

    cls, spec = get_method(method), get_entry(dataset).spec
    return spec.task in cls.tasks and set(getattr(cls, "required_modalities", ())) <= set(spec.modalities)


def _one(method: str, dataset: str, device: str, steps: int, warmup: int, preset: str | None) -> dict:
    import numpy as np
    import torch

    from mmerbench.data.batching import Batch
    from mmerbench.registry import get_method
    from mmerbench.runner import RunRequest, prepare, resolve_device

    device = resolve_device(device)
    prep = prepare(RunRequest(method=method, dataset=dataset, preset=preset))
    spec, params = prep.spec, prep.config["params"]
    bs = int(params["batch_size"])
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    inputs = {m: torch.randn(bs, ms.length, ms.dim, generator=g).to(device) for m, ms in spec.modalities.items()}
    masks = {m: torch.ones(bs, ms.length, dtype=torch.bool, device=device) for m, ms in spec.modalities.items()}
    labels = _labels(spec, bs, g).to(device)
    # Per-sample (valence, arousal) per modality, as datasets that have them provide (UniVA reads them).
    gv = torch.Generator().manual_seed(1)  # its own generator: the other draws stay as they were
    extras = {f"va_{m}": (torch.rand(bs, 2, generator=gv) * 2 - 1).to(device) for m in spec.modalities}
    batch = Batch(inputs=inputs, masks=masks, labels=labels, index=torch.arange(bs, device=device), extras=extras)

    model = get_method(method)(spec, **params)
    ylab = _labels(spec, 64, g).numpy()
    if spec.task == "multilabel":
        ylab = ylab.astype("int8")
    from mmerbench.data.dataset import Split

    model.setup(Split(inputs={}, masks={}, labels=ylab, ids=np.arange(64).astype(str)))
    model = model.to(device)
    setup = model.configure_optimizer(100, int(params.get("epochs", 1)))
    use_amp = bool(params.get("amp", False)) and device.startswith("cuda")
    from contextlib import nullcontext
    from functools import partial

    autocast = partial(torch.autocast, device_type="cuda", dtype=torch.bfloat16) if use_amp else nullcontext
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    model.train()
    for _ in range(warmup):
        model.training_step(batch, setup.optimizer, autocast=autocast)
    sync()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(steps):
        model.training_step(batch, setup.optimizer, autocast=autocast)
    sync()
    dt = time.perf_counter() - t
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**30
        where = torch.cuda.get_device_name(0)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        where = f"cpu ({torch.get_num_threads()} threads)"
    return {"method": method, "dataset": dataset, "device": where, "dtype": "bf16" if use_amp else "fp32",
            "batch": bs, "params": n_params, "samples_per_s": bs * steps / dt, "step_s": dt / steps,
            "peak_gib": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--datasets", nargs="*", default=["synth-mosei-aligned", "synth-mosei-unaligned"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--preset", default=None)
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "DATASET"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one:
        print(json.dumps(_one(*args.one, args.device, args.steps, args.warmup, args.preset)))
        return

    from tabulate import tabulate

    from mmerbench.registry import METHODS, get_method

    methods = args.methods or [m for m in METHODS.names() if get_method(m).kind == "torch"]
    rows = []
    for m in methods:
        for d in args.datasets:
            if not _supports(m, d):  # e.g. a multi-class method on the multi-label twins
                continue
            cmd = [sys.executable, __file__, "--one", m, d, "--device", args.device, "--steps", str(args.steps),
                   "--warmup", str(args.warmup)] + (["--preset", args.preset] if args.preset else [])
            proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
            if proc.returncode != 0:
                rows.append([m, d, "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:60]] + [""] * 6)
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append([m, d, r["device"], r["dtype"], r["batch"], f"{r['params']:,}",
                         f"{r['samples_per_s']:.1f}", f"{r['step_s']:.3f}", f"{r['peak_gib']:.2f}"])
            print(" | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    print(tabulate(rows, headers=["method", "dataset", "device", "dtype", "batch", "params", "train samples/s",
                                  "s/step", "peak GiB"], tablefmt="github", disable_numparse=True))


if __name__ == "__main__":
    main()
