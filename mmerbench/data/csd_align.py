"""Word alignment and segment cutting of computational sequences, as the CMU-MultimodalSDK does them.

The SDK's ``mmdataset.align(reference, collapse_functions=[avg])``
(``mmsdk/mmdatasdk/dataset/dataset.py``) goes through the reference's
intervals (the words) and, for every other sequence, keeps the feature rows
whose interval overlaps the word's (``__intersect_and_copy``):

* a row ``[s0, s1]`` is a candidate when ``s0 < r1 + eps`` and ``s1 > r0 - eps``
  (``eps`` = the SDK's ``epsilon = 10e-6``);
* the candidate is clipped to ``[max(s0, r0), min(s1, r1)]`` and kept only
  when that overlap is longer than ``eps`` (rows that merely touch the word
  are not counted);
* the kept rows are collapsed with the SDK example's averaging function
  (``numpy.average(features, axis=0)``): a plain mean over the rows, not
  weighted by how much of each row falls inside the word;
* a word shorter than ``eps`` is skipped altogether.

Open choice, named: when no row of a sequence overlaps a word, the SDK's
``align`` leaves that word out for that sequence, and its MOSEI example then
fills it with zeros (``impute(reference)``, whose default is
``numpy.zeros``). We do the same (zeros) and count such words.

Segments: the SDK aligns again, to the label sequence, without a collapse,
and keeps each label interval's overlapping rows. We cut by the words'
intervals with the same overlap rule, so every modality of a segment has the
same steps (one per word); a segment that holds no word is dropped (the SDK's
``hard_unify`` drops it too).
"""

from __future__ import annotations

import numpy as np

EPSILON = 10e-6  # the SDK's epsilon, spelled as it does (1e-5)


def _candidates(ref: np.ndarray, iv: np.ndarray, cummax_end: np.ndarray) -> np.ndarray:
    """Indices of the rows of ``iv`` (starts sorted) that overlap ``ref`` by more than EPSILON."""
    r0, r1 = ref
    hi = int(np.searchsorted(iv[:, 0], r1 + EPSILON, side="left"))  # rows with s0 < r1 + eps
    lo = int(np.searchsorted(cummax_end[:hi], r0 - EPSILON, side="right"))  # before: every s1 <= r0 - eps
    idx = np.arange(lo, hi)
    if idx.size == 0:
        return idx
    s = iv[idx]
    hit = (s[:, 1] > r0 - EPSILON) & (np.abs(np.minimum(s[:, 1], r1) - np.maximum(s[:, 0], r0)) > EPSILON)
    return idx[hit]


def overlap_groups(ref_iv: np.ndarray, iv: np.ndarray) -> list[np.ndarray]:
    """For each reference interval, the rows of ``iv`` that overlap it (the SDK's rule, above)."""
    cummax_end = np.maximum.accumulate(iv[:, 1]) if iv.shape[0] else iv[:, 1]
    return [_candidates(r, iv, cummax_end) for r in ref_iv]


def align_to_reference(ref_iv: np.ndarray,
                       others: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, int]]:
    """Average every other sequence over each reference interval.

    Returns the indices of the reference rows kept (words not shorter than
    EPSILON), ``{name: float32 [k, d]}`` per other sequence, and per sequence
    the number of words that no row overlapped (left as zeros). The
    reference's own features are its rows at the kept indices.
    """
    keep = np.flatnonzero(np.abs(ref_iv[:, 1] - ref_iv[:, 0]) >= EPSILON)
    words = ref_iv[keep]
    aligned: dict[str, np.ndarray] = {}
    empty: dict[str, int] = {}
    for name, (iv, ft) in others.items():
        out = np.zeros((len(keep), ft.shape[1]), dtype=np.float32)
        missing = 0
        for j, rows in enumerate(overlap_groups(words, iv)):
            if rows.size:
                out[j] = ft[rows].mean(axis=0, dtype=np.float64)
            else:
                missing += 1
        aligned[name] = out
        empty[name] = missing
    return keep, aligned, empty


def cut_segments(word_iv: np.ndarray, label_iv: np.ndarray) -> list[np.ndarray]:
    """For each label interval (a segment), the indices of the words that overlap it."""
    return overlap_groups(label_iv, word_iv)


def fit_length(x: np.ndarray, length: int, keep: str = "last") -> tuple[np.ndarray, int]:
    """``x [n, d]`` as ``[length, d]``: real steps first, zero padding after.

    ``keep`` says which steps survive truncation: ``"last"`` is the SDK's
    ``get_tensors`` default (``direction=False`` keeps ``[-seq_len:]``),
    ``"first"`` keeps the opening words.
    """
    x = x[-length:] if keep == "last" else x[:length]
    out = np.zeros((length, x.shape[1]), dtype=np.float32)
    out[: x.shape[0]] = x
    return out, int(x.shape[0])
