"""Corrupted copies of a split: missing modalities, feature noise, temporal masking, misalignment.

Every corruption is a pure function of (split, corruption, seed): it returns a new
:class:`~mmerbench.data.dataset.Split` and never writes into the one it was given (a twin's
arrays may be read-only memory maps; unchanged modalities are shared, changed ones are new
arrays). The corruption happens in the data layer, so every method and every baseline sees
exactly the same inputs; BR/CC/LP pool their features from the corrupted sequences.

The families and their open choices:

* ``missing-<m>[.<m>…]``: the named modalities are absent the way a method already sees an
  absent modality: features all zero and the mask all off (every attention layer, masked mean
  and last-step pooling in the harness handles an all-off mask).
* ``noise-<σ>``: Gaussian noise on every modality's real time steps; the standard deviation is
  σ times each feature dimension's standard deviation over the real time steps of the *training*
  split (a dimension that never varies gets none). Padding stays zero and the masks unchanged.
* ``tmask-<p>``: in each sample and modality, round(p · n) of its n real time steps (chosen at
  random, independently per modality) are masked off and zeroed.
* ``misalign-<m>``: modality m's sequences (features, mask and its ``va_<m>`` extra, if any) are
  moved across samples by a random derangement (no sample keeps its own), which breaks the
  pairing with the other modalities and the labels. A one-sample split cannot be deranged and
  is left as it is.

Level 0 of noise and temporal masking is the identity (the same arrays). The random draws come
from a generator seeded by (seed, corruption name), so a seed gives the same corruption in every
process, on every device.
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from mmerbench.data.dataset import Split
from mmerbench.data.spec import DatasetSpec
from mmerbench.errors import MmerbenchError

FAMILIES = ("missing", "noise", "tmask", "misalign")
DEFAULT_LEVELS = {"noise": (0.1, 0.3, 1.0), "tmask": (0.25, 0.5, 0.75)}
LEVELLED = tuple(DEFAULT_LEVELS)  # the families with a metric-vs-level curve


@dataclass(frozen=True)
class Corruption:
    family: str  # one of FAMILIES
    level: float = 0.0  # noise: σ in training stds; tmask: fraction of real steps; else 0
    modalities: tuple[str, ...] = ()  # missing: the absent ones; misalign: the moved one

    @property
    def name(self) -> str:
        """The corruption's id, also its file name under ``<seed folder>/robustness/``."""
        if self.family in LEVELLED:
            return f"{self.family}-{self.level:g}"
        return f"{self.family}-{'.'.join(self.modalities)}"


def default_corruptions(spec: DatasetSpec) -> list[Corruption]:
    """Each non-empty proper subset of the modalities missing, noise and temporal masking at the
    default levels, and each modality misaligned."""
    mods = list(spec.modalities)
    out = [Corruption("missing", modalities=tuple(c))
           for k in range(1, len(mods)) for c in itertools.combinations(mods, k)]
    for fam in LEVELLED:
        out += [Corruption(fam, level=lv) for lv in DEFAULT_LEVELS[fam]]
    if len(mods) > 1:
        out += [Corruption("misalign", modalities=(m,)) for m in mods]
    return out


def parse(names: Sequence[str], spec: DatasetSpec) -> list[Corruption]:
    """Corruptions from their names (``missing-text``, ``missing-audio.vision``, ``noise-0.3``,
    ``tmask-0.5``, ``misalign-vision``) or a family name alone (its defaults); one-sentence errors."""
    defaults = default_corruptions(spec)
    out: list[Corruption] = []
    for raw in names:
        for name in (n.strip() for n in str(raw).split(",")):
            if not name:
                continue
            if name in FAMILIES:
                out += [c for c in defaults if c.family == name]
                continue
            fam, _, arg = name.partition("-")
            if fam in LEVELLED:
                try:
                    level = float(arg)
                except ValueError:
                    level = float("nan")
                if not np.isfinite(level) or level < 0 or (fam == "tmask" and level > 1):
                    bound = "in [0, 1]" if fam == "tmask" else "≥ 0"
                    raise MmerbenchError(f"Corruption {name!r}: the {fam} level must be a number {bound}.")
                out.append(Corruption(fam, level=level))
            elif fam in ("missing", "misalign"):
                mods = tuple(arg.split(".")) if arg else ()
                unknown = [m for m in mods if m not in spec.modalities]
                if not mods or unknown or len(set(mods)) != len(mods) or (fam == "misalign" and len(mods) != 1):
                    raise MmerbenchError(
                        f"Corruption {name!r} names no {'single ' if fam == 'misalign' else ''}known modality "
                        f"of {spec.name!r} (it has {', '.join(spec.modalities)}).")
                order = [m for m in spec.modalities if m in mods]  # canonical order: one name per set
                out.append(Corruption(fam, modalities=tuple(order)))
            else:
                raise MmerbenchError(f"Unknown corruption {name!r}: use {', '.join(FAMILIES)} or e.g. "
                                     f"missing-text, noise-0.3, tmask-0.5, misalign-vision.")
    return list(dict.fromkeys(out))  # drop repeats, keep order


def corruption_rng(seed: int, corruption: Corruption) -> np.random.Generator:
    """A generator that depends on the seed and the corruption's name only."""
    return np.random.default_rng([int(seed) % 2**32, zlib.crc32(corruption.name.encode())])


def train_std(train: Split, modalities: Sequence[str] | None = None, chunk: int = 2048) -> dict[str, np.ndarray]:
    """Per modality, each feature dimension's standard deviation over the real time steps of the
    training split (float64 [D]); chunked, so a memory map is never copied whole."""
    out = {}
    for m in modalities or list(train.inputs):
        x, mask = train.inputs[m], train.masks[m]
        d = x.shape[2]
        n, s, s2 = 0.0, np.zeros(d), np.zeros(d)
        for lo in range(0, x.shape[0], chunk):
            xs = np.asarray(x[lo: lo + chunk], dtype=np.float64)[np.asarray(mask[lo: lo + chunk], dtype=bool)]
            n += xs.shape[0]
            s += xs.sum(0)
            s2 += (xs * xs).sum(0)
        mean = s / max(n, 1.0)
        out[m] = np.sqrt(np.maximum(s2 / max(n, 1.0) - mean * mean, 0.0))
    return out


def apply(split: Split, corruption: Corruption, *, seed: int, std: dict[str, np.ndarray] | None = None) -> Split:
    """A corrupted copy of ``split`` (see the module docstring); ``std`` (from :func:`train_std`)
    is needed for noise only."""
    c = corruption
    inputs, masks, extras = dict(split.inputs), dict(split.masks), dict(split.extras)
    rng = corruption_rng(seed, c)
    if c.family == "missing":
        for m in c.modalities:
            inputs[m] = np.zeros(split.inputs[m].shape, dtype=np.float32)
            masks[m] = np.zeros(split.masks[m].shape, dtype=bool)
    elif c.family == "noise":
        if c.level == 0:
            return split
        if std is None:
            raise MmerbenchError("Noise needs the training split's feature standard deviations.")
        for m in split.inputs:  # the spec's order: the draws do not depend on dict order elsewhere
            x = np.array(split.inputs[m], dtype=np.float32)
            mask = np.asarray(split.masks[m], dtype=bool)
            noise = rng.standard_normal(x.shape, dtype=np.float32) * (c.level * std[m]).astype(np.float32)
            x += noise * mask[..., None]
            inputs[m] = x
    elif c.family == "tmask":
        if c.level == 0:
            return split
        for m in split.inputs:
            mask = np.array(split.masks[m], dtype=bool)
            real = mask.sum(1)
            k = np.floor(c.level * real + 0.5).astype(np.int64)  # round half up, not to even
            keys = np.where(mask, rng.random(mask.shape), np.inf)
            rank = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable")
            drop = rank < k[:, None]
            x = np.array(split.inputs[m], dtype=np.float32)
            x[drop] = 0.0
            mask[drop] = False
            inputs[m], masks[m] = x, mask
    elif c.family == "misalign":
        (m,) = c.modalities
        perm = derangement(len(split), rng)
        inputs[m] = np.asarray(split.inputs[m])[perm]
        masks[m] = np.asarray(split.masks[m])[perm]
        if f"va_{m}" in extras:
            extras[f"va_{m}"] = np.asarray(extras[f"va_{m}"])[perm]
    else:
        raise MmerbenchError(f"Unknown corruption family {c.family!r}.")
    return replace(split, inputs=inputs, masks=masks, extras=extras)


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation with no fixed point (n ≥ 2): a random order, each position taking the next
    one's sample in that order (one cycle through all samples)."""
    if n < 2:
        return np.arange(n)
    order = rng.permutation(n)
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, -1)
    return perm
