"""Argument checks shared by the tests: one sentence per bad input."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from mmerbench import metrics as metricslib
from mmerbench.stats.verdicts import A_BETTER, B_BETTER, NO_DIFFERENCE, StatsError

# Score-array rank per task (one seed); a leading seed axis adds one.
_SCORE_NDIM = {"multilabel": 2, "multiclass": 2, "regression": 1, "binary": 1}


def _expected(name: str, what: str, got: Any) -> StatsError:
    return StatsError(f"Expected `{name}` to be {what}, but got {got}")


def _check_alpha(alpha: Any, name: str = "alpha") -> float:
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real) or not 0 < alpha < 1:
        raise _expected(name, "a number strictly between 0 and 1", repr(alpha))
    return float(alpha)


def _check_count(n: Any, name: str, minimum: int = 1) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral) or n < minimum:
        raise _expected(name, f"an integer >= {minimum}", repr(n))
    return int(n)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise _expected("seed", "a non-negative integer", repr(seed))
    return int(seed)


def _values(x: Any, name: str, minimum: int, what: str = "values") -> np.ndarray:
    """A 1-D finite float array of at least ``minimum`` values."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise _expected(name, f"a 1-D sequence of numbers ({what})", f"{type(x).__name__} ({e})") from None
    if arr.ndim != 1:
        raise _expected(name, f"a 1-D sequence of numbers ({what})", f"shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise _expected(name, "finite (no NaN or inf)", f"{int((~np.isfinite(arr)).sum())} non-finite value(s)")
    if arr.size < minimum:
        raise _expected(name, f"at least {minimum} {what}", f"{arr.size}")
    return arr


def _direction(metric: str | None, higher_is_better: bool | None) -> bool:
    """The direction of the compared values: from ``metric``'s metadata when named, else as given, else higher."""
    if metric is not None:
        d = metricslib.direction(metric)
        if higher_is_better is not None and bool(higher_is_better) != d:
            better = "higher" if d else "lower"
            raise StatsError(f"`higher_is_better={higher_is_better}` contradicts metric {metric!r}, "
                             f"where {better} is better.")
        return d
    return True if higher_is_better is None else bool(higher_is_better)


def _verdict(significant: bool, a_minus_b: float, higher_is_better: bool) -> str:
    if not significant or a_minus_b == 0:
        return NO_DIFFERENCE
    return A_BETTER if (a_minus_b > 0) == higher_is_better else B_BETTER
