"""`mmerbench evaluate`: given weights scored like a trained run, stored as a run marked imported."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from mmerbench import results
from mmerbench.cli import cli, main
from mmerbench.data.registry import get_entry
from mmerbench.importers.mult import LETTER
from mmerbench.registry import get_method

from conftest import TINY_SCALE

TWIN = "synth-mosei-aligned"


def _common(data_dir, runs):
    return ["--dataset", TWIN, "--scale", str(TINY_SCALE), "--data-dir", str(data_dir), "--runs-dir", str(runs)]


def _evaluate(data_dir, runs, method, weights, *extra):
    return CliRunner().invoke(cli, ["evaluate", "--method", method, "--weights", str(weights),
                                    *_common(data_dir, runs), *extra])


def _mmerbench(capsys, *args):
    """The CLI's entry point in this process (its error handling included), as (exit code, stderr)."""
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code, capsys.readouterr().err


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _only_run(runs: Path, method: str, skip: str | None = None) -> Path:
    folders = [f for _, m, h, _, f in results.iter_runs(runs) if m == method and h != skip]
    assert len(folders) == 1, folders
    return folders[0]


@pytest.fixture(scope="module")
def trained(twin_data_dir, tmp_path_factory):
    """One trained mlp run (small preset, 2 epochs) in its own store."""
    runs = tmp_path_factory.mktemp("runs")
    out = CliRunner().invoke(cli, ["run", "--method", "mlp", *_common(twin_data_dir, runs), "--preset", "small",
                                   "--epochs", "2", "-q"])
    assert out.exit_code == 0, out.output
    return runs, _only_run(runs, "mlp")


def test_our_own_weights_score_as_the_trained_run(twin_data_dir, trained):
    runs, run = trained
    out = _evaluate(twin_data_dir, runs, "mlp", run / "model.pt", "--from", "ours", "--preset", "small",
                    "--seed", "1")
    assert out.exit_code == 0, out.output
    imported = _only_run(runs, "mlp", skip=run.parent.name)
    assert imported.parent.name != run.parent.name  # the config hash differs from the trained run's
    assert results.read_metrics(imported) == results.read_metrics(run)
    a, b = np.load(run / "predictions.npz"), np.load(imported / "predictions.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k])
    cfg = yaml.safe_load((imported / "config.yaml").read_text())
    w = cfg["imported_weights"]
    assert w["from"] == "ours" and w["file"] == str((run / "model.pt").resolve()) and len(w["sha256"]) == 64
    assert {p.name for p in imported.iterdir()} == {"config.yaml", "env.json", "metrics.json", "model.pt",
                                                    "predictions.npz"}
    # The leaderboard shows it beside the trained run, marked; compare reads it like any run.
    board = CliRunner().invoke(cli, ["leaderboard", "--runs-dir", str(runs), "--data", "synthetic",
                                     "--format", "md", "--out", "-"])
    assert board.exit_code == 0, board.output
    assert "mlp (imported: ours)" in board.output and "\n| mlp " in board.output
    cmp = CliRunner().invoke(cli, ["compare", f"mlp@{run.parent.name}", f"mlp@{imported.parent.name}",
                                   "--dataset", TWIN, "--runs-dir", str(runs), "--test", "bootstrap",
                                   "--resamples", "200"])
    assert cmp.exit_code == 0, cmp.output
    again = _evaluate(twin_data_dir, runs, "mlp", run / "model.pt", "--from", "ours", "--preset", "small")
    assert again.exit_code == 0 and "skipped" in again.output


def _authors_style(model) -> dict[str, torch.Tensor]:
    """Our MulT's weights renamed to the authors' MULTModel keys, q/k/v fused as their in_proj."""
    sd = model.state_dict()
    out = {f"proj_{LETTER[m]}.weight": sd[f"proj.{m}.weight"] for m in model.proj}

    def encoder(ours, theirs):
        for i in range(len(model.get_submodule(ours).layers)):
            o, t = f"{ours}.layers.{i}.", f"{theirs}.layers.{i}."
            out[t + "self_attn.in_proj_weight"] = torch.cat([sd[f"{o}attn.{n}.weight"] for n in "qkv"])
            out[t + "self_attn.in_proj_bias"] = torch.cat([sd[f"{o}attn.{n}.bias"] for n in "qkv"])
            for a, b in {"attn.out": "self_attn.out_proj", "ff1": "fc1", "ff2": "fc2",
                         "norm_attn": "layer_norms.0", "norm_ff": "layer_norms.1"}.items():
                for p in ("weight", "bias"):
                    out[f"{t}{b}.{p}"] = sd[f"{o}{a}.{p}"]
        for p in ("weight", "bias"):
            out[f"{theirs}.layer_norm.{p}"] = sd[f"{ours}.norm.{p}"]
        out[f"{theirs}.version"] = torch.tensor([2.0])
        out[f"{theirs}.embed_positions._float_tensor"] = torch.zeros(1)

    for t in model.targets:
        for s in model.crossmodal[t]:
            encoder(f"crossmodal.{t}.{s}", f"trans_{LETTER[t]}_with_{LETTER[s]}")
        encoder(f"memory.{t}", f"trans_{LETTER[t]}_mem")
    for a, b in (("proj1", "proj1"), ("proj2", "proj2"), ("out", "out_layer")):
        for p in ("weight", "bias"):
            out[f"{b}.{p}"] = sd[f"{a}.{p}"]
    return out


def _small_mult():
    from mmerbench import config as configlib

    cls = get_method("mult")
    spec = get_entry(TWIN).spec
    cfg = configlib.resolve("mult", cls.config_package, dataset=TWIN, base_dataset=spec.base_name, preset="small",
                            base={"threshold": spec.threshold})
    p = cfg["params"]
    p["modalities"] = p["modalities"] or list(spec.modalities)
    torch.manual_seed(3)
    return cls(spec, **p)


def test_authors_style_mult_checkpoint_is_scored_with_its_weights_in_place(twin_data_dir, tmp_path):
    model = _small_mult()
    torch.save(_authors_style(model), tmp_path / "authors.pt")
    runs = tmp_path / "runs"
    out = _evaluate(twin_data_dir, runs, "mult", tmp_path / "authors.pt", "--preset", "small")
    assert out.exit_code == 0, out.output
    folder = _only_run(runs, "mult")
    assert yaml.safe_load((folder / "config.yaml").read_text())["imported_weights"]["from"] == "authors"
    # Every tensor landed where it belongs (the fused in_proj split q | k | v): with equal weights the
    # scores are those of our own model, which the round trip above shows to be the runner's.
    stored = torch.load(folder / "model.pt", weights_only=True)["model"]
    for k, v in model.state_dict().items():
        assert torch.equal(stored[k], v), k
    assert results.read_metrics(folder)["test"]["micro_f1"] >= 0


def test_a_pickled_module_is_read_without_its_classes(tmp_path):
    from mmerbench.weights import load_state_dict

    model = _small_mult()
    torch.save(model, tmp_path / "whole.pt")  # as the authors' MulT scripts save
    got = load_state_dict(tmp_path / "whole.pt")
    want = model.state_dict()
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _one_error_line(proc) -> str:
    code, err = proc
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_bad_weights_are_one_sentence_and_leave_the_store_untouched(twin_data_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    model = _small_mult()
    good = _authors_style(model)
    cases = {}
    cases["missing.pt"] = None
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    cases["text.pt"] = "Could not read"
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "nostate.pt")
    cases["nostate.pt"] = "holds no state dict"
    torch.save({**good, "extra_head.weight": torch.zeros(2, 2)}, tmp_path / "extra.pt")
    cases["extra.pt"] = "'extra_head.weight' maps to nothing"
    torch.save({k: v for k, v in good.items() if k != "proj1.bias"}, tmp_path / "lacks.pt")
    cases["lacks.pt"] = "lacks 'proj1.bias'"
    torch.save({**good, "out_layer.weight": torch.zeros(7, good["out_layer.weight"].shape[1])}, tmp_path / "shape.pt")
    cases["shape.pt"] = "'out.weight' has shape (7,"
    marker = tmp_path / "pwned"
    torch.save({"model": _Evil(marker)}, tmp_path / "evil.pt")
    cases["evil.pt"] = "Could not read"
    for name, words in cases.items():
        proc = _mmerbench(capsys, "evaluate", "--method", "mult", "--weights", str(tmp_path / name), "--preset", "small",
                          *_common(twin_data_dir, runs))
        line = _one_error_line(proc)
        assert (words or "does not exist") in line, (name, line)
        assert _files(runs) == [], name
    assert not marker.exists()  # nothing in the file was run
    # Our own format refused as the authors' and the other way round, each with a hint.
    torch.save(model.state_dict(), tmp_path / "ours.pt")
    torch.save(good, tmp_path / "authors.pt")
    line = _one_error_line(_mmerbench(capsys, "evaluate", "--method", "mult", "--weights", str(tmp_path / "authors.pt"),
                                      "--from", "ours", "--preset", "small", *_common(twin_data_dir, runs)))
    assert "--from authors" in line
    line = _one_error_line(_mmerbench(capsys, "evaluate", "--method", "mlp", "--weights", str(tmp_path / "ours.pt"),
                                      *_common(twin_data_dir, runs)))
    assert "No importer" in line and "mult" in line
    line = _one_error_line(_mmerbench(capsys, "evaluate", "--method", "br", "--weights", str(tmp_path / "ours.pt"),
                                      *_common(twin_data_dir, runs)))
    assert "not a neural method" in line
    assert _files(runs) == []


def test_a_plain_pickle_is_refused(tmp_path):
    # Only torch's restricted loader reads weights; a bare pickle is not a torch.save file.
    from mmerbench.weights import WeightsFileError, load_state_dict

    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump({"a": np.zeros(2)}, f)
    with pytest.raises(WeightsFileError, match="Could not read"):
        load_state_dict(tmp_path / "plain.pkl")
