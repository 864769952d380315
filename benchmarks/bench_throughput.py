"""Training throughput (samples/s) and peak memory of each neural method at its paper config, beside the
authors' code.

    python benchmarks/bench_throughput.py                          # every method, both MOSEI twins, this device
    python benchmarks/bench_throughput.py --methods tailor mult --datasets synth-mosei-aligned --steps 5
    python benchmarks/bench_throughput.py --preset small           # the CPU presets instead of the paper configs
    python benchmarks/bench_throughput.py --methods hhmpn --set checkpoint_layers=true   # any config override
    python benchmarks/bench_throughput.py --methods robmmr --max-memory 20GB --dtype bf16 --no-flops --json out.json

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

Options under test, each a setting ``mmerbench run`` takes too:

* ``--max-memory SIZE``: the settings ``run --max-memory`` picks (checkpointing, then exact
  accumulation; :mod:`mmerbench.memory`), shown in the ``settings`` column;
* ``--dtype bf16``: bf16 autocast, also on a CPU (``run --dtype bf16``); not exact, so never a default;
* ``--set KEY=VALUE``: any config override (``accumulate=8``, ``checkpoint_layers=true``).

The last columns put each row beside the authors' own code at their batch size (:data:`AUTHORS`,
their whole process, 2 CPU threads, float32): our samples/s over theirs (the target is ≥ 1.5×) and
our peak over theirs (the target is ≤ 0.5×). Their figures were measured with the authors'
repositories on random batches of aligned MOSEI's shapes (50 steps per modality), on this project's
2-core CI-class CPU, so only the aligned rows are compared with them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

#: The authors' code, training on aligned-MOSEI-shaped batches (2 CPU threads, float32): method → (their
#: batch, samples/s low, high, peak GB of their process). HHMPN's batch is 8 micro-batches of 8.
AUTHORS = {
    "mult": ("24", 41.0, 56.0, 0.9),
    "tailor": ("64", 6.0, 6.3, 8.3),
    "carat": ("64", 6.8, 7.4, 11.3),
    "univa": ("32", 3.7, 3.7, 5.9),
    "robmmr": ("64", 1.9, 2.0, 17.6),
    "hhmpn": ("8×8", 1.1, 1.1, 9.1),
}
SPEED_TARGET, MEMORY_TARGET = 1.5, 0.5
AUTHORS_SHAPES = ("synth-mosei-aligned", "mosei-aligned")


def _one(method: str, dataset: str, args: argparse.Namespace) -> dict:
    from mmerbench import runner
    from mmerbench.profile import ProfileRequest, profile

    overrides = tuple(args.overrides)
    picked: tuple[str, ...] = ()
    if args.max_memory:
        prep = runner.prepare(runner.RunRequest(method=method, dataset=dataset, preset=args.preset,
                                                overrides=overrides, device=args.device, progress=False,
                                                max_memory=args.max_memory, dtype=args.dtype))
        fitted, _ = runner.fit_memory(prep, runner.resolve_device(args.device))
        picked = fitted.request.overrides[len(overrides):]
    res = profile(ProfileRequest(method=method, dataset=dataset, preset=args.preset, overrides=overrides + picked,
                                 device=args.device, dtype=args.dtype, batch_sizes=(), warmup=args.warmup,
                                 train_steps=args.steps, latency_iters=10, max_seconds=1e9, write=False,
                                 flops=not args.no_flops))
    rec, m = res.record, res.record["metrics"]
    where = rec["device_name"] if rec["device"] == "cuda" else f"{rec['device_name']} ({rec['threads']} threads)"
    peak = m.get("peak_memory_mb_train", m["peak_rss_mb_process"]) / 1024
    flops = m.get("train_flops_per_sample")
    return {"method": method, "dataset": dataset, "device": where, "dtype": rec["dtype"],
            "batch": rec["batch_size"], "settings": list(overrides + picked), "params": int(m["params"]),
            "samples_per_s": m["train_samples_per_s"], "step_s": m["train_step_ms"] / 1000, "peak_gib": peak,
            "gflop_per_sample": None if flops is None else flops / 1e9, "tflops": m.get("tflops_per_s_train")}


def _supports(method: str, dataset: str) -> bool:
    """Whether the method handles the dataset's task and has the modalities it requires."""
    from mmerbench.data.registry import get_entry
    from mmerbench.registry import get_method

    cls, spec = get_method(method), get_entry(dataset).spec
    return spec.task in cls.tasks and set(getattr(cls, "required_modalities", ())) <= set(spec.modalities)


def beside_authors(r: dict) -> list[str]:
    """Their batch, samples/s and peak, and our ratios to them (speed ×, memory ×); blanks where they have none."""
    if r["method"] not in AUTHORS or r["dataset"] not in AUTHORS_SHAPES:
        return ["", "", "", "", ""]
    batch, lo, hi, gb = AUTHORS[r["method"]]
    theirs = f"{lo:g}" if lo == hi else f"{lo:g}–{hi:g}"
    speed = r["samples_per_s"] / ((lo + hi) / 2)
    memory = r["peak_gib"] * 2**30 / 1e9 / gb
    mark = (lambda ok: "" if ok else " ✗")
    return [batch, theirs, f"{gb:g}", f"{speed:.2f}×{mark(speed >= SPEED_TARGET)}",
            f"{memory:.2f}×{mark(memory <= MEMORY_TARGET)}"]


HEADERS = ["method", "dataset", "device", "dtype", "batch", "settings", "params", "train samples/s", "s/step",
           "peak GiB", "train GFLOP/sample", "TFLOP/s", "authors' batch", "authors' samples/s", "authors' GB",
           "speed vs authors", "memory vs authors"]


def row(r: dict) -> list[str]:
    g = r["gflop_per_sample"]
    return [r["method"], r["dataset"], r["device"], r["dtype"], str(r["batch"]), " ".join(r["settings"]) or "—",
            f"{r['params']:,}", f"{r['samples_per_s']:.2f}", f"{r['step_s']:.2f}", f"{r['peak_gib']:.2f}",
            "" if g is None else f"{g:.3f}", "" if r["tflops"] is None else f"{r['tflops']:.2f}",
            *beside_authors(r)]


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
    ap.add_argument("--max-memory", default=None, metavar="SIZE", help="the settings `run --max-memory SIZE` picks")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default=None, help="default: as `run` trains the config")
    ap.add_argument("--no-flops", action="store_true", help="skip the FLOP count (one more step at full batch)")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the rows (and failures) as JSON")
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "DATASET"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one:
        from mmerbench.errors import MmerbenchError

        try:
            print(json.dumps(_one(*args.one, args)))
        except MmerbenchError as e:  # one sentence for the parent's row, not a traceback
            sys.exit(f"{e}")
        return

    from tabulate import tabulate

    from mmerbench.registry import METHODS, get_method

    methods = args.methods or [m for m in METHODS.names() if get_method(m).kind == "torch"]
    rows, records = [], []
    for m in methods:
        for d in args.datasets:
            if not _supports(m, d):
                continue
            cmd = [sys.executable, __file__, "--one", m, d, "--device", args.device, "--steps", str(args.steps),
                   "--warmup", str(args.warmup)]
            for flag, value in (("--preset", args.preset), ("--max-memory", args.max_memory), ("--dtype", args.dtype)):
                cmd += [flag, value] if value else []
            cmd += (["--no-flops"] if args.no_flops else []) + (["--set", *args.overrides] if args.overrides else [])
            proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
            if proc.returncode != 0:
                # A SIGKILL with nothing on stderr is, in practice, the kernel's out-of-memory killer.
                why = (proc.stderr.strip().splitlines() or [""])[-1] or (
                    "killed (out of memory?)" if proc.returncode == -9 else f"exit {proc.returncode}")
                records.append({"method": m, "dataset": d, "failed": why})
                rows.append([m, d, "failed: " + why[:160]] + [""] * (len(HEADERS) - 3))
            else:
                records.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                rows.append(row(records[-1]))
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    print(tabulate(rows, headers=HEADERS, tablefmt="github", disable_numparse=True))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"options": vars(args), "rows": records}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
