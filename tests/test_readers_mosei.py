"""CMU-MOSEI readers: small files in the exact public layouts, written in tmp_path, read back."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from mmerbench.data.dataset import Dataset, LoadReport, Split
from mmerbench.data.readers.mosei import (
    ALIGNED_SPEC,
    DOCUMENTED_LABELS,
    UNALIGNED_SPEC,
    read_aligned,
    read_unaligned,
    write_aligned_pt,
    write_unaligned_pkl,
)
from mmerbench.data.registry import get_entry, load_dataset
from mmerbench.data.safe_pickle import safe_load
from mmerbench.data.spec import SPLITS
from mmerbench.errors import DataError

from readerkit import expect_data_error

SIZES = {"train": 12, "valid": 5, "test": 7}
SHUFFLED = ("anger", "happy", "fear", "sad", "disgust", "surprise")


def make_ds(spec=ALIGNED_SPEC, seed=0, sizes=SIZES) -> Dataset:
    """Random features with zero padding after each sample's valid steps, random multi-hot labels."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in sizes.items():
        inputs, masks = {}, {}
        for m, ms in spec.modalities.items():
            valid = np.arange(ms.length)[None, :] < rng.integers(1, ms.length + 1, size=n)[:, None]
            inputs[m] = (rng.normal(size=(n, ms.length, ms.dim)) * valid[..., None]).astype(np.float32)
            masks[m] = valid
        y = (rng.random((n, len(spec.labels))) < 0.4).astype(np.int8)
        ids = np.array([f"vid{seed}x{i}_{split}" for i in range(n)])
        splits[split] = Split(inputs, masks, y, ids)
    return Dataset(spec.with_(splits=dict(sizes)), splits, LoadReport())


def assert_same(got: Dataset, want: Dataset, labels: bool = True) -> None:
    for split in SPLITS:
        g, w = got[split], want[split]
        for m in want.spec.modalities:
            x = g.inputs[m]
            assert x.dtype == np.float32 and x.flags.c_contiguous
            np.testing.assert_array_equal(x, w.inputs[m])
            np.testing.assert_array_equal(g.masks[m], w.masks[m])
        if labels:
            assert g.labels.dtype == np.int8
            np.testing.assert_array_equal(g.labels, w.labels)


@pytest.fixture
def aligned_pt(tmp_path):
    ds = make_ds()
    return ds, write_aligned_pt(ds, tmp_path / "train_valid_test.pt")


def _rewrite(path, edit) -> None:
    """Load the .pt safely, let `edit` change the dict, and save it back."""
    data = safe_load(path)
    edit(data)
    torch.save(data, path)


# ---------------------------------------------------------------- aligned: the happy paths


def test_aligned_round_trip(aligned_pt):
    ds, pt = aligned_pt
    out = read_aligned([pt]).validate()
    assert out.spec.name == "mosei-aligned"
    assert out.spec.labels == DOCUMENTED_LABELS
    assert out.spec.splits == SIZES
    assert list(out.spec.modalities) == ["text", "audio", "vision"]
    assert_same(out, ds)
    assert out.report.nonfinite == {s: {"text": 0, "audio": 0, "vision": 0} for s in SPLITS}
    assert list(out["train"].ids[:2]) == ["train-00000", "train-00001"]  # the public file has no ids
    assert out["valid"].ids.dtype.kind == "U"


def test_label_order_follows_the_files_vocabulary(tmp_path):
    ds = make_ds()
    pt = write_aligned_pt(ds, tmp_path / "t.pt", label_order=SHUFFLED)
    vocab = safe_load(pt)["dict"]["tgt"]
    assert vocab["anger"] == 4 and vocab["happy"] == 5
    out = read_aligned([pt])
    assert out.spec.labels == SHUFFLED
    for j, name in enumerate(SHUFFLED):
        k = DOCUMENTED_LABELS.index(name)
        for split in SPLITS:
            np.testing.assert_array_equal(out[split].labels[:, j], ds[split].labels[:, k], err_msg=name)


def _by_index(v):
    return {i: n for n, i in v.items()}


def _as_list(v):
    return [n for n, _ in sorted(v.items(), key=lambda kv: kv[1])]


def _emotions_only(v):
    return [n for n in _as_list(v) if not n.startswith("<")]


def _insertion_shuffled(v):
    return dict(sorted(v.items(), key=lambda kv: kv[0]))  # alphabetical: neither token nor documented order


@pytest.mark.parametrize("form", [_by_index, _as_list, _emotions_only, _insertion_shuffled])
def test_other_vocabulary_forms(tmp_path, form):
    ds = make_ds()
    pt = write_aligned_pt(ds, tmp_path / "t.pt", label_order=SHUFFLED)
    _rewrite(pt, lambda d: d["dict"].__setitem__("tgt", form(d["dict"]["tgt"])))
    out = read_aligned([pt])
    assert out.spec.labels == SHUFFLED
    np.testing.assert_array_equal(out["train"].labels[:, 0], ds["train"].labels[:, DOCUMENTED_LABELS.index("anger")])


def test_nonfinite_audio_is_zeroed_counted_and_leaves_masks_alone(tmp_path):
    ds = make_ds()
    rng = np.random.default_rng(1)
    expected = {}
    for split in SPLITS:
        a = ds[split].inputs["audio"]
        # A few cells in real steps (other features stay non-zero) and a whole padded step.
        n_real = 0
        for i in range(len(ds[split])):
            real = np.flatnonzero(ds[split].masks["audio"][i])
            t = rng.choice(real)
            a[i, t, :3] = [-np.inf, np.nan, np.inf]
            n_real += 3
        pad = np.argwhere(~ds[split].masks["audio"])
        i, t = pad[0]
        a[i, t, :] = -np.inf
        expected[split] = n_real + a.shape[2]
    pt = write_aligned_pt(ds, tmp_path / "t.pt")
    out = read_aligned([pt]).validate()
    for split in SPLITS:
        x = out[split].inputs["audio"]
        assert np.isfinite(x).all()
        assert out.report.nonfinite[split] == {"text": 0, "audio": expected[split], "vision": 0}
        np.testing.assert_array_equal(out[split].masks["audio"], ds[split].masks["audio"])
        bad = ~np.isfinite(ds[split].inputs["audio"])
        assert (x[bad] == 0).all()
        np.testing.assert_array_equal(x[~bad], ds[split].inputs["audio"][~bad])
    assert out.report.nonfinite_total == sum(expected.values())


@pytest.mark.parametrize("container", ["numpy64", "torch", "list", "torch-list"])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_feature_containers_read_identically(tmp_path, container, legacy):
    ds = make_ds()
    ref = read_aligned([write_aligned_pt(ds, tmp_path / "ref.pt")])
    pt = write_aligned_pt(ds, tmp_path / "t.pt", feature_container=container, legacy_format=legacy)
    out = read_aligned([pt])
    assert_same(out, ref)
    for split in SPLITS:
        np.testing.assert_array_equal(out[split].ids, ref[split].ids)


def test_tgt_with_trailing_pad_and_as_a_padded_array(tmp_path, aligned_pt):
    ds, pt = aligned_pt

    def pad(d):
        d["train"]["tgt"] = [row + [0] * (9 - len(row)) for row in d["train"]["tgt"]]
        d["valid"]["tgt"] = np.array([row + [0] * (9 - len(row)) for row in d["valid"]["tgt"]])
        d["test"]["tgt"] = [torch.tensor(row) for row in d["test"]["tgt"]]

    _rewrite(pt, pad)
    out = read_aligned([pt])
    for split in SPLITS:
        np.testing.assert_array_equal(out[split].labels, ds[split].labels)


def test_ids_when_present(tmp_path):
    ds = make_ds()
    pt = write_aligned_pt(ds, tmp_path / "t.pt", include_ids=True)
    out = read_aligned([pt])
    np.testing.assert_array_equal(out["valid"].ids, ds["valid"].ids)

    def parts(d):
        d["train"]["id"] = np.array([[b"vid", str(i).encode()] for i in range(SIZES["train"])])

    _rewrite(pt, parts)
    assert read_aligned([pt])["train"].ids[3] == "vid_3"


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_empty_split_is_refused(tmp_path, split):
    # The reader reads an empty list as zero samples; the common check every reader's output
    # passes (Dataset.validate, via read_format and the cache) refuses it, naming the file and split.
    ds = make_ds(sizes={"train": 4, "valid": 3, "test": 2})
    pt = write_aligned_pt(ds, tmp_path / "t.pt", feature_container="list")

    def empty(d):
        d[split] = {"src-text": [], "src-audio": [], "src-visual": [], "tgt": []}

    _rewrite(pt, empty)
    out = read_aligned([pt])
    assert len(out[split]) == 0
    expect_data_error(out.validate, str(pt), f"the {split} split holds no samples")


# ---------------------------------------------------------------- aligned: refusals


def _expect_error(pt, edit, *needles):
    _rewrite(pt, edit)
    with pytest.raises(DataError) as e:
        read_aligned([pt])
    msg = str(e.value)
    for needle in (str(pt), *needles):
        assert needle in msg, msg
    return msg


def test_missing_feature_key(aligned_pt):
    _, pt = aligned_pt
    _expect_error(pt, lambda d: d["valid"].pop("src-audio"), "'valid'", "'src-audio'", "missing")


def test_missing_tgt_vocabulary(aligned_pt):
    _, pt = aligned_pt
    _expect_error(pt, lambda d: d["dict"].pop("tgt"), "['dict']['tgt']")
    _expect_error(pt, lambda d: d.pop("dict"), "'dict'")


def test_missing_split(aligned_pt):
    _, pt = aligned_pt
    _expect_error(pt, lambda d: d.pop("test"), "'test'")


@pytest.mark.parametrize(
    "key,shape",
    [("src-audio", (12, 60, 73)), ("src-text", (12, 59, 300)), ("src-visual", (12, 60)), ("src-visual", (12, 60, 74))],
)
def test_wrong_feature_shape(aligned_pt, key, shape):
    _, pt = aligned_pt
    msg = _expect_error(pt, lambda d: d["train"].__setitem__(key, np.zeros(shape, np.float32)), f"'{key}'", "'train'")
    assert str(shape) in msg


def test_per_sample_arrays_of_different_shapes(aligned_pt):
    _, pt = aligned_pt

    def ragged(d):
        d["train"]["src-text"] = [np.zeros((60, 300))] * 11 + [np.zeros((59, 300))]

    _expect_error(pt, ragged, "'src-text'", "differ in shape")


def test_split_sizes_disagree_between_modalities(aligned_pt):
    _, pt = aligned_pt
    _expect_error(pt, lambda d: d["train"].__setitem__("src-visual", d["train"]["src-visual"][:-1]),
                  "'train'", "'src-visual'", "11", "12")


def test_tgt_count_disagrees_with_features(aligned_pt):
    _, pt = aligned_pt
    _expect_error(pt, lambda d: d["test"]["tgt"].pop(), "'test'", "'tgt'")


@pytest.mark.parametrize("token", [10, 1, -1, 250])
def test_label_token_outside_the_vocabulary(aligned_pt, token):
    _, pt = aligned_pt
    msg = _expect_error(pt, lambda d: d["valid"]["tgt"][2].insert(1, token), "'valid'", "'tgt'", f"token {token}")
    assert "sample 2" in msg


def test_non_numeric_features_are_refused(aligned_pt):
    _, pt = aligned_pt
    _expect_error(pt, lambda d: d["train"].__setitem__("src-text", np.full((12, 60, 300), "x")), "'src-text'")


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_truncated_pt(tmp_path, legacy):
    pt = write_aligned_pt(make_ds(), tmp_path / "t.pt", legacy_format=legacy)
    raw = pt.read_bytes()
    pt.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated"):
        read_aligned([pt])


def test_hostile_pt_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "MARKER"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    pt = write_aligned_pt(make_ds(), tmp_path / "t.pt")
    data = safe_load(pt)
    data["settings"] = Evil()
    torch.save(data, pt)
    with pytest.raises(DataError, match="not an allowed type"):
        read_aligned([pt])
    assert not marker.exists()


# ---------------------------------------------------------------- unaligned


@pytest.fixture
def unaligned_files(tmp_path):
    aligned = make_ds(seed=3)
    unaligned = make_ds(UNALIGNED_SPEC, seed=4)
    for split in SPLITS:  # the labels live in the .pt; the pickle's own are sentiment zeros
        unaligned[split].labels = aligned[split].labels
    pt = write_aligned_pt(aligned, tmp_path / "train_valid_test.pt", label_order=SHUFFLED)
    pkl = write_unaligned_pkl(unaligned, tmp_path / "mosei_senti_data_noalign.pkl")
    return unaligned, pt, pkl


def test_unaligned_reads_with_labels_from_the_pt(unaligned_files):
    ds, pt, pkl = unaligned_files
    out = read_unaligned([pt, pkl]).validate()
    assert out.spec.name == "mosei-unaligned"
    assert out.spec.labels == SHUFFLED
    assert {m: (ms.length, ms.dim) for m, ms in out.spec.modalities.items()} == {
        "text": (50, 300), "audio": (500, 74), "vision": (500, 35)}
    assert out["train"].inputs["audio"].shape == (12, 500, 74)
    assert_same(out, ds, labels=False)
    perm = [DOCUMENTED_LABELS.index(n) for n in SHUFFLED]
    for split in SPLITS:
        np.testing.assert_array_equal(out[split].labels, ds[split].labels[:, perm])
        np.testing.assert_array_equal(out[split].ids, ds[split].ids)  # N×2 parts joined with '_'


def test_unaligned_split_sizes_must_match_the_pt(tmp_path, unaligned_files):
    _, pt, pkl = unaligned_files
    data = safe_load(pkl)
    for k in ("text", "audio", "vision", "labels", "id"):
        data["valid"][k] = data["valid"][k][:-1]
    pkl.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match=r"has 4 'valid' samples but .*train_valid_test.pt has 5") as e:
        read_unaligned([pt, pkl])
    assert "same release" in str(e.value)


def test_unaligned_missing_key_and_wrong_length(unaligned_files):
    _, pt, pkl = unaligned_files
    data = safe_load(pkl)
    data["test"]["audio"] = data["test"]["audio"][:, :60]
    pkl.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match=r"'test', key 'audio': expected shape \(N, 500, 74\)"):
        read_unaligned([pt, pkl])
    data["test"]["audio"] = np.zeros((7, 500, 74), np.float32)
    del data["test"]["vision"]
    pkl.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match="'vision' is missing"):
        read_unaligned([pt, pkl])


def test_unaligned_truncated_and_hostile_pickles(tmp_path, unaligned_files):
    _, pt, pkl = unaligned_files
    raw = pkl.read_bytes()
    pkl.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated"):
        read_unaligned([pt, pkl])

    marker = tmp_path / "MARKER"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    pkl.write_bytes(pickle.dumps({"train": {"text": Evil()}}))
    with pytest.raises(DataError, match="posix.system|os.system"):
        read_unaligned([pt, pkl])
    assert not marker.exists()


# ---------------------------------------------------------------- through the registry and the cache


def test_registry_specs():
    a, u = get_entry("mosei-aligned"), get_entry("mosei-unaligned")
    assert a.spec.splits == {"train": 16326, "valid": 1871, "test": 4659} == u.spec.splits
    assert a.spec.source.files == ("mosei/train_valid_test.pt",)
    assert u.spec.source.files == ("mosei/train_valid_test.pt", "mosei/mosei_senti_data_noalign.pkl")
    assert a.spec.labels == DOCUMENTED_LABELS and a.spec.task == "multilabel" and a.spec.threshold == 0.5


def test_load_through_registry_then_from_cache_then_rebuilt(tmp_path):
    (tmp_path / "mosei").mkdir()
    pt = tmp_path / "mosei" / "train_valid_test.pt"
    ds = make_ds(seed=1)
    write_aligned_pt(ds, pt, label_order=SHUFFLED)

    first = load_dataset("mosei-aligned", data_dir=tmp_path)
    assert not first.report.from_cache
    assert first.spec.labels == SHUFFLED and first.spec.splits == SIZES

    second = load_dataset("mosei-aligned", data_dir=tmp_path)
    assert second.report.from_cache
    assert isinstance(second["train"].inputs["text"], np.memmap)
    assert second.spec.labels == SHUFFLED
    np.testing.assert_array_equal(second["test"].inputs["audio"], ds["test"].inputs["audio"])
    np.testing.assert_array_equal(second["test"].masks["audio"], ds["test"].masks["audio"])

    changed = make_ds(seed=2)
    write_aligned_pt(changed, pt)
    st = pt.stat()
    os.utime(pt, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a later write, whatever the clock's grain
    third = load_dataset("mosei-aligned", data_dir=tmp_path)
    assert not third.report.from_cache
    assert third.spec.labels == DOCUMENTED_LABELS
    np.testing.assert_array_equal(third["train"].inputs["text"], changed["train"].inputs["text"])
    assert load_dataset("mosei-aligned", data_dir=tmp_path).report.from_cache

    os.utime(pt, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # touched, same content: rebuilt
    assert not load_dataset("mosei-aligned", data_dir=tmp_path).report.from_cache


def test_unaligned_through_registry(tmp_path, unaligned_files):
    ds, pt, pkl = unaligned_files
    (tmp_path / "mosei").mkdir()
    os.replace(pt, tmp_path / "mosei" / pt.name)
    os.replace(pkl, tmp_path / "mosei" / pkl.name)
    out = load_dataset("mosei-unaligned", data_dir=tmp_path)
    assert out.spec.labels == SHUFFLED and out["test"].inputs["vision"].shape == (7, 500, 35)


def test_missing_file_names_the_file_and_the_folder(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("mosei-aligned", data_dir=tmp_path)
    assert "mosei/train_valid_test.pt" in str(e.value) and str(tmp_path) in str(e.value)
    (tmp_path / "mosei").mkdir()
    write_aligned_pt(make_ds(), tmp_path / "mosei" / "train_valid_test.pt")
    with pytest.raises(DataError, match="mosei_senti_data_noalign.pkl"):
        load_dataset("mosei-unaligned", data_dir=tmp_path)
