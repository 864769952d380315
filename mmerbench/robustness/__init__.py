"""Robustness: stored models scored under missing and corrupted modalities.

* :mod:`~mmerbench.robustness.corruptions` — the corruptions, pure seeded functions on a split;
* :mod:`~mmerbench.robustness.scoring` — ``mmerbench robustness``: score and store them per run;
* :mod:`~mmerbench.robustness.summary` — the stored records as a tidy frame, and their summaries.
"""

from __future__ import annotations

from mmerbench.robustness.corruptions import Corruption, apply, default_corruptions, parse
from mmerbench.robustness.scoring import RobustnessRequest, robustness
from mmerbench.robustness.summary import collect, summarize

__all__ = ["Corruption", "RobustnessRequest", "apply", "collect", "default_corruptions", "parse", "robustness",
           "summarize"]
