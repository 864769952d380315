"""The dataset registry: name → (static spec, how to load it).

Real datasets are read from the data root by their format's reader and cached
as `.npy` arrays; synthetic twins are generated from a seed and cached the same
way. A real dataset that is absent is an error naming the files expected and
where; it never falls back to its twin.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mmerbench.data import paths
from mmerbench.data.cache import fingerprint, load_or_build
from mmerbench.data.dataset import Dataset
from mmerbench.data.spec import DatasetSpec
from mmerbench.errors import DataError
from mmerbench.registry import Registry

DEFAULT_TWIN_SCALE = 0.2  # a fifth of the real split sizes
DEFAULT_TWIN_SEED = 0


@dataclass(frozen=True)
class DatasetEntry:
    spec: DatasetSpec  # static: for real sets the labels are the documented order until a file is read
    read: Callable[[list[Path]], Dataset] | None = None  # real: reader over the expected files
    generate: Callable[[float, int], Dataset] | None = None  # twin: (scale, seed) -> Dataset
    reader_version: int = 1

    @property
    def synthetic(self) -> bool:
        return self.generate is not None


def _import_all() -> None:
    # Importing these modules registers their datasets.
    from mmerbench.data.readers import mosei  # noqa: F401
    from mmerbench.data import synthetic  # noqa: F401


DATASETS: Registry[DatasetEntry] = Registry("dataset", loader=_import_all)


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    DATASETS.add(entry.spec.name, entry)
    return entry


def list_datasets() -> list[str]:
    return DATASETS.names()


def get_entry(name: str) -> DatasetEntry:
    return DATASETS.get(name)


def expected_files(entry: DatasetEntry, data_dir: str | os.PathLike | None = None) -> list[Path]:
    assert entry.spec.source is not None
    root = paths.data_root(data_dir)
    return [root / f for f in entry.spec.source.files]


def is_present(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    entry = get_entry(name)
    return entry.synthetic or all(f.is_file() for f in expected_files(entry, data_dir))


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
    if entry.synthetic:
        scale = DEFAULT_TWIN_SCALE if scale is None else float(scale)
        seed = DEFAULT_TWIN_SEED if seed is None else int(seed)
        if not 0 < scale <= 1:
            raise DataError(f"Expected `scale` in (0, 1], but got {scale}.")
        fp = {"generator_version": entry.reader_version, "scale": scale, "seed": seed}
        key = f"{name}-scale{scale:g}-seed{seed}"
        assert entry.generate is not None
        gen = entry.generate
        return load_or_build(cache / key, fingerprint([], **fp), lambda: gen(scale, seed).validate())
    if scale is not None or seed is not None:
        raise DataError(f"`scale` and `seed` apply to synthetic twins only, not to {name!r}.")
    files = expected_files(entry, data_dir)
    missing = [f for f in files if not f.is_file()]
    if missing:
        root = paths.data_root(data_dir)
        want = " and ".join(str(f.relative_to(root)) for f in files)
        twin = f"synth-{name}"
        hint = f", or run on its synthetic twin {twin!r}" if twin in DATASETS else ""
        raise DataError(
            f"Dataset {name!r} is not in {root}: expected {want} there "
            f"(set --data-dir or $MMERBENCH_DATA to the folder that holds them{hint})."
        )
    assert entry.read is not None
    read = entry.read
    fp = fingerprint(files, reader=entry.spec.source.reader, reader_version=entry.reader_version)
    return load_or_build(cache / name, fp, lambda: read(files).validate())
