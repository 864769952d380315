"""Loading a cached (memory-mapped) twin versus reading the same data from the public `.pt` file.

    python benchmarks/bench_loading.py                # full-scale aligned twin (~2.2 GB of features)
    python benchmarks/bench_loading.py --scale 0.2    # the default twin size

Writes the twin in the authors' `train_valid_test.pt` format under a temporary
data root, then times (best of --repeat):

* ``read .pt``      the MOSEI reader on the public file (torch.load with the
                    allow-list, float32 conversion, non-finite counting, masks)
* ``first load``    reader + conversion to the `.npy` cache
* ``cached load``   a later load: memory-mapped arrays, nothing read until used
* ``cached + touch`` a cached load that also reads every feature once (sums them),
                     i.e. the cost of actually paging the data in
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from mmerbench.data.readers.mosei import read_aligned, write_aligned_pt
from mmerbench.data.registry import load_dataset


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _touch(ds) -> float:
    return float(sum(np.asarray(s.inputs[m], dtype=np.float32).sum() for s in ds.splits.values() for m in s.inputs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mmerbench-bench-"))
    try:
        twin = load_dataset("synth-mosei-aligned", data_dir=tmp / "gen", scale=args.scale)
        pt = tmp / "real" / "mosei" / "train_valid_test.pt"
        pt.parent.mkdir(parents=True)
        write_aligned_pt(twin, pt)
        n = sum(len(s) for s in twin.splits.values())
        gb = pt.stat().st_size / 1e9
        del twin

        t_read = _best(lambda: read_aligned([pt]), args.repeat)
        t0 = time.perf_counter()
        load_dataset("mosei-aligned", data_dir=tmp / "real")
        t_first = time.perf_counter() - t0
        t_cached = _best(lambda: load_dataset("mosei-aligned", data_dir=tmp / "real"), args.repeat)
        t_touch = _best(lambda: _touch(load_dataset("mosei-aligned", data_dir=tmp / "real")), args.repeat)
        print(f"aligned twin at scale {args.scale:g}: {n} samples, .pt file {gb:.2f} GB")
        for name, t in [("read .pt", t_read), ("first load (read + cache)", t_first),
                        ("cached load (memory-mapped)", t_cached), ("cached load + read every feature", t_touch)]:
            print(f"  {name:34s} {t:8.3f} s")
        print(f"  speed-up of a cached load over reading the .pt: {t_read / t_cached:,.0f}x "
              f"({t_read / t_touch:,.1f}x when every feature is read)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
