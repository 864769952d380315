"""``mmerbench data import-csd``: CMU-MultimodalSDK computational sequences → a canonical dataset folder.

Steps (the SDK's own recipe, ``examples/.../process_mosei.py``):

1. keep the videos present in every sequence and in the folds (the SDK's
   ``unify``; ids outside the folds are dropped, as ``get_tensors`` does);
2. per video, average every feature sequence over the reference's words
   (:mod:`mmerbench.data.csd_align`), cut one segment per label interval,
   pad or truncate each segment to ``length`` words;
3. split the segments by their video's standard fold and write the canonical
   folder (with sha256 sums) through :func:`write_canonical`.

Step 2 is cached per video under a work folder keyed by the inputs (path,
size and modification time of each file) and the options, written
atomically, so an interrupted import resumes where it stopped and a rerun
with the same inputs does no work again.

Labels (the SDK's ``standard_datasets/*/README.md``):

* CMU-MOSI ``Opinion Segment Labels``: one column, sentiment in [-3, 3];
* CMU-MOSEI ``All Labels``: seven columns ``[sentiment, happy, sad, anger,
  surprise, disgust, fear]``, sentiment in [-3, 3], intensities in [0, 3]. The
  multi-label task marks an emotion present when its intensity is > 0 — the
  SDK README's binarisation ("emotion=0 (emotion not present) and emotion >0
  (emotion present)") and the rule behind the multi-label MOSEI release. The
  other columns travel as extras (``sentiment``, ``intensity``).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mmerbench.data.csd import CsdFile
from mmerbench.data.csd_align import align_to_reference, cut_segments, fit_length
from mmerbench.data.dataset import Dataset, LoadReport, Split
from mmerbench.data.readers.canonical import write_canonical
from mmerbench.data.spec import SPLITS, DatasetSpec, ModalitySpec
from mmerbench.errors import DataError
from mmerbench.safepath import check_distinct, check_name, join, shown

EMOTIONS = ("happy", "sad", "anger", "surprise", "disgust", "fear")  # the SDK's column order after sentiment
STANDARD_FOLDS = ("cmu-mosi", "cmu-mosei")
TASKS = ("auto", "sentiment", "emotions")
CACHE_VERSION = 1


@dataclass
class CsdImport:
    """What to import: ``modalities`` maps a modality name to its ``.csd`` file."""

    modalities: dict[str, Path]
    labels: Path
    folds: str  # one of STANDARD_FOLDS, or a JSON file {"train": [...], "valid": [...], "test": [...]}
    reference: str = "text"
    task: str = "auto"
    length: int = 50
    keep: str = "last"
    name: str | None = None


@dataclass
class ImportSummary:
    out: Path
    spec: DatasetSpec
    videos: int
    reused: int  # videos taken from the work cache
    dropped: dict[str, int] = field(default_factory=dict)  # what was left out, and how much
    zero_filled: dict[str, int] = field(default_factory=dict)  # words with no overlapping row, per modality
    nonfinite: int = 0


def load_folds(folds: str) -> dict[str, list[str]]:
    """The standard folds shipped with the package, or a JSON file of the same form."""
    if folds in STANDARD_FOLDS:
        text = resources.files("mmerbench.data").joinpath("folds", f"{folds}.json").read_text(encoding="utf-8")
        where = f"the packaged {folds} folds"
    else:
        path = Path(folds).expanduser()
        if not path.is_file():
            raise DataError(f"--folds {shown(folds)} is neither {' nor '.join(STANDARD_FOLDS)} nor a JSON file.")
        if path.stat().st_size > 16 << 20:
            raise DataError(f"{path}: a folds file of {path.stat().st_size:,} bytes is too large (16 MiB at most).")
        text, where = path.read_text(encoding="utf-8", errors="replace"), str(path)
    try:
        d = json.loads(text)
    except ValueError as e:
        raise DataError(f"{where} is not valid JSON ({e}).") from None
    if not isinstance(d, dict) or any(not isinstance(d.get(s), list) for s in SPLITS):
        raise DataError(f"{where}: expected an object with lists 'train', 'valid' and 'test' of video ids.")
    seen: dict[str, str] = {}
    for s in SPLITS:
        for vid in d[s]:
            if not isinstance(vid, str):
                raise DataError(f"{where}: fold {s} holds {shown(vid)}, not a video id.")
            if vid in seen:
                raise DataError(f"{where}: video {shown(vid)} is in both {seen[vid]} and {s}.")
            seen[vid] = s
    return {s: list(d[s]) for s in SPLITS}


def _label_task(task: str, dim: int, where: str) -> str:
    if dim not in (1, 1 + len(EMOTIONS)):
        raise DataError(f"{where}: label rows have {dim} columns; expected 1 (MOSI sentiment) or 7 (MOSEI: "
                        "sentiment, then six emotion intensities).")
    if task == "auto":
        return "emotions" if dim == 7 else "sentiment"
    if task == "emotions" and dim != 7:
        raise DataError(f"{where}: the emotions task needs MOSEI's seven label columns, but rows have {dim}.")
    return task


def _check_label_values(y: np.ndarray, where: str) -> None:
    if not np.isfinite(y).all():
        raise DataError(f"{where}: labels hold NaN or infinite values.")
    if (np.abs(y[:, 0]) > 3).any():
        raise DataError(f"{where}: a sentiment label lies outside [-3, 3].")
    if y.shape[1] > 1 and ((y[:, 1:] < 0) | (y[:, 1:] > 3)).any():
        raise DataError(f"{where}: an emotion intensity lies outside [0, 3].")


def _work_key(job: CsdImport, task: str) -> str:
    files = {}
    for role, p in [*(("modality " + m, p) for m, p in job.modalities.items()), ("labels", job.labels)]:
        st = Path(p).stat()
        files[role] = [str(Path(p).resolve()), st.st_size, st.st_mtime_ns]
    blob = json.dumps({"v": CACHE_VERSION, "files": files, "reference": job.reference, "task": task,
                       "length": job.length, "keep": job.keep}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _process_video(vid: str, seqs: dict[str, CsdFile], labels: CsdFile, job: CsdImport, dims: dict[str, int],
                   ) -> tuple[dict[str, np.ndarray], dict[str, int], int]:
    """One video's segments: per modality [S, L, D], lengths [S], labels [S, K], segment index [S]."""
    nonfinite = 0
    read = {}
    for m, f in seqs.items():
        iv, ft, n = f.read(vid, sort=True)  # alignment walks rows in time order
        if ft.shape[1] != dims[m]:
            raise DataError(f"{f.path}: entry {shown(vid)} has {ft.shape[1]} feature columns, others {dims[m]}.")
        read[m] = (iv, ft)
        nonfinite += n
    ref_iv, ref_ft = read[job.reference]
    keep, aligned, empty = align_to_reference(ref_iv, {m: v for m, v in read.items() if m != job.reference})
    aligned[job.reference] = ref_ft[keep]
    words = ref_iv[keep]
    lab_iv, lab_y, n = labels.read(vid)
    if n:
        raise DataError(f"{labels.path}: entry {shown(vid)}: labels hold NaN or infinite values.")
    _check_label_values(lab_y, f"{labels.path}: entry {shown(vid)}")
    out: dict[str, list] = {k: [] for k in [*seqs, "lengths", "labels", "segment"]}
    for j, rows in enumerate(cut_segments(words, lab_iv)):
        if rows.size == 0:
            continue
        for m in seqs:
            x, n_real = fit_length(aligned[m][rows], job.length, job.keep)
            out[m].append(x)
        out["lengths"].append(n_real)
        out["labels"].append(lab_y[j])
        out["segment"].append(j)
    arrays = {m: (np.stack(out[m]) if out[m] else np.zeros((0, job.length, dims[m]), np.float32)) for m in seqs}
    arrays["lengths"] = np.asarray(out["lengths"], dtype=np.int64)
    arrays["labels"] = np.asarray(out["labels"], dtype=np.float32).reshape(-1, lab_y.shape[1])
    arrays["segment"] = np.asarray(out["segment"], dtype=np.int64)
    arrays["dropped"] = np.asarray(lab_iv.shape[0] - len(out["segment"]), dtype=np.int64)
    arrays["nonfinite"] = np.asarray(nonfinite, dtype=np.int64)
    arrays["zero_filled"] = np.asarray([empty.get(m, 0) for m in seqs], dtype=np.int64)
    return arrays, empty, nonfinite


def import_csd(job: CsdImport, out: str | os.PathLike, *, work: str | os.PathLike | None = None,
               overwrite: bool = False, progress: bool = True) -> ImportSummary:
    """Build the canonical folder ``out`` from ``job``'s ``.csd`` files (see the module docstring)."""
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise DataError(f"{out} already exists and is not an empty folder; choose another or pass --force.")
    name = check_name(job.name or out.name, where="import-csd", field="dataset name (--name)")
    if not job.modalities:
        raise DataError("import-csd needs at least one --modality NAME=FILE.csd.")
    for m in job.modalities:
        check_name(m, where="import-csd", field="modality name")
    check_distinct(job.modalities, where="import-csd", field="modality name")
    if job.reference not in job.modalities:
        raise DataError(f"--reference {shown(job.reference)} is not one of the modalities "
                        f"({', '.join(job.modalities)}); the reference is the word-level sequence.")
    if job.length < 1 or job.keep not in ("first", "last") or job.task not in TASKS:
        raise DataError("--length must be at least 1, --keep first or last, --task one of " + ", ".join(TASKS) + ".")
    folds = load_folds(job.folds)

    opened: list[CsdFile] = []
    try:
        seqs: dict[str, CsdFile] = {}
        for m, p in job.modalities.items():
            seqs[m] = CsdFile(p)
            opened.append(seqs[m])
        labels = CsdFile(job.labels)
        opened.append(labels)
        return _run(job, out, work, overwrite, progress, name, folds, seqs, labels)
    finally:
        for f in opened:
            f.close()


def _run(job, out, work, overwrite, progress, name, folds, seqs, labels) -> ImportSummary:
    dims = {}
    for m, f in seqs.items():
        s = f.summary()
        if s.text:
            raise DataError(f"{f.path}: {s.name!r} holds words (byte strings), not numbers; pass the word "
                            f"vectors as modality {m!r} instead.")
        dims[m] = s.dim
    lab = labels.summary()
    task = _label_task(job.task, lab.dim, str(labels.path))

    present = set(labels.entries).intersection(*(f.entries for f in seqs.values()))
    everywhere = set(labels.entries).union(*(f.entries for f in seqs.values()))
    fold_of = {vid: s for s in SPLITS for vid in folds[s]}
    videos = [vid for s in SPLITS for vid in folds[s] if vid in present]  # fold order
    dropped = {"videos not in every sequence": len(everywhere - present),
               "videos in no fold": len(present - set(fold_of))}

    workdir = Path(work).expanduser() if work else out.parent / f".{out.name}.csd-work"
    workdir = workdir / _work_key(job, task)
    workdir.mkdir(parents=True, exist_ok=True)
    reused = 0
    parts: dict[str, list[tuple[str, dict[str, np.ndarray]]]] = {s: [] for s in SPLITS}
    for vid in tqdm(videos, desc="aligning videos", unit="video", disable=not progress, leave=False):
        path = join(workdir, check_name(vid, where=str(labels.path), field="video id") + ".npz")
        arrays = _cached(path, seqs)
        if arrays is not None:
            reused += 1
        else:
            arrays, _, _ = _process_video(vid, seqs, labels, job, dims)
            tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, path)  # a crash leaves no half-written entry to resume from
        parts[fold_of[vid]].append((vid, arrays))

    zero_filled = {m: 0 for m in seqs}
    dropped["segments with no word"] = 0
    nonfinite = 0
    splits = {}
    for s in SPLITS:
        items = parts[s]
        for _, a in items:
            dropped["segments with no word"] += int(a["dropped"])
            nonfinite += int(a["nonfinite"])
            for m, c in zip(seqs, a["zero_filled"]):
                zero_filled[m] += int(c)
        if not items or sum(len(a["segment"]) for _, a in items) == 0:
            raise DataError(f"import-csd: no segment falls in the {s} fold (do the files' video ids match "
                            f"--folds {job.folds}?).")
        splits[s] = _split(items, seqs, job.length, task)
    spec = DatasetSpec(
        name=name, task="multilabel" if task == "emotions" else "regression",
        labels=EMOTIONS if task == "emotions" else ("sentiment",),
        modalities={m: ModalitySpec(dim=dims[m], length=job.length) for m in seqs},
        splits={s: len(splits[s]) for s in SPLITS},
        description=(f"Imported from CMU-MultimodalSDK sequences ({', '.join(Path(f.path).name for f in seqs.values())}; "
                     f"labels {Path(labels.path).name}), averaged over the words of {job.reference!r}, "
                     f"{job.length} words (keep {job.keep}), folds {job.folds}. Not the papers' pickles."))
    ds = Dataset(spec, splits, LoadReport(source=f"import-csd of {labels.path}")).validate()
    write_canonical(ds, out, overwrite=overwrite)
    return ImportSummary(out, spec, len(videos), reused, dropped, zero_filled, nonfinite)


def _cached(path: Path, seqs) -> dict[str, np.ndarray] | None:
    """A video's cached arrays, or None when absent or unreadable (then it is aligned again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception:  # noqa: BLE001  (a damaged cache entry is rebuilt, whatever numpy raises)
        return None
    need = {*seqs, "lengths", "labels", "segment", "dropped", "nonfinite", "zero_filled"}
    return arrays if need <= set(arrays) else None


def _split(items, seqs, length: int, task: str) -> Split:
    def cat(key, empty_shape):
        arrs = [a[key] for _, a in items]
        return np.concatenate(arrs) if arrs else np.zeros(empty_shape)

    lengths = cat("lengths", (0,))
    y = cat("labels", (0, 1))
    inputs = {m: cat(m, (0, length, 1)).astype(np.float32) for m in seqs}
    mask = np.arange(length)[None, :] < lengths[:, None]
    ids = np.asarray([f"{vid}[{j}]" for vid, a in items for j in a["segment"]], dtype=str)
    extras = {}
    if task == "emotions":
        labels = (y[:, 1:] > 0).astype(np.int8)
        extras = {"sentiment": y[:, 0].astype(np.float32), "intensity": y[:, 1:].astype(np.float32)}
    else:
        labels = y[:, 0].astype(np.float32)
        if y.shape[1] > 1:
            extras = {"intensity": y[:, 1:].astype(np.float32)}
    return Split(inputs, {m: mask.copy() for m in seqs}, labels, ids, extras)
