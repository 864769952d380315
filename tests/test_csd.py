"""CMU-MultimodalSDK .csd files: the reader, the SDK's alignment and segment cutting, folds, import-csd."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

h5py = pytest.importorskip("h5py")

from mmerbench.cli import cli  # noqa: E402
from mmerbench.data.csd import CsdFile, write_csd  # noqa: E402
from mmerbench.data.csd_align import align_to_reference, cut_segments, fit_length  # noqa: E402
from mmerbench.data.csd_import import CsdImport, import_csd, load_folds  # noqa: E402
from mmerbench.data.readers.canonical import folder_entry, read_canonical  # noqa: E402
from mmerbench.data.registry import load_dataset  # noqa: E402
from mmerbench.errors import DataError  # noqa: E402

MOSI = load_folds("cmu-mosi")
TRAIN, VALID, TEST = MOSI["train"][0], MOSI["valid"][0], MOSI["test"][0]


def sdk_file(path, root, entries, *, meta=True):
    """A .csd written with h5py directly, exactly as the SDK's write_CSD lays it out."""
    with h5py.File(path, "w") as f:
        g = f.create_group(root)
        data = g.create_group("data")
        for vid, (iv, ft) in entries.items():
            e = data.create_group(vid)
            e.create_dataset("features", data=ft)
            e.create_dataset("intervals", data=iv)
        if meta:
            md = g.create_group("metadata")
            for k, v in {"root name": root, "dimension names": ["x"], "dataset name": "toy"}.items():
                md.create_dataset(k, (1,), dtype=h5py.special_dtype(vlen=str))
                md[k][0] = json.dumps(v)
    return path


def iv(*pairs):
    return np.asarray(pairs, dtype=np.float64)


# ------------------------------------------------------------------ reading


def test_inspect_reports_name_dimension_entries_and_intervals(tmp_path):
    p = sdk_file(tmp_path / "labels.csd", "Opinion Segment Labels", {
        "a": (iv([0, 1], [1, 2]), np.array([[1.0], [-2.0]])),
        "b": (iv([0, 1], [2, 3], [4, 5]), np.zeros((3, 1))),
    })
    with CsdFile(p) as f:
        s = f.summary()
        assert (s.name, s.dim, s.entries, s.intervals, s.text) == ("Opinion Segment Labels", 1, 2, 5, False)
        ivs, ft, n = f.read("a")
        assert ivs.tolist() == [[0, 1], [1, 2]] and ft[:, 0].tolist() == [1.0, -2.0] and n == 0
    out = CliRunner().invoke(cli, ["data", "inspect", str(p)])
    assert out.exit_code == 0, out.output
    assert "sequence: Opinion Segment Labels" in out.output and "entries: 2" in out.output
    assert "intervals: 5" in out.output and "features: 1 per interval" in out.output


def test_words_are_read_as_text_and_refused_as_a_modality(tmp_path):
    p = sdk_file(tmp_path / "words.csd", "words", {"a": (iv([0, 1]), np.array([[b"hello"]]))})
    with CsdFile(p) as f:
        assert f.summary().text
        assert f.read("a", text_ok=True)[1][0, 0] == b"hello"
        with pytest.raises(DataError, match="words"):
            f.read("a")


def test_nonfinite_features_become_zero_and_are_counted(tmp_path):
    p = sdk_file(tmp_path / "covarep.csd", "COVAREP", {"a": (iv([0, 1], [1, 2]), np.array([[1.0, -np.inf], [np.nan, 2]]))})
    with CsdFile(p) as f:
        _, ft, n = f.read("a")
    assert n == 2 and ft.tolist() == [[1.0, 0.0], [0.0, 2.0]]


def test_rows_out_of_time_order_are_sorted_for_alignment_and_kept_for_labels(tmp_path):
    # The real MOSI opinion labels hold rows out of time order; they are segments numbered by row, not an error.
    p = sdk_file(tmp_path / "x.csd", "s", {"a": (iv([2, 3], [0, 1], [0, 0.5]), np.array([[1.0], [2.0], [3.0]]))})
    with CsdFile(p) as f:
        ivs, ft, _ = f.read("a")
        assert ivs[:, 0].tolist() == [2, 0, 0] and ft[:, 0].tolist() == [1, 2, 3]
        ivs, ft, _ = f.read("a", sort=True)
        assert ivs.tolist() == [[0, 1], [0, 0.5], [2, 3]] and ft[:, 0].tolist() == [2, 3, 1]  # stable


def test_real_mosi_opinion_labels_when_given():
    """Set MMERBENCH_CSD_MOSI_LABELS to the public CMU_MOSI_Opinion_Labels.csd to check it (never committed)."""
    import os

    path = os.environ.get("MMERBENCH_CSD_MOSI_LABELS")
    if not path:
        pytest.skip("MMERBENCH_CSD_MOSI_LABELS is not set")
    with CsdFile(path) as f:
        s = f.summary()
        assert (s.name, s.dim, s.entries, s.intervals) == ("Opinion Segment Labels", 1, 93, 2199)
        assert set(f.entries) == {v for fold in MOSI.values() for v in fold}
        for vid in f.entries:
            _, y, n = f.read(vid)
            assert n == 0 and np.abs(y).max() <= 3


def test_write_csd_reads_back(tmp_path):
    ft = np.arange(6, dtype=np.float32).reshape(3, 2)
    p = write_csd(tmp_path / "x.csd", "seq", {"v": (iv([0, 1], [1, 2], [2, 3]), ft)})
    with CsdFile(p) as f:
        assert f.name == "seq" and f.metadata["creator"] == "mmerbench"
        np.testing.assert_array_equal(f.read("v")[1], ft)


def test_missing_h5py_is_one_sentence_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(DataError, match=r'mmerbench\[csd\]'):
        CsdFile(tmp_path / "x.csd")


def _good():
    return {"a": (iv([0, 1], [1, 2]), np.ones((2, 3)))}


def _malformed(tmp_path, case):
    p = tmp_path / "bad.csd"
    if case == "not hdf5":
        p.write_bytes(b"\x80\x04not an hdf5 file at all" * 10)
    elif case == "empty file":
        p.write_bytes(b"")
    elif case == "truncated":
        sdk_file(tmp_path / "ok.csd", "s", {"a": (iv(*[[i, i + 1] for i in range(500)]), np.ones((500, 8)))})
        raw = (tmp_path / "ok.csd").read_bytes()
        p.write_bytes(raw[: len(raw) // 2])
    elif case == "two roots":
        sdk_file(p, "s", _good())
        with h5py.File(p, "a") as f:
            f.create_group("other")
    elif case == "no data group":
        with h5py.File(p, "w") as f:
            f.create_group("s").create_group("metadata")
    elif case == "no metadata group":
        sdk_file(p, "s", _good(), meta=False)
    elif case == "no features":
        sdk_file(p, "s", _good())
        with h5py.File(p, "a") as f:
            del f["s/data/a/features"]
    elif case == "intervals not [n, 2]":
        sdk_file(p, "s", {"a": (np.zeros((2, 3)), np.ones((2, 3)))})
    elif case == "features 1-D":
        sdk_file(p, "s", {"a": (iv([0, 1], [1, 2]), np.ones(2))})
    elif case == "row counts differ":
        sdk_file(p, "s", {"a": (iv([0, 1], [1, 2]), np.ones((3, 3)))})
    elif case == "vlen features":
        sdk_file(p, "s", {})
        with h5py.File(p, "a") as f:
            e = f["s/data"].create_group("a")
            e.create_dataset("intervals", data=iv([0, 1]))
            ds = e.create_dataset("features", (1, 1), dtype=h5py.vlen_dtype(np.float64))
            ds[0, 0] = np.arange(3.0)
    elif case == "compound features":
        dt = np.dtype([("x", "f4"), ("y", "f4")])
        sdk_file(p, "s", {"a": (iv([0, 1]), np.zeros((1, 1), dtype=dt))})
    elif case == "string intervals":
        sdk_file(p, "s", {"a": (np.array([[b"0", b"1"]]), np.ones((1, 3)))})
    elif case == "NaN interval":
        sdk_file(p, "s", {"a": (iv([0, np.nan], [1, 2]), np.ones((2, 3)))})
    elif case == "ends before it starts":
        sdk_file(p, "s", {"a": (iv([0, 1], [2, 1.5]), np.ones((2, 3)))})
    elif case == "external link":
        sdk_file(tmp_path / "elsewhere.csd", "s", _good())
        sdk_file(p, "s", {})
        with h5py.File(p, "a") as f:
            f["s/data/a"] = h5py.ExternalLink(str(tmp_path / "elsewhere.csd"), "/s/data/a")
    elif case == "declares more than the file":
        sdk_file(p, "s", {})
        with h5py.File(p, "a") as f:
            e = f["s/data"].create_group("a")
            e.create_dataset("intervals", data=iv([0, 1]))
            e.create_dataset("features", shape=(1, 1 << 34), dtype="f8", chunks=(1, 1024))  # 128 GiB, never written
    return p


MALFORMED = ["not hdf5", "empty file", "truncated", "two roots", "no data group", "no metadata group", "no features",
             "intervals not [n, 2]", "features 1-D", "row counts differ", "vlen features", "compound features",
             "string intervals", "NaN interval", "ends before it starts", "external link",
             "declares more than the file"]


@pytest.mark.parametrize("case", MALFORMED)
def test_every_malformed_file_is_one_sentence(tmp_path, case):
    p = _malformed(tmp_path, case)
    with pytest.raises(DataError) as e:
        with CsdFile(p) as f:
            f.summary()
            for vid in f.entries:
                f.read(vid)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg, msg


@pytest.mark.parametrize("case", ["truncated", "vlen features", "declares more than the file", "NaN interval"])
def test_malformed_import_exits_with_one_line_and_writes_nothing(tmp_path, case):
    p = _malformed(tmp_path, case)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "mmerbench.cli", "data", "import-csd", str(out), "--folds",
                           "cmu-mosi", "--modality", f"text={p}", "--labels", str(p)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("Error: "), proc.stderr
    assert not out.exists()


# ------------------------------------------------------------------ alignment, by hand


def test_alignment_averages_rows_that_overlap_each_word():
    words = iv([0, 1], [1, 2], [2, 2 + 1e-6], [3, 4])  # the third is shorter than the SDK's epsilon: skipped
    rows = iv([0, 0.5], [0.5, 1.5], [1.5, 2], [2, 3])  # [2, 3] only touches the last word: no overlap
    a, b, c, d = [1.0, 10.0], [3.0, 20.0], [8.0, 60.0], [100.0, 100.0]
    keep, aligned, empty = align_to_reference(words, {"audio": (rows, np.array([a, b, c, d]))})
    assert keep.tolist() == [0, 1, 3]
    np.testing.assert_allclose(aligned["audio"], [[2.0, 15.0],   # mean(a, b): both overlap [0, 1]
                                                  [5.5, 40.0],   # mean(b, c): both overlap [1, 2]; d only touches
                                                  [0.0, 0.0]])   # nothing overlaps [3, 4]: zeros
    assert empty == {"audio": 1}


def test_alignment_mean_is_not_weighted_by_overlap():
    # The SDK's averaging collapse is numpy.average over the rows: a row mostly outside the word counts fully.
    keep, aligned, _ = align_to_reference(iv([0, 1]), {"v": (iv([-5, 0.1], [0.1, 1]), np.array([[0.0], [1.0]]))})
    assert aligned["v"][0, 0] == pytest.approx(0.5)


def test_segments_are_cut_by_label_intervals():
    words = iv([0, 1], [1, 2], [3, 4], [4, 5])
    segments = cut_segments(words, iv([0, 1.5], [3, 4], [6, 7], [2, 3]))
    assert [s.tolist() for s in segments] == [[0, 1], [2], [], []]  # [2, 3] touches two words, overlaps none


def test_fit_length_pads_after_and_truncates_either_end():
    x = np.arange(5, dtype=np.float32)[:, None]
    out, n = fit_length(x, 3, "last")
    assert n == 3 and out[:, 0].tolist() == [2, 3, 4]
    out, n = fit_length(x, 3, "first")
    assert out[:, 0].tolist() == [0, 1, 2]
    out, n = fit_length(x[:2], 4, "last")
    assert n == 2 and out[:, 0].tolist() == [0, 1, 0, 0]


# ------------------------------------------------------------------ folds


@pytest.mark.parametrize("name,sizes", [("cmu-mosi", (52, 10, 31)), ("cmu-mosei", (2249, 300, 678))])
def test_standard_folds_are_the_sdks_lists(name, sizes):
    folds = load_folds(name)  # refuses a video in two folds
    assert tuple(len(folds[s]) for s in ("train", "valid", "test")) == sizes
    from importlib import resources

    raw = json.loads(resources.files("mmerbench.data").joinpath("folds", f"{name}.json").read_text())
    assert "CMU-MultimodalSDK" in raw["source"] and "_std_folds.py" in raw["source"]


def test_a_folds_file_with_a_video_twice_is_refused(tmp_path):
    p = tmp_path / "f.json"
    p.write_text(json.dumps({"train": ["a"], "valid": ["a"], "test": ["b"]}))
    with pytest.raises(DataError, match="both train and valid"):
        load_folds(str(p))


# ------------------------------------------------------------------ import-csd


def _mosi_like(tmp_path, *, emotions=False):
    """Three videos (one per MOSI fold) plus one outside the folds, words every second, audio at 4 Hz."""
    text, audio, labels = {}, {}, {}
    rng = np.random.default_rng(0)
    for k, vid in enumerate([TRAIN, VALID, TEST, "not-in-folds"]):
        words = iv(*[[t, t + 1] for t in range(6)])
        text[vid] = (words, rng.normal(size=(6, 3)))
        audio[vid] = (iv(*[[t / 4, (t + 1) / 4] for t in range(24)]), np.arange(24, dtype=np.float64)[:, None] + k)
        y = np.array([[0.5 + k], [-1.0]]) if not emotions else np.array([[0.5, 0, 1.5, 0, 0, 0.2, 0],
                                                                          [-1, 0, 0, 0, 0, 0, 0]])
        labels[vid] = (iv([0, 3], [3, 6]), y)
    return (sdk_file(tmp_path / "words.csd", "glove_vectors", text), sdk_file(tmp_path / "covarep.csd", "COVAREP", audio),
            sdk_file(tmp_path / "labels.csd", "Opinion Segment Labels", labels), text)


def test_import_builds_a_canonical_dataset_by_fold_with_averaged_audio(tmp_path):
    words, audio, labels, text = _mosi_like(tmp_path)
    job = CsdImport({"text": words, "audio": audio}, labels, "cmu-mosi", length=4, keep="first")
    r = import_csd(job, tmp_path / "mosi-csd", progress=False)
    assert r.videos == 3 and r.reused == 0 and r.dropped["videos in no fold"] == 1
    assert r.spec.splits == {"train": 2, "valid": 2, "test": 2} and r.spec.task == "regression"
    ds = read_canonical([tmp_path / "mosi-csd" / f for f in ("spec.yaml", "train.npz", "valid.npz", "test.npz")])
    tr = ds["train"]
    assert tr.ids.tolist() == [f"{TRAIN}[0]", f"{TRAIN}[1]"]
    np.testing.assert_allclose(tr.labels, [0.5, -1.0])
    # Segment 0 = words 0..2 (word 3 starts at 3 and only touches [0, 3]); audio rows 4t..4t+3 average to 4t + 1.5.
    assert tr.masks["audio"][0].tolist() == [True, True, True, False]
    np.testing.assert_allclose(tr.inputs["audio"][0, :3, 0], [1.5, 5.5, 9.5])
    np.testing.assert_allclose(tr.inputs["text"][1, :3], text[TRAIN][1][3:6], rtol=1e-6)
    np.testing.assert_allclose(ds["test"].inputs["audio"][0, :3, 0], [3.5, 7.5, 11.5])  # the test video's offset 2
    spec = (tmp_path / "mosi-csd" / "spec.yaml").read_text()
    assert "sha256" in spec and "Not the papers' pickles" in spec

    again = import_csd(job, tmp_path / "mosi-csd", overwrite=True, progress=False)  # resumes from the work cache
    assert again.reused == 3
    (damaged,) = [p for p in (tmp_path / ".mosi-csd.csd-work").rglob(f"{VALID}.npz")]
    damaged.write_bytes(b"PK\x03\x04 not a zip")
    again = import_csd(job, tmp_path / "mosi-csd", overwrite=True, progress=False)  # a damaged entry is redone
    assert again.reused == 2
    ds2 = read_canonical([tmp_path / "mosi-csd" / f for f in ("spec.yaml", "train.npz", "valid.npz", "test.npz")])
    np.testing.assert_array_equal(ds2["train"].inputs["audio"], tr.inputs["audio"])


def test_mosei_labels_give_emotions_present_when_intensity_is_positive(tmp_path):
    words, audio, labels, _ = _mosi_like(tmp_path, emotions=True)
    r = import_csd(CsdImport({"text": words}, labels, "cmu-mosi", length=6), tmp_path / "mosei-csd", progress=False)
    assert r.spec.task == "multilabel" and r.spec.labels == ("happy", "sad", "anger", "surprise", "disgust", "fear")
    ds = read_canonical([tmp_path / "mosei-csd" / f for f in ("spec.yaml", "train.npz", "valid.npz", "test.npz")])
    assert ds["train"].labels.tolist() == [[0, 1, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0]]
    np.testing.assert_allclose(ds["train"].extras["sentiment"], [0.5, -1.0])
    sent = import_csd(CsdImport({"text": words}, labels, "cmu-mosi", task="sentiment"), tmp_path / "s", progress=False)
    assert sent.spec.task == "regression"


def test_import_refuses_bad_labels_and_hostile_ids(tmp_path):
    words, _, _, text = _mosi_like(tmp_path)
    bad = sdk_file(tmp_path / "bad.csd", "l", {v: (iv([0, 3]), np.array([[4.0]])) for v in text})
    with pytest.raises(DataError, match=r"outside \[-3, 3\]"):
        import_csd(CsdImport({"text": words}, bad, "cmu-mosi"), tmp_path / "o1", progress=False)
    hostile = "..evil"
    sdk_file(tmp_path / "w2.csd", "w", {hostile: text[TRAIN]})
    sdk_file(tmp_path / "l2.csd", "l", {hostile: (iv([0, 3]), np.array([[1.0]]))})
    folds = tmp_path / "f.json"
    folds.write_text(json.dumps({"train": [hostile], "valid": [], "test": []}))
    with pytest.raises(DataError, match="not a plain name"):
        import_csd(CsdImport({"text": tmp_path / "w2.csd"}, tmp_path / "l2.csd", str(folds)), tmp_path / "o2",
                   progress=False)
    assert not (tmp_path / "evil").exists()


def test_import_csd_command_and_run_train_on_the_result(tmp_path):
    words, audio, labels, _ = _mosi_like(tmp_path)
    out = tmp_path / "mosi-csd"
    res = CliRunner().invoke(cli, ["data", "import-csd", str(out), "--folds", "cmu-mosi", "--modality", f"text={words}",
                                   "--modality", f"audio={audio}", "--labels", str(labels), "--length", "5"])
    assert res.exit_code == 0, res.output
    assert "train/valid/test 2/2/2" in res.output and "1 videos in no fold" in res.output
    res = CliRunner().invoke(cli, ["run", "--method", "linear", "--dataset", str(out), "--seeds", "1",
                                   "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    assert folder_entry(str(out)).spec.modalities["audio"].dim == 1


# ------------------------------------------------------------------ a twin to .csd and back


def _twin_to_csd(ds, folder):
    """Each sample becomes a video: one word per real step (1 s each), one label interval over all of them."""
    seqs = {m: {} for m in ds.spec.modalities}
    labels, folds = {}, {s: [] for s in ("train", "valid", "test")}
    for split, s in ds.splits.items():
        for i in range(len(s)):
            vid = f"{split}-{i}"
            ref = next(iter(ds.spec.modalities))
            steps = np.flatnonzero(s.masks[ref][i])
            for m in ds.spec.modalities:
                assert (np.flatnonzero(s.masks[m][i]) == steps).all()  # an aligned twin: one mask for all
                seqs[m][vid] = (iv(*[[t, t + 1] for t in range(len(steps))]), s.inputs[m][i][steps])
            y = s.labels[i]
            row = np.concatenate([[0.0], y]) if ds.spec.task == "multilabel" else np.array([y])
            labels[vid] = (iv([0, len(steps)]), row[None, :].astype(np.float64))
            folds[split].append(vid)
    files = {m: write_csd(folder / f"{m}.csd", m, seqs[m]) for m in seqs}
    (folder / "folds.json").write_text(json.dumps(folds))
    return files, write_csd(folder / "labels.csd", "All Labels", labels), folder / "folds.json"


@pytest.mark.parametrize("twin", ["synth-mosei-aligned", "synth-mosi"])
def test_a_twin_exported_to_csd_reads_back_the_same(tmp_path, twin):
    ds = load_dataset(twin, scale=0.01, data_dir=tmp_path / "d")
    files, labels, folds = _twin_to_csd(ds, tmp_path)
    length = next(iter(ds.spec.modalities.values())).length
    job = CsdImport(files, labels, str(folds), reference=next(iter(files)), length=length, keep="first",
                    task="emotions" if ds.spec.task == "multilabel" else "sentiment")
    r = import_csd(job, tmp_path / "back", progress=False)
    back = read_canonical([tmp_path / "back" / f for f in ("spec.yaml", "train.npz", "valid.npz", "test.npz")])
    assert r.spec.labels == ds.spec.labels and r.spec.task == ds.spec.task
    for split, s in ds.splits.items():
        b = back[split]
        assert len(b) == len(s)
        np.testing.assert_allclose(b.labels, s.labels, rtol=1e-6)
        for m in ds.spec.modalities:
            for i in range(len(s)):
                real = s.inputs[m][i][s.masks[m][i]]
                np.testing.assert_allclose(b.inputs[m][i][: len(real)], real, rtol=1e-6)
                assert b.masks[m][i].sum() == len(real)
