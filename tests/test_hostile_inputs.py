"""A hostile-input corpus, run through the CLI: each case must fail as one sentence and change nothing.

Every case builds one hostile input beside a stored cache entry and a finished run (a canonical folder,
a pickle or torch file under the data root, or a name on the command line), then runs
``mmerbench run`` and ``mmerbench data verify`` on it. For each command it asserts a non-zero exit,
one ``Error: ...`` line on stderr that gives the reason (never a traceback), and a byte-for-byte
unchanged tree: the data root, the run store, the hostile input itself and a sentinel folder
``elsewhere/`` where the traversal names point and where gadgets would write their marker.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mmerbench.cli import main
from mmerbench.data.readers.canonical import write_canonical
from mmerbench.data.readers.mosei import write_aligned_pt
from mmerbench.data.readers.mult import write_mult_pkl

from readerkit import add_extra, edit_npz, edit_spec_yaml, rename_modality, rewrite_pickle, small, truncate

SIZES = {"train": 6, "valid": 4, "test": 4}
TRAVERSAL = "../../../../elsewhere/X"  # from the cache's split folder <work>/data/.cache/<tmp>/<split>: <work>/elsewhere
PT = Path("data/mosei/train_valid_test.pt")  # mosei-aligned under the data root
PKL = Path("data/iemocap/iemocap_data.pkl")  # iemocap (MulT's pickle)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A data root holding mosei-aligned (read once, so cached) and iemocap, a finished `br` run on
    mosei-aligned (seed 1), and a canonical folder of mosei-aligned's shapes that the cases start from."""
    root = tmp_path_factory.mktemp("stored")
    for f in (PT, PKL):
        (root / f).parent.mkdir(parents=True)
    write_aligned_pt(small("mosei-aligned", sizes=SIZES), root / PT)
    write_mult_pkl(small("iemocap", sizes=SIZES), root / PKL)
    write_canonical(small("mosei-aligned", sizes=SIZES), root / "folder")
    main(["run", "--method", "br", "--dataset", "mosei-aligned", "--seeds", "1", "--data-dir", str(root / "data"),
          "--runs-dir", str(root / "runs"), "-q"])
    assert list((root / "runs" / "mosei-aligned" / "br").glob("*/seed-1/metrics.json"))
    assert (root / "data" / ".cache" / "mosei-aligned" / "manifest.json").is_file()
    return root


def _tree(root: Path) -> dict[str, str]:
    """Every path under root (symlinks not followed) with its content hash, link target or 'dir'."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if rel.startswith("data/.cache/.") and name.endswith(".lock") and p.stat().st_size == 0:
                continue  # a cache writer's empty lock file stays by design (see mmerbench/locks.py)
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# ---------------------------------------------------------------------------- ways to build a case


class Gadget:
    """Pickles as a call to ``fn(*args)``: what a hostile file does to an unpickler that resolves any name."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _marker(work: Path) -> Path:
    return work / "elsewhere" / "PWNED"


def _gadgets(work: Path) -> dict[str, Gadget]:
    m = str(_marker(work))
    from numpy.testing._private.utils import runstring  # exec()s its argument: a known numpy gadget

    return {
        "os.system": Gadget(os.system, f"touch {m}"),
        "subprocess": Gadget(subprocess.check_call, ["touch", m]),
        "eval": Gadget(eval, f"open({m!r}, 'w')"),
        "numpy-runstring": Gadget(runstring, f"open({m!r}, 'w')", {}),
    }


def folder_case(edit):
    """A copy of the stored canonical folder, changed by ``edit(folder, work)``; run with `br`."""
    def build(work):
        folder = work / "folder"
        edit(folder, work)
        return str(folder), "br"
    return build


def pt_case(write):
    """mosei-aligned's file under the data root replaced by ``write(path, work)``; run with `br`."""
    def build(work):
        write(work / PT, work)
        return "mosei-aligned", "br"
    return build


def pkl_case(edit):
    """iemocap's MulT pickle under the data root changed by ``edit(data)``; run with `linear`."""
    def build(work):
        rewrite_pickle(work / PKL, edit)
        return "iemocap", "linear"
    return build


def name_case(name):
    return lambda work: (name, "br")


def _spec(edit):
    return lambda folder, work: edit_spec_yaml(folder, lambda meta: edit(meta["spec"]))


def _set(key, value):
    return _spec(lambda spec: spec.__setitem__(key, value))


def _write_yaml(text):
    return lambda folder, work: (folder / "spec.yaml").write_text(text.replace("{marker}", str(_marker(work))))


def _symlink_out(name):
    def edit(folder, work):
        outside = work / "elsewhere-src"  # a readable file outside the folder
        outside.mkdir()
        shutil.move(folder / name, outside / name)
        (folder / name).symlink_to(outside / name)
    return edit


def _empty_split(split):
    def edit(folder, work):
        edit_spec_yaml(folder, lambda meta: meta["spec"]["splits"].__setitem__(split, 0))
        path = folder / f"{split}.npz"
        with np.load(path) as z:
            arrays = {k: z[k][:0] for k in z.files}
        np.savez(path, **arrays)
    return edit


def _add_modality_case_twin(folder, work):
    """A modality `Text` beside `text` (same shapes): two cache files on a case-insensitive file system."""
    edit_spec_yaml(folder, lambda meta: meta["spec"]["modalities"].__setitem__("Text", meta["spec"]["modalities"]["text"]))
    edit_npz(folder, lambda a, s: a.update({"Text": a["text"], "Text_lengths": a["text_lengths"]}))


def _object_ids(folder, work):
    """`ids` as an object array whose items would run os.system if numpy unpickled them."""
    path = folder / "train.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    ids = np.empty(len(arrays["ids"]), dtype=object)
    ids[:] = [_gadgets(work)["os.system"]] * len(ids)
    arrays["ids"] = ids
    np.savez(path, **arrays)  # savez pickles object arrays


def _npz_members(path: Path, change) -> None:
    """Rewrite an .npz at the zip level: ``change(members)`` edits the name → bytes dict."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    change(members)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for n, b in members.items():
            zf.writestr(n, b)


def _declared_huge(folder, work):
    """`text.npy` whose header declares 30 GB (10**7 samples) over the few bytes it holds; numpy would
    allocate the declared size before finding the data missing."""
    def change(members):
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                                   "shape": (10**7, 50, 300)})
        members["text.npy"] = buf.getvalue() + b"\0" * 64
    _npz_members(folder / "train.npz", change)


def _deflate_bomb(folder, work):
    """`text.npy` of ten times the spec's values, all zeros, deflated to a small entry."""
    def change(members):
        buf = io.BytesIO()
        np.save(buf, np.zeros((SIZES["train"], 50, 3000), np.float32))
        members["text.npy"] = buf.getvalue()
    _npz_members(folder / "train.npz", change)


def _not_an_array(folder, work):
    _npz_members(folder / "train.npz", lambda m: m.__setitem__("extra_notes", b"#!/bin/sh\nrm -rf /\n"))


def _gadget_pickle(kind):
    def write(path, work):
        with open(path, "wb") as f:
            pickle.dump({"train": {"src-text": _gadgets(work)[kind]}}, f, protocol=4)
    return write


def _numpy_object_array(path, work):
    """A pickled numpy array (the allowed reconstruct path) of dtype object holding a gadget."""
    arr = np.empty(2, dtype=object)
    arr[:] = [_gadgets(work)["os.system"], 1]
    with open(path, "wb") as f:
        pickle.dump({"train": {"src-text": arr}}, f, protocol=2)


def _torch_zip_gadget(path, work):
    import torch

    torch.save({"train": {"src-text": _gadgets(work)["os.system"]}}, path)  # a zip with data.pkl inside


def _truncated(path, work):
    truncate(path)


def _empty_mult(split):
    def edit(data):
        data[split] = {k: v[:0] for k, v in data[split].items()}
    return edit


def _billion_laughs(field):
    """A spec.yaml whose ``field`` is an alias nested nine deep: 9**9 items if anything expands it."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    spec = {"name": "lol", "task": "multilabel", "labels": "[happy]", "description": "ok",
            "modalities": "{text: {dim: 300, length: 50}}", "splits": "{train: 6, valid: 4, test: 4}"}
    spec[field] = "*a8"
    lines += ["format: mmerbench-canonical", "version: 1", "spec:"] + [f"  {k}: {v}" for k, v in spec.items()]
    return _write_yaml("\n".join(lines) + "\n")


CASES = {
    # traversal in every name that can reach a path (labels never do; they get their own rule below)
    "modality-traversal": (folder_case(lambda f, w: rename_modality(f, "text", TRAVERSAL)), "not a plain name"),
    "extra-traversal": (folder_case(lambda f, w: add_extra(f, TRAVERSAL)), "not a plain name"),
    "spec-name-traversal": (folder_case(_set("name", "../../elsewhere/X")), "not a plain name"),
    "split-name-traversal": (folder_case(_spec(lambda s: s.__setitem__(
        "splits", {"../../elsewhere/train": 6, "valid": 4, "test": 4}))), "not a plain name"),
    "spec-name-html": (folder_case(_set("name", "<img src=x onerror=alert(1)>")), "not a plain name"),
    "cli-name-html": (name_case("<img src=x onerror=alert(1)>"), "Unknown dataset"),
    "cli-name-traversal": (name_case("../../elsewhere"), "is not a folder"),
    "cli-name-long": (name_case("x" * 300), "Unknown dataset"),
    "cli-path-long": (name_case("./" + "x" * 300), "is not a folder"),
    # absolute paths, NUL bytes, very long names, names equal but for case
    "modality-absolute": (folder_case(lambda f, w: rename_modality(f, "text", str(w / "elsewhere" / "X"))),
                          "not a plain name"),
    "extra-absolute": (folder_case(lambda f, w: add_extra(f, str(w / "elsewhere" / "X"))), "not a plain name"),
    "modality-nul": (folder_case(_spec(lambda s: s.__setitem__("modalities", {"te\x00xt": s["modalities"]["text"]}))),
                     "not a plain name"),
    "label-nul": (folder_case(_set("labels", ["hap\x00py", "sad", "anger", "surprise", "disgust", "fear"])),
                  "not a label name"),
    "modality-long": (folder_case(lambda f, w: rename_modality(f, "text", "m" * 300)), "not a plain name"),
    "extra-long": (folder_case(lambda f, w: add_extra(f, "e" * 300)), "not a plain name"),
    "modality-case": (folder_case(_add_modality_case_twin), "differ only in case"),
    "extra-case": (folder_case(lambda f, w: (add_extra(f, "va"), add_extra(f, "VA"))), "differ only in case"),
    # symlinks inside the folder pointing outside it
    "symlink-npz": (folder_case(_symlink_out("train.npz")), "resolves outside"),
    "symlink-spec": (folder_case(_symlink_out("spec.yaml")), "resolves outside"),
    # YAML tags and anchors
    "yaml-python-tag": (folder_case(_write_yaml('!!python/object/apply:os.system ["touch {marker}"]\n')),
                        "is not valid YAML"),
    "yaml-tag-in-field": (folder_case(_write_yaml(
        "format: mmerbench-canonical\nspec:\n  name: !!python/name:os.system\n")), "is not valid YAML"),
    "yaml-anchors-description": (folder_case(_billion_laughs("description")), "must be text"),
    "yaml-anchors-labels": (folder_case(_billion_laughs("labels")), "not a label name"),
    "yaml-anchors-task": (folder_case(_billion_laughs("task")), "malformed"),
    # object arrays and bombs in .npz, truncated files
    "npz-object-array": (folder_case(_object_ids), "holds Python objects"),
    "npz-declared-size": (folder_case(_declared_huge), "declares"),
    "npz-deflate-bomb": (folder_case(_deflate_bomb), "more values"),
    "npz-not-an-array": (folder_case(_not_an_array), "is not a .npy array"),
    "npz-truncated": (folder_case(lambda f, w: truncate(f / "train.npz")), "truncated"),
    "yaml-truncated": (folder_case(lambda f, w: truncate(f / "spec.yaml")), "spec.yaml"),
    # empty splits, canonical and MulT's pickle
    "canonical-empty-train": (folder_case(_empty_split("train")), "at least 1"),
    "canonical-empty-test": (folder_case(_empty_split("test")), "at least 1"),
    "mult-empty-train": (pkl_case(_empty_mult("train")), "the train split holds no samples"),
    "mult-empty-test": (pkl_case(_empty_mult("test")), "the test split holds no samples"),
    # pickles with gadgets, a torch zip, a truncated file
    "pickle-os-system": (pt_case(_gadget_pickle("os.system")), "Refused to unpickle"),
    "pickle-subprocess": (pt_case(_gadget_pickle("subprocess")), "Refused to unpickle"),
    "pickle-eval": (pt_case(_gadget_pickle("eval")), "Refused to unpickle"),
    "pickle-numpy-runstring": (pt_case(_gadget_pickle("numpy-runstring")), "Refused to unpickle"),
    "pickle-numpy-object-array": (pt_case(_numpy_object_array), "Refused to unpickle"),
    "torch-zip-gadget": (pt_case(_torch_zip_gadget), "Refused to unpickle"),
    "pt-truncated": (pt_case(_truncated), "truncated"),
}


def _cli(args, capsys) -> str:
    """Run the CLI in-process (fast); it must exit non-zero with exactly one error line and no traceback."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert e.value.code not in (0, None), out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert "Traceback" not in out + err
    return lines[0]


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_one_sentence_and_changes_nothing(case, stored, tmp_path, capsys):
    build, reason = CASES[case]
    work = tmp_path / "w"
    shutil.copytree(stored, work, symlinks=True)
    (work / "elsewhere").mkdir()
    dataset, method = build(work)
    before = _tree(work)
    data, runs = work / "data", work / "runs"
    commands = {
        "run": ["run", "--method", method, "--dataset", dataset, "--seeds", "2", "--data-dir", data,
                "--runs-dir", runs, "-q"],
        "verify": ["data", "verify", dataset, "--data-dir", data],
    }
    for name, args in commands.items():
        line = _cli(args, capsys)
        assert reason in line, f"{name}: {line}"
        assert len(line) < 1000, line  # one sentence, not a dump of the input
        assert _tree(work) == before, f"{name} changed the tree"
    assert not _marker(work).exists()


def test_the_untouched_inputs_pass(stored, tmp_path, capsys):
    # The corpus means something only if the same inputs, unedited, get through.
    work = tmp_path / "w"
    shutil.copytree(stored, work, symlinks=True)
    for dataset in (str(work / "folder"), "mosei-aligned", "iemocap"):
        main(["data", "verify", dataset, "--data-dir", str(work / "data")])
        assert "OK" in capsys.readouterr().out


def test_a_label_that_looks_like_a_path_is_only_text(stored, tmp_path, capsys):
    # Label names never reach a path (they become metric keys, escaped in every table), so the
    # looser label rule accepts them; the run writes only inside its store.
    work = tmp_path / "w"
    shutil.copytree(stored, work, symlinks=True)
    (work / "elsewhere").mkdir()
    edit_spec_yaml(work / "folder", lambda meta: meta["spec"].__setitem__(
        "labels", ["../../elsewhere/X", "sad", "anger", "surprise", "disgust", "fear"]))
    main(["run", "--method", "br", "--dataset", str(work / "folder"), "--seeds", "1", "--data-dir",
          str(work / "data"), "--runs-dir", str(work / "runs"), "-q"])
    assert list((work / "elsewhere").iterdir()) == []
    stored_runs = list((work / "runs").glob("lol*")) + list((work / "runs").glob("mosei-aligned@*"))
    assert len(stored_runs) == 1  # the run itself went into the store


ALLOCATION_BOMB = pickle.dumps(Gadget(bytearray, 1 << 30), protocol=4)  # bytearray(1 GiB) in a few dozen bytes


def test_a_pickle_that_allocates_is_refused_before_allocating(tmp_path):
    # A few dozen bytes that make `bytearray(1 GiB)`: refused with one sentence, before allocating.
    # The child process reports its own peak memory: VmHWM of its own address space (ru_maxrss
    # would carry over the parent's peak across fork/exec, which is pytest's, not the child's).
    (tmp_path / "data" / "mosei").mkdir(parents=True)
    (tmp_path / "data" / "mosei" / "train_valid_test.pt").write_bytes(ALLOCATION_BOMB)
    peak = tmp_path / "peak"
    code = ("import atexit, re, sys; from mmerbench.cli import main; "
            f"atexit.register(lambda: open({str(peak)!r}, 'w').write(re.search(r'VmHWM:\\s*(\\d+)', "
            "open('/proc/self/status').read()).group(1))); main(sys.argv[1:])")
    proc = subprocess.run([sys.executable, "-c", code, "data", "verify", "mosei-aligned", "--data-dir",
                           str(tmp_path / "data")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert int(peak.read_text()) < 512 * 1024, f"peak {int(peak.read_text()) // 1024} MiB"  # VmHWM is in kB
