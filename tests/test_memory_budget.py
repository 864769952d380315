"""`--max-memory`: the runner picks checkpointing, then exact accumulation, from an estimate; the picks
are ordinary settings of the run's config and change no number."""

from __future__ import annotations

import pytest
import yaml

from mmerbench import memory
from mmerbench.data.registry import load_dataset
from mmerbench.errors import MmerbenchError
from mmerbench.runner import RunRequest, prepare, run


@pytest.mark.parametrize("text, want", [("20GB", 20 * 10**9), ("16GiB", 16 * 2**30), ("512MB", 512 * 10**6),
                                        ("1.5G", int(1.5 * 2**30)), ("3e9", 3 * 10**9)])
def test_sizes(text, want):
    assert memory.parse_size(text) == want


@pytest.mark.parametrize("bad", ["", "lots", "-3GB", "0", "20 parsecs", "1e999GB"])
def test_bad_sizes_are_one_error(bad):
    with pytest.raises(MmerbenchError, match="memory size"):
        memory.parse_size(bad)


def _req(tmp_path, **kw):
    # HHMPN's small preset has no dropout: checkpointing and accumulation must leave every number as it was.
    return RunRequest(method="hhmpn", dataset="synth-mosei-aligned", preset="small", epochs=1, scale=0.01,
                      device="cpu", progress=False, data_dir=str(tmp_path / "data"),
                      runs_dir=str(tmp_path / "runs"), **kw)


def _plan(tmp_path, budget):
    prep = prepare(_req(tmp_path))
    ds = load_dataset("synth-mosei-aligned", data_dir=str(tmp_path / "data"), scale=0.01)
    return prep, ds, memory.plan(prep, ds, "cpu", budget)


def test_estimate_parts_and_order_of_picks(tmp_path):
    prep, ds, roomy = _plan(tmp_path, 10**12)
    assert (roomy.checkpoint_layers, roomy.accumulate) == (False, 1)  # fits as it is: nothing changes
    assert roomy.overrides(prep.config["params"]) == ()
    plain, parts = memory.estimate(prep, ds, "cpu", checkpoint=False, accumulate=1)
    ck, _ = memory.estimate(prep, ds, "cpu", checkpoint=True, accumulate=1)
    acc, acc_parts = memory.estimate(prep, ds, "cpu", checkpoint=True, accumulate=4)
    assert plain == sum(parts.values()) and plain > ck > acc
    assert acc_parts["state"] == parts["state"] and acc_parts["data"] == parts["data"]
    _, _, tight = _plan(tmp_path, ck)  # checkpointing alone fits
    assert (tight.checkpoint_layers, tight.accumulate) == (True, 1)
    _, _, tighter = _plan(tmp_path, acc)
    assert tighter.checkpoint_layers and tighter.accumulate >= 4
    with pytest.raises(MmerbenchError, match="needs about .* GiB even with checkpoint_layers=true"):
        _plan(tmp_path, parts["base"])


def test_run_records_its_picks_and_lands_where_the_same_settings_by_hand_land(tmp_path):
    prep, ds, _ = _plan(tmp_path, 10**12)
    budget = memory.estimate(prep, ds, "cpu", checkpoint=True, accumulate=2)[0] + 1
    (fit,) = run(_req(tmp_path, max_memory=str(budget)))
    cfg = yaml.safe_load((fit.folder / "config.yaml").read_text())
    assert cfg["params"]["checkpoint_layers"] is True and cfg["params"]["accumulate"] >= 2
    assert cfg["memory_plan"]["estimate_gib"] <= cfg["memory_plan"]["max_memory_gib"]
    by_hand = _req(tmp_path, overrides=("checkpoint_layers=true", f"accumulate={cfg['params']['accumulate']}"))
    assert prepare(by_hand).folders[1] == fit.folder
    (plain,) = run(_req(tmp_path))
    assert plain.folder != fit.folder
    assert fit.metrics["test"] == pytest.approx(plain.metrics["test"], abs=1e-5)


def test_refused_accumulation_is_not_picked(tmp_path):
    req = RunRequest(method="carat", dataset="synth-mosei-aligned", preset="small", scale=0.01, device="cpu",
                     progress=False, data_dir=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs"),
                     max_memory="1MB")
    with pytest.raises(MmerbenchError, match="cannot accumulate"):
        run(req)
    assert not (tmp_path / "runs").exists()
