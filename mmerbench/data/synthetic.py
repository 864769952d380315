"""Synthetic twins: `synth-<name>` has the real set's spec and a planted signal.

What is planted, and why. Every twin draws a
few hidden *factors* per sample and leaves evidence of each present factor
in the modalities; the task's labels are a function of the factors:

* multi-label: one factor per label, drawn from a Gaussian copula (a latent
  z ~ N(0, R) per sample, label k present when z_k exceeds the quantile that
  gives the real set's marginal). R couples labels as in the real set (MOSEI:
  anger with disgust, happy with surprise, happy against the negative
  emotions); samples with no label occur naturally.
* multi-class: one factor per class, exactly one present, drawn from the
  real set's class priors.
* binary: two factors, ``<label>`` (a positive with direct evidence) and
  ``conjunction`` (a positive shown only by a cross-modal conjunction); the
  label is present when either is.
* regression (sentiment in [-3, 3]): a latent sentiment s from a two-sided
  mixture; factors ``positive`` = max(s, 0)/3, ``negative`` = max(-s, 0)/3
  (evidence scaled by intensity) and ``intensity`` (present in a share of the
  samples, shown only by a cross-modal conjunction), which pushes the target
  one point further from 0. Targets are clipped to [-3, 3] and rounded to the
  real set's annotation grid (MOSI: averages of 5 ratings, steps of 0.2;
  MOSEI: of 3, steps of 1/3).

The evidence, the same for every task:

* **At a few time steps only.** Each modality holds a fixed direction per
  factor; a present factor adds that direction (times its weight and the
  modality's visibility draw) at ``EVIDENCE_STEPS`` positions drawn per
  sample and per modality. An average over time dilutes it; attention can
  find it. A modality slower than text by a factor r (unaligned audio and
  vision) spans r consecutive steps per evidence position; a modality of
  length 1 (NEMu's picture) carries its evidence at its only step.
* **Unequal modalities.** Text sees most, then audio, then vision, and some
  labels are carried mostly outside text (MOSEI: surprise; IEMOCAP: angry in
  audio), so fusion beats text alone.
* **A cross-modal conjunction** for one factor: a positive shows a pattern in
  modality a *and* one in modality b; some negatives show one of the two
  alone, so neither modality alone separates it.
* **Nuisance**: a per-sample offset (speaker) and a slow linear drift,
  identical in distribution for every label, and per-dimension scales and
  shifts like raw features have (so standardisation matters).
* Padding follows the public files: padded steps are all-zero; valid steps
  come first.

**Valence/arousal.** Twins of sets whose release carries per-sample,
per-modality valence and arousal (UniVA's M3ED and MOSEI release) carry
``va_<modality>`` extras, float32 ``[N, 2]`` in [-1, 1]: the mean NRC-VAD
(valence, arousal) of the labels that left evidence in that modality, mapped
from [0, 1] to [-1, 1] (neutral, 0.5/0.5, maps to 0), plus N(0, 0.1) noise; a
modality that shows no label gets neutral plus noise. They come from their
own random stream, so adding them changes no feature.

**Raw text.** Twins with a ``text`` modality carry ``text_raw``, one sentence
per sample for a pretrained text encoder: filler words drawn from a small
vocabulary (``FILLER``), as many as the sample's real text steps, with cue
words for exactly the factors the text *features* show (the same visibility
draw, false evidence and conjunction pattern): a factor shown with weight w
adds round(3·w) (at least one) cue words, drawn from its own three
(``cue_words``), at random places. A regression twin's polarity weight is its
intensity, so the count of cue words carries it. The words come from their own
random stream, so adding them changes no feature, label or VA value.

Everything is deterministic from (scale, seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
from scipy.stats import norm

from mmerbench import progress
from mmerbench.data.dataset import Dataset, LoadReport, Split
from mmerbench.data.registry import DatasetEntry, get_entry, register_dataset
from mmerbench.data.spec import SPLITS, DatasetSpec

GENERATOR_VERSION = 3  # 3: raw text
EVIDENCE_STEPS = 3
CHUNK = 512  # samples generated at a time (bounds temporary memory)
CONJUNCTION_VISIBILITY = 0.8  # a positive shows each of its two patterns with this chance
CONJUNCTION_DECOY = 0.3  # share of negatives that show one of the two patterns alone
OFFSET_STD = 0.3  # per-sample speaker offset, constant over time
DRIFT_STD = 0.3  # per-sample linear drift from start to end of the sequence
VA_NOISE = 0.1
FILLER = (
    "the a and so then it this that was is we they you i just really well like about there here "
    "what when after before now today again maybe very still also some thing things time way"
).split()
CUE_SUFFIXES = ("ish", "ful", "ness")  # three cue words per factor: <factor><suffix>

# NRC-VAD (valence, arousal) of the emotion names (Mohammad, ACL 2018; the values UniVA uses), in [0, 1].
LABEL_VA = {
    "happy": (1.000, 0.735), "sad": (0.225, 0.333), "anger": (0.167, 0.865), "angry": (0.167, 0.865),
    "surprise": (0.875, 0.875), "disgust": (0.052, 0.775), "fear": (0.073, 0.840), "neutral": (0.5, 0.5),
}


@dataclass(frozen=True)
class Sentiment:
    """The latent sentiment of a regression twin: a mixture of N(-mean, std) (share `negative`) and N(+mean, std)."""

    negative: float
    mean: float
    std: float
    grid: float  # targets are rounded to multiples of this (the annotation step)
    intensity: float = 0.3  # share of samples with the conjunction-shown intensity factor
    boost: float = 1.0  # how far the intensity factor pushes the target from 0


@dataclass(frozen=True)
class TwinProfile:
    """What a twin of one real dataset plants (see the module docstring).

    ``marginals``: per label P(present) (multi-label), the class priors
    (multi-class), or {label: P(positive)} (binary). ``visibility``:
    modality → factor → P(evidence | factor present); missing entries use
    ``default_visibility``. ``conjunction``: (factor, modality a, modality b).
    """

    marginals: Mapping[str, float]
    visibility: Mapping[str, Mapping[str, float]]
    correlations: Mapping[tuple[str, str], float] = field(default_factory=dict)
    conjunction: tuple[str, str, str] | None = None
    amplitude: float = 8.0  # evidence amplitude per step (noise is unit-variance per dimension)
    default_visibility: float = 0.3
    false_evidence: float = 0.03  # chance that an absent factor leaves evidence anyway
    conjunction_share: float = 0.4  # binary: share of positives shown only by the conjunction
    sentiment: Sentiment | None = None
    va: bool = False


# ----------------------------------------------------------------------------- profiles of the real sets

MOSEI = TwinProfile(
    marginals={"happy": 0.52, "sad": 0.25, "anger": 0.21, "surprise": 0.09, "disgust": 0.17, "fear": 0.08},
    correlations={
        ("anger", "disgust"): 0.6, ("happy", "surprise"): 0.35, ("happy", "sad"): -0.3, ("happy", "anger"): -0.3,
        ("happy", "disgust"): -0.3, ("sad", "fear"): 0.2, ("sad", "anger"): 0.15,
    },
    visibility={
        "text": {"happy": 0.75, "sad": 0.7, "anger": 0.65, "surprise": 0.2, "disgust": 0.65, "fear": 0.3},
        "audio": {"happy": 0.45, "sad": 0.4, "anger": 0.5, "surprise": 0.7, "disgust": 0.2, "fear": 0.3},
        "vision": {"happy": 0.4, "sad": 0.2, "anger": 0.2, "surprise": 0.5, "disgust": 0.3, "fear": 0.2},
    },
    conjunction=("fear", "text", "audio"),
    va=True,
)

# M3ED utterances (UniVA's label order): many neutral and angry utterances, few fearful ones.
M3ED = TwinProfile(
    marginals={"Happy": 0.14, "Surprise": 0.06, "Sad": 0.14, "Disgust": 0.08, "Anger": 0.2, "Fear": 0.03,
               "Neutral": 0.4},
    correlations={
        ("Anger", "Disgust"): 0.5, ("Happy", "Surprise"): 0.3, ("Sad", "Fear"): 0.2, ("Neutral", "Happy"): -0.4,
        ("Neutral", "Sad"): -0.4, ("Neutral", "Anger"): -0.5, ("Neutral", "Disgust"): -0.3,
    },
    visibility={
        "text": {"Happy": 0.75, "Surprise": 0.3, "Sad": 0.75, "Disgust": 0.65, "Anger": 0.55, "Fear": 0.45,
                 "Neutral": 0.65},
        "audio": {"Happy": 0.4, "Surprise": 0.6, "Sad": 0.4, "Disgust": 0.3, "Anger": 0.75, "Fear": 0.4, "Neutral": 0.35},
        "vision": {"Happy": 0.5, "Surprise": 0.5, "Sad": 0.3, "Disgust": 0.3, "Anger": 0.3, "Fear": 0.25, "Neutral": 0.3},
    },
    conjunction=("Disgust", "text", "audio"),
    amplitude=10.0,
    va=True,
)

# NEMu's six label columns (names not published); comments and lyrics carry most, the picture least.
from mmerbench.data.catalog import NEMU_LABELS  # noqa: E402  (the real spec's names)
NEMU = TwinProfile(
    marginals=dict(zip(NEMU_LABELS, (0.45, 0.35, 0.3, 0.25, 0.2, 0.15))),
    correlations={("emotion_1", "emotion_2"): -0.3, ("emotion_3", "emotion_4"): 0.4, ("emotion_5", "emotion_6"): 0.3},
    visibility={
        "comments": dict(zip(NEMU_LABELS, (0.85, 0.8, 0.75, 0.4, 0.7, 0.65))),
        "lyrics": dict(zip(NEMU_LABELS, (0.65, 0.6, 0.6, 0.4, 0.5, 0.45))),
        "audio": dict(zip(NEMU_LABELS, (0.35, 0.4, 0.25, 0.3, 0.6, 0.25))),
        "picture": dict(zip(NEMU_LABELS, (0.3, 0.2, 0.2, 0.2, 0.2, 0.35))),
    },
    conjunction=("emotion_4", "lyrics", "audio"),
    amplitude=9.0,
)

# IEMOCAP 4-class (MulT's subset); anger is carried mostly by the voice.
IEMOCAP = TwinProfile(
    marginals={"neutral": 0.38, "happy": 0.14, "sad": 0.24, "angry": 0.24},
    visibility={
        "text": {"neutral": 0.7, "happy": 0.8, "sad": 0.8, "angry": 0.5},
        "audio": {"neutral": 0.35, "happy": 0.3, "sad": 0.4, "angry": 0.8},
        "vision": {"neutral": 0.2, "happy": 0.35, "sad": 0.2, "angry": 0.2},
    },
    conjunction=("happy", "text", "audio"),
    false_evidence=0.05,
    amplitude=14.0,
)

# MSP-Improv 4-class, audio + text (the auxiliary-loss paper's setting and class order).
MSP_IMPROV = TwinProfile(
    marginals={"happy": 0.34, "sad": 0.11, "neutral": 0.45, "angry": 0.10},
    visibility={
        "text": {"happy": 0.8, "sad": 0.75, "neutral": 0.7, "angry": 0.5},
        "audio": {"happy": 0.45, "sad": 0.35, "neutral": 0.35, "angry": 0.8},
    },
    conjunction=("sad", "text", "audio"),
    false_evidence=0.05,
    amplitude=12.0,
)

# Sentiment: text strongest; the intensity factor is shown by text and audio together.
_SENTIMENT_VISIBILITY = {
    "text": {"positive": 0.75, "negative": 0.75},
    "audio": {"positive": 0.45, "negative": 0.45},
    "vision": {"positive": 0.3, "negative": 0.3, "intensity": 0.0},
}
MOSI = TwinProfile(
    marginals={}, visibility=_SENTIMENT_VISIBILITY, conjunction=("intensity", "text", "audio"),
    sentiment=Sentiment(negative=0.5, mean=1.2, std=0.9, grid=0.2), amplitude=24.0,
)
MOSEI_SENTI = TwinProfile(
    marginals={}, visibility=_SENTIMENT_VISIBILITY, conjunction=("intensity", "text", "audio"),
    sentiment=Sentiment(negative=0.3, mean=0.9, std=0.8, grid=1 / 3), amplitude=20.0,
)

# UR-FUNNY humour: balanced; part of the punchlines are funny only through text and delivery together.
UR_FUNNY = TwinProfile(
    marginals={"humor": 0.5},
    visibility={
        "text": {"humor": 0.6},
        "audio": {"humor": 0.4},
        "vision": {"humor": 0.3, "conjunction": 0.0},
    },
    conjunction=("conjunction", "text", "audio"),
)

PROFILES: dict[str, TwinProfile] = {
    "mosei-aligned": MOSEI,
    "mosei-unaligned": MOSEI,
    "m3ed": M3ED,
    "nemu": NEMU,
    "iemocap": IEMOCAP,
    "iemocap-unaligned": IEMOCAP,
    "msp-improv": MSP_IMPROV,
    "mosi": MOSI,
    "mosi-unaligned": MOSI,
    "mosei-senti": MOSEI_SENTI,
    "mosei-senti-unaligned": MOSEI_SENTI,
    "ur-funny": UR_FUNNY,
}


# ----------------------------------------------------------------------------- the plan: seed-derived constants


def factor_names(spec: DatasetSpec) -> tuple[str, ...]:
    """The hidden factors of a twin of `spec` (see the module docstring)."""
    if spec.task in ("multilabel", "multiclass"):
        return tuple(spec.labels)
    if spec.task == "binary":
        return (spec.labels[0], "conjunction")
    return ("positive", "negative", "intensity")


def _correlation(labels: tuple[str, ...], pairs: Mapping) -> np.ndarray:
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

    def __init__(self, spec: DatasetSpec, profile: TwinProfile, seed: int) -> None:
        rng = np.random.default_rng([seed, 0])
        self.spec, self.profile, self.task = spec, profile, spec.task
        self.factors = factor_names(spec)
        k = len(self.factors)
        if self.task == "multilabel":
            self.marginals = np.array([profile.marginals.get(n, 0.15) for n in self.factors])
            self.chol = np.linalg.cholesky(_correlation(self.factors, profile.correlations))
            self.thresholds = norm.ppf(1 - self.marginals)
        elif self.task == "multiclass":
            p = np.array([profile.marginals.get(n, 1.0) for n in self.factors], dtype=float)
            self.priors = p / p.sum()
        elif self.task == "binary":
            self.positive = float(profile.marginals.get(self.factors[0], 0.5))
        self.directions, self.scale, self.shift, self.visibility = {}, {}, {}, {}
        for m, ms in spec.modalities.items():
            w = rng.standard_normal((k, ms.dim))
            w /= np.linalg.norm(w, axis=1, keepdims=True)
            self.directions[m] = w.astype(np.float32)
            self.scale[m] = np.exp(rng.normal(0, 0.5, ms.dim)).astype(np.float32)
            self.shift[m] = rng.normal(0, 1.0, ms.dim).astype(np.float32)
            table = profile.visibility.get(m, {})
            self.visibility[m] = np.array([table.get(n, profile.default_visibility) for n in self.factors])
        self.false = np.full(k, profile.false_evidence)
        if self.task == "regression":
            self.false[:2] = 0.0  # polarity evidence is scaled by intensity; no spurious polarity
        conj = profile.conjunction
        self.conj = None
        if conj is not None and conj[0] in self.factors and conj[1] in spec.modalities and conj[2] in spec.modalities:
            self.conj = self.factors.index(conj[0])
            self.conj_modalities = (conj[1], conj[2])
        lengths = [ms.length for ms in spec.modalities.values()]
        if "text" in spec.modalities:
            self.base_length = spec.modalities["text"].length
        else:
            self.base_length = min((n for n in lengths if n > 1), default=1)
        self.label_va = None
        if profile.va and self.task == "multilabel":
            va = [LABEL_VA.get(n.lower(), LABEL_VA["neutral"]) for n in self.factors]
            self.label_va = np.array([(2 * v - 1, 2 * a - 1) for v, a in va], dtype=np.float32)


def _draw_factors(plan: _Plan, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(factor weights [n, K] float32 ≥ 0, labels in the task's dtype)."""
    k = len(plan.factors)
    if plan.task == "multilabel":
        z = rng.standard_normal((n, k)) @ plan.chol.T
        y = (z > plan.thresholds).astype(np.int8)
        return y.astype(np.float32), y
    if plan.task == "multiclass":
        c = rng.choice(k, size=n, p=plan.priors)
        return np.eye(k, dtype=np.float32)[c], c.astype(np.int64)
    if plan.task == "binary":
        pos = rng.random(n) < plan.positive
        conj = rng.random(n) < plan.profile.conjunction_share
        w = np.stack([pos & ~conj, pos & conj], axis=1).astype(np.float32)
        return w, pos.astype(np.int64)
    s_prof = plan.profile.sentiment
    assert s_prof is not None, "a regression twin needs a Sentiment profile"
    sign = np.where(rng.random(n) < s_prof.negative, -1.0, 1.0)
    s = sign * rng.normal(s_prof.mean, s_prof.std, n)
    strong = rng.random(n) < s_prof.intensity
    y = np.clip(s + s_prof.boost * strong * np.sign(s), -3.0, 3.0)
    y = np.clip(np.round(y / s_prof.grid) * s_prof.grid, -3.0, 3.0)
    s = np.clip(s, -3.0, 3.0)
    w = np.stack([np.maximum(s, 0) / 3, np.maximum(-s, 0) / 3, strong], axis=1).astype(np.float32)
    return w, y.astype(np.float32)


def cue_words(factor: str) -> tuple[str, ...]:
    """The three words a twin's sentence uses for `factor` (letters only, so every tokeniser keeps them whole)."""
    slug = "".join(c for c in factor.lower() if c.isalpha()) or "factor"
    return tuple(slug + suffix for suffix in CUE_SUFFIXES)


def twin_vocabulary(spec: DatasetSpec) -> list[str]:
    """Every word a twin of `spec` writes (e.g. to build a small tokeniser for tests)."""
    return list(FILLER) + [w for f in factor_names(spec) for w in cue_words(f)]


def _sentences(plan: _Plan, seen: np.ndarray, lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One sentence per sample: `lengths` filler words plus cue words for the factors in `seen` (module docstring)."""
    cues = np.array([cue_words(f) for f in plan.factors])  # [K, 3]
    filler = np.array(FILLER)
    counts = np.where(seen > 0, np.maximum(1, np.round(EVIDENCE_STEPS * seen)), 0).astype(np.int64)
    total = lengths + counts.sum(1)
    top = int(total.max()) if len(total) else 0
    # Every draw is made up front, in one fixed order, so the stream does not depend on the loop.
    fill = rng.integers(0, len(filler), (len(total), top))
    pick = rng.integers(0, cues.shape[1], (len(total), top))
    keys = rng.random((len(total), top))
    out = []
    for i in range(len(total)):
        factor = np.repeat(np.arange(len(plan.factors)), counts[i])
        words = np.concatenate([filler[fill[i, :lengths[i]]], cues[factor, pick[i, :len(factor)]]])
        out.append(" ".join(words[np.argsort(keys[i, :len(words)], kind="stable")]))
    return np.array(out, dtype=str)


def _generate_split(plan: _Plan, n: int, rng: np.random.Generator, va_rng: np.random.Generator,
                    text_rng: np.random.Generator | None = None,
                    tick: Callable[[int], Any] = lambda k: None) -> Split:
    spec, profile = plan.spec, plan.profile
    w, y = _draw_factors(plan, n, rng)
    present = w > 0
    # Relative length per sample, shared by all modalities (one utterance).
    rel = rng.uniform(0.25, 1.0, n)
    # Which pattern the conjunction factor shows per modality: positives both, decoys one.
    show: dict[str, np.ndarray] = {}
    if plan.conj is not None:
        pos = present[:, plan.conj]
        show = {m: pos & (rng.random(n) < CONJUNCTION_VISIBILITY) for m in spec.modalities}
        ma, mb = plan.conj_modalities
        decoy = (~pos) & (rng.random(n) < CONJUNCTION_DECOY)
        pick_a = rng.random(n) < 0.5
        show[ma] = show[ma] | (decoy & pick_a)
        show[mb] = show[mb] | (decoy & ~pick_a)
    inputs, masks, extras = {}, {}, {}
    text_raw = None
    for m, ms in spec.modalities.items():
        L, D = ms.length, ms.dim
        rate = max(1, L // plan.base_length) if L > 1 else 1  # steps per text step (10 when unaligned)
        k_steps = max(1, min(EVIDENCE_STEPS, L // rate))
        lengths = np.clip(np.round(rel * L), rate * k_steps, L).astype(np.int64)
        x = np.zeros((n, L, D), dtype=np.float32)
        mask = np.arange(L)[None, :] < lengths[:, None]
        # Signal per sample: present factors' directions, times their weight, where the modality shows them.
        u = rng.random(w.shape)
        seen = np.where(present, (u < plan.visibility[m]) * w, u < plan.false).astype(np.float32)
        if plan.conj is not None and m in plan.conj_modalities:
            seen[:, plan.conj] = show[m]
        if plan.label_va is not None:
            extras[f"va_{m}"] = _va(plan.label_va, seen > 0, va_rng)
        if m == "text" and text_rng is not None:
            text_raw = _sentences(plan, seen, lengths, text_rng)
        signal = seen @ plan.directions[m] * profile.amplitude  # [n, D]
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            b = hi - lo
            noise = rng.standard_normal((b, L, D), dtype=np.float32)
            offset = rng.normal(0, OFFSET_STD, (b, 1, D)).astype(np.float32)
            drift = rng.normal(0, DRIFT_STD, (b, 1, D)).astype(np.float32)
            t = (np.arange(L, dtype=np.float32) / L)[None, :, None]
            chunk = noise + offset + drift * t
            # Evidence at k_steps distinct positions (blocks of `rate` steps) inside the valid part.
            blocks = np.maximum(lengths[lo:hi] // rate, k_steps)
            top = int(blocks.max())
            order = rng.random((b, top)) + (np.arange(top)[None, :] >= blocks[:, None])
            pos = np.argsort(order, axis=1)[:, :k_steps]
            steps = (pos[:, :, None] * rate + np.arange(rate)[None, None, :]).reshape(b, -1)
            rows = np.repeat(np.arange(b), steps.shape[1])
            chunk[rows, steps.ravel()] += np.repeat(signal[lo:hi], steps.shape[1], axis=0)
            chunk = chunk * plan.scale[m] + plan.shift[m]
            chunk[~mask[lo:hi]] = 0.0
            x[lo:hi] = chunk
            tick(b)
        inputs[m], masks[m] = x, mask
    return Split(inputs=inputs, masks=masks, labels=y, ids=np.array([], dtype=str), extras=extras, text_raw=text_raw)


def _va(label_va: np.ndarray, shown: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-sample (valence, arousal) of one modality: mean over the labels it shows, neutral when none."""
    count = shown.sum(1, keepdims=True)
    mean = (shown.astype(np.float32) @ label_va) / np.maximum(count, 1)
    va = mean + rng.normal(0, VA_NOISE, mean.shape)
    return np.clip(va, -1.0, 1.0).astype(np.float32)


def twin_sizes(real: DatasetSpec, scale: float) -> dict[str, int]:
    return {s: max(8, int(round(real.splits[s] * scale))) for s in SPLITS}


def generate(real: DatasetSpec, name: str, scale: float, seed: int, profile: TwinProfile | None = None) -> Dataset:
    """The twin `name` of the real spec at `scale` (fraction of the real split sizes), from `seed`."""
    profile = profile or PROFILES[real.name]
    sizes = twin_sizes(real, scale)
    spec = real.with_(name=name, splits=sizes, synthetic=True, twin_of=real.name, source=None,
                      description=f"synthetic twin of {real.name} (scale {scale:g}, seed {seed})")
    plan = _Plan(spec, profile, seed)
    splits = {}
    total = sum(sizes.values()) * len(spec.modalities)  # one tick per sample and modality
    with progress.bar(total, f"generating {name} (scale {scale:g}, seed {seed})", unit="sample") as bar:
        for i, s in enumerate(SPLITS):
            rng = np.random.default_rng([seed, 1 + i])
            va_rng = np.random.default_rng([seed, 100 + i])
            text_rng = np.random.default_rng([seed, 200 + i])  # its own stream: the text changes no feature
            split = _generate_split(plan, sizes[s], rng, va_rng, text_rng, tick=bar.update)
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


for _real in PROFILES:
    register_twin(_real)
