"""The synthetic twins: the real spec, determinism, MOSEI-like labels, and the planted ordering."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mmerbench.baselines.base import pooled_features
from mmerbench.data.registry import DATASETS, get_entry, load_dataset
from mmerbench.data.synthetic import PROFILES, _draw_factors, _Plan, generate
from mmerbench.metrics import multilabel
from mmerbench.registry import get_method


@pytest.mark.parametrize("name", ["mosei-aligned", "mosei-unaligned"])
def test_twin_has_the_real_spec(name, tmp_path):
    real = get_entry(name).spec
    ds = load_dataset(f"synth-{name}", data_dir=tmp_path, scale=0.005)
    s = ds.spec
    assert s.synthetic and s.twin_of == name and s.name == f"synth-{name}"
    assert (s.task, s.labels, s.modalities) == (real.task, real.labels, real.modalities)
    for split, n in s.splits.items():
        assert len(ds[split]) == n == max(8, round(real.splits[split] * 0.005))
        for m, ms in real.modalities.items():
            assert ds[split].inputs[m].shape == (n, ms.length, ms.dim)
    # Padded steps are all-zero and masked out, as in the public files.
    x, mask = ds["train"].inputs["audio"], ds["train"].masks["audio"]
    assert (~mask).any() and np.all(np.asarray(x)[~mask] == 0)


def test_default_scale_is_a_fifth():
    entry = get_entry("synth-mosei-aligned")
    real = get_entry("mosei-aligned").spec
    from mmerbench.data.registry import DEFAULT_TWIN_SCALE

    assert DEFAULT_TWIN_SCALE == 0.2 and entry.spec.splits == real.splits


def test_twin_is_deterministic_from_its_seed():
    real = get_entry("mosei-aligned").spec
    a = generate(real, "synth-mosei-aligned", 0.005, seed=7)
    b = generate(real, "synth-mosei-aligned", 0.005, seed=7)
    c = generate(real, "synth-mosei-aligned", 0.005, seed=8)
    for split in ("train", "test"):
        np.testing.assert_array_equal(a[split].inputs["text"], b[split].inputs["text"])
        np.testing.assert_array_equal(a[split].labels, b[split].labels)
    assert not np.array_equal(a["train"].inputs["text"], c["train"].inputs["text"])


def test_unaligned_evidence_runs_at_the_modality_rate():
    real = get_entry("mosei-unaligned").spec
    ds = generate(real, "synth-mosei-unaligned", 0.003, seed=0)
    t, a = ds["train"].masks["text"], ds["train"].masks["audio"]
    # One utterance: audio covers ten audio steps per text step.
    assert np.all(np.abs(a.sum(1) - 10 * t.sum(1)) <= 10)


def test_labels_cooccur_as_in_mosei():
    real = get_entry("mosei-aligned").spec
    y = generate(real, "synth-mosei-aligned", 0.1, seed=0)["train"].labels.astype(float)
    names = list(real.labels)
    freq = dict(zip(names, y.mean(0)))
    assert max(freq, key=freq.get) == "happy" and 0.4 < freq["happy"] < 0.6
    assert freq["fear"] < 0.12 and freq["surprise"] < 0.12
    assert 0.0 < (y.sum(1) == 0).mean() < 0.3  # some samples carry no label
    r = np.corrcoef(y.T)
    i = names.index
    assert r[i("anger"), i("disgust")] > 0.2 and r[i("happy"), i("surprise")] > 0.05
    assert r[i("happy"), i("sad")] < 0


def test_planted_ordering_holds_for_br(tmp_path):
    """BR micro-F1: all modalities > text > audio > vision, and all modalities in the 0.4–0.6 band."""
    ds = load_dataset("synth-mosei-aligned", data_dir=tmp_path, scale=0.1)
    br = get_method("br")
    f1 = {}
    for mods in (["text", "audio", "vision"], ["text"], ["audio"], ["vision"]):
        est = br(seed=0).fit(pooled_features(ds["train"], mods), ds["train"].labels)
        scores = est.predict_proba(pooled_features(ds["test"], mods))
        f1["+".join(mods)] = multilabel(y_true=ds["test"].labels, y_score=scores)["micro_f1"]
    assert f1["text+audio+vision"] > f1["text"] > f1["audio"] > f1["vision"], f1
    assert 0.4 < f1["text+audio+vision"] < 0.6, f1


# ------------------------------------------------------------------ every twin (issue 3)

TWINS = [n for n in DATASETS.names() if DATASETS.get(n).synthetic]


@pytest.mark.parametrize("twin", TWINS)
def test_every_twin_has_its_real_spec(twin):
    entry = get_entry(twin)
    real = get_entry(entry.spec.twin_of).spec
    ds = generate(real, twin, 0.003, seed=0).validate()
    s = ds.spec
    assert twin == f"synth-{real.name}" and s.synthetic and s.source is None
    assert (s.task, s.labels, s.modalities, s.threshold) == (real.task, real.labels, real.modalities, real.threshold)
    for split, n in s.splits.items():
        assert len(ds[split]) == n == max(8, round(real.splits[split] * 0.003))
        for m, ms in real.modalities.items():
            x, mask = np.asarray(ds[split].inputs[m]), ds[split].masks[m]
            assert x.shape == (n, ms.length, ms.dim) and x.dtype == np.float32 and np.isfinite(x).all()
            assert mask[:, 0].all() and np.all(x[~mask] == 0)  # valid steps first, padding all-zero
            assert np.all(np.diff(mask.astype(int), axis=1) <= 0)
        assert len(set(ds[split].ids)) == n


def test_twin_names_cover_every_real_dataset():
    real = [n for n in DATASETS.names() if not DATASETS.get(n).synthetic]
    assert sorted(TWINS) == sorted(f"synth-{n}" for n in real)
    assert {"m3ed", "nemu", "iemocap", "iemocap-unaligned", "mosi", "mosi-unaligned", "mosei-senti",
            "mosei-senti-unaligned", "msp-improv", "ur-funny"} <= set(real)


def test_task_contracts_of_the_new_sets():
    spec = {n: get_entry(n).spec for n in DATASETS.names()}
    assert spec["m3ed"].task == spec["nemu"].task == "multilabel"
    assert spec["iemocap"].labels == ("neutral", "happy", "sad", "angry") and spec["iemocap"].task == "multiclass"
    assert spec["msp-improv"].task == "multiclass" and list(spec["msp-improv"].modalities) == ["text", "audio"]
    assert spec["mosi"].task == spec["mosei-senti"].task == "regression" and spec["ur-funny"].task == "binary"
    assert list(spec["nemu"].modalities) == ["picture", "audio", "comments", "lyrics"]
    assert spec["nemu"].modalities["picture"].length == 1
    for n in ("m3ed", "iemocap", "mosi", "mosei-senti", "ur-funny", "mosei-aligned"):
        assert list(spec[n].modalities) == ["text", "audio", "vision"], n


@pytest.mark.parametrize("name", ["mosi", "mosei-senti"])
def test_sentiment_targets_lie_in_range_on_the_annotation_grid(name):
    real = get_entry(name).spec
    _, y = _draw_factors(_Plan(real, PROFILES[name], 1), 3000, np.random.default_rng(1))
    grid = PROFILES[name].sentiment.grid
    assert y.dtype == np.float32 and y.min() >= -3 and y.max() <= 3
    np.testing.assert_allclose(y / grid, np.round(y / grid), atol=1e-4)
    assert (y < 0).mean() > 0.15 and (y > 0).mean() > 0.3 and (y == 0).any()


@pytest.mark.parametrize("name", ["iemocap", "msp-improv"])
def test_class_priors_follow_the_profile(name):
    real = get_entry(name).spec
    _, y = _draw_factors(_Plan(real, PROFILES[name], 0), 3000, np.random.default_rng(0))
    assert y.dtype == np.int64 and y.min() >= 0 and y.max() < len(real.labels)
    freq = np.bincount(y, minlength=len(real.labels)) / len(y)
    want = np.array([PROFILES[name].marginals[c] for c in real.labels])
    np.testing.assert_allclose(freq, want / want.sum(), atol=0.05)


def test_binary_twin_is_balanced_and_has_a_conjunction():
    real = get_entry("ur-funny").spec
    plan = _Plan(real, PROFILES["ur-funny"], 0)
    w, y = _draw_factors(plan, 3000, np.random.default_rng(0))
    assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1} and 0.4 < y.mean() < 0.6
    # Positives are either direct or shown only by the text-and-audio conjunction, never both.
    assert plan.factors == ("humor", "conjunction") and plan.conj_modalities == ("text", "audio")
    np.testing.assert_array_equal(w.max(1) > 0, y == 1)
    assert not (w.min(1) > 0).any() and 0.3 < w[y == 1, 1].mean() < 0.5


@pytest.mark.parametrize("name", ["m3ed", "mosei-aligned"])
def test_valence_arousal_extras_follow_the_shown_labels(name):
    real = get_entry(name).spec
    ds = generate(real, f"synth-{name}", 0.02, seed=0)
    s = ds["train"]
    assert sorted(s.extras) == sorted(f"va_{m}" for m in real.modalities)
    labels = [n.lower() for n in real.labels]
    happy = s.labels[:, labels.index("happy")] == 1
    for m in real.modalities:
        va = s.extras[f"va_{m}"]
        assert va.shape == (len(s), 2) and va.dtype == np.float32 and np.all(np.abs(va) <= 1)
    # Text shows most labels: happy samples have higher text valence than the rest.
    v = s.extras["va_text"][:, 0]
    assert v[happy].mean() > v[~happy].mean() + 0.2


def test_valence_arousal_leave_the_features_unchanged():
    real = get_entry("mosei-aligned").spec
    ds = generate(real, "synth-mosei-aligned", 0.003, seed=3)
    profile = dataclasses.replace(PROFILES["mosei-aligned"], va=False)
    plain = generate(real, "synth-mosei-aligned", 0.003, seed=3, profile=profile)
    assert not plain["train"].extras
    np.testing.assert_array_equal(ds["train"].inputs["audio"], plain["train"].inputs["audio"])


def test_twins_without_va_in_their_release_have_no_extras():
    for name in ("iemocap", "mosi", "ur-funny", "nemu", "msp-improv"):
        real = get_entry(name).spec
        assert not generate(real, f"synth-{name}", 0.003, seed=0)["test"].extras, name
    unaligned = get_entry("mosei-unaligned").spec
    assert "va_vision" in generate(unaligned, "synth-mosei-unaligned", 0.003, seed=0)["test"].extras


def test_picture_of_length_one_carries_evidence_at_its_only_step():
    real = get_entry("nemu").spec
    ds = generate(real, "synth-nemu", 0.03, seed=0)
    s = ds["train"]
    assert s.masks["picture"].all()
    # The picture of a sample is informative about its labels (evidence at the single step).
    x = np.asarray(s.inputs["picture"])[:, 0]
    y = s.labels[:, 0].astype(bool)
    assert np.linalg.norm(x[y].mean(0) - x[~y].mean(0)) > 0.5


def test_unaligned_rates_of_the_new_sets():
    for name, (t, a, v) in {"iemocap-unaligned": (20, 400, 500), "mosi-unaligned": (50, 375, 500)}.items():
        real = get_entry(name).spec
        assert (real.modalities["text"].length, real.modalities["audio"].length,
                real.modalities["vision"].length) == (t, a, v)
        ds = generate(real, f"synth-{name}", 0.02, seed=0)
        mt, mv = ds["train"].masks["text"].sum(1), ds["train"].masks["vision"].sum(1)
        assert np.all(np.abs(mv - (v // t) * mt) <= v // t)


# twin → (baseline, metric, modalities from strongest to weakest); fusion of all must beat the strongest.
ORDERINGS = {
    "m3ed": ("br", "micro_f1", ["text", "audio", "vision"]),
    "nemu": ("br", "micro_f1", ["comments", "lyrics", "audio", "picture"]),
    "iemocap": ("linear", "wa", ["text", "audio", "vision"]),
    "msp-improv": ("linear", "wa", ["text", "audio"]),
    "ur-funny": ("linear", "acc", ["text", "audio", "vision"]),
    "mosi": ("linear", "corr", ["text", "audio", "vision"]),
    "mosei-senti": ("linear", "corr", ["text", "audio", "vision"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ORDERINGS))
def test_planted_ordering_of_the_other_twins(tmp_path, name):
    """At the default scale: all modalities > the strongest alone > ... > the weakest (pooled-feature baselines)."""
    from mmerbench import metrics

    method, metric, order = ORDERINGS[name]
    ds = load_dataset(f"synth-{name}", data_dir=tmp_path)
    score = {}
    for mods in [order] + [[m] for m in order]:
        est = get_method(method).for_spec(ds.spec, seed=0)
        est.fit(pooled_features(ds["train"], mods), ds["train"].labels)
        s = est.predict_proba(pooled_features(ds["test"], mods))
        score["+".join(mods)] = metrics.compute(ds.spec.task, y_true=ds["test"].labels, y_score=s,
                                                labels=list(ds.spec.labels))[metric]
    values = list(score.values())
    assert all(a > b for a, b in zip(values, values[1:])), score
