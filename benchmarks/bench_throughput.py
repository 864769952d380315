"""Training throughput (samples/s) and peak memory of each neural method at its paper config.

    python benchmarks/bench_throughput.py                          # every method, both MOSEI twins, this device
    python benchmarks/bench_throughput.py --methods tailor mult --datasets synth-mosei-aligned --steps 5
    python benchmarks/bench_throughput.py --preset small           # the CPU presets instead of the paper configs
    python benchmarks/bench_throughput.py --methods hhmpn --set checkpoint_layers=true   # any config override

A thin loop over :func:`mmerbench.profile.profile` (the code behind
``mmerbench profile``; nothing is written to the run store): batches have the
config's batch size and the dataset spec's real shapes (random features,
full-length masks); after ``--warmup`` steps, ``--steps`` calls of the
method's own ``training_step`` (forward, loss, backward, clip, step) are timed
— CUDA events, or ``perf_counter`` on CPU — with no data loading. Each
(method, dataset) runs in its own process, so one configuration's memory
never shows in another's figures. Peak memory is the training phase's: on
CUDA ``torch.cuda.max_memory_allocated``, on CPU the peak resident set size
(which includes the interpreter, torch and the model, ~0.3 GB). FLOPs are
per sample (2·MAC, forward + backward); TFLOP/s is shown on CUDA only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def _one(method: str, dataset: str, device: str, steps: int, warmup: int, preset: str | None,
         overrides: tuple[str, ...] = ()) -> dict:
    from mmerbench.profile import ProfileRequest, profile

    res = profile(ProfileRequest(method=method, dataset=dataset, preset=preset, overrides=overrides, device=device,
                                 batch_sizes=(), warmup=warmup, train_steps=steps, latency_iters=10,
                                 max_seconds=1e9, write=False))
    rec, m = res.record, res.record["metrics"]
    where = rec["device_name"] if rec["device"] == "cuda" else f"cpu ({rec['threads']} threads)"
    peak = m.get("peak_memory_mb_train", m["peak_rss_mb_process"]) / 1024
    return {"method": method, "dataset": dataset, "device": where, "dtype": rec["dtype"], "batch": rec["batch_size"],
            "params": int(m["params"]), "samples_per_s": m["train_samples_per_s"],
            "step_s": m["train_step_ms"] / 1000, "peak_gib": peak,
            "gflop_per_sample": m["train_flops_per_sample"] / 1e9, "tflops": m.get("tflops_per_s_train")}


def _supports(method: str, dataset: str) -> bool:
    """Whether the method handles the dataset's task and has the modalities it requires."""
    from mmerbench.data.registry import get_entry
    from mmerbench.registry import get_method

    cls, spec = get_method(method), get_entry(dataset).spec
    return spec.task in cls.tasks and set(getattr(cls, "required_modalities", ())) <= set(spec.modalities)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--datasets", nargs="*", default=["synth-mosei-aligned", "synth-mosei-unaligned"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--preset", default=None)
    ap.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                    help="config overrides, as in bench_harness_overhead.py; a method whose config "
                         "lacks a key shows as failed, so name --methods with them")
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "DATASET"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one:
        print(json.dumps(_one(*args.one, args.device, args.steps, args.warmup, args.preset, tuple(args.overrides))))
        return

    from tabulate import tabulate

    from mmerbench.registry import METHODS, get_method

    methods = args.methods or [m for m in METHODS.names() if get_method(m).kind == "torch"]
    rows = []
    for m in methods:
        for d in args.datasets:
            if not _supports(m, d):
                continue
            cmd = [sys.executable, __file__, "--one", m, d, "--device", args.device, "--steps", str(args.steps),
                   "--warmup", str(args.warmup)] + (["--preset", args.preset] if args.preset else [])
            cmd += ["--set", *args.overrides] if args.overrides else []
            proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
            if proc.returncode != 0:
                # A SIGKILL with nothing on stderr is, in practice, the kernel's out-of-memory killer.
                why = (proc.stderr.strip().splitlines() or [""])[-1][:60] or (
                    "killed (out of memory?)" if proc.returncode == -9 else f"exit {proc.returncode}")
                rows.append([m, d, "failed: " + why] + [""] * 8)
                print(" | ".join(map(str, rows[-1][:3])), file=sys.stderr, flush=True)
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append([m, d, r["device"], r["dtype"], r["batch"], f"{r['params']:,}",
                         f"{r['samples_per_s']:.1f}", f"{r['step_s']:.3f}", f"{r['peak_gib']:.2f}",
                         f"{r['gflop_per_sample']:.3f}", "" if r["tflops"] is None else f"{r['tflops']:.2f}"])
            print(" | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    print(tabulate(rows, headers=["method", "dataset", "device", "dtype", "batch", "params", "train samples/s",
                                  "s/step", "peak GiB", "train GFLOP/sample", "TFLOP/s"], tablefmt="github",
                   disable_numparse=True))


if __name__ == "__main__":
    main()
