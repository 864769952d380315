"""The allow-list unpickler and the weights-only torch loader: what loads, what is refused, and that nothing runs."""

from __future__ import annotations

import argparse
import codecs
import collections
import os
import pickle
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
