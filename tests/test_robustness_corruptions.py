"""The corruptions: pure, seeded functions on a split that never write into it."""

from __future__ import annotations

import numpy as np
import pytest

from mmerbench.data.dataset import Split
from mmerbench.errors import MmerbenchError
from mmerbench.robustness import corruptions as corr
from mmerbench.robustness.corruptions import Corruption


def _read_only(split: Split) -> Split:
    """A copy whose arrays refuse writes, as a twin's memory maps do."""
    def ro(a):
        a = np.array(a)
        a.setflags(write=False)
        return a
    return Split(inputs={m: ro(x) for m, x in split.inputs.items()}, masks={m: ro(x) for m, x in split.masks.items()},
                 labels=ro(split.labels), ids=ro(split.ids), extras={k: ro(v) for k, v in split.extras.items()})


@pytest.fixture(scope="module")
def test_split(tiny_twin):
    return _read_only(tiny_twin["test"])


@pytest.fixture(scope="module")
def std(tiny_twin):
    return corr.train_std(tiny_twin["train"])


def test_default_corruptions_cover_every_proper_subset(tiny_twin):
    names = [c.name for c in corr.default_corruptions(tiny_twin.spec)]
    missing = [n for n in names if n.startswith("missing-")]
    assert len(missing) == 2 ** len(tiny_twin.spec.modalities) - 2
    assert "missing-text.audio.vision" not in names
    assert {"noise-0.1", "noise-0.3", "noise-1", "tmask-0.25", "tmask-0.5", "tmask-0.75"} <= set(names)
    assert {f"misalign-{m}" for m in tiny_twin.spec.modalities} <= set(names)


@pytest.mark.parametrize("name", ["noise-0", "tmask-0"])
def test_level_zero_is_the_identity(test_split, std, tiny_twin, name):
    (c,) = corr.parse([name], tiny_twin.spec)
    assert corr.apply(test_split, c, seed=3, std=std) is test_split


def test_missing_zeroes_features_and_masks_only_the_named_modalities(test_split, tiny_twin):
    (c,) = corr.parse(["missing-audio.text"], tiny_twin.spec)
    assert c.name == "missing-text.audio"  # canonical order: one name per set
    out = corr.apply(test_split, c, seed=1)
    for m in ("text", "audio"):
        assert not out.inputs[m].any() and not out.masks[m].any()
        assert out.inputs[m].shape == test_split.inputs[m].shape
    assert out.inputs["vision"] is test_split.inputs["vision"]
    assert out.labels is test_split.labels


def test_noise_scales_with_the_training_std_on_real_steps_only(test_split, std):
    out = corr.apply(test_split, Corruption("noise", level=0.5), seed=1, std=std)
    for m in test_split.inputs:
        delta = out.inputs[m].astype(np.float64) - test_split.inputs[m]
        mask = test_split.masks[m]
        assert not delta[~mask].any()  # padding stays zero
        assert np.array_equal(out.masks[m], mask)
        real = delta[mask]  # [n_real, D]
        ok = std[m] > 0
        ratio = real.std(0)[ok] / (0.5 * std[m][ok])
        assert abs(np.median(ratio) - 1.0) < 0.1, m


def test_tmask_masks_the_rounded_fraction_of_real_steps(test_split):
    out = corr.apply(test_split, Corruption("tmask", level=0.5), seed=2)
    for m in test_split.inputs:
        before, after = test_split.masks[m].sum(1), out.masks[m].sum(1)
        assert np.array_equal(before - after, np.floor(0.5 * before + 0.5).astype(int))
        assert not (out.masks[m] & ~test_split.masks[m]).any()  # only real steps are masked
        assert not out.inputs[m][~out.masks[m]].any()


def test_misalign_deranges_one_modality(test_split):
    out = corr.apply(test_split, Corruption("misalign", modalities=("vision",)), seed=4)
    x, y = test_split.inputs["vision"].reshape(len(test_split), -1), out.inputs["vision"].reshape(len(test_split), -1)
    # every sample's vision sequence comes from another sample, and none is lost
    perm = [int(np.flatnonzero((x == row).all(1))[0]) for row in y]
    assert sorted(perm) == list(range(len(test_split)))
    distinct = np.unique(x, axis=0).shape[0] == len(test_split)
    assert not distinct or all(p != i for i, p in enumerate(perm))
    assert out.inputs["text"] is test_split.inputs["text"]
    if "va_vision" in test_split.extras:
        assert np.array_equal(out.extras["va_vision"], test_split.extras["va_vision"][perm])


@pytest.mark.parametrize("name", ["noise-0.3", "tmask-0.5", "misalign-text", "missing-vision"])
def test_same_seed_same_corruption_and_the_input_is_never_written(test_split, std, tiny_twin, name):
    before = {m: np.array(x) for m, x in test_split.inputs.items()}
    (c,) = corr.parse([name], tiny_twin.spec)
    a, b = corr.apply(test_split, c, seed=7, std=std), corr.apply(test_split, c, seed=7, std=std)
    for m in test_split.inputs:
        assert np.array_equal(a.inputs[m], b.inputs[m]) and np.array_equal(a.masks[m], b.masks[m])
        assert np.array_equal(test_split.inputs[m], before[m])
    if c.family in ("noise", "tmask", "misalign"):
        other = corr.apply(test_split, c, seed=8, std=std)
        assert any(not np.array_equal(a.inputs[m], other.inputs[m]) for m in test_split.inputs)


def test_derangement_has_no_fixed_point():
    rng = np.random.default_rng(0)
    for n in (2, 3, 10, 101):
        p = corr.derangement(n, rng)
        assert sorted(p) == list(range(n)) and not (p == np.arange(n)).any()


@pytest.mark.parametrize("bad", ["noise-x", "noise--1", "tmask-1.5", "missing-smell", "misalign-text.audio",
                                 "missing-", "blur-3", "noise-nan"])
def test_bad_names_are_one_sentence_errors(tiny_twin, bad):
    with pytest.raises(MmerbenchError):
        corr.parse([bad], tiny_twin.spec)


def test_family_names_expand_to_their_defaults(tiny_twin):
    names = [c.name for c in corr.parse(["noise,tmask-0.4", "noise-0.1"], tiny_twin.spec)]
    assert names == ["noise-0.1", "noise-0.3", "noise-1", "tmask-0.4"]
