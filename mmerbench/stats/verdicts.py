"""Verdicts and result records of the statistical tests (plain data, JSON-ready)."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmerbench.errors import MmerbenchError

A_BETTER = "A better"
B_BETTER = "B better"
NO_DIFFERENCE = "no significant difference"
# A test whose input cannot support any verdict (no variance, too few seeds or
# samples): it says why in ``note`` and never declares a winner.
NOT_APPLICABLE = "not applicable"


class StatsError(MmerbenchError, ValueError):
    """Invalid input to a statistical test, said in one sentence."""


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


def _plain(x: Any) -> Any:
    """JSON-friendly copy: numpy scalars → Python, tuples → lists, paths → str."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, numbers.Real):
        return float(x)
    if isinstance(x, Path):
        return str(x)
    return x


@dataclass(frozen=True)
class ComparisonResult:
    """One pairwise test of A against B.

    ``statistic`` is, per test: Welch's t of ``A − B``; ASO's violation ratio
    ε_W2(A, B) (scores oriented so that larger is better); the observed
    metric difference Δ = M(A) − M(B) for the bootstrap and permutation
    tests. ``p_value`` is None for ASO, whose evidence is ``eps_min``
    (ε_min(A, B); A is better when it is below ``details["tau"]``). ``n`` is
    the number of observations: seeds of A plus seeds of B for Welch and
    ASO, paired test samples for the per-sample tests (``details`` holds
    ``n_a`` / ``n_b`` and the rest: means, confidence interval, resamples).

    A test whose input is degenerate (no variance across seeds, too few seeds
    or samples) returns ``verdict == NOT_APPLICABLE`` with the reason in
    ``note`` and no statistic or p-value: zero variance is not certainty.
    """

    test: str
    statistic: float | None
    verdict: str
    n: int
    alpha: float
    p_value: float | None = None
    eps_min: float | None = None
    metric: str | None = None
    higher_is_better: bool = True
    details: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def significant(self) -> bool:
        return self.verdict in (A_BETTER, B_BETTER)

    @property
    def applicable(self) -> bool:
        return self.verdict != NOT_APPLICABLE

    @property
    def sign(self) -> int:
        """+1 when A is significantly better, −1 when B is, 0 otherwise."""
        return {A_BETTER: 1, B_BETTER: -1}.get(self.verdict, 0)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True)
class HolmResult:
    """Holm-adjusted p-values, in the order given, and which hypotheses are rejected at ``alpha``."""

    p_values: tuple[float, ...]
    adjusted: tuple[float, ...]
    reject: tuple[bool, ...]
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman's χ²_F (scipy, tie-corrected), the Iman–Davenport F_F, and average ranks (1 = best)."""

    statistic: float
    p_value: float
    iman_davenport: float
    iman_davenport_p: float
    avg_ranks: dict[str, float]
    n: int  # datasets (rows)
    k: int  # methods (columns)
    alpha: float
    verdict: str  # "the methods differ", NO_DIFFERENCE (on the χ²_F p-value) or NOT_APPLICABLE (all tie)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True)
class NemenyiResult:
    """Nemenyi post-hoc test: average ranks (1 = best), CD, pairwise p-values, cliques."""

    avg_ranks: dict[str, float]
    cd: float
    q_alpha: float
    p_values: dict[str, dict[str, float]]  # p_values[a][b], symmetric, 1.0 on the diagonal
    significant: tuple[tuple[str, str], ...]  # (better, worse) pairs whose ranks differ by ≥ CD
    cliques: tuple[tuple[str, ...], ...]  # maximal groups of methods within CD of each other
    n: int
    k: int
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def not_applicable(test: str, why: str, *, n: int, alpha: float, metric: str | None, higher_is_better: bool,
                   details: dict[str, Any] | None = None) -> ComparisonResult:
    """The result of a test that cannot decide on this input, with the reason."""
    return ComparisonResult(test=test, statistic=None, verdict=NOT_APPLICABLE, n=n, alpha=alpha, metric=metric,
                            higher_is_better=higher_is_better, details=dict(details or {}),
                            note=f"not applicable: {why}")
