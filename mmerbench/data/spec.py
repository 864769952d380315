"""DatasetSpec: everything a method may know about a dataset."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from mmerbench.safepath import check_distinct, check_label, check_name, shown

Task = Literal["multilabel", "multiclass", "regression", "binary"]
TASKS: tuple[str, ...] = ("multilabel", "multiclass", "regression", "binary")
SPLITS: tuple[str, ...] = ("train", "valid", "test")


@dataclass(frozen=True)
class ModalitySpec:
    dim: int
    length: int


@dataclass(frozen=True)
class SourceSpec:
    """Where the data comes from: the reader and the files it expects under the data root."""

    reader: str
    files: tuple[str, ...]
    sha256: dict[str, str] = field(default_factory=dict)
    url: str = ""
    note: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    task: Task
    labels: tuple[str, ...]
    modalities: dict[str, ModalitySpec]
    splits: dict[str, int]
    threshold: float = 0.5
    source: SourceSpec | None = None
    synthetic: bool = False
    twin_of: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"Expected `task` to be one of {TASKS}, but got {shown(self.task)}")

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def base_name(self) -> str:
        """The real dataset this spec describes (a twin's real set), used to pick paper configs."""
        return self.twin_of or self.name

    def with_(self, **changes: Any) -> "DatasetSpec":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = list(self.labels)
        if self.source is not None:
            d["source"]["files"] = list(self.source.files)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DatasetSpec":
        d = dict(d)
        d["labels"] = tuple(d["labels"])
        d["modalities"] = {k: ModalitySpec(**v) for k, v in d["modalities"].items()}
        d["splits"] = {k: int(v) for k, v in d["splits"].items()}
        if d.get("source"):
            src = dict(d["source"])
            src["files"] = tuple(src["files"])
            d["source"] = SourceSpec(**src)
        return cls(**d)


def check_names(spec: DatasetSpec, *, where: str) -> None:
    """Hold every name in ``spec`` that may reach a path to the plain-name rule (labels to the label rule).

    ``where`` names the file the spec came from; the error names it and the field.
    """
    check_name(spec.name, where=where, field="the spec's name")
    for m in spec.modalities:
        check_name(m, where=where, field="modality name")
    check_distinct(spec.modalities, where=where, field="modality name")
    for s in spec.splits:
        check_name(s, where=where, field="split name")
    for label in spec.labels:
        check_label(label, where=where)
    check_distinct(spec.labels, where=where, field="label name")
