"""`mmerbench config show` prints the config `run` resolves, and the hash that names the run's folder."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from mmerbench.cli import cli

from conftest import TINY_SCALE


def test_config_show_prints_the_hash_run_uses(twin_data_dir, tmp_path):
    runs = tmp_path / "runs"
    common = ["--method", "mlp", "--dataset", "synth-mosei-aligned", "--preset", "small", "--epochs", "1",
              "--set", "lr=1", "modalities=[audio,text]", "--scale", str(TINY_SCALE), "--runs-dir", str(runs)]
    shown = CliRunner().invoke(cli, ["config", "show", *common])
    assert shown.exit_code == 0, shown.output
    cfg = yaml.safe_load(shown.output)
    assert cfg["params"]["lr"] == 1.0 and cfg["params"]["epochs"] == 1 and cfg["params"]["hidden"] == 64
    assert cfg["params"]["modalities"] == ["text", "audio"]  # the dataset's order, as the run stores it
    assert f"# config hash: {cfg['config_hash']}" in shown.output
    ran = CliRunner().invoke(cli, ["run", *common, "--data-dir", str(twin_data_dir), "-q"])
    assert ran.exit_code == 0, ran.output
    [folder] = (runs / "synth-mosei-aligned" / "mlp").iterdir()
    assert folder.name == cfg["config_hash"]
    stored = yaml.safe_load((folder / "seed-1" / "config.yaml").read_text())
    assert {k: v for k, v in stored.items() if k != "seed"} == cfg


def test_config_show_refuses_what_run_refuses():
    out = CliRunner().invoke(cli, ["config", "show", "-m", "mlp", "-d", "synth-mosei-aligned", "--set", "lr=fast"])
    assert out.exit_code != 0 and "takes a finite number for 'lr'" in str(out.exception)
