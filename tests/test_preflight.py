"""Checks before any work: a bad `--set` value or an unwritable run store is one sentence, raised
before the twin is generated and before any run folder exists."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mmerbench import config as configlib
from mmerbench.errors import MmerbenchError
from mmerbench.registry import METHODS
from mmerbench.runner import RunRequest, prepare, run
from mmerbench import preflight


def _dataset_for(method):
    task = METHODS.get(method).tasks[0]
    return {"multilabel": "synth-mosei-aligned", "multiclass": "synth-iemocap",
            "regression": "synth-mosi", "binary": "synth-ur-funny"}[task]


def _tree(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*")) if path.exists() else []


@pytest.mark.parametrize("method, item, words", [
    ("mlp", "hidden=abc", "takes an integer for 'hidden'"),
    ("mlp", "hidden=2.5", "takes an integer for 'hidden'"),
    ("mlp", "lr=fast", "takes a finite number for 'lr'"),
    ("mlp", "lr=.nan", "takes a finite number for 'lr'"),
    ("mlp", "amp=3", "takes true or false for 'amp'"),
    ("mlp", "hidden=null", "cannot be built with this config"),
    ("mlp", "lr=-1", "'lr' must be above 0"),
    ("mlp", "epochs=0", "'epochs' must be above 0"),
    ("mlp", "select=fast", "`select` must be 'loss' or a multilabel metric"),
    ("mlp", "hidden=-4", "cannot be built with this config"),
    ("tailor", "amr_losses=most", "Expected `amr_losses`"),
    ("tailor", "heads=3", "not divisible by 3 heads"),
    ("br", "C=0", "'C' must be above 0"),
    ("linear", "Cs=[a, b]", "takes a list"),
])
def test_a_bad_value_fails_before_any_work(tmp_path, method, item, words):
    data, runs = tmp_path / "data", tmp_path / "runs"
    req = RunRequest(method=method, dataset=_dataset_for(method), overrides=(item,), preset="small",
                     data_dir=str(data), runs_dir=str(runs), progress=False, scale=0.02)
    with pytest.raises(MmerbenchError, match=words.replace("(", r"\(").replace("[", r"\[")) as e:
        run(req)
    assert "\n" not in str(e.value)
    assert _tree(data) == []  # no twin generated
    assert not runs.exists() or not any(runs.rglob("seed-*"))  # no junk run folder


def test_values_of_the_right_kind_pass_and_keep_one_spelling():
    def params(*items):
        return prepare(RunRequest(method="mlp", dataset="synth-mosei-aligned", overrides=items)).config["params"]

    assert params("lr=1")["lr"] == 1.0 and isinstance(params("lr=1")["lr"], float)
    assert prepare(RunRequest(method="mlp", dataset="synth-mosei-aligned", overrides=("lr=1",))).config_hash == \
        prepare(RunRequest(method="mlp", dataset="synth-mosei-aligned", overrides=("lr=1.0",))).config_hash
    assert params("hidden=32", "amp=false", "select=loss", "modalities=[text]")["hidden"] == 32
    # null only where the file uses it: TAILOR's small preset sets init_std to null
    tailor = prepare(RunRequest(method="tailor", dataset="synth-mosei-aligned", overrides=("init_std=null",)))
    assert tailor.config["params"]["init_std"] is None
    # a setting the file only ever leaves null takes what the method checks
    assert prepare(RunRequest(method="linear", dataset="synth-mosi",
                              overrides=("C=0.5",))).config["params"]["C"] == 0.5


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_builds_at_its_own_configs(name, tmp_path, monkeypatch):
    """The pre-flight check never refuses a config the project ships (default and every preset).

    A preset that reads text through a pretrained checkpoint builds when the checkpoint is on this machine;
    where it is not (CI), the refusal is the one sentence naming it, and the preset still builds with a
    local checkpoint in its place."""
    from mmerbench.methods.text_encoder import uses_encoder

    monkeypatch.delenv("MMERBENCH_TEXT_DOWNLOAD", raising=False)
    cls = METHODS.get(name)
    data = configlib.load_config_file(name, cls.config_package)
    dataset = _dataset_for(name)
    tiny = None
    for preset in (None, *data["presets"]):
        prep = prepare(RunRequest(method=name, dataset=dataset, preset=preset))
        encoder = prep.config["params"].get("text_encoder")
        if not uses_encoder(encoder):
            preflight.check_config(prep)
            continue
        try:
            preflight.check_config(prep)
        except MmerbenchError as e:
            assert f"{encoder!r}" in str(e) and "is not on this machine" in str(e) and "\n" not in str(e)
        if tiny is None:
            from textkit import make_tiny
            tiny = make_tiny(tmp_path / "tiny", ["good", "bad"], "bert")
        preflight.check_config(prepare(RunRequest(method=name, dataset=dataset, preset=preset,
                                                  overrides=(f"text_encoder={tiny}",))))


def test_an_unwritable_store_is_one_sentence_before_the_data(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for store in ("/proc/mmerbench-x", str(afile / "runs")):
        req = RunRequest(method="br", dataset="synth-mosei-aligned", data_dir=str(tmp_path / "data"),
                         runs_dir=store, progress=False, scale=0.02)
        with pytest.raises(MmerbenchError, match="cannot be written") as e:
            run(req)
        assert store in str(e.value) and "--runs-dir" in str(e.value)
        assert _tree(tmp_path / "data") == []


def test_cli_prints_the_sentence_and_exits_1(tmp_path):
    env = {**os.environ, "MMERBENCH_DATA": str(tmp_path / "data"), "MMERBENCH_RUNS": str(tmp_path / "runs")}
    proc = subprocess.run([sys.executable, "-m", "mmerbench.cli", "run", "-m", "mlp", "-d", "synth-mosei-aligned",
                           "--set", "hidden=abc", "-q"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "Error: `--set hidden=abc`: 'mlp' takes an integer for 'hidden' (its default is 256)."]
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()
