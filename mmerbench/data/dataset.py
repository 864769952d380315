"""In-memory datasets: per split, per modality a float32 array [N, L, D] and a mask [N, L]."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmerbench.data.spec import SPLITS, DatasetSpec, check_names
from mmerbench.errors import DataError
from mmerbench.safepath import check_distinct, check_name


@dataclass
class Split:
    inputs: dict[str, np.ndarray]  # modality -> float32 [N, L, D]
    masks: dict[str, np.ndarray]  # modality -> bool [N, L], True = a real time step
    labels: np.ndarray  # multilabel int8 [N, C]; multiclass int64 [N]; regression float32 [N]; binary int64 [N]
    ids: np.ndarray  # str [N]
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # optional per-sample arrays [N, ...]
    text_raw: np.ndarray | None = None  # optional utterance text, fixed-width unicode [N] (for text encoders)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class LoadReport:
    """What a load found: non-finite values zeroed (per split and modality), source and cache use."""

    source: str = ""
    nonfinite: dict[str, dict[str, int]] = field(default_factory=dict)
    from_cache: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def nonfinite_total(self) -> int:
        return sum(n for per in self.nonfinite.values() for n in per.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "nonfinite": self.nonfinite,
            "nonfinite_total": self.nonfinite_total,
            "from_cache": self.from_cache,
            "notes": list(self.notes),
        }


@dataclass
class Dataset:
    spec: DatasetSpec
    splits: dict[str, Split]
    report: LoadReport = field(default_factory=LoadReport)

    def __getitem__(self, split: str) -> Split:
        return self.splits[split]

    def validate(self) -> "Dataset":
        """Check names, split sizes and every array against the spec; raise DataError naming the first mismatch.

        Every reader's output passes through here (so does the cache's), which
        makes it the one place where a name that would reach a path, or an
        empty split, is refused for every format.
        """
        spec = self.spec
        source = self.report.source or spec.name
        check_names(spec, where=source)
        for split in SPLITS:
            if split not in self.splits:
                raise DataError(f"{spec.name}: split {split!r} is missing.")
        for split, s in self.splits.items():
            n = len(s)
            if n == 0:  # no metric is defined over no samples, and nothing can be trained on none
                raise DataError(f"{source}: the {split} split holds no samples; each of "
                                f"{', '.join(SPLITS)} needs at least one.")
            where = f"{spec.name}/{split}"
            for k in s.extras:
                check_name(k, where=f"{source} ({split})", field="extra name")
            check_distinct(s.extras, where=f"{source} ({split})", field="extra name")
            if s.ids.shape != (n,):
                raise DataError(f"{where}: expected {n} ids, but got shape {s.ids.shape}.")
            if s.text_raw is not None and (s.text_raw.shape != (n,) or s.text_raw.dtype.kind != "U"):
                raise DataError(f"{where}: expected the raw text as {n} strings, but got "
                                f"{s.text_raw.dtype} {tuple(s.text_raw.shape)}.")
            _check_labels(spec, s.labels, where)
            for m, ms in spec.modalities.items():
                if m not in s.inputs:
                    raise DataError(f"{where}: modality {m!r} is missing.")
                x, mask = s.inputs[m], s.masks.get(m)
                if x.ndim != 3 or x.shape[0] != n or x.shape[2] != ms.dim or x.shape[1] != ms.length:
                    raise DataError(
                        f"{where}: expected {m} features of shape ({n}, {ms.length}, {ms.dim}), "
                        f"but got {tuple(x.shape)}."
                    )
                if mask is None or mask.shape != (n, ms.length) or mask.dtype != np.bool_:
                    raise DataError(f"{where}: expected a boolean {m} mask of shape ({n}, {ms.length}).")
            for k, v in s.extras.items():
                if v.shape[0] != n:
                    raise DataError(f"{where}: extra {k!r} has {v.shape[0]} rows for {n} samples.")
        return self


def _check_labels(spec: DatasetSpec, y: np.ndarray, where: str) -> None:
    n = y.shape[0]
    if spec.task == "multilabel":
        if y.shape != (n, spec.num_labels) or not np.isin(y, (0, 1)).all():
            raise DataError(f"{where}: expected 0/1 labels of shape ({n}, {spec.num_labels}), but got {y.shape}.")
    elif spec.task in ("multiclass", "binary"):
        k = spec.num_labels if spec.task == "multiclass" else 2
        if y.ndim != 1 or (n and (y.min() < 0 or y.max() >= k)):
            raise DataError(f"{where}: expected class indices in [0, {k}) of shape ({n},).")
    elif spec.task == "regression":
        if y.ndim != 1 or not np.isfinite(y).all():
            raise DataError(f"{where}: expected finite regression targets of shape ({n},).")


def text_array(values: Any, n: int, *, where: str) -> np.ndarray:
    """Utterance texts as a fixed-width unicode array [N] (what ``np.save(allow_pickle=False)`` can store).

    Bytes are decoded as UTF-8; anything that is not text (a number, a nested list, None) is refused
    rather than turned into its repr, which a tokeniser would read as words.
    """
    try:
        items = list(values)
    except TypeError:
        raise DataError(f"{where}: expected a list of {n} utterance texts, but got {type(values).__name__}.") from None
    if len(items) != n:
        raise DataError(f"{where}: expected {n} utterance texts, but got {len(items)}.")
    out = []
    for i, v in enumerate(items):
        if isinstance(v, np.ndarray) and v.ndim == 0:
            v = v.item()
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{where}: text {i} is not valid UTF-8.") from None
        if not isinstance(v, str):
            raise DataError(f"{where}: text {i} is a {type(v).__name__}, not a string.")
        out.append(v)
    return np.array(out, dtype=str) if out else np.zeros(0, dtype="<U1")


def zero_nonfinite(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Set NaN/±inf to 0 in place (copying read-only arrays) and return how many there were."""
    bad = ~np.isfinite(x)
    count = int(bad.sum())
    if count:
        if not x.flags.writeable:
            x = x.copy()
        x[bad] = 0.0
    return x, count


def mask_from_features(x: np.ndarray) -> np.ndarray:
    """A time step is real when any of its features is non-zero (how the public files pad)."""
    return np.any(x != 0, axis=-1)
