"""Names read from files and the one path join the writers use: the rule, and the second line behind it."""

from __future__ import annotations

import os

import pytest

from mmerbench import results
from mmerbench.data import dataset as dataset_module
from mmerbench.data import spec as spec_module
from mmerbench.data.readers import canonical
from mmerbench.data.readers.canonical import write_canonical
from mmerbench.data.registry import get_entry, list_datasets, load_dataset
from mmerbench.errors import DataError
from mmerbench.safepath import check_distinct, check_label, check_name, join

from readerkit import add_extra, expect_data_error, rename_modality, small


@pytest.mark.parametrize("name", ["mosei-aligned", "text", "va_audio", "seed-1", "a.b", "_x", "-x", "A" * 100])
def test_plain_names_pass(name):
    assert check_name(name, where="f", field="modality name") == name


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "../x", "a/b", "a\\b", "/abs", "a\x00b", "a b",
                                  "<img src=x onerror=alert(1)>", "é", "A" * 101, 3, None])
def test_other_names_are_refused_naming_file_and_field(name):
    msg = expect_data_error(lambda: check_name(name, where="spec.yaml", field="modality name"),
                            "spec.yaml", "modality name", "not a plain name")
    assert len(msg) < 300  # a 10,000-character name is cut short in the sentence


def test_names_equal_but_for_case_are_refused():
    check_distinct(["text", "audio"], where="f", field="modality name")
    expect_data_error(lambda: check_distinct(["Text", "audio", "text"], where="f", field="modality name"),
                      "'text'", "'Text'", "differ only in case")
    expect_data_error(lambda: check_distinct(["a", "a"], where="f", field="label name"), "occurs twice")


def test_every_registered_label_name_passes_the_label_rule():
    # Label names never reach a path, so their rule is looser; no real dataset's names may fail it.
    seen = 0
    for name in list_datasets():
        for label in get_entry(name).spec.labels:
            check_label(label, where=name)
            seen += 1
    assert seen > 50
    for ok in ("surprise", "Happy", "emotion_1", "no emotion", "愤怒", "<b>bold</b>"):
        check_label(ok, where="f")
    for bad in ("", " padded", "new\nline", "nul\x00", "x" * 65, 7):
        expect_data_error(lambda: check_label(bad, where="vocab.pkl"), "vocab.pkl", "label name")


@pytest.mark.parametrize("parts", [("..", "x"), ("a", "../../x"), ("/etc",), ("a\x00",), ("a/b",), ("",), (".",),
                                   ("x" * 256,)])
def test_join_refuses_anything_but_plain_components(tmp_path, parts):
    expect_data_error(lambda: join(tmp_path / "root", *parts), "Refused to write")


def test_join_refuses_a_symlink_out_of_the_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    expect_data_error(lambda: join(root, "link", "file.npy"), "resolves outside", str(root))
    assert join(root, "a", "b.npy") == root / "a" / "b.npy"  # not resolved, not created
    assert not (root / "a").exists()


def test_run_store_paths_go_through_the_join(tmp_path):
    assert results.run_dir(tmp_path, "d", "m", "h", 3) == tmp_path / "d" / "m" / "h" / "seed-3"
    for bad in ("../d", "d/../../x", os.sep + "abs"):
        expect_data_error(lambda: results.run_dir(tmp_path, bad, "m", "h", 1), "Refused to write")
        expect_data_error(lambda: results.profile_path(tmp_path, "d", bad, "h", "cpu", "fp32"), "Refused to write")


def _no_name_checks(monkeypatch):
    """Switch the entry-side rule off everywhere it is imported, leaving only the writers' join."""
    monkeypatch.setattr(spec_module, "check_names", lambda spec, where: None)
    monkeypatch.setattr(dataset_module, "check_names", lambda spec, where: None)
    monkeypatch.setattr(dataset_module, "check_name", lambda name, where, field: name)
    monkeypatch.setattr(dataset_module, "check_distinct", lambda names, where, field: None)
    monkeypatch.setattr(canonical, "check_names", lambda spec, where: None)
    monkeypatch.setattr(canonical, "check_name", lambda name, where, field: name)


def _hostile_folder(tmp_path, edit):
    folder = write_canonical(small("iemocap"), tmp_path / "byod")
    edit(folder)
    return folder


TRAVERSAL = "../../../../elsewhere/X"


@pytest.mark.parametrize("edit", [lambda f: rename_modality(f, "text", TRAVERSAL), lambda f: add_extra(f, TRAVERSAL)],
                         ids=["modality", "extra"])
def test_the_cache_writer_refuses_a_traversal_name_with_the_validator_switched_off(tmp_path, monkeypatch, edit):
    work = tmp_path / "a" / "b" / "c" / "d"  # deep enough that the traversal lands inside tmp_path
    folder = _hostile_folder(work, edit)
    data_root = work / "data"
    (work / "elsewhere").mkdir()  # where the name points (from the cache's split folder), so a write would succeed
    expect_data_error(lambda: load_dataset(str(folder), data_dir=data_root), TRAVERSAL)  # the rule, on
    _no_name_checks(monkeypatch)
    before = sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(data_root))
    expect_data_error(lambda: load_dataset(str(folder), data_dir=data_root), "Refused to write")
    after = sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(data_root))
    assert after == before  # nothing written outside the data root
    assert not any(p.name.startswith("X") for p in tmp_path.rglob("*"))


def test_the_run_store_refuses_a_traversal_dataset_name_with_the_validator_switched_off(tmp_path, monkeypatch):
    from mmerbench.runner import RunRequest, prepare

    work = tmp_path / "a" / "b"
    folder = _hostile_folder(work, lambda f: None)
    meta = (folder / "spec.yaml").read_text().replace("name: iemocap", "name: ../../../elsewhere")
    (folder / "spec.yaml").write_text(meta)
    req = RunRequest(method="linear", dataset=str(folder), runs_dir=str(work / "runs"))
    expect_data_error(lambda: prepare(req), "spec's name", "not a plain name")  # the rule, on
    _no_name_checks(monkeypatch)
    expect_data_error(lambda: prepare(req), "Refused to write under", str(work / "runs"))
