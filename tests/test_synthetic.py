"""The synthetic twins: the real spec, determinism, MOSEI-like labels, and the planted ordering."""

from __future__ import annotations

import numpy as np
import pytest

from mmerbench.baselines.base import pooled_features
from mmerbench.data.registry import get_entry, load_dataset
from mmerbench.data.synthetic import generate
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
