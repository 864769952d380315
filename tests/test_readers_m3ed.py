"""M3ED: UniVA's utterance pickles and CARAT's dialogue-level .pt, written in their public layouts and read back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmerbench.data.catalog import SPECS
from mmerbench.data.readers.m3ed import (
    CARAT_SHAPES,
    M3ED_LABELS,
    read_carat,
    read_univa,
    univa_files,
    write_carat_pt,
    write_univa_pickles,
)
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

CARAT_ORDER = ("Happy", "Neutral", "Sad", "Disgust", "Anger", "Fear", "Surprise")


@pytest.fixture
def univa(tmp_path):
    ds = small("m3ed")
    files = write_univa_pickles(ds, tmp_path / "m3ed")
    return ds, files


def _read(files):
    return lambda: read_univa(files, spec=SPECS["m3ed"])


def test_univa_layout_and_round_trip_through_the_registry(tmp_path, univa):
    ds, files = univa
    assert [str(f.relative_to(tmp_path)) for f in files] == list(univa_files("M3ED", "m3ed"))
    audio = safe_load(files[3])
    assert set(audio) == {"train", "num_labels"} and audio["num_labels"] == 7
    assert set(audio["train"]) == {"audio", "audio_utt_mask", "audio_VA_values", "labels_class"}
    assert set(safe_load(files[0])) == {"text", "text_utt_mask", "text_VA_values"}
    out = load_dataset("m3ed", data_dir=tmp_path)
    assert out.spec.source.reader == "univa-pkl" and out.spec.labels == M3ED_LABELS
    assert out.spec.modalities == ds.spec.modalities and out.spec.splits == {s: len(ds[s]) for s in SPLITS}
    assert_features_equal(out, ds)
    for split in SPLITS:
        np.testing.assert_array_equal(out[split].labels, ds[split].labels)
        assert out[split].labels.dtype == np.int8
        for m in ("text", "audio", "vision"):
            np.testing.assert_array_equal(out[split].extras[f"va_{m}"], ds[split].extras[f"va_{m}"])
            assert out[split].extras[f"va_{m}"].dtype == np.float32
    # The extras survive the cache and reach the batch.
    again = load_dataset("m3ed", data_dir=tmp_path)
    assert again.report.from_cache and set(again["test"].extras) == {"va_text", "va_audio", "va_vision"}
    from mmerbench.data.batching import DeviceSplit

    batch = DeviceSplit(again.spec, again["test"], "cpu").take(torch.tensor([0, 2]))
    assert batch.extras["va_audio"].shape == (2, 2)


def test_univa_dims_and_lengths_come_from_the_files(tmp_path):
    mods = {"text": ModalitySpec(300, 30), "audio": ModalitySpec(64, 90), "vision": ModalitySpec(342, 40)}
    ds = small("m3ed", modalities=mods)
    out = read_univa(write_univa_pickles(ds, tmp_path), spec=SPECS["m3ed"])
    assert out.spec.modalities == mods
    assert_features_equal(out, ds)


def test_univa_missing_key(univa):
    ds, files = univa
    rewrite_pickle(files[4], lambda d: d["valid"].pop("audio_VA_values"))  # audio, valid
    expect_data_error(_read(files), "'valid'", "'audio_VA_values'", "missing")
    rewrite_pickle(files[0], lambda d: d.pop("text_utt_mask"))
    expect_data_error(_read(files), "'text_utt_mask'", "missing")


def test_univa_wrong_dimension_across_splits(univa):
    ds, files = univa
    rewrite_pickle(files[8], lambda d: d["test"].__setitem__("vision", d["test"]["vision"][:, :, :-1]))
    expect_data_error(_read(files), "'test'", "'vision'", "(N, 50, 342)", "(10, 50, 341)")


def test_univa_split_sizes_disagree_between_modality_files(univa):
    ds, files = univa

    def drop(d):
        for k in ("audio", "audio_utt_mask", "audio_VA_values", "labels_class"):
            d["valid"][k] = d["valid"][k][:-1]

    rewrite_pickle(files[4], drop)
    expect_data_error(_read(files), "'valid'", "8 samples", "text file has 9")


def test_univa_labels_outside_the_vocabulary_and_disagreeing(univa):
    ds, files = univa
    rewrite_pickle(files[3], lambda d: d["train"]["labels_class"].__setitem__((2, 5), 2.0))
    expect_data_error(_read(files), "'train'", "sample 2", "0 or 1")
    write_univa_pickles(ds, files[0].parent.parent.parent)
    rewrite_pickle(files[6], lambda d: d["train"]["labels_class"].__setitem__((0, 0), 1 - d["train"]["labels_class"][0, 0]))
    expect_data_error(_read(files), "differs from the audio file's")
    write_univa_pickles(ds, files[0].parent.parent.parent)
    rewrite_pickle(files[3], lambda d: d["train"].__setitem__("labels_class", d["train"]["labels_class"][:, :6]))
    expect_data_error(_read(files), "(12, 7)", "(12, 6)")


def test_univa_nonfinite_features_and_va_are_counted(univa):
    ds, files = univa

    def poison(d):
        d["train"]["audio"][1, 0, :2] = np.nan
        d["train"]["audio_VA_values"][3] = [np.inf, 0.1]

    rewrite_pickle(files[3], poison)
    out = read_univa(files, spec=SPECS["m3ed"])
    assert out.report.nonfinite["train"]["audio"] == 2 and out.report.nonfinite["train"]["va_audio"] == 1
    assert out["train"].extras["va_audio"][3, 0] == 0 and np.isfinite(out["train"].inputs["audio"]).all()


def test_univa_mask_must_be_zero_one(univa):
    ds, files = univa
    rewrite_pickle(files[6], lambda d: d["train"]["vision_utt_mask"].__setitem__((0, 0), 0.5))
    expect_data_error(_read(files), "'vision_utt_mask'", "0 and 1")


def test_univa_hostile_and_truncated(tmp_path, univa):
    ds, files = univa
    marker = tmp_path / "MARKER"
    write_hostile_pickle(files[5], marker)
    expect_data_error(_read(files), "not an allowed type")
    assert not marker.exists()
    write_univa_pickles(ds, files[0].parent.parent.parent)
    truncate(files[1])
    expect_data_error(_read(files), "truncated")


# ------------------------------------------------------------------ CARAT


def carat_ds():
    mods = {m: ModalitySpec(dim=d, length=n) for m, (n, d) in CARAT_SHAPES.items()}
    return small("m3ed", modalities=mods)


def test_carat_round_trip_with_the_files_label_order(tmp_path):
    ds = carat_ds()
    (tmp_path / "m3ed").mkdir()
    write_carat_pt(ds, tmp_path / "m3ed" / "m3ed_data_60.pt", label_order=CARAT_ORDER)
    out = load_dataset("m3ed", data_dir=tmp_path)
    assert out.spec.source.reader == "carat-pt" and out.spec.labels == CARAT_ORDER
    assert {m: (ms.length, ms.dim) for m, ms in out.spec.modalities.items()} == CARAT_SHAPES
    assert_features_equal(out, ds)
    perm = [M3ED_LABELS.index(n) for n in CARAT_ORDER]
    for split in SPLITS:
        np.testing.assert_array_equal(out[split].labels, ds[split].labels[:, perm])
    assert not out["train"].extras  # CARAT's file carries no valence/arousal


def test_univa_is_preferred_over_carat(tmp_path):
    write_univa_pickles(small("m3ed"), tmp_path / "m3ed")
    write_carat_pt(carat_ds(), tmp_path / "m3ed" / "m3ed_data_60.pt")
    assert load_dataset("m3ed", data_dir=tmp_path).spec.source.reader == "univa-pkl"


def test_carat_len_list_gives_the_masks(tmp_path):
    ds = carat_ds()
    path = write_carat_pt(ds, tmp_path / "c.pt")
    data = safe_load(path)
    # A real utterance whose features are all zero stays real: the mask comes from len_list.
    data["train"]["src-audio"][0][0] = 0
    data["train"]["len_list"][1] = 75  # the authors cut dialogues at 60 utterances
    torch.save(data, path)
    out = read_carat([path], spec=SPECS["m3ed"])
    np.testing.assert_array_equal(out["train"].masks["audio"][0], ds["train"].masks["text"][0])
    assert out["train"].masks["text"][1].all()


def test_carat_broken_variants(tmp_path):
    ds = carat_ds()
    path = write_carat_pt(ds, tmp_path / "c.pt")
    read = lambda: read_carat([path], spec=SPECS["m3ed"])  # noqa: E731

    def edit(fn):
        write_carat_pt(ds, path)
        data = safe_load(path)
        fn(data)
        torch.save(data, path)

    edit(lambda d: d["valid"].pop("src-visual"))
    expect_data_error(read, "'valid'", "'src-visual'", "missing")
    edit(lambda d: d["test"].__setitem__("src-audio", np.zeros((10, 60, 343), np.float32)))
    expect_data_error(read, "'src-audio'", "(N, 60, 342)")
    edit(lambda d: d["train"].__setitem__("tgt", d["train"]["tgt"][:-1]))
    expect_data_error(read, "'tgt'", "11 target lists for 12")
    edit(lambda d: d["train"]["tgt"][0].insert(1, 11))
    expect_data_error(read, "token 11", "Happy")
    edit(lambda d: d["test"].__setitem__("len_list", [1, 2]))
    expect_data_error(read, "'len_list'", "2 lengths for 10 samples")
    write_carat_pt(ds, path)
    truncate(path)
    expect_data_error(read, "truncated")


def test_carat_nonfinite_and_hostile(tmp_path):
    ds = carat_ds()
    path = write_carat_pt(ds, tmp_path / "c.pt")
    data = safe_load(path)
    data["valid"]["src-audio"][2][0, :3] = [np.nan, np.inf, -np.inf]
    torch.save(data, path)
    out = read_carat([path], spec=SPECS["m3ed"])
    assert out.report.nonfinite["valid"]["audio"] == 3 and np.isfinite(out["valid"].inputs["audio"]).all()
    marker = tmp_path / "MARKER"
    write_hostile_pickle(path, marker)
    expect_data_error(lambda: read_carat([path], spec=SPECS["m3ed"]), "not an allowed type")
    assert not marker.exists()


# ----------------------------------------------------------------------------- the annotation file (text)


def _write_annotations(ds, folder, order=None):
    """UniVA's utt_annot.json for `ds`: per split, utterance id → text and emotions, in the pickles' order."""
    import json

    out = {}
    for split in SPLITS:
        rows = {}
        for i in (order or {}).get(split, range(len(ds[split]))):
            names = [M3ED_LABELS[k] for k in np.flatnonzero(ds[split].labels[i])]
            rows[f"dia{i // 4}_utt{i % 4}_{split}"] = {"text": f"words of {split} {i} ünïcode", "Emotion": ",".join(names),
                                                       "EmotionLevel": "1"}
        out[split] = rows
    path = folder / "utt_annot.json"
    path.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    return path


def test_univa_annotations_give_ids_and_text_and_join_the_cache_key(tmp_path, univa):
    ds, files = univa
    assert load_dataset("m3ed", data_dir=tmp_path)["train"].text_raw is None
    _write_annotations(ds, tmp_path / "m3ed")
    out = load_dataset("m3ed", data_dir=tmp_path)  # the new file changes the cache key: read again
    assert not out.report.from_cache
    for split in SPLITS:
        n = len(ds[split])
        assert list(out[split].text_raw) == [f"words of {split} {i} ünïcode" for i in range(n)]
        assert out[split].ids[1] == f"dia0_utt1_{split}"
        np.testing.assert_array_equal(out[split].labels, ds[split].labels)
    again = load_dataset("m3ed", data_dir=tmp_path)
    assert again.report.from_cache and list(again["test"].text_raw) == list(out["test"].text_raw)


def test_univa_annotations_in_another_order_or_shape_are_refused(tmp_path, univa):
    ds, files = univa
    folder = tmp_path / "m3ed"
    y = ds["train"].labels
    i, j = next((a, b) for a in range(len(y)) for b in range(a + 1, len(y)) if (y[a] != y[b]).any())
    order = list(range(len(y)))
    order[i], order[j] = j, i
    _write_annotations(ds, folder, {"train": order})
    expect_data_error(_read(files), "not in the pickles' order")
    _write_annotations(ds, folder, {"valid": range(len(ds["valid"]) - 1)})
    expect_data_error(_read(files), "annotates")
    path = folder / "utt_annot.json"
    for bad, words in (('{"train": [1, 2]}', "expected an object"), ("{not json", "not a readable JSON"),
                       (b"\xff\xfe", "not a readable JSON"),
                       ('{"train": {"a": {"text": 3, "Emotion": "Happy"}}}', "annotates")):
        path.write_bytes(bad if isinstance(bad, bytes) else bad.encode())
        expect_data_error(_read(files), words)
    rows = {s: {f"u{k}": {"text": "t", "Emotion": "Joy"} for k in range(len(ds[s]))} for s in SPLITS}
    import json

    path.write_text(json.dumps(rows))
    expect_data_error(_read(files), "'Joy', not one of")
    rows["train"]["u0"] = {"text": None, "Emotion": "Happy"}
    path.write_text(json.dumps(rows))
    expect_data_error(_read(files), "lacks a string 'text'")
