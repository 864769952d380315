"""The allow-list unpickler and the weights-only torch loader: what loads, what is refused, and that nothing runs."""

from __future__ import annotations

import argparse
import codecs
import collections
import os
import pickle
import struct
import sys

import numpy as np
import pytest
import torch

from mmerbench.data.safe_pickle import SafeUnpickler, is_torch_file, safe_load, safe_pickle_load, safe_torch_load
from mmerbench.errors import DataError


def _payload() -> dict:
    return {
        "f32": np.arange(12, dtype=np.float32).reshape(2, 3, 2),
        "f64": np.array([[-np.inf, np.nan, 1.5]]),
        "i64": np.arange(4),
        "bytes_ids": np.array([[b"vid", b"3"], [b"other", b"10"]]),
        "str_ids": np.array(["a_1", "b_2"]),
        "objects": np.array([np.zeros(2), "x"], dtype=object),
        "scalar": np.float32(2.5),
        "settings": argparse.Namespace(max_len=60, name="x"),
        "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
        "set": {1, 2},
        "frozen": frozenset({"a"}),
        "complex": 1 + 2j,
        "raw": b"\x00\xffbytes",
        "nested": [[2, 4, 3], (1.0, None, True)],
    }


def _check_payload(out: dict) -> None:
    ref = _payload()
    assert out.keys() == ref.keys()
    for k in ("f32", "i64", "bytes_ids", "str_ids"):
        np.testing.assert_array_equal(out[k], ref[k])
        assert out[k].dtype == ref[k].dtype
    np.testing.assert_array_equal(out["f64"], ref["f64"])  # NaN compares equal here
    assert out["objects"][1] == "x"
    assert out["scalar"] == np.float32(2.5)
    assert vars(out["settings"]) == {"max_len": 60, "name": "x"}
    assert list(out["ordered"].items()) == [("b", 1), ("a", 2)]
    assert out["set"] == {1, 2} and out["frozen"] == frozenset({"a"}) and out["complex"] == 1 + 2j
    assert out["raw"] == b"\x00\xffbytes"
    assert out["nested"][0] == [2, 4, 3]


class _Shell:
    """Unpickling this runs a shell command (with an unsafe loader)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _WriteFile:
    """Unpickling this writes a file through builtins.exec (with an unsafe loader)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


# ---------------------------------------------------------------- plain pickles


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_allowed_types_load_at_every_protocol(tmp_path, protocol):
    p = tmp_path / "ok.pkl"
    p.write_bytes(pickle.dumps(_payload(), protocol=protocol))
    _check_payload(safe_load(p))


def test_numpy1_module_names_resolve(tmp_path):
    # numpy 1.x wrote `numpy.core.multiarray`; numpy 2 has `numpy._core` (and only warns for `numpy.core`).
    raw = pickle.dumps(_payload(), protocol=2)
    raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"numpy.core.multiarray\n_reconstruct" in raw and b"numpy._core" not in raw
    p = tmp_path / "np1.pkl"
    p.write_bytes(raw)
    _check_payload(safe_load(p))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("evil", [_Shell, _WriteFile])
def test_code_executing_pickle_is_refused_and_not_run(tmp_path, protocol, evil):
    marker = tmp_path / "MARKER"
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"text": np.zeros(3), "x": [evil(marker)]}, protocol=protocol))
    with pytest.raises(DataError, match="not an allowed type") as e:
        safe_load(p)
    assert str(p) in str(e.value)
    assert ("system" in str(e.value)) if evil is _Shell else ("exec" in str(e.value))
    assert not marker.exists()


def test_unknown_module_is_refused_before_import(tmp_path):
    p = tmp_path / "ghost.pkl"
    p.write_bytes(b"\x80\x02cmmerbench_ghost_module_xyz\nrun\nq\x00)\x81q\x01.")
    with pytest.raises(DataError, match="mmerbench_ghost_module_xyz.run"):
        safe_load(p)
    assert "mmerbench_ghost_module_xyz" not in sys.modules


def test_codecs_encode_is_limited_to_text_encodings(tmp_path):
    class _Rot13:
        def __reduce__(self):
            return (codecs.encode, ("abc", "rot13"))

    p = tmp_path / "codec.pkl"
    p.write_bytes(pickle.dumps(_Rot13(), protocol=2))
    with pytest.raises(DataError, match="not an allowed type"):
        safe_load(p)


def test_pickled_tensor_is_refused_in_a_plain_pickle(tmp_path):
    # A plain pickle of a tensor rebuilds its storage through torch.load(weights_only=False): never allowed.
    p = tmp_path / "tensor.pkl"
    p.write_bytes(pickle.dumps({"x": torch.zeros(2)}))
    with pytest.raises(DataError, match="not an allowed type"):
        safe_pickle_load(p)


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage, not a pickle at all", b"\x80\x04\x95", "half"],
    ids=["empty", "garbage", "header-only", "cut-in-half"],
)
def test_broken_pickles_are_data_errors_naming_the_file(tmp_path, content):
    p = tmp_path / "broken.pkl"
    if content == "half":
        raw = pickle.dumps(_payload(), protocol=4)
        content = raw[: len(raw) // 2]
    p.write_bytes(content)
    with pytest.raises(DataError) as e:
        safe_load(p)
    assert str(p) in str(e.value)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        safe_load(tmp_path / "nope.pkl")


def test_unpickler_class_is_usable_directly(tmp_path):
    import io

    buf = io.BytesIO(pickle.dumps(np.arange(3)))
    np.testing.assert_array_equal(SafeUnpickler(buf).load(), np.arange(3))


# ---------------------------------------------------------------- torch files


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_file_with_numpy_namespace_and_tensors(tmp_path, legacy):
    p = tmp_path / "ok.pt"
    obj = {**_payload(), "tensor": torch.arange(6.0).reshape(2, 3)}
    torch.save(obj, p, _use_new_zipfile_serialization=not legacy)
    assert is_torch_file(p)
    before = set(map(repr, torch.serialization.get_safe_globals()))
    out = safe_load(p)
    _check_payload({k: v for k, v in out.items() if k != "tensor"})
    assert torch.equal(out["tensor"], obj["tensor"])
    # The allow-list is scoped to the call: torch's global list is as it was.
    assert set(map(repr, torch.serialization.get_safe_globals())) == before


def test_torch_legacy_file_with_numpy1_names(tmp_path):
    p = tmp_path / "np1.pt"
    torch.save(_payload(), p, _use_new_zipfile_serialization=False)
    raw = p.read_bytes().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"numpy.core.multiarray\n_reconstruct" in raw
    p.write_bytes(raw)
    _check_payload(safe_torch_load(p))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("evil", [_Shell, _WriteFile])
def test_code_executing_torch_file_is_refused_and_not_run(tmp_path, monkeypatch, legacy, evil):
    # Even the environment switch that turns weights-only loading off must not matter.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "MARKER"
    p = tmp_path / "evil.pt"
    torch.save({"train": {"src-text": np.zeros((1, 2)), "x": evil(marker)}}, p,
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(DataError, match="not an allowed type") as e:
        safe_load(p)
    assert str(p) in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_truncated_torch_file_is_a_data_error(tmp_path, legacy):
    p = tmp_path / "cut.pt"
    torch.save({"a": np.zeros((50, 50)), "t": torch.ones(100)}, p, _use_new_zipfile_serialization=not legacy)
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError) as e:
        safe_load(p)
    assert str(p) in str(e.value)
    assert "\n" not in str(e.value)


def test_garbage_given_to_the_torch_loader_is_a_data_error(tmp_path):
    p = tmp_path / "garbage.pt"
    p.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(DataError, match="torch file"):
        safe_load(p)


# ---------------------------------------------------------------- allocation bombs

_HUGE = 2_000_000_000  # what a hostile file asks for; never allocated


def _peak_bytes_of(fn) -> int:
    """Peak traced Python/numpy allocation while ``fn`` runs (it must raise DataError)."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(DataError) as e:
            fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        _peak_bytes_of.last_error = str(e.value)


def _int4(n: int) -> bytes:
    return struct.pack("<i", n)


_BOMBS = {
    # The 33-byte file from the report: bytearray(2e9) by protocol 2's GLOBAL + REDUCE.
    "bytearray-size": b"\x80\x02c__builtin__\nbytearray\nJ" + _int4(_HUGE) + b"\x85R.",
    "bytes-size": b"\x80\x02c__builtin__\nbytes\nJ" + _int4(_HUGE) + b"\x85R.",
    "BINBYTES8": b"\x80\x05\x8e" + struct.pack("<Q", _HUGE) + b".",
    "BYTEARRAY8": b"\x80\x05\x96" + struct.pack("<Q", _HUGE) + b".",
    "BINBYTES": b"\x80\x03B" + struct.pack("<I", _HUGE) + b".",
    "BINUNICODE8": b"\x80\x05\x8d" + struct.pack("<Q", _HUGE) + b".",
    "FRAME": b"\x80\x04\x95" + struct.pack("<Q", _HUGE) + b"N.",
    "memo-index": b"\x80\x02Nr" + struct.pack("<I", _HUGE // 16) + b".",
    "numpy-reconstruct-shape": b"\x80\x02cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ" + _int4(_HUGE)
                               + b"\x85C\x01b\x87R.",
    "numpy-reconstruct-dtype": b"\x80\x02cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x01\x85cnumpy\ndtype\n"
                               b"X\x0b\x00\x00\x00S2000000000\x85R\x87R.",
    "ndarray-newobj": b"\x80\x02cnumpy\nndarray\nJ" + _int4(_HUGE) + b"\x85\x85\x81.",
    "set-of-range": b"\x80\x02c__builtin__\nset\nc__builtin__\nrange\nJ" + _int4(_HUGE // 40) + b"\x85R\x85R.",
    "reconstructor-ndarray": b"\x80\x02ccopy_reg\n_reconstructor\ncnumpy\nndarray\ncnumpy\nndarray\nJ" + _int4(_HUGE)
                             + b"\x85\x87R.",
}


@pytest.mark.parametrize("name", list(_BOMBS))
def test_allocation_bomb_is_refused_without_allocating(tmp_path, name):
    p = tmp_path / "bomb.pkl"
    p.write_bytes(_BOMBS[name])
    peak = _peak_bytes_of(lambda: safe_load(p))
    assert peak < 2**20, f"{name}: {peak:,} bytes allocated before refusing"
    msg = _peak_bytes_of.last_error
    assert str(p) in msg and "\n" not in msg
    assert "corrupt or hostile" in msg or "truncated" in msg


def test_the_reported_33_byte_bomb_is_33_bytes():
    assert len(_BOMBS["bytearray-size"]) == 33


def test_memo_indices_as_picklers_write_them_still_load(tmp_path):
    # pickle numbers memo entries densely from 0; a shared object is fetched back by index.
    shared = np.arange(3.0)
    p = tmp_path / "memo.pkl"
    p.write_bytes(pickle.dumps({"a": shared, "b": shared, "c": [shared] * 3}, protocol=2))
    out = safe_load(p)
    assert out["a"] is out["b"] is out["c"][2]


def _torch_zip_with(payload: bytes | None = None, declared: int | None = None) -> bytes:
    """A real torch.save zip; data.pkl replaced by ``payload`` and/or its declared size set to ``declared``."""
    import io
    import zipfile

    buf = io.BytesIO()
    torch.save({"a": 1}, buf)
    src, out = zipfile.ZipFile(io.BytesIO(buf.getvalue())), io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            data = src.read(info.filename)
            z.writestr(info, payload if payload is not None and info.filename.endswith("/data.pkl") else data)
    raw = bytearray(out.getvalue())
    if declared is not None:  # the uncompressed-size field of data.pkl's central directory entry
        i = raw.find(b"PK\x01\x02")
        while i >= 0:
            name_len = struct.unpack_from("<H", raw, i + 28)[0]
            if raw[i + 46:i + 46 + name_len].endswith(b"data.pkl"):
                struct.pack_into("<I", raw, i + 24, declared)
            i = raw.find(b"PK\x01\x02", i + 4)
    return bytes(raw)


def test_torch_zip_member_declaring_a_huge_size_is_refused(tmp_path):
    p = tmp_path / "bomb.pt"
    p.write_bytes(_torch_zip_with(declared=_HUGE))
    with pytest.raises(DataError, match=r"declares 2,000,000,000 bytes uncompressed in a [\d,]+-byte file"):
        safe_load(p)


def test_torch_zip_whose_pickle_is_a_bytearray_bomb_is_refused_without_allocating(tmp_path):
    # torch's weights-only loader allows bytearray itself; the walk before it refuses the call.
    p = tmp_path / "bomb.pt"
    p.write_bytes(_torch_zip_with(payload=_BOMBS["bytearray-size"]))
    assert _peak_bytes_of(lambda: safe_load(p)) < 2**20
    assert "bytearray(int)" in _peak_bytes_of.last_error


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_storage_larger_than_the_file_is_refused(tmp_path, legacy):
    import io

    buf = io.BytesIO()
    torch.save({"t": torch.zeros(4)}, buf, _use_new_zipfile_serialization=not legacy)
    raw = buf.getvalue()
    if legacy:  # the storage's element count in its persistent id (BININT1 4 → BININT 2e9)
        i = raw.find(b"K\x04N")
        raw = raw[:i] + b"J" + _int4(_HUGE) + raw[i + 2:]
    else:
        import zipfile

        pkl = next(n for n in zipfile.ZipFile(io.BytesIO(raw)).namelist() if n.endswith("data.pkl"))
        data = zipfile.ZipFile(io.BytesIO(raw)).read(pkl)
        i = data.find(b"K\x04t")
        raw = _torch_zip_with(payload=data[:i] + b"J" + _int4(_HUGE) + data[i + 2:])
    assert i > 0
    p = tmp_path / "storage.pt"
    p.write_bytes(raw)
    with pytest.raises(DataError, match="declare.* 8,000,000,000 bytes"):
        safe_load(p)


def test_torch_errors_never_suggest_turning_safety_off(tmp_path):
    # NEWOBJ on a class torch allows (torch.Tensor) for which the walk has only an inert stand-in,
    # and the other shapes of torch refusal: none of the messages repeats torch's advice.
    import io

    cases = {
        "newobj": _torch_zip_with(payload=b"\x80\x02ctorch\nTensor\n)\x81."),
        "counter": _torch_zip_with(payload=b"\x80\x02ccollections\nCounter\n)R."),
        "garbage-pickle": _torch_zip_with(payload=b"\x80\x02\xff."),
    }
    buf = io.BytesIO()
    torch.save({"x": _Shell(tmp_path / "M")}, buf)
    cases["gadget"] = buf.getvalue()
    for name, raw in cases.items():
        p = tmp_path / f"{name}.pt"
        p.write_bytes(raw)
        try:
            safe_load(p)
        except DataError as e:
            msg = str(e)
        else:
            msg = ""
        assert "weights_only" not in msg and "trust" not in msg and "safe_globals" not in msg, (name, msg)


# ---------------------------------------------------------------- arrays of every dtype and shape, empty included

_DTYPES = ["float32", "float64", "float16", "int8", "int64", "uint16", "bool", "complex64", "<U5", "S3", "V4"]
_SHAPES = [(0,), (0, 3), (2, 0, 4), (), (5,), (2, 3)]


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for dt in _DTYPES:
        for shape in _SHAPES:
            raw = rng.integers(0, 255, size=int(np.prod(shape)) * np.dtype(dt).itemsize, dtype=np.uint8)
            out[f"{dt}-{shape}"] = np.frombuffer(raw.tobytes(), dtype=dt).reshape(shape).copy()
    out["fortran"] = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    out["object-empty"] = np.empty((0,), dtype=object)
    return out


def _assert_same_arrays(out: dict, ref: dict) -> None:
    assert out.keys() == ref.keys()
    for k, v in ref.items():
        assert type(out[k]) is np.ndarray, k  # never the loader's checked subclass
        assert out[k].dtype == v.dtype and out[k].shape == v.shape, k
        assert out[k].tobytes() == v.tobytes(), k


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_arrays_round_trip_through_every_pickle_protocol(tmp_path, protocol):
    p = tmp_path / "arrays.pkl"
    p.write_bytes(pickle.dumps(_arrays(), protocol=protocol))
    _assert_same_arrays(safe_load(p), _arrays())


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_arrays_round_trip_through_torch_save(tmp_path, legacy):
    p = tmp_path / "arrays.pt"
    torch.save(_arrays(), p, _use_new_zipfile_serialization=not legacy)
    _assert_same_arrays(safe_load(p), _arrays())


@pytest.mark.parametrize("shape", ["unpickling-first-line", "unpickling-after-blank", "runtime"])
def test_torch_advice_to_load_unsafely_is_never_repeated(tmp_path, monkeypatch, shape):
    # torch's own wording, in the shapes its weights-only errors take (advice on the first line,
    # advice before a blank line, advice inside another exception).
    advice = torch.serialization.UNSAFE_MESSAGE
    err = {
        "unpickling-first-line": pickle.UnpicklingError(f"{advice}\nmore"),
        "unpickling-after-blank": pickle.UnpicklingError(f"Weights only load failed.\n\n{advice}"),
        "runtime": RuntimeError(f"Weights only load failed. {advice}"),
    }[shape]

    def fail(*args, **kwargs):
        raise err

    p = tmp_path / "ok.pt"
    torch.save({"a": 1}, p)
    monkeypatch.setattr(torch, "load", fail)
    with pytest.raises(DataError) as e:
        safe_load(p)
    assert "weights_only" not in str(e.value) and "trusted" not in str(e.value)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def _object_array_short_list() -> bytes:
    """A pickled object array of shape (5,) whose value list holds 2 items.

    numpy's own loader reads past the end of the list (here it returns pieces of the pickle's
    other objects as the missing elements; elsewhere it can crash)."""
    raw = pickle.dumps(np.array([1, "x", 3, 4, 5], dtype=object), protocol=2)
    i = raw.index(b"K\x05\x85")  # shape (5,)
    assert raw.count(b"K\x05\x85") == 1
    raw = raw[:i] + b"K\x05\x85" + raw[i + 3:]
    j = raw.index(b"K\x03K\x04K\x05e")  # drop three of the five values
    return raw[:j] + b"e" + raw[j + len(b"K\x03K\x04K\x05e"):]


@pytest.mark.parametrize("torch_file", [False, True], ids=["pickle", "torch-zip"])
def test_object_array_whose_values_do_not_match_its_shape_is_refused_not_crashing(tmp_path, torch_file):
    import subprocess
    import textwrap

    raw = _object_array_short_list()
    p = tmp_path / ("bad.pt" if torch_file else "bad.pkl")
    p.write_bytes(_torch_zip_with(payload=raw) if torch_file else raw)
    # In a child process: numpy's unchecked path reads memory it does not own and can crash.
    script = textwrap.dedent(f"""
        from mmerbench.data.safe_pickle import safe_load
        from mmerbench.errors import DataError
        try:
            safe_load({str(p)!r})
        except DataError as e:
            print(e)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "object array of shape (5,) holds 2 values" in out.stdout and str(p) in out.stdout


def test_arrays_inside_object_arrays_and_containers_come_back_plain(tmp_path):
    inner = np.arange(3.0)
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = inner, "s"
    payload = {"obj": obj, "tup": (inner, [inner]), "ns": argparse.Namespace(a=inner)}
    p = tmp_path / "nested.pkl"
    p.write_bytes(pickle.dumps(payload, protocol=2))
    out = safe_load(p)
    found = [out["obj"], out["obj"][0], out["tup"][0], out["tup"][1][0], out["ns"].a]
    assert all(type(a) is np.ndarray for a in found)
    assert out["tup"][0] is out["tup"][1][0] is out["ns"].a is out["obj"][0]  # shared as in the file
