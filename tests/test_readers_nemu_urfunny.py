"""NEMu's .pt (RobMMR authors' layout) and UR-FUNNY's sdk pickles, written in their public layouts and read back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmerbench.data.catalog import SPECS
from mmerbench.data.readers.nemu import NEMU_LABELS, read_nemu, write_nemu_pt
from mmerbench.data.readers.urfunny import MAX_WORDS, SDK_FILES, read_urfunny_sdk, write_urfunny_sdk
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

NEMU_MODS = {"picture": ModalitySpec(16, 1), "audio": ModalitySpec(8, 12), "comments": ModalitySpec(24, 10),
             "lyrics": ModalitySpec(24, 10)}


def nemu_ds():
    return small("nemu", modalities=NEMU_MODS)


def test_nemu_multi_hot_round_trip_through_the_registry(tmp_path):
    ds = nemu_ds()
    (tmp_path / "nemu").mkdir()
    path = write_nemu_pt(ds, tmp_path / "nemu" / "nemu_data.pt")
    raw = safe_load(path)["train"]
    assert raw["img"].shape == (12, 16) and raw["tgt"].shape == (12, 6)  # one picture vector, multi-hot rows
    out = load_dataset("nemu", data_dir=tmp_path)
    assert out.spec.source.reader == "nemu-pt" and out.spec.labels == NEMU_LABELS
    assert list(out.spec.modalities) == ["picture", "audio", "comments", "lyrics"]
    assert out.spec.modalities == NEMU_MODS and out.spec.modalities["picture"].length == 1
    assert_features_equal(out, ds)
    for split in SPLITS:
        np.testing.assert_array_equal(out[split].labels, ds[split].labels)


def test_nemu_token_lists_take_names_from_the_file(tmp_path):
    ds = nemu_ds()
    named = ds.spec.with_(labels=("joy", "calm", "sad", "angry", "fear", "love"))
    ds.spec = named
    out = read_nemu([write_nemu_pt(ds, tmp_path / "n.pt", token_lists=True)], spec=SPECS["nemu"])
    assert out.spec.labels == named.labels
    np.testing.assert_array_equal(out["valid"].labels, ds["valid"].labels)


@pytest.fixture
def nemu_pt(tmp_path):
    return write_nemu_pt(nemu_ds(), tmp_path / "nemu_data.pt")


def _edit_pt(path, fn):
    data = safe_load(path)
    fn(data)
    torch.save(data, path)


def test_nemu_broken_variants(nemu_pt):
    read = lambda: read_nemu([nemu_pt], spec=SPECS["nemu"])  # noqa: E731

    def fresh_edit(fn):
        write_nemu_pt(nemu_ds(), nemu_pt)
        _edit_pt(nemu_pt, fn)

    fresh_edit(lambda d: d["valid"].pop("lyr"))
    expect_data_error(read, "'valid'", "'lyr'", "missing")
    fresh_edit(lambda d: d["test"].__setitem__("com", d["test"]["com"][:, :, :20]))
    expect_data_error(read, "'test'", "'com'", "(N, 10, 24)", "(10, 10, 20)")
    fresh_edit(lambda d: d["valid"].__setitem__("aud", d["valid"]["aud"][:-1]))
    expect_data_error(read, "'valid'", "'aud' has 8 samples", "'img' has 9")
    fresh_edit(lambda d: d["train"]["tgt"].__setitem__((4, 2), 3))
    expect_data_error(read, "'tgt'", "sample 4", "value 3")
    fresh_edit(lambda d: d["test"].__setitem__("tgt", d["test"]["tgt"][:, :5]))
    expect_data_error(read, "5 label columns", "6")


def test_nemu_nonfinite_hostile_truncated(tmp_path, nemu_pt):
    _edit_pt(nemu_pt, lambda d: d["train"]["img"].__setitem__((0, 3), np.inf))
    out = read_nemu([nemu_pt], spec=SPECS["nemu"])
    assert out.report.nonfinite["train"]["picture"] == 1 and out["train"].inputs["picture"][0, 0, 3] == 0
    marker = tmp_path / "MARKER"
    write_hostile_pickle(nemu_pt, marker)
    expect_data_error(lambda: read_nemu([nemu_pt], spec=SPECS["nemu"]), "not an allowed type")
    assert not marker.exists()
    write_nemu_pt(nemu_ds(), nemu_pt)
    truncate(nemu_pt)
    expect_data_error(lambda: read_nemu([nemu_pt], spec=SPECS["nemu"]), "truncated")


# ------------------------------------------------------------------ UR-FUNNY


def funny_ds():
    return small("ur-funny", modalities={"text": ModalitySpec(12, MAX_WORDS), "audio": ModalitySpec(81, MAX_WORDS),
                                          "vision": ModalitySpec(75, MAX_WORDS)})


@pytest.fixture
def sdk(tmp_path):
    ds = funny_ds()
    return ds, write_urfunny_sdk(ds, tmp_path / "ur-funny")


def _read_sdk(files):
    return lambda: read_urfunny_sdk(files, spec=SPECS["ur-funny"])


def test_urfunny_sdk_round_trip_through_the_registry(tmp_path, sdk):
    ds, files = sdk
    assert [f.name for f in files] == list(SDK_FILES)
    folds = safe_load(files[0])
    assert set(folds) == {"train", "dev", "test"} and len(folds["dev"]) == len(ds["valid"])
    entry = safe_load(files[3])[folds["train"][0]]
    assert set(entry) == {"punchline_features", "context_features"}
    out = load_dataset("ur-funny", data_dir=tmp_path)
    assert out.spec.source.reader == "urfunny-sdk" and out.spec.task == "binary"
    assert {m: ms.dim for m, ms in out.spec.modalities.items()} == {"text": 12, "audio": 81, "vision": 75}
    assert_features_equal(out, ds)
    for split in SPLITS:
        np.testing.assert_array_equal(out[split].labels, ds[split].labels)
        assert out[split].labels.dtype == np.int64


def test_urfunny_drops_mismatched_instances_and_truncates_long_punchlines(sdk):
    ds, files = sdk
    folds = safe_load(files[0])
    first, second = folds["train"][0], folds["train"][1]
    rewrite_pickle(files[3], lambda d: d[first].__setitem__("punchline_features", d[first]["punchline_features"][:-1]))

    def longer(d):
        d[second]["punchline_embedding_indexes"] = list(d[second]["punchline_embedding_indexes"]) * 30

    rewrite_pickle(files[2], longer)
    n2 = len(safe_load(files[2])[second]["punchline_embedding_indexes"])
    rewrite_pickle(files[3], lambda d: d[second].__setitem__("punchline_features", np.ones((n2, 81))))
    rewrite_pickle(files[4], lambda d: d[second].__setitem__("punchline_features", np.ones((n2, 75))))
    out = read_urfunny_sdk(files, spec=SPECS["ur-funny"])
    assert len(out["train"]) == len(ds["train"]) - 1 and first not in out["train"].ids
    assert any("1 instance(s) dropped" in n for n in out.report.notes)
    assert any("first 50" in n for n in out.report.notes)
    i = list(out["train"].ids).index(second)
    assert out["train"].masks["audio"][i].all()


def test_urfunny_broken_variants(sdk):
    ds, files = sdk
    folder = files[0].parent
    read = _read_sdk(files)
    folds = safe_load(files[0])
    hid = folds["test"][2]
    rewrite_pickle(files[0], lambda d: d.pop("dev"))
    expect_data_error(read, "data_folds.pkl", "'dev'", "missing")
    write_urfunny_sdk(ds, folder)
    rewrite_pickle(files[5], lambda d: d.pop(hid))
    expect_data_error(read, "humor_label_sdk.pkl", repr(hid), "missing")
    # several missing: how many, per fold, and where the first is
    write_urfunny_sdk(ds, folder)
    gone = [folds["dev"][1], folds["test"][0], hid]
    rewrite_pickle(files[5], lambda d: [d.pop(h) for h in gone])
    total = sum(len(folds[k]) for k in ("train", "dev", "test"))
    expect_data_error(read, "humor_label_sdk.pkl", f"3 of the {total:,} instance ids", "train 0, dev 1, test 2",
                      f"the first is {gone[0]!r}, at position 1 of fold 'dev'")
    write_urfunny_sdk(ds, folder)
    rewrite_pickle(files[5], lambda d: d.__setitem__(hid, 2))
    expect_data_error(read, repr(hid), "label 2")
    write_urfunny_sdk(ds, folder)
    rewrite_pickle(files[2], lambda d: d[hid].__setitem__("punchline_embedding_indexes", [10 ** 6]))
    expect_data_error(read, "word index 1000000", "outside")
    write_urfunny_sdk(ds, folder)
    rewrite_pickle(files[4], lambda d: d[hid].__setitem__("punchline_features", np.ones((len(d[hid]["punchline_features"]), 70))))
    expect_data_error(read, "openface_features_sdk.pkl", "70 features per word", "75")


def test_urfunny_nonfinite_hostile_truncated(tmp_path, sdk):
    ds, files = sdk
    hid = safe_load(files[0])["train"][0]
    rewrite_pickle(files[3], lambda d: d[hid]["punchline_features"].__setitem__((0, 0), np.nan))
    out = read_urfunny_sdk(files, spec=SPECS["ur-funny"])
    assert out.report.nonfinite["train"]["audio"] == 1
    marker = tmp_path / "MARKER"
    write_hostile_pickle(files[4], marker)
    expect_data_error(_read_sdk(files), "not an allowed type")
    assert not marker.exists()
    write_urfunny_sdk(ds, files[0].parent)
    truncate(files[1])
    expect_data_error(_read_sdk(files), "truncated")
