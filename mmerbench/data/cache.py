"""A cache of `.npy` arrays, memory-mapped on later loads and rebuilt when the source changes.

Layout of one cache entry (a folder)::

    manifest.json            spec, load report, source fingerprint, cache version (written last)
    <split>/<modality>.npy   float32 [N, L, D]   (memory-mapped on load)
    <split>/<modality>.mask.npy, labels.npy, ids.npy, extra.<name>.npy

An entry is written to a temporary folder and renamed into place, so a killed
conversion never leaves a half-written entry that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mmerbench.data.dataset import Dataset, LoadReport, Split
from mmerbench.data.spec import DatasetSpec
from mmerbench.errors import DataError
from mmerbench.safepath import join

CACHE_VERSION = 1
MANIFEST = "manifest.json"


def fingerprint(files: list[Path], **extra: Any) -> dict[str, Any]:
    """Size and modification time of each source file (cheap; a changed file changes one of them)."""
    fp: dict[str, Any] = {"cache_version": CACHE_VERSION, **extra, "files": {}}
    for f in files:
        st = Path(f).stat()
        fp["files"][str(Path(f).name)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}
    return fp


def load_or_build(entry: Path, fp: dict[str, Any], build: Callable[[], Dataset]) -> Dataset:
    ds = load(entry, fp)
    if ds is not None:
        return ds
    ds = build()
    write(entry, ds, fp)
    out = load(entry, fp)
    if out is None:  # a file system that lost the write, or a dataset the spec check let through
        raise DataError(f"The cache entry {entry} could not be read back right after it was written; "
                        f"delete that folder and try again.")
    out.report.from_cache = False
    return out


def load(entry: Path, fp: dict[str, Any] | None = None) -> Dataset | None:
    """The cached dataset, or None when absent, stale (fingerprint differs) or unreadable."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        if fp is not None and manifest.get("fingerprint") != json.loads(json.dumps(fp)):
            return None
        spec = DatasetSpec.from_dict(manifest["spec"])
        splits = {}
        for split, meta in manifest["splits"].items():
            d = entry / split
            splits[split] = Split(
                inputs={m: np.load(d / f"{m}.npy", mmap_mode="r") for m in spec.modalities},
                masks={m: np.load(d / f"{m}.mask.npy") for m in spec.modalities},
                labels=np.load(d / "labels.npy"),
                ids=np.load(d / "ids.npy"),
                extras={k: np.load(d / f"extra.{k}.npy") for k in meta.get("extras", [])},
            )
        rep = manifest.get("report", {})
        report = LoadReport(
            source=rep.get("source", ""),
            nonfinite=rep.get("nonfinite", {}),
            from_cache=True,
            notes=list(rep.get("notes", [])),
        )
        return Dataset(spec, splits, report).validate()
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        return None


def _check_file_names(modalities: Any, extras: Any, where: Path) -> None:
    """Two arrays must not share a file (a modality named ``labels`` or ``x.mask``, or names equal but for case)."""
    owners: dict[str, str] = {}
    names = [(f"{m}.npy", f"modality {m!r}") for m in modalities]
    names += [(f"{m}.mask.npy", f"the mask of {m!r}") for m in modalities]
    names += [("labels.npy", "the labels"), ("ids.npy", "the ids")]
    names += [(f"extra.{k}.npy", f"extra {k!r}") for k in extras]
    for file, owner in names:
        other = owners.setdefault(file.casefold(), owner)
        if other != owner:
            raise DataError(f"Refused to write the cache in {where}: {owner} and {other} would share one file.")


def write(entry: Path, ds: Dataset, fp: dict[str, Any]) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".{entry.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        splits_meta = {}
        for split, s in ds.splits.items():
            d = join(tmp, split)
            d.mkdir(parents=True)
            _check_file_names(ds.spec.modalities, s.extras, d)
            for m in ds.spec.modalities:
                np.save(join(d, f"{m}.npy"), np.ascontiguousarray(s.inputs[m], dtype=np.float32))
                np.save(join(d, f"{m}.mask.npy"), np.asarray(s.masks[m], dtype=bool))
            np.save(join(d, "labels.npy"), np.asarray(s.labels))
            np.save(join(d, "ids.npy"), np.asarray(s.ids).astype(str), allow_pickle=False)
            for k, v in s.extras.items():
                np.save(join(d, f"extra.{k}.npy"), np.asarray(v), allow_pickle=False)
            splits_meta[split] = {"n": len(s), "extras": sorted(s.extras)}
        manifest = {
            "spec": ds.spec.to_dict(),
            "report": ds.report.to_dict(),
            "fingerprint": fp,
            "splits": splits_meta,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        old = None
        if entry.exists():
            old = entry.parent / f".{entry.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(entry, old)
        os.replace(tmp, entry)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
