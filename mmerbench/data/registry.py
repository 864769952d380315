"""The dataset registry: name → (static spec, how to load it).

Real datasets are read from the data root by their format's reader and cached
as `.npy` arrays; synthetic twins are generated from a seed and cached the same
way. A real dataset may be published in several formats (CMU-MOSI as the MulT
authors' pickle or the MMSA authors' pickle): its entry lists them, and the
first whose files are all present is read; the loaded spec's `source` names
it. A real dataset that is absent is an error naming the files expected and
where; it never falls back to its twin. A folder in the canonical format
(`spec.yaml` + one `.npz` per split) can be given by its path instead of a
name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from mmerbench.data import paths
from mmerbench.data.cache import fingerprint, load_or_build
from mmerbench.data.dataset import Dataset
from mmerbench.data.spec import DatasetSpec, SourceSpec
from mmerbench.errors import DataError
from mmerbench.registry import Registry
from mmerbench.safepath import join

DEFAULT_TWIN_SCALE = 0.2  # a fifth of the real split sizes
DEFAULT_TWIN_SEED = 0


@dataclass(frozen=True)
class DataFormat:
    """One public release format a real dataset can be read from."""

    name: str  # short id shown by `mmerbench datasets` and stored in the loaded spec's source
    files: tuple[str, ...]  # relative to the data root (absolute for a folder given by its path)
    read: Callable[[list[Path]], Dataset]
    description: str = ""
    version: int = 1  # bump when the reader's output changes: cached conversions are rebuilt
    sha256: Mapping[str, str] = field(default_factory=dict)  # published checksums (file → hex digest)
    optional: tuple[str, ...] = ()  # files the reader also reads when present (in the cache key when they are)


@dataclass(frozen=True)
class DatasetEntry:
    spec: DatasetSpec  # static: for real sets the labels are the documented order until a file is read
    read: Callable[[list[Path]], Dataset] | None = None  # real, one format: reader over spec.source.files
    generate: Callable[[float, int], Dataset] | None = None  # twin: (scale, seed) -> Dataset
    reader_version: int = 1
    formats: tuple[DataFormat, ...] = ()  # real, one or more formats, tried in order
    key: str | None = None  # name in the cache and run store when not spec.name (folders given by path)

    @property
    def synthetic(self) -> bool:
        return self.generate is not None

    @property
    def name(self) -> str:
        return self.key or self.spec.name

    def all_formats(self) -> tuple[DataFormat, ...]:
        if self.formats:
            return self.formats
        src = self.spec.source
        if self.read is not None and src is not None:
            return (DataFormat(src.reader, tuple(src.files), self.read, version=self.reader_version,
                               sha256=dict(src.sha256)),)
        return ()


def _import_all() -> None:
    # Importing these modules registers their datasets (the twins last: they copy the real specs).
    from mmerbench.data.readers import mosei  # noqa: F401
    from mmerbench.data import catalog  # noqa: F401
    from mmerbench.data import synthetic  # noqa: F401


DATASETS: Registry[DatasetEntry] = Registry("dataset", loader=_import_all)


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    DATASETS.add(entry.spec.name, entry)
    return entry


def list_datasets() -> list[str]:
    return DATASETS.names()


def get_entry(name: str) -> DatasetEntry:
    """The entry of a registered name, or of a canonical folder given by its path (`--dataset path/to/folder`)."""
    from mmerbench.data.readers.canonical import folder_entry, is_folder_path

    if name not in DATASETS and is_folder_path(name):
        return folder_entry(name)
    return DATASETS.get(name)


def format_files(fmt: DataFormat, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """A format's files as paths (relative names are under the data root)."""
    root = paths.data_root(data_dir)
    return [Path(f) if Path(f).is_absolute() else root / f for f in fmt.files]


def expected_files(entry: DatasetEntry, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The files of the entry's first (preferred) format."""
    formats = entry.all_formats()
    return format_files(formats[0], data_dir) if formats else []


def found_format(name: str, data_dir: str | os.PathLike | None = None) -> DataFormat | None:
    """The first format of a real dataset whose files are all present, or None."""
    for fmt in get_entry(name).all_formats():
        if all(f.is_file() for f in format_files(fmt, data_dir)):
            return fmt
    return None


def is_present(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    return get_entry(name).synthetic or found_format(name, data_dir) is not None


def absent_message(name: str, data_dir: str | os.PathLike | None = None) -> str:
    """One sentence: which files (of which format) the data root should hold for `name`."""
    entry = get_entry(name)
    root = paths.data_root(data_dir)
    options = []
    for fmt in entry.all_formats():
        want = " and ".join(str(f.relative_to(root)) if f.is_relative_to(root) else str(f)
                            for f in format_files(fmt, data_dir))
        options.append(f"{want} ({fmt.description})" if fmt.description and len(entry.all_formats()) > 1 else want)
    twin = f"synth-{name}"
    hint = f", or run on its synthetic twin {twin!r}" if twin in DATASETS else ""
    return (
        f"Dataset {name!r} is not in {root}: expected {', or '.join(options)} there "
        f"(set --data-dir or $MMERBENCH_DATA to the folder that holds them{hint})."
    )


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    scale: float | None = None,
    seed: int | None = None,
) -> Dataset:
    """Load a registered dataset (real from the data root, or a synthetic twin), cached."""
    entry = get_entry(name)
    cache = paths.cache_root(data_dir)
    if entry.generate is not None:  # a synthetic twin
        scale = DEFAULT_TWIN_SCALE if scale is None else float(scale)
        seed = DEFAULT_TWIN_SEED if seed is None else int(seed)
        if not 0 < scale <= 1:
            raise DataError(f"Expected `scale` in (0, 1], but got {scale}.")
        fp = {"generator_version": entry.reader_version, "scale": scale, "seed": seed}
        key = f"{name}-scale{scale:g}-seed{seed}"
        gen = entry.generate
        return load_or_build(join(cache, key), fingerprint([], **fp), lambda: gen(scale, seed).validate())
    if scale is not None or seed is not None:
        raise DataError(f"`scale` and `seed` apply to synthetic twins only, not to {name!r}.")
    fmt = found_format(name, data_dir)
    if fmt is None:
        raise DataError(absent_message(name, data_dir))
    files = format_files(fmt, data_dir)
    root = paths.data_root(data_dir)
    present = [root / f for f in fmt.optional if (root / f).is_file()]
    fp = fingerprint(files + present, reader=fmt.name, reader_version=fmt.version)
    return load_or_build(join(cache, entry.name), fp, lambda: read_format(fmt, files), sources=files + present)


def read_format(fmt: DataFormat, files: list[Path]) -> Dataset:
    """Run a format's reader (no cache) and stamp the loaded spec with the format it came from."""
    ds = fmt.read(files)
    source = ds.spec.source
    note = source.note if source is not None and source.reader == fmt.name else fmt.description
    ds.spec = ds.spec.with_(source=SourceSpec(reader=fmt.name, files=tuple(str(f) for f in fmt.files),
                                              sha256=dict(fmt.sha256), note=note))
    return ds.validate()
