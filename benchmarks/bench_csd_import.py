"""Time and memory of `data import-csd` on CMU-MOSI-sized computational sequences.

Writes synthetic ``.csd`` files in the SDK's layout with CMU-MOSI's sizes
(93 videos, 2,199 opinion segments, a word every 0.3 s, COVAREP at 100 Hz
× 74, FACET at 30 Hz × 47), then imports them twice: a first import (all
alignment work) and a rerun (every video from the work cache). Prints wall
time of each and the process's peak resident memory.

    python benchmarks/bench_csd_import.py            # MOSI-sized, about 15 s on 2 cores
    python benchmarks/bench_csd_import.py --videos 20
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from mmerbench.data.csd import write_csd
from mmerbench.data.csd_import import CsdImport, import_csd, load_folds


def _rows(end: float, hz: float) -> np.ndarray:
    t = np.arange(0, end, 1 / hz)
    return np.stack([t, t + 1 / hz], 1)


def make_files(folder: Path, videos: int, seed: int = 0) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    folds = load_folds("cmu-mosi")
    share = videos / 93  # the same share of each fold, at least one video in each
    ids = [v for s in ("train", "valid", "test") for v in folds[s][: max(1, round(len(folds[s]) * share))]]
    seqs = {"text": {}, "audio": {}, "vision": {}, "labels": {}}
    for vid in ids:
        n_seg = 2199 // 93
        seg_ends = np.cumsum(rng.uniform(2, 8, n_seg))
        starts = np.concatenate([[0], seg_ends[:-1]])
        end = float(seg_ends[-1])
        for m, hz, d in (("text", 1 / 0.3, 300), ("audio", 100, 74), ("vision", 30, 47)):
            iv = _rows(end, hz)
            seqs[m][vid] = (iv, rng.normal(size=(len(iv), d)).astype(np.float32))
        seqs["labels"][vid] = (np.stack([starts, seg_ends], 1), rng.uniform(-3, 3, (n_seg, 1)))
    return {m: write_csd(folder / f"{m}.csd", m, e) for m, e in seqs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=93)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = make_files(tmp, args.videos)
        size = sum(p.stat().st_size for p in files.values())
        job = CsdImport({m: files[m] for m in ("text", "audio", "vision")}, files["labels"], "cmu-mosi")
        for what, overwrite in (("first import", False), ("rerun (cached)", True)):
            t0 = time.perf_counter()
            r = import_csd(job, tmp / "out", overwrite=overwrite, progress=False)
            print(f"{what}: {time.perf_counter() - t0:.1f} s, {r.videos} videos, "
                  f"{sum(r.spec.splits.values()):,} segments, {size / 2**20:.0f} MiB of .csd")
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
