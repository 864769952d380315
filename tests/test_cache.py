"""The `.npy` cache is checked, not trusted: content hashes in the manifest, verified on first open per process;
leftovers of a killed writer are removed by the next writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mmerbench.data import cache, paths
from mmerbench.data.readers.canonical import write_canonical
from mmerbench.data.registry import get_entry, load_dataset

from conftest import TINY_SCALE
from readerkit import assert_features_equal, small


def _new_process() -> None:
    """What a fresh process knows: no entry verified yet."""
    cache._VERIFIED.clear()


def _twin_entry(root):
    load_dataset("synth-mosei-aligned", data_dir=root, scale=TINY_SCALE)
    (entry,) = [p for p in paths.cache_root(root).iterdir() if p.is_dir() and not p.name.startswith(".")]
    return entry


def test_manifest_records_the_sha256_of_every_array_file(tmp_path):
    entry = _twin_entry(tmp_path)
    hashes = json.loads((entry / cache.MANIFEST).read_text())["hashes"]
    files = sorted(p.relative_to(entry).as_posix() for p in entry.rglob("*.npy"))
    assert sorted(hashes) == files and len(files) >= 15
    import hashlib

    for name, digest in hashes.items():
        assert hashlib.sha256((entry / name).read_bytes()).hexdigest() == digest


def test_values_changed_behind_a_valid_npy_header_are_not_used(tmp_path):
    entry = _twin_entry(tmp_path)
    ref = load_dataset("synth-mosei-aligned", data_dir=tmp_path, scale=TINY_SCALE)
    want = np.array(ref["train"].inputs["text"])
    arr = np.load(entry / "train" / "text.npy", mmap_mode="r+")  # same header, same size, other values
    arr[0, 0, :] += 1000.0
    arr.flush()
    del arr
    _new_process()
    out = load_dataset("synth-mosei-aligned", data_dir=tmp_path, scale=TINY_SCALE)
    assert not out.report.from_cache  # rebuilt from the generator
    np.testing.assert_array_equal(out["train"].inputs["text"], want)
    assert load_dataset("synth-mosei-aligned", data_dir=tmp_path, scale=TINY_SCALE).report.from_cache


def test_a_missing_or_extra_array_file_is_not_trusted(tmp_path):
    entry = _twin_entry(tmp_path)
    np.save(entry / "train" / "extra.sneaky.npy", np.zeros(3))
    _new_process()
    assert not load_dataset("synth-mosei-aligned", data_dir=tmp_path, scale=TINY_SCALE).report.from_cache


def test_source_edited_in_place_with_size_and_time_restored_is_reread(tmp_path):
    def featured(seed):  # no raw text: its string width varies with the seed, and this case needs equal sizes
        ds = small("iemocap", seed=seed)
        for split in ds.splits.values():
            split.text_raw = None
        return ds

    folder = write_canonical(featured(0), tmp_path / "iemocap")
    other = write_canonical(featured(1), tmp_path / "other")
    first = load_dataset(str(folder), data_dir=tmp_path / "root")
    assert_features_equal(first, featured(0))
    src, new = folder / "train.npz", (other / "train.npz").read_bytes()
    st = src.stat()
    assert len(new) == st.st_size and new != src.read_bytes()
    with open(src, "r+b") as f:  # in place: same inode, same size
        f.write(new)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (src.stat().st_ino, src.stat().st_size, src.stat().st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    _new_process()
    again = load_dataset(str(folder), data_dir=tmp_path / "root")
    assert not again.report.from_cache
    np.testing.assert_array_equal(again["train"].inputs["text"], small("iemocap", seed=1)["train"].inputs["text"])


def test_verification_runs_once_per_process(tmp_path, monkeypatch):
    _twin_entry(tmp_path)
    _new_process()
    calls = []
    real = cache._array_hashes
    monkeypatch.setattr(cache, "_array_hashes", lambda folder: calls.append(folder) or real(folder))
    for _ in range(3):
        assert load_dataset("synth-mosei-aligned", data_dir=tmp_path, scale=TINY_SCALE).report.from_cache
    assert len(calls) == 1


def test_leftovers_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    # A writer killed mid-conversion (no clean-up runs) leaves its temporary folder behind.
    script = textwrap.dedent(f"""
        import os
        import numpy as np
        from mmerbench.data import cache
        real = np.save
        def save_then_die(path, *a, **k):
            real(path, *a, **k)
            os._exit(137)
        np.save = save_then_die
        from mmerbench.data.registry import load_dataset
        load_dataset("synth-mosei-aligned", data_dir={str(tmp_path)!r}, scale={TINY_SCALE})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr
    root = paths.cache_root(tmp_path)
    left = [p for p in root.iterdir() if ".tmp-" in p.name]
    assert len(left) == 1 and any(left[0].rglob("*.npy"))
    out = load_dataset("synth-mosei-aligned", data_dir=tmp_path, scale=TINY_SCALE)
    assert not out.report.from_cache
    assert [p for p in root.iterdir() if ".tmp-" in p.name or ".old-" in p.name] == []


def test_an_old_manifest_without_hashes_is_rebuilt(tmp_path):
    entry = _twin_entry(tmp_path)
    m = json.loads((entry / cache.MANIFEST).read_text())
    del m["hashes"]
    (entry / cache.MANIFEST).write_text(json.dumps(m))
    _new_process()
    assert not load_dataset("synth-mosei-aligned", data_dir=tmp_path, scale=TINY_SCALE).report.from_cache


@pytest.fixture(autouse=True)
def _fresh_verification():
    _new_process()
    yield
    _new_process()


def test_manifest_records_the_sha256_of_each_source_file(tmp_path):
    import hashlib

    folder = write_canonical(small("iemocap"), tmp_path / "iemo")
    load_dataset(str(folder), data_dir=tmp_path / "root")
    manifest = paths.cache_root(tmp_path / "root") / get_entry(str(folder)).name / cache.MANIFEST
    sources = json.loads(manifest.read_text())["sources"]
    want = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    assert sources == {k: v for k, v in want.items() if k in sources} and "train.npz" in sources


_BUILD = """
import sys, time
from mmerbench.data import cache
from mmerbench.data.registry import load_dataset
write = cache.write
def slow_write(*a, **k):  # a build that takes a while: the other process surely arrives during it
    time.sleep(1.0)
    write(*a, **k)
cache.write = slow_write
t = float(sys.argv[2])
while time.time() < t:  # start together: both find the cache cold
    time.sleep(0.005)
ds = load_dataset("synth-mosei-aligned", data_dir=sys.argv[1], scale=0.02)
print(ds.report.from_cache, len(ds["train"]), float(ds["train"].inputs["text"].sum()))
"""


def test_two_processes_building_one_cold_cache_both_succeed(tmp_path):
    """The second builder waits on the entry's lock and then uses the first one's entry."""
    import subprocess
    import sys
    import time

    root = tmp_path / "data"
    start = time.time() + 4.0  # after both interpreters have imported numpy and mmerbench
    procs = [subprocess.Popen([sys.executable, "-c", _BUILD, str(root), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    lines = sorted(out.split() for out, _ in outs)
    assert [ln[0] for ln in lines] == ["False", "True"]  # one built it, the other waited and read that entry
    assert lines[0][1:] == lines[1][1:]  # the same data
    left = [p for p in root.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]
    assert left == []  # no temporary folder left behind
