"""What fraction of a training step the harness costs, per neural method, at the paper batch size.

    python benchmarks/bench_harness_overhead.py                              # every method, aligned twin, this device
    python benchmarks/bench_harness_overhead.py --methods tailor mlp --scale 0.05 --repeats 5
    python benchmarks/bench_harness_overhead.py --dataset synth-mosei-unaligned --device cuda
    python benchmarks/bench_harness_overhead.py --preset small --set batch_size=64     # small models: the worst case

For each method (its paper config: the paper's batch size) on a synthetic twin:

* **loop** — one epoch of the runner's own training loop,
  :func:`mmerbench.runner.train_epoch`: batches cut from device tensors in a
  seeded order, the method's ``training_step``, the per-step schedule, the
  sample-weighted sums of every named loss part;
* **bare** — the same batches (the same seeded order, cut beforehand) passed
  to ``training_step`` alone: forward, loss, backward, clip, optimizer step.

``harness % = (loop − bare) / loop`` is the share of a training step spent
outside the model's forward/backward/optimizer step (batching, schedule,
loss bookkeeping). It is the difference of two large timings, so on a busy
CPU its noise is larger than the harness itself; the benchmark therefore also
times the loop **directly**, with a ``training_step`` that does no work
(returning the loss parts of a real step): ``harness-only ms/step``, and
``harness % (direct) = harness-only / (harness-only + bare)``. On CUDA the
host-side harness work overlaps queued kernels, so the direct figure is an
upper bound there. The runner also writes a checkpoint and the history once
per epoch (its logging): ``ckpt ms`` is that write, ``ckpt %`` its share of
the training time of one epoch of the full-size dataset (the same ms/step
over the real split's number of steps). Both are medians over ``--repeats`` epochs (loop and
bare alternate, after one untimed warm-up epoch); on CUDA the device is
synchronised before each clock read. The target is harness % < 5.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def measure(method: str, dataset: str, device: str, scale: float, repeats: int, preset: str | None,
            overrides: tuple[str, ...] = ()) -> dict:
    import numpy as np
    import torch

    from mmerbench import results, runner
    from mmerbench.data.batching import DeviceSplit
    from mmerbench.data.registry import load_dataset

    device = runner.resolve_device(device)
    prep = runner.prepare(runner.RunRequest(method=method, dataset=dataset, preset=preset, scale=scale,
                                            overrides=overrides))
    runner.deterministic_mode(device)
    p = prep.config["params"]
    bs = int(p["batch_size"])
    data = load_dataset(dataset, scale=scale)
    mods = p.get("modalities") or list(prep.spec.modalities)
    train = DeviceSplit(prep.spec, data["train"], device, mods)
    torch.manual_seed(0)
    model = runner.build_model(prep, prep.spec)
    model.setup(data["train"])
    model = model.to(device)
    setup = model.configure_optimizer(train.num_batches(bs), int(p["epochs"]))
    autocast = runner.autocast_factory(device, runner.run_dtype(prep.config, device))

    def gen(r: int) -> torch.Generator:
        return torch.Generator().manual_seed(1000 + r)

    def loop(r: int) -> float:
        _sync(device)
        t = time.perf_counter()
        runner.train_epoch(model, train, bs, setup, autocast, gen(r))
        _sync(device)
        return time.perf_counter() - t

    def bare(r: int) -> float:
        batches = list(train.batches(bs, shuffle=True, generator=gen(r)))
        model.train()
        _sync(device)
        t = time.perf_counter()
        for b in batches:
            model.training_step(b, setup.optimizer, autocast=autocast)
        _sync(device)
        return time.perf_counter() - t

    loop(-1)  # warm-up: allocator, kernels, optimizer state
    loops, bares = [], []
    for r in range(repeats):
        if r % 2:
            bares.append(bare(r))
            loops.append(loop(r))
        else:
            loops.append(loop(r))
            bares.append(bare(r))
    # Direct: the same loop with a training_step that does no work (it returns the loss parts of
    # a real step), so only batching, schedule and bookkeeping are timed — small and low-noise.
    parts = model.training_step(next(train.batches(bs)), setup.optimizer, autocast=autocast)
    parts.total, parts.parts = parts.total.detach(), {k: v.detach() for k, v in parts.parts.items()}

    class NoWork:
        def train(self, mode: bool = True) -> "NoWork":
            return self

        def training_step(self, batch, optimizer, autocast) -> object:
            return parts

    def harness_only(r: int) -> float:
        _sync(device)
        t = time.perf_counter()
        runner.train_epoch(NoWork(), train, bs, setup, autocast, gen(r))
        _sync(device)
        return time.perf_counter() - t

    direct_s = float(np.median([harness_only(r) for r in range(max(repeats, 5))]))
    with tempfile.TemporaryDirectory() as tmp:
        state = {"model": model.state_dict(), "optimizer": setup.optimizer.state_dict(),
                 "best": {"state": runner._cpu_state(model)}}
        t = time.perf_counter()
        runner._save_checkpoint(Path(tmp) / runner.CHECKPOINT, state)
        results.write_json(Path(tmp) / "history.json", [{"epoch": 0}])
        ckpt = time.perf_counter() - t
    loop_s, bare_s = float(np.median(loops)), float(np.median(bares))
    steps = train.num_batches(bs)
    full_steps = -(-int(prep.spec.splits["train"]) // bs)  # an epoch of the full-size dataset
    return {"method": method, "batch": bs, "steps": steps, "loop_ms": 1000 * loop_s / steps,
            "bare_ms": 1000 * bare_s / steps, "harness_pct": 100 * (loop_s - bare_s) / loop_s,
            "direct_ms": 1000 * direct_s / steps, "direct_pct": 100 * direct_s / (direct_s + bare_s),
            "ckpt_ms": 1000 * ckpt, "ckpt_pct": 100 * ckpt / (loop_s / steps * full_steps)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--dataset", default="synth-mosei-aligned")
    ap.add_argument("--scale", type=float, default=0.05, help="twin size: an epoch is what is timed")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--preset", default=None, help="default: the paper config (the paper's batch size)")
    ap.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                    help="config overrides, e.g. batch_size=64 with --preset small")
    args = ap.parse_args()

    from tabulate import tabulate

    from mmerbench.registry import METHODS, get_method

    methods = args.methods or [m for m in METHODS.names() if get_method(m).kind == "torch"]
    rows = []
    for m in methods:
        r = measure(m, args.dataset, args.device, args.scale, args.repeats, args.preset, tuple(args.overrides))
        rows.append([m, r["batch"], r["steps"], f"{r['bare_ms']:.2f}", f"{r['loop_ms']:.2f}",
                     f"{r['harness_pct']:.1f}", f"{r['direct_ms']:.3f}", f"{r['direct_pct']:.2f}",
                     f"{r['ckpt_ms']:.1f}", f"{r['ckpt_pct']:.2f}"])
        print(" | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    print(tabulate(rows, headers=["method", "batch", "steps/epoch", "bare ms/step", "loop ms/step", "harness %",
                                  "harness-only ms/step", "harness % (direct)", "ckpt ms", "ckpt % (full epoch)"],
                   tablefmt="github", disable_numparse=True))


if __name__ == "__main__":
    main()
