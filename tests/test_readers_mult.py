"""MulT's and MMSA's pickles (IEMOCAP 4-class, CMU-MOSI / CMU-MOSEI sentiment): public layouts written here, read back."""

from __future__ import annotations

import numpy as np
import pytest

from mmerbench.data.catalog import SPECS
from mmerbench.data.readers.mmsa import read_mmsa, write_mmsa_pkl
from mmerbench.data.readers.mult import read_mult, write_mult_pkl
from mmerbench.data.registry import load_dataset
from mmerbench.data.safe_pickle import safe_load
from mmerbench.data.spec import SPLITS, ModalitySpec

from readerkit import (
    assert_features_equal,
    expect_data_error,
    rewrite_pickle,
    small,
    truncate,
    write_hostile_pickle,
)

MULT_FILES = {
    "iemocap": "iemocap/iemocap_data.pkl",
    "iemocap-unaligned": "iemocap/iemocap_data_noalign.pkl",
    "mosi": "mosi/mosi_data.pkl",
    "mosi-unaligned": "mosi/mosi_data_noalign.pkl",
    "mosei-senti": "mosei/mosei_senti_data.pkl",
    "mosei-senti-unaligned": "mosei/mosei_senti_data_noalign.pkl",
}


@pytest.mark.parametrize("name", sorted(MULT_FILES))
def test_mult_round_trip_through_the_registry(tmp_path, name):
    ds = small(name)
    path = tmp_path / MULT_FILES[name]
    path.parent.mkdir(parents=True)
    write_mult_pkl(ds, path)
    out = load_dataset(name, data_dir=tmp_path)
    assert out.spec.source.reader == "mult-pkl" and out.spec.source.files == (MULT_FILES[name],)
    assert (out.spec.task, out.spec.labels, out.spec.modalities) == (ds.spec.task, ds.spec.labels, ds.spec.modalities)
    assert out.spec.splits == {s: len(ds[s]) for s in SPLITS}
    assert_features_equal(out, ds)
    for split in SPLITS:
        np.testing.assert_array_equal(out[split].labels, ds[split].labels)
        np.testing.assert_array_equal(out[split].ids, ds[split].ids)
    assert out["train"].labels.dtype == (np.int64 if ds.spec.task == "multiclass" else np.float32)


def test_iemocap_labels_are_one_hot_pairs_in_the_files_order(tmp_path):
    ds = small("iemocap")
    path = write_mult_pkl(ds, tmp_path / "iemocap_data.pkl", include_ids=False)
    raw = safe_load(path)["test"]["labels"]
    assert raw.shape == (len(ds["test"]), 4, 2)
    # argmax over the pair says "present" for exactly the sample's class, in neutral/happy/sad/angry order.
    np.testing.assert_array_equal(raw.argmax(-1).argmax(1), ds["test"].labels)
    out = read_mult([path], spec=SPECS["iemocap"])
    np.testing.assert_array_equal(out["test"].labels, ds["test"].labels)
    assert list(out["valid"].ids[:2]) == ["valid-00000", "valid-00001"]  # IEMOCAP's file has no ids


def test_iemocap_labels_as_a_binary_matrix(tmp_path):
    ds = small("iemocap")
    path = write_mult_pkl(ds, tmp_path / "i.pkl")
    rewrite_pickle(path, lambda d: [d[s].__setitem__("labels", d[s]["labels"].argmax(-1)) for s in SPLITS])
    np.testing.assert_array_equal(read_mult([path], spec=SPECS["iemocap"])["train"].labels, ds["train"].labels)


@pytest.fixture
def iemocap_pkl(tmp_path):
    return write_mult_pkl(small("iemocap"), tmp_path / "iemocap_data.pkl")


@pytest.fixture
def mosi_pkl(tmp_path):
    return write_mult_pkl(small("mosi"), tmp_path / "mosi_data.pkl")


def _read(path, name):
    return lambda: read_mult([path], spec=SPECS[name])


def test_missing_key(iemocap_pkl):
    rewrite_pickle(iemocap_pkl, lambda d: d["valid"].pop("vision"))
    expect_data_error(_read(iemocap_pkl, "iemocap"), str(iemocap_pkl), "'valid'", "'vision'", "missing")
    write_mult_pkl(small("iemocap"), iemocap_pkl)
    rewrite_pickle(iemocap_pkl, lambda d: d.pop("test"))
    expect_data_error(_read(iemocap_pkl, "iemocap"), "'test'", "missing")


def test_wrong_dimension(mosi_pkl):
    rewrite_pickle(mosi_pkl, lambda d: d["train"].__setitem__("audio", np.zeros((12, 50, 74), np.float32)))
    expect_data_error(_read(mosi_pkl, "mosi"), "'train'", "'audio'", "(N, 50, 5)", "(12, 50, 74)")


def test_aligned_file_given_for_the_unaligned_set(tmp_path):
    path = write_mult_pkl(small("mosi"), tmp_path / "mosi_data_noalign.pkl")
    expect_data_error(_read(path, "mosi-unaligned"), "'audio'", "(N, 375, 5)")


def test_split_sizes_disagree(iemocap_pkl):
    rewrite_pickle(iemocap_pkl, lambda d: d["valid"].__setitem__("audio", d["valid"]["audio"][:-2]))
    expect_data_error(_read(iemocap_pkl, "iemocap"), "'valid'", "'audio' has 7 samples", "'text' has 9")


def test_label_counts_disagree_with_features(mosi_pkl):
    rewrite_pickle(mosi_pkl, lambda d: d["test"].__setitem__("labels", d["test"]["labels"][:-1]))
    expect_data_error(_read(mosi_pkl, "mosi"), "'test'", "'labels'", "10")


@pytest.mark.parametrize("value,needle", [(3.5, "outside [-3, 3]"), (-7.0, "outside [-3, 3]"),
                                          (np.nan, "NaN or infinite"), (np.inf, "NaN or infinite")])
def test_sentiment_outside_the_vocabulary(mosi_pkl, value, needle):
    def edit(d):
        d["valid"]["labels"][4, 0, 0] = value

    rewrite_pickle(mosi_pkl, edit)
    expect_data_error(_read(mosi_pkl, "mosi"), "'valid'", needle, "sample 4")


def test_iemocap_label_outside_the_vocabulary(iemocap_pkl):
    def two_emotions(d):
        d["train"]["labels"][3] = [[0, 1], [0, 1], [1, 0], [1, 0]]

    rewrite_pickle(iemocap_pkl, two_emotions)
    expect_data_error(_read(iemocap_pkl, "iemocap"), "'train'", "sample 3", "exactly one")

    def not_a_pair(d):
        d["train"]["labels"][3] = [[0, 2], [1, 0], [1, 0], [1, 0]]

    write_mult_pkl(small("iemocap"), iemocap_pkl)
    rewrite_pickle(iemocap_pkl, not_a_pair)
    expect_data_error(_read(iemocap_pkl, "iemocap"), "one-hot")

    def five_classes(d):
        d["test"]["labels"] = np.zeros((10, 5, 2), np.float32)

    write_mult_pkl(small("iemocap"), iemocap_pkl)
    rewrite_pickle(iemocap_pkl, five_classes)
    expect_data_error(_read(iemocap_pkl, "iemocap"), "(N, 4, 2)", "(10, 5, 2)")


def test_nonfinite_features_are_zeroed_and_counted(iemocap_pkl):
    def poison(d):
        d["train"]["audio"][0, 0, :3] = [np.nan, np.inf, -np.inf]
        d["test"]["vision"][2, 1, 0] = np.nan

    rewrite_pickle(iemocap_pkl, poison)
    out = read_mult([iemocap_pkl], spec=SPECS["iemocap"])
    assert out.report.nonfinite["train"] == {"text": 0, "audio": 3, "vision": 0}
    assert out.report.nonfinite["test"]["vision"] == 1 and out.report.nonfinite_total == 4
    assert np.all(out["train"].inputs["audio"][0, 0, :3] == 0) and np.isfinite(out["test"].inputs["vision"]).all()


def test_hostile_and_truncated_pickles(tmp_path, mosi_pkl):
    marker = tmp_path / "MARKER"
    write_hostile_pickle(mosi_pkl, marker)
    expect_data_error(_read(mosi_pkl, "mosi"), "not an allowed type")
    assert not marker.exists()
    path = write_mult_pkl(small("mosi"), tmp_path / "t.pkl")
    truncate(path)
    expect_data_error(_read(path, "mosi"), "truncated")


def test_absent_names_both_formats(tmp_path):
    msg = expect_data_error(lambda: load_dataset("mosi", data_dir=tmp_path), "mosi/mosi_data.pkl",
                            "mosi/aligned_50.pkl", "MMSA", str(tmp_path), "synth-mosi")
    assert "or" in msg


# ------------------------------------------------------------------ MMSA


def mmsa_ds(name="mosi"):
    spec = SPECS[name]
    mods = dict(spec.modalities)
    mods["text"] = ModalitySpec(dim=768, length=mods["text"].length)
    return small(name, modalities=mods)


@pytest.mark.parametrize("name,file", [("mosi", "mosi/aligned_50.pkl"), ("mosi-unaligned", "mosi/unaligned_50.pkl"),
                                       ("mosei-senti", "mosei/aligned_50.pkl")])
def test_mmsa_round_trip(tmp_path, name, file):
    ds = mmsa_ds(name)
    path = tmp_path / file
    path.parent.mkdir(parents=True)
    write_mmsa_pkl(ds, path)
    out = load_dataset(name, data_dir=tmp_path)
    assert out.spec.source.reader == "mmsa-pkl"
    assert out.spec.modalities == ds.spec.modalities and out.spec.modalities["text"].dim == 768
    assert_features_equal(out, ds)
    for split in SPLITS:
        np.testing.assert_allclose(out[split].labels, ds[split].labels)
        np.testing.assert_array_equal(out[split].ids, ds[split].ids)
        # raw_text is kept as the utterance text (the writer writes "utterance <id>" for a set without any)
        want = ds[split].text_raw if ds[split].text_raw is not None else [f"utterance {i}" for i in ds[split].ids]
        np.testing.assert_array_equal(out[split].text_raw, want)


def test_mult_is_preferred_when_both_formats_are_present(tmp_path):
    (tmp_path / "mosi").mkdir()
    write_mmsa_pkl(mmsa_ds(), tmp_path / "mosi" / "aligned_50.pkl")
    write_mult_pkl(small("mosi"), tmp_path / "mosi" / "mosi_data.pkl")
    assert load_dataset("mosi", data_dir=tmp_path).spec.source.reader == "mult-pkl"


def test_mmsa_masks_come_from_lengths_and_text_bert(tmp_path):
    ds = mmsa_ds()
    path = write_mmsa_pkl(ds, tmp_path / "aligned_50.pkl")

    def pad_with_noise(d):  # BERT features are not zero on padding: the mask must come from text_bert
        t = d["train"]["text"]
        t[~np.asarray(ds["train"].masks["text"])] = 0.5

    rewrite_pickle(path, pad_with_noise)
    out = read_mmsa([path], spec=SPECS["mosi"])
    np.testing.assert_array_equal(out["train"].masks["text"], ds["train"].masks["text"])
    np.testing.assert_array_equal(out["train"].masks["audio"], ds["train"].masks["audio"])
    no_extras = write_mmsa_pkl(ds, tmp_path / "plain.pkl", with_text_bert=False, with_lengths=False)
    assert_features_equal(read_mmsa([no_extras], spec=SPECS["mosi"]), ds)


def test_mmsa_broken_variants(tmp_path):
    ds = mmsa_ds()
    path = write_mmsa_pkl(ds, tmp_path / "aligned_50.pkl")
    read = lambda: read_mmsa([path], spec=SPECS["mosi"])  # noqa: E731
    rewrite_pickle(path, lambda d: d["valid"].pop("regression_labels"))
    expect_data_error(read, "'valid'", "'regression_labels'", "missing")
    write_mmsa_pkl(ds, path)
    rewrite_pickle(path, lambda d: d["test"].__setitem__("vision", d["test"]["vision"][:, :, :19]))
    expect_data_error(read, "'test'", "'vision'", "(N, 50, 20)", "(10, 50, 19)")
    write_mmsa_pkl(ds, path)
    rewrite_pickle(path, lambda d: d["test"].__setitem__("audio_lengths", [3] * 4))
    expect_data_error(read, "'audio_lengths'", "4 lengths for 10 samples")
    write_mmsa_pkl(ds, path)
    rewrite_pickle(path, lambda d: d["train"]["regression_labels"].__setitem__(0, 9.0))
    expect_data_error(read, "outside [-3, 3]")
    write_mmsa_pkl(ds, path)
    rewrite_pickle(path, lambda d: d["train"]["text_bert"].__setitem__((0, 1, 0), 7))
    expect_data_error(read, "'text_bert'", "0 and 1")


def test_mmsa_nonfinite_hostile_truncated(tmp_path):
    ds = mmsa_ds()
    path = write_mmsa_pkl(ds, tmp_path / "aligned_50.pkl")
    rewrite_pickle(path, lambda d: d["valid"]["vision"].__setitem__((1, 0, slice(0, 2)), [np.nan, -np.inf]))
    out = read_mmsa([path], spec=SPECS["mosi"])
    assert out.report.nonfinite["valid"] == {"text": 0, "audio": 0, "vision": 2}
    marker = tmp_path / "MARKER"
    write_hostile_pickle(path, marker)
    expect_data_error(lambda: read_mmsa([path], spec=SPECS["mosi"]), "not an allowed type")
    assert not marker.exists()
    write_mmsa_pkl(ds, path)
    truncate(path)
    expect_data_error(lambda: read_mmsa([path], spec=SPECS["mosi"]), "truncated")
