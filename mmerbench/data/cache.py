"""A cache of `.npy` arrays, memory-mapped on later loads and rebuilt when the source changes.

Layout of one cache entry (a folder)::

    manifest.json            spec, load report, source fingerprint, cache version,
                             sha256 of every array file and of every source file (written last)
    <split>/<modality>.npy   float32 [N, L, D]   (memory-mapped on load)
    <split>/<modality>.mask.npy, labels.npy, ids.npy, extra.<name>.npy,
    <split>/text_raw.npy     (when the source carries utterance text; fixed-width unicode)

An entry is written to a temporary folder and renamed into place, so a killed
conversion never leaves a half-written entry that looks complete. Writers of one
entry take a file lock beside it (``.<entry>.lock``), so whatever temporary
folders they find are left by a killed writer and are removed.

What is checked: every load compares the source files' size, modification time
and inode with the manifest (cheap; catches a replaced or rewritten file). The
first load of an entry in a process also hashes every array file and every
source file and compares them with the manifest's sha256 (catches values changed
behind a valid ``.npy`` header, and a source edited in place with its size and
time restored); a mismatch rebuilds the entry from the source.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mmerbench.data.dataset import Dataset, LoadReport, Split
from mmerbench.data.spec import DatasetSpec
from mmerbench.errors import DataError
from mmerbench.locks import file_lock
from mmerbench.safepath import join

CACHE_VERSION = 3  # 2: content hashes in the manifest; 3: the raw text
MANIFEST = "manifest.json"

# Entries whose content hashes matched in this process, keyed by the manifest's identity
# (a rewritten manifest is a new key, so a rebuilt entry is checked again).
_VERIFIED: set[tuple[str, int, int]] = set()


def fingerprint(files: list[Path], **extra: Any) -> dict[str, Any]:
    """Size and modification time of each source file (cheap; a changed file changes one of them)."""
    fp: dict[str, Any] = {"cache_version": CACHE_VERSION, **extra, "files": {}}
    for f in files:
        st = Path(f).stat()
        fp["files"][str(Path(f).name)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}
    return fp


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _hash_all(files: list[Path]) -> list[str]:
    # hashlib releases the GIL on large buffers, so files hash in parallel on threads.
    if len(files) < 2:
        return [sha256(f) for f in files]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(sha256, files))


def _array_hashes(folder: Path) -> dict[str, str]:
    files = sorted(folder.rglob("*.npy"))
    return {p.relative_to(folder).as_posix(): h for p, h in zip(files, _hash_all(files))}


def _source_hashes(sources: list[Path]) -> dict[str, str]:
    files = [Path(f) for f in sources]
    return {f.name: h for f, h in zip(files, _hash_all(files))}


def verify(entry: Path, sources: list[Path] = ()) -> bool:
    """True when the entry's array files and the sources hash as its manifest recorded (once per process)."""
    try:
        st = (entry / MANIFEST).stat()
        key = (str(entry.resolve()), st.st_ino, st.st_mtime_ns)
        if key in _VERIFIED:
            return True
        manifest = json.loads((entry / MANIFEST).read_text())
        ok = (manifest.get("hashes") == _array_hashes(entry)
              and manifest.get("sources", {}) == _source_hashes(list(sources)))
    except (OSError, ValueError):
        return False
    if ok:
        _VERIFIED.add(key)
    return ok


def _remove_leftovers(entry: Path) -> None:
    """Temporary and replaced folders of this entry left by a killed writer (call with the entry's lock held)."""
    for pattern in (f".{entry.name}.tmp-*", f".{entry.name}.old-*"):
        for p in entry.parent.glob(pattern):
            shutil.rmtree(p, ignore_errors=True)


def load_or_build(entry: Path, fp: dict[str, Any], build: Callable[[], Dataset],
                  sources: list[Path] = ()) -> Dataset:
    """The cached dataset when its fingerprint and content hashes match; else built, written and reloaded.

    ``sources``: the files the entry is converted from, hashed into its manifest."""
    ds = load(entry, fp, sources)
    if ds is not None:
        return ds
    entry.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(entry.parent / f".{entry.name}.lock"):
        ds = load(entry, fp, sources)  # another process may have built it while we waited
        if ds is not None:
            return ds
        _remove_leftovers(entry)
        ds = build()
        write(entry, ds, fp, sources)
    out = load(entry, fp, sources)
    if out is None:  # a file system that lost the write, or a dataset the spec check let through
        raise DataError(f"The cache entry {entry} could not be read back right after it was written; "
                        f"delete that folder and try again.")
    out.report.from_cache = False
    return out


def load(entry: Path, fp: dict[str, Any] | None = None, sources: list[Path] = ()) -> Dataset | None:
    """The cached dataset, or None when absent, stale (fingerprint or content hashes differ) or unreadable."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        if fp is not None and manifest.get("fingerprint") != json.loads(json.dumps(fp)):
            return None
        if not verify(entry, sources):
            return None
        spec = DatasetSpec.from_dict(manifest["spec"])
        splits = {}
        for split, meta in manifest["splits"].items():
            d = join(entry, split)  # names from the manifest, so read through the same guard
            splits[split] = Split(
                inputs={m: np.load(join(d, f"{m}.npy"), mmap_mode="r") for m in spec.modalities},
                masks={m: np.load(join(d, f"{m}.mask.npy")) for m in spec.modalities},
                labels=np.load(d / "labels.npy"),
                ids=np.load(d / "ids.npy"),
                extras={k: np.load(join(d, f"extra.{k}.npy")) for k in meta.get("extras", [])},
                text_raw=np.load(d / "text_raw.npy") if meta.get("text_raw") else None,
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
    names += [("labels.npy", "the labels"), ("ids.npy", "the ids"), ("text_raw.npy", "the raw text")]
    names += [(f"extra.{k}.npy", f"extra {k!r}") for k in extras]
    for file, owner in names:
        other = owners.setdefault(file.casefold(), owner)
        if other != owner:
            raise DataError(f"Refused to write the cache in {where}: {owner} and {other} would share one file.")


def publish(tmp: Path, entry: Path) -> None:
    """Put the finished folder `tmp` in place of `entry`: the old entry is moved aside first, so a reader sees
    the old folder or the new one, never a half-replaced one (with the entry's lock held where another
    process may write it: the caches; also the canonical export)."""
    old = None
    if entry.exists():
        old = entry.parent / f".{entry.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(entry, old)
    os.replace(tmp, entry)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write(entry: Path, ds: Dataset, fp: dict[str, Any], sources: list[Path] = ()) -> None:
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
            if s.text_raw is not None:  # fixed-width unicode, so no pickle is needed to store it
                np.save(d / "text_raw.npy", np.asarray(s.text_raw, dtype=str), allow_pickle=False)
            splits_meta[split] = {"n": len(s), "extras": sorted(s.extras), "text_raw": s.text_raw is not None}
        manifest = {
            "spec": ds.spec.to_dict(),
            "report": ds.report.to_dict(),
            "fingerprint": fp,
            "splits": splits_meta,
            "hashes": _array_hashes(tmp),
            "sources": _source_hashes(list(sources)),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        publish(tmp, entry)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
