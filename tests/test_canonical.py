"""The canonical format: export, read back (by name under the data root and by path), and every way it can be broken."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from mmerbench.data.readers.canonical import read_canonical, read_spec_yaml, write_canonical
from mmerbench.data.registry import get_entry, load_dataset
from mmerbench.data.spec import SPLITS
from mmerbench.errors import DataError

from readerkit import assert_features_equal, expect_data_error, small, truncate

FILES = ["spec.yaml", "train.npz", "valid.npz", "test.npz"]


def _files(folder):
    return [folder / f for f in FILES]


@pytest.mark.parametrize("name", ["msp-improv", "ur-funny", "mosi", "m3ed"])
def test_round_trip_every_task(tmp_path, name):
    ds = small(name)
    folder = write_canonical(ds, tmp_path / "out")
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    out = read_canonical(_files(folder))
    assert out.spec == ds.spec
    assert_features_equal(out, ds)
    for split in SPLITS:
        np.testing.assert_array_equal(out[split].labels, ds[split].labels)
        assert out[split].labels.dtype == ds[split].labels.dtype
        np.testing.assert_array_equal(out[split].ids, ds[split].ids)
        assert sorted(out[split].extras) == sorted(ds[split].extras)
        for k, v in ds[split].extras.items():
            np.testing.assert_array_equal(out[split].extras[k], v)


def test_layout_is_the_documented_one(tmp_path):
    ds = small("m3ed")
    folder = write_canonical(ds, tmp_path / "m")
    spec, meta = read_spec_yaml(folder / "spec.yaml")
    assert meta["format"] == "mmerbench-canonical" and meta["version"] == 1 and spec == ds.spec
    assert set(meta["sha256"]) == {"train.npz", "valid.npz", "test.npz"}
    with np.load(folder / "train.npz") as z:
        assert sorted(z.files) == sorted(["text", "audio", "vision", "text_lengths", "audio_lengths",
                                          "vision_lengths", "labels", "ids", "text_raw", "extra_va_text", "extra_va_audio",
                                          "extra_va_vision"])
        assert z["text"].dtype == np.float32 and z["labels"].dtype == np.int8
        np.testing.assert_array_equal(z["audio_lengths"], ds["train"].masks["audio"].sum(1))


def test_a_mask_that_is_not_a_prefix_is_stored(tmp_path):
    ds = small("iemocap")
    ds["train"].masks["text"][0, 1] = False  # a real step with all-zero features, say
    folder = write_canonical(ds, tmp_path / "i")
    with np.load(folder / "train.npz") as z:
        assert "text_mask" in z.files and "audio_mask" not in z.files
    np.testing.assert_array_equal(read_canonical(_files(folder))["train"].masks["text"], ds["train"].masks["text"])


def test_msp_improv_and_ur_funny_are_read_from_the_data_root(tmp_path):
    for name in ("msp-improv", "ur-funny"):
        ds = small(name)
        write_canonical(ds, tmp_path / name)
        out = load_dataset(name, data_dir=tmp_path)
        assert out.spec.source.reader == "canonical" and out.spec.task == ds.spec.task
        assert_features_equal(out, ds)


def test_a_folder_given_by_path(tmp_path, monkeypatch):
    ds = small("iemocap")
    folder = write_canonical(ds, tmp_path / "my data" / "iemo")
    entry = get_entry(str(folder))
    assert entry.spec.name == "iemocap" and entry.name.startswith("iemocap@") and not entry.synthetic
    out = load_dataset(str(folder), data_dir=tmp_path / "root")
    assert_features_equal(out, ds)
    assert (tmp_path / "root" / ".cache" / entry.name / "manifest.json").is_file()
    monkeypatch.chdir(tmp_path / "my data")
    assert get_entry("./iemo").name == entry.name  # the same folder, however it is named
    expect_data_error(lambda: get_entry(str(tmp_path / "nowhere")), "is not a folder")
    (tmp_path / "empty").mkdir()
    expect_data_error(lambda: get_entry(str(tmp_path / "empty")), "spec.yaml", "does not exist")


def test_writing_refuses_to_overwrite_and_is_atomic(tmp_path):
    ds = small("iemocap")
    folder = write_canonical(ds, tmp_path / "o")
    before = (folder / "train.npz").read_bytes()
    expect_data_error(lambda: write_canonical(small("iemocap", seed=1), folder), "already exists", "--force")
    assert (folder / "train.npz").read_bytes() == before
    write_canonical(small("iemocap", seed=1), folder, overwrite=True)
    assert (folder / "train.npz").read_bytes() != before
    assert [p.name for p in tmp_path.iterdir()] == ["o"]  # no temporary folder left behind


# ------------------------------------------------------------------ broken variants


@pytest.fixture
def folder(tmp_path):
    return write_canonical(small("iemocap"), tmp_path / "c")


def _resave(folder, split, edit):
    path = folder / f"{split}.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    np.savez(path, **arrays)


def _read(folder):
    return lambda: read_canonical(_files(folder))


def test_missing_and_unknown_arrays(folder):
    _resave(folder, "valid", lambda a: a.pop("audio"))
    expect_data_error(_read(folder), "valid.npz", "audio", "missing")
    _resave(folder, "valid", lambda a: a.update(audio=np.zeros((9, 20, 74), np.float32), sound=np.zeros(3)))
    expect_data_error(_read(folder), "unknown array(s) sound")


def test_wrong_dimension(folder):
    _resave(folder, "test", lambda a: a.update(vision=a["vision"][:, :, :30]))
    expect_data_error(_read(folder), "test.npz", "'vision'", "(10, 20, 35)", "(10, 20, 30)")


def test_split_sizes_disagree(folder):
    _resave(folder, "train", lambda a: a.update({k: v[:-1] for k, v in a.items()}))
    expect_data_error(_read(folder), "train.npz", "(12, 20, 300)", "12 train samples")
    spec = yaml.safe_load((folder / "spec.yaml").read_text())
    spec["spec"]["splits"] = {"train": 11, "valid": 9}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    expect_data_error(_read(folder), "spec.yaml", "splits")


def test_labels_outside_the_vocabulary(folder):
    _resave(folder, "valid", lambda a: a["labels"].__setitem__(3, 4))
    expect_data_error(_read(folder), "label 4", "outside the vocabulary", "neutral, happy, sad, angry")
    _resave(folder, "valid", lambda a: a.update(labels=a["labels"].astype(np.float32) + 0.5))
    expect_data_error(_read(folder), "integer class indices")


def test_multilabel_and_regression_label_checks(tmp_path):
    ml = write_canonical(small("nemu"), tmp_path / "n")
    _resave(ml, "train", lambda a: a["labels"].__setitem__((0, 0), 2))
    expect_data_error(_read(ml), "other than 0 and 1")
    reg = write_canonical(small("mosi"), tmp_path / "r")
    _resave(reg, "test", lambda a: a["labels"].__setitem__(0, np.nan))
    expect_data_error(_read(reg), "NaN or infinite")


def test_nonfinite_features_are_zeroed_and_counted(folder):
    def poison(a):
        a["audio"][0, 0, :4] = [np.nan, np.inf, -np.inf, np.nan]

    _resave(folder, "train", poison)
    out = read_canonical(_files(folder))
    assert out.report.nonfinite["train"] == {"text": 0, "audio": 4, "vision": 0}
    assert np.isfinite(out["train"].inputs["audio"]).all()


def test_lengths_beyond_the_sequence(folder):
    _resave(folder, "train", lambda a: a["text_lengths"].__setitem__(0, 21))
    expect_data_error(_read(folder), "'text_lengths'", "[0, 20]")


def test_object_arrays_are_never_unpickled(tmp_path, folder):
    marker = tmp_path / "MARKER"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    _resave(folder, "test", lambda a: a.update(ids=np.array([Evil()] * 10, dtype=object)))
    expect_data_error(_read(folder), "'ids'", "Python objects")
    assert not marker.exists()


def test_truncated_npz_and_malformed_yaml(folder):
    truncate(folder / "valid.npz")
    expect_data_error(_read(folder), "valid.npz", "truncated")
    (folder / "spec.yaml").write_text("spec: [unclosed\n")
    expect_data_error(_read(folder), "not valid YAML")
    (folder / "spec.yaml").write_text(yaml.safe_dump({"spec": {"name": "x", "task": "ranking", "labels": ["a"],
                                                                "modalities": {}, "splits": {}}}))
    expect_data_error(_read(folder), "spec.yaml", "malformed")
    (folder / "spec.yaml").write_text(yaml.safe_dump({"spec": {"name": "x"}}))
    expect_data_error(_read(folder), "lacks task, labels, modalities, splits")


def test_every_error_is_a_data_error(folder):
    with pytest.raises(DataError):
        read_canonical(_files(folder)[:3])


def test_a_folder_standing_for_a_registered_dataset_must_match_it(tmp_path):
    twin = small("ur-funny")
    twin.spec = twin.spec.with_(name="synth-ur-funny", synthetic=True, twin_of="ur-funny")
    exported = write_canonical(twin, tmp_path / "ur-funny")
    out = load_dataset("ur-funny", data_dir=tmp_path)
    assert (out.spec.name, out.spec.synthetic, out.spec.twin_of) == ("ur-funny", False, None)
    write_canonical(small("iemocap"), tmp_path / "msp-improv")
    expect_data_error(lambda: load_dataset("msp-improv", data_dir=tmp_path), "modalities are text, audio, vision",
                      "'msp-improv' has text, audio")
    write_canonical(small("mosi"), exported, overwrite=True)
    expect_data_error(lambda: load_dataset("ur-funny", data_dir=tmp_path), "task is regression", "binary")
