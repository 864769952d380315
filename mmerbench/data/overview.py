"""What the `datasets`, `data verify` and `data export` commands do: list, check and convert datasets.

* :func:`overview` lists every registered dataset with its task, labels,
  modalities (dim × length), split sizes, whether its files are present and
  which format was found.
* :func:`verify` reads a dataset from its files (never from the cache) and
  checks it: the reader's own checks (keys, shapes, split sizes, label
  vocabulary, safe unpickling), published sha256 sums, sizes and shapes
  against the documented spec, label counts, non-finite counts, samples with
  an empty modality, non-zero padding, and ids repeated within or across
  splits.
* :func:`export` writes any loadable dataset (real, twin or folder) in the
  canonical format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from mmerbench.data.dataset import Dataset
from mmerbench.data.readers import canonical
from mmerbench.data.registry import (
    DATASETS,
    DEFAULT_TWIN_SCALE,
    DEFAULT_TWIN_SEED,
    absent_message,
    format_files,
    found_format,
    get_entry,
    load_dataset,
    read_format,
)
from mmerbench.data.spec import SPLITS, DatasetSpec
from mmerbench.errors import DataError

Level = Literal["ok", "warn", "error"]


@dataclass(frozen=True)
class DatasetRow:
    name: str
    task: str
    labels: tuple[str, ...]
    modalities: str  # "text 300×50, audio 74×50"
    sizes: str  # "train/valid/test"
    status: str  # "generated", "present", "absent"
    format: str  # the format found ("mult-pkl"), "synthetic", or "" when absent


def modalities_text(spec: DatasetSpec) -> str:
    return ", ".join(f"{m} {ms.dim}×{ms.length}" for m, ms in spec.modalities.items())


def sizes_text(spec: DatasetSpec) -> str:
    return "/".join(f"{spec.splits[s]:,}" for s in SPLITS)


def overview(data_dir: str | os.PathLike | None = None) -> list[DatasetRow]:
    """One row per registered dataset (twins show their full-scale sizes)."""
    rows = []
    for name in DATASETS.names():
        entry = DATASETS.get(name)
        spec = entry.spec
        if entry.synthetic:
            status, fmt = "generated", "synthetic"
        else:
            found = found_format(name, data_dir)
            status, fmt = ("present", found.name) if found else ("absent", "")
        rows.append(DatasetRow(name, spec.task, tuple(spec.labels), modalities_text(spec), sizes_text(spec),
                               status, fmt))
    return rows


# --------------------------------------------------------------------------- verify


@dataclass
class Check:
    level: Level
    message: str


@dataclass
class VerifyReport:
    name: str
    format: str
    source: str
    spec: DatasetSpec
    checks: list[Check] = field(default_factory=list)
    splits: list[dict] = field(default_factory=list)  # per split: n, labels, non-finite, empty steps

    @property
    def ok(self) -> bool:
        return not any(c.level == "error" for c in self.checks)

    def add(self, level: Level, message: str) -> None:
        self.checks.append(Check(level, message))


def verify(name: str, *, data_dir: str | os.PathLike | None = None, scale: float | None = None,
           seed: int | None = None) -> VerifyReport:
    """Read `name` from its files (or generate its twin) and check it; see the module docstring."""
    entry = get_entry(name)
    if entry.generate is not None:  # a synthetic twin
        scale = DEFAULT_TWIN_SCALE if scale is None else float(scale)
        seed = DEFAULT_TWIN_SEED if seed is None else int(seed)
        if not 0 < scale <= 1:
            raise DataError(f"Expected `scale` in (0, 1], but got {scale}.")
        ds = entry.generate(scale, seed).validate()
        report = VerifyReport(name, "synthetic", f"generated (scale {scale:g}, seed {seed})", ds.spec)
        report.add("ok", "generated and validated against its spec")
    else:
        if scale is not None or seed is not None:
            raise DataError(f"--scale and --data-seed apply to synthetic twins only, not to {name!r}.")
        fmt = found_format(name, data_dir)
        if fmt is None:
            raise DataError(absent_message(name, data_dir))
        files = format_files(fmt, data_dir)
        report = VerifyReport(name, fmt.name, ", ".join(str(f) for f in files), entry.spec)
        _check_sums(report, fmt, files)
        ds = read_format(fmt, files)
        report.spec = ds.spec
        report.add("ok", f"read with the {fmt.name} reader: keys, shapes, split sizes and label vocabulary valid")
        _compare_with_documented(report, entry.spec, ds.spec, fmt.name)
    for note in ds.report.notes:
        report.add("ok", note)
    _check_content(report, ds)
    return report


def _check_sums(report: VerifyReport, fmt, files: list[Path]) -> None:
    sums = dict(fmt.sha256)
    if fmt.name == "canonical":
        _, meta = canonical.read_spec_yaml(files[0])
        sums.update({str(files[0].parent / k): v for k, v in (meta.get("sha256") or {}).items()})
    if not sums:
        report.add("ok", "no sha256 published for these files: checksums not checked")
        return
    for f in files:
        want = sums.get(str(f)) or sums.get(f.name) or next((v for k, v in sums.items() if str(f).endswith(k)), None)
        if want is None:
            continue
        got = canonical.sha256_of(f)
        if got != str(want).lower():
            report.add("error", f"{f}: sha256 {got[:12]}… differs from the published {str(want)[:12]}…")
        else:
            report.add("ok", f"{f.name}: sha256 matches")


def _compare_with_documented(report: VerifyReport, documented: DatasetSpec, got: DatasetSpec, fmt: str) -> None:
    for split in SPLITS:
        if documented.splits.get(split) != got.splits.get(split):
            report.add("warn", f"{split} has {got.splits[split]:,} samples; the documented size is "
                               f"{documented.splits.get(split, 0):,}")
    for m, ms in got.modalities.items():
        doc = documented.modalities.get(m)
        if doc is not None and (doc.dim, doc.length) != (ms.dim, ms.length):
            report.add("warn", f"{m} is {ms.dim}×{ms.length} in this {fmt} file; the catalog lists "
                               f"{doc.dim}×{doc.length}")
    if tuple(documented.labels) != tuple(got.labels):
        report.add("ok", f"label order from the file: {', '.join(got.labels)}")


def _check_content(report: VerifyReport, ds: Dataset) -> None:
    spec = ds.spec
    seen_ids: dict[str, str] = {}
    repeated_across = 0
    for split in SPLITS:
        s = ds[split]
        n = len(s)
        y = np.asarray(s.labels)
        row: dict = {"split": split, "n": n}
        if spec.task == "multilabel":
            counts = y.sum(0) if n else np.zeros(len(spec.labels))
            row["labels"] = ", ".join(f"{lab} {int(c)}" for lab, c in zip(spec.labels, counts))
            row["no label"] = int((y.sum(1) == 0).sum()) if n else 0
            never = [lab for lab, c in zip(spec.labels, counts) if c == 0]
            if never and n:
                report.add("warn", f"{split}: label(s) {', '.join(never)} never present")
        elif spec.task in ("multiclass", "binary"):
            names = spec.labels if spec.task == "multiclass" else ("negative", spec.labels[0])
            counts = np.bincount(y.astype(np.int64), minlength=len(names)) if n else np.zeros(len(names), int)
            row["labels"] = ", ".join(f"{lab} {int(c)}" for lab, c in zip(names, counts))
            if n and (counts == 0).any():
                report.add("warn", f"{split}: class(es) {', '.join(n_ for n_, c in zip(names, counts) if c == 0)} "
                                   "never occur")
        else:
            row["labels"] = (f"min {y.min():.2f}, mean {y.mean():.2f}, max {y.max():.2f}, zero {int((y == 0).sum())}"
                             if n else "")
        nonfinite = ds.report.nonfinite.get(split, {})
        row["non-finite"] = sum(nonfinite.values())
        for m, c in nonfinite.items():
            if c:
                report.add("warn", f"{split}: {c:,} non-finite value(s) in {m} set to 0")
        empty, padding = [], 0
        for m in spec.modalities:
            mask = np.asarray(s.masks[m])
            k = int((~mask.any(1)).sum()) if n else 0
            if k:
                empty.append(f"{m} {k}")
            x = s.inputs[m]
            for lo in range(0, n, 1024):
                xs = np.asarray(x[lo:lo + 1024])
                padding += int(np.count_nonzero(xs[~mask[lo:lo + 1024]]))
        row["empty modality"] = ", ".join(empty)
        if empty:
            report.add("warn", f"{split}: samples with no real step: {', '.join(empty)}")
        if padding:
            report.add("warn", f"{split}: {padding:,} non-zero value(s) on padded steps")
        ids = [str(i) for i in s.ids]
        if len(set(ids)) != len(ids):
            report.add("warn", f"{split}: {len(ids) - len(set(ids))} repeated sample id(s)")
        for i in set(ids):
            if i in seen_ids and seen_ids[i] != split:
                repeated_across += 1
            seen_ids.setdefault(i, split)
        report.splits.append(row)
    if repeated_across:
        report.add("warn", f"{repeated_across} sample id(s) occur in more than one split")


# --------------------------------------------------------------------------- export


def export(name: str, out: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
           scale: float | None = None, seed: int | None = None, overwrite: bool = False) -> Path:
    """Write dataset `name` (registered, twin, or folder) to `out` in the canonical format."""
    ds = load_dataset(name, data_dir=data_dir, scale=scale, seed=seed)
    return canonical.write_canonical(ds, out, overwrite=overwrite)
