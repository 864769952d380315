"""The --max-memory estimate against the measured peak resident memory of the same training run (CPU).

    python benchmarks/bench_memory_estimate.py                     # two configs (below), one epoch each
    python benchmarks/bench_memory_estimate.py --config hhmpn synth-mosei-unaligned small 0.05 checkpoint_layers=true

For each config: :func:`mmerbench.memory.estimate` at its settings, then one epoch of ``mmerbench run``
in a fresh child process whose peak resident size (``ru_maxrss``, the whole process as the estimate
counts it) is read at the end. One run at a time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile

CONFIGS = [
    ("mult", "synth-mosei-unaligned", "small", "0.05", "accumulate=1"),
    ("hhmpn", "synth-mosei-unaligned", "small", "0.05", "checkpoint_layers=true"),
]


def _child(method, dataset, preset, scale, *overrides) -> dict:
    from mmerbench import memory
    from mmerbench.data.registry import load_dataset
    from mmerbench.runner import RunRequest, prepare, run

    with tempfile.TemporaryDirectory() as tmp:
        req = RunRequest(method=method, dataset=dataset, preset=preset, epochs=1, scale=float(scale),
                         overrides=tuple(overrides), device="cpu", progress=False, runs_dir=tmp, data_dir=tmp)
        prep = prepare(req)
        ds = load_dataset(dataset, data_dir=tmp, scale=float(scale))
        p = prep.config["params"]
        est, parts = memory.estimate(prep, ds, "cpu", checkpoint=bool(p.get("checkpoint_layers", False)),
                                     accumulate=int(p.get("accumulate", 1)))
        del ds
        run(req)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"config": " ".join([method, dataset, preset, scale, *overrides]), "estimate_mib": round(est / 2**20),
            "parts_mib": {k: round(v / 2**20) for k, v in parts.items()}, "measured_peak_mib": round(peak / 2**20),
            "estimate_over_measured": round(est / peak, 2)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", nargs="+", action="append", help="method dataset preset scale [key=value ...]")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child)))
        return
    for cfg in args.config or CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--child", *cfg], capture_output=True, text=True, check=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
