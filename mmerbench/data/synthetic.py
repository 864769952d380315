"""Synthetic twins: `synth-<name>` has the real set's spec and a planted signal.

What is planted (DESIGN.md, "Synthetic twins"), and why:

* **Labels** come from a Gaussian copula: a latent z ~ N(0, R) per sample,
  label k present when z_k exceeds the quantile that gives the real set's
  marginal. R couples anger with disgust and happy with surprise and sets
  happy against the negative emotions, so label sets co-occur as in MOSEI;
  samples with no label occur naturally.
* **Evidence at a few time steps only.** Each modality holds a fixed direction
  per label; a present label adds that direction (times the modality's
  strength for the label) at ``EVIDENCE_STEPS`` positions drawn per sample and
  per modality. An average over time dilutes it; attention can find it.
  Unaligned audio/vision run at ten times the text rate, so their evidence
  spans ten consecutive steps.
* **Unequal modalities.** Text is strongest, audio next, vision weakest, and
  surprise/fear are carried mostly by audio and vision, so fusion beats text
  alone.
* **A cross-modal conjunction** for `fear`: a positive sample shows a text
  pattern *and* an audio pattern; some negatives show one of the two alone.
* **Nuisance**: a per-sample offset (speaker) and a slow linear drift,
  identical in distribution for every label set, and per-dimension scales and
  shifts like raw features have (so standardisation matters).
* Padding follows the public files: padded steps are all-zero; valid steps
  come first.

Everything is deterministic from (scale, seed).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from mmerbench.data.dataset import Dataset, LoadReport, Split
from mmerbench.data.registry import DatasetEntry, get_entry, register_dataset
from mmerbench.data.spec import SPLITS, DatasetSpec

GENERATOR_VERSION = 1
EVIDENCE_STEPS = 3
CHUNK = 512  # samples generated at a time (bounds temporary memory)

# MOSEI training-set label marginals (approximate) and latent correlations.
MOSEI_MARGINALS = {"happy": 0.52, "sad": 0.25, "anger": 0.21, "surprise": 0.09, "disgust": 0.17, "fear": 0.08}
MOSEI_CORRELATIONS = {
    ("anger", "disgust"): 0.6,
    ("happy", "surprise"): 0.35,
    ("happy", "sad"): -0.3,
    ("happy", "anger"): -0.3,
    ("happy", "disgust"): -0.3,
    ("sad", "fear"): 0.2,
    ("sad", "anger"): 0.15,
}
# Visibility: the probability that a present label leaves evidence in a modality.
# Text sees most, then audio, then vision; surprise is carried mostly outside text.
MOSEI_VISIBILITY = {
    "text": {"happy": 0.75, "sad": 0.7, "anger": 0.65, "surprise": 0.2, "disgust": 0.65, "fear": 0.3},
    "audio": {"happy": 0.45, "sad": 0.4, "anger": 0.5, "surprise": 0.7, "disgust": 0.2, "fear": 0.3},
    "vision": {"happy": 0.4, "sad": 0.2, "anger": 0.2, "surprise": 0.5, "disgust": 0.3, "fear": 0.2},
}
FALSE_EVIDENCE = 0.03  # chance that an absent label leaves evidence anyway
CONJUNCTION = ("fear", "text", "audio")  # label, and the two modalities whose patterns must co-occur
CONJUNCTION_VISIBILITY = 0.8  # a positive shows each of its two patterns with this chance
CONJUNCTION_DECOY = 0.3  # share of negatives that show one of the two patterns alone
AMPLITUDE = 8.0  # evidence amplitude per step (noise is unit-variance per dimension)
OFFSET_STD = 0.3  # per-sample speaker offset, constant over time
DRIFT_STD = 0.3  # per-sample linear drift from start to end of the sequence


def _correlation(labels: tuple[str, ...], pairs: dict) -> np.ndarray:
    k = len(labels)
    r = np.eye(k)
    idx = {n: i for i, n in enumerate(labels)}
    for (a, b), c in pairs.items():
        if a in idx and b in idx:
            r[idx[a], idx[b]] = r[idx[b], idx[a]] = c
    # Nearest positive-definite matrix, should the pairs not be jointly feasible.
    w, v = np.linalg.eigh(r)
    r = (v * np.clip(w, 1e-3, None)) @ v.T
    d = np.sqrt(np.diag(r))
    return r / d[:, None] / d[None, :]


class _Plan:
    """The fixed, seed-derived parts of a twin shared by all splits (directions, scales)."""

    def __init__(self, spec: DatasetSpec, seed: int) -> None:
        rng = np.random.default_rng([seed, 0])
        labels = spec.labels
        self.labels = labels
        self.marginals = np.array([MOSEI_MARGINALS.get(n, 0.15) for n in labels])
        self.chol = np.linalg.cholesky(_correlation(labels, MOSEI_CORRELATIONS))
        self.thresholds = norm.ppf(1 - self.marginals)
        self.directions, self.scale, self.shift, self.visibility = {}, {}, {}, {}
        for m, ms in spec.modalities.items():
            w = rng.standard_normal((len(labels), ms.dim))
            w /= np.linalg.norm(w, axis=1, keepdims=True)
            self.directions[m] = w.astype(np.float32)
            self.scale[m] = np.exp(rng.normal(0, 0.5, ms.dim)).astype(np.float32)
            self.shift[m] = rng.normal(0, 1.0, ms.dim).astype(np.float32)
            table = MOSEI_VISIBILITY.get(m, {})
            self.visibility[m] = np.array([table.get(n, 0.3) for n in labels])
        self.conj = labels.index(CONJUNCTION[0]) if CONJUNCTION[0] in labels else None


def _labels(plan: _Plan, n: int, rng: np.random.Generator) -> np.ndarray:
    z = rng.standard_normal((n, len(plan.labels))) @ plan.chol.T
    return (z > plan.thresholds).astype(np.int8)


def _generate_split(spec: DatasetSpec, plan: _Plan, n: int, rng: np.random.Generator) -> Split:
    y = _labels(plan, n, rng)
    text_len = max(ms.length for m, ms in spec.modalities.items() if m == "text") if "text" in spec.modalities else None
    # Relative length per sample, shared by all modalities (one utterance).
    rel = rng.uniform(0.25, 1.0, n)
    # Which pattern the conjunction label shows per modality: positives both, decoys one.
    show = {m: np.zeros(n, bool) for m in spec.modalities}
    if plan.conj is not None:
        show = {m: y[:, plan.conj].astype(bool) & (rng.random(n) < CONJUNCTION_VISIBILITY) for m in spec.modalities}
    if plan.conj is not None:
        lab, ma, mb = CONJUNCTION
        decoy = (~y[:, plan.conj].astype(bool)) & (rng.random(n) < CONJUNCTION_DECOY)
        pick_a = rng.random(n) < 0.5
        show[ma] = show[ma] | (decoy & pick_a)
        show[mb] = show[mb] | (decoy & ~pick_a)
    inputs, masks = {}, {}
    for m, ms in spec.modalities.items():
        L, D = ms.length, ms.dim
        rate = max(1, L // text_len) if text_len else 1  # steps per text step (10 when unaligned)
        lengths = np.clip(np.round(rel * L), rate * EVIDENCE_STEPS, L).astype(np.int64)
        x = np.zeros((n, L, D), dtype=np.float32)
        mask = np.arange(L)[None, :] < lengths[:, None]
        # Signal per sample: sum of present labels' directions, scaled by the modality's strength.
        u = rng.random(y.shape)
        seen = np.where(y == 1, u < plan.visibility[m], u < FALSE_EVIDENCE).astype(np.float32)
        if plan.conj is not None and m in CONJUNCTION[1:]:
            seen[:, plan.conj] = show[m]
        signal = seen @ plan.directions[m] * AMPLITUDE  # [n, D]
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            b = hi - lo
            noise = rng.standard_normal((b, L, D), dtype=np.float32)
            offset = rng.normal(0, OFFSET_STD, (b, 1, D)).astype(np.float32)
            drift = rng.normal(0, DRIFT_STD, (b, 1, D)).astype(np.float32)
            t = (np.arange(L, dtype=np.float32) / L)[None, :, None]
            chunk = noise + offset + drift * t
            # Evidence at EVIDENCE_STEPS distinct positions (blocks of `rate` steps) inside the valid part.
            blocks = np.maximum(lengths[lo:hi] // rate, EVIDENCE_STEPS)
            pos = np.argsort(rng.random((b, int(blocks.max()))) + (np.arange(int(blocks.max()))[None, :] >= blocks[:, None]), axis=1)[:, :EVIDENCE_STEPS]
            steps = (pos[:, :, None] * rate + np.arange(rate)[None, None, :]).reshape(b, -1)
            rows = np.repeat(np.arange(b), steps.shape[1])
            chunk[rows, steps.ravel()] += np.repeat(signal[lo:hi], steps.shape[1], axis=0)
            chunk = chunk * plan.scale[m] + plan.shift[m]
            chunk[~mask[lo:hi]] = 0.0
            x[lo:hi] = chunk
        inputs[m], masks[m] = x, mask
    return Split(inputs=inputs, masks=masks, labels=y, ids=np.array([], dtype=str))


def generate(real: DatasetSpec, name: str, scale: float, seed: int) -> Dataset:
    sizes = {s: max(8, int(round(real.splits[s] * scale))) for s in SPLITS}
    spec = real.with_(name=name, splits=sizes, synthetic=True, twin_of=real.name, source=None,
                      description=f"synthetic twin of {real.name} (scale {scale:g}, seed {seed})")
    plan = _Plan(spec, seed)
    splits = {}
    for i, s in enumerate(SPLITS):
        rng = np.random.default_rng([seed, 1 + i])
        split = _generate_split(spec, plan, sizes[s], rng)
        split.ids = np.array([f"{name}/{s}/{j:05d}" for j in range(sizes[s])])
        splits[s] = split
    return Dataset(spec, splits, LoadReport(source=f"generated: {name} scale={scale:g} seed={seed}"))


def register_twin(real_name: str) -> None:
    real = get_entry(real_name).spec
    name = f"synth-{real_name}"
    register_dataset(
        DatasetEntry(
            spec=real.with_(name=name, synthetic=True, twin_of=real_name, source=None,
                            description=f"synthetic twin of {real_name}"),
            generate=lambda scale, seed: generate(real, name, scale, seed),
            reader_version=GENERATOR_VERSION,
        )
    )


for _real in ("mosei-aligned", "mosei-unaligned"):
    register_twin(_real)
