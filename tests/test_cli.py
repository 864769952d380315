"""CLI smoke tests: the main job, listings, and errors as one sentence with a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner

from mmerbench import results
from mmerbench.cli import _expand_greedy, cli

from conftest import TINY_SCALE


def _mmerbench(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "mmerbench.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_greedy_options_expand():
    assert _expand_greedy(["--seeds", "1", "2", "3", "--epochs", "2"]) == [
        "--seeds", "1", "--seeds", "2", "--seeds", "3", "--epochs", "2"]
    assert _expand_greedy(["--set", "a=1", "b=[x, y]", "-q"]) == ["--set", "a=1", "--set", "b=[x, y]", "-q"]


def test_run_prints_table_and_writes_runs(twin_data_dir, tmp_path):
    runs = tmp_path / "runs"
    args = ["run", "--method", "br", "--dataset", "synth-mosei-aligned", "--seeds", "1", "2", "3",
            "--scale", str(TINY_SCALE), "--data-dir", str(twin_data_dir), "--runs-dir", str(runs), "-q"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert "mean ± std (n=3)" in out.output and "micro_f1" in out.output
    assert "probability > 0.5" in out.output
    frame = results.collect(runs)
    assert sorted(frame["seed"].unique()) == [1, 2, 3]
    again = CliRunner().invoke(cli, args)
    assert again.output.count("skipped") == 3


def test_missing_real_dataset_is_one_sentence(tmp_path):
    proc = _mmerbench("run", "--method", "br", "--dataset", "mosei-aligned", "--data-dir", str(tmp_path / "empty"))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "mosei/train_valid_test.pt" in lines[0] and str(tmp_path / "empty") in lines[0]
    assert "synth-mosei-aligned" in lines[0]


def test_unknown_names_suggest_a_close_match(tmp_path):
    proc = _mmerbench("run", "--method", "brr", "--dataset", "synth-mosei-aligned")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "Did you mean 'br'?" in proc.stderr and "lp" in proc.stderr
    proc = _mmerbench("run", "--method", "br", "--dataset", "mosei-alinged")
    assert "Did you mean 'mosei-aligned'?" in proc.stderr


def test_help_does_not_import_torch():
    code = "import sys, mmerbench.cli; sys.exit(1 if 'torch' in sys.modules or 'pandas' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    assert _mmerbench("--help").returncode == 0


def test_listings(tmp_path):
    out = CliRunner().invoke(cli, ["datasets", "--data-dir", str(tmp_path)])
    assert out.exit_code == 0
    lines = {line.split()[0]: line for line in out.output.splitlines() if line.startswith(("mosei", "synth"))}
    assert "absent" in lines["mosei-aligned"] and "generated" in lines["synth-mosei-unaligned"]
    assert "vision 35×500" in lines["mosei-unaligned"]
    (tmp_path / "mosei").mkdir()
    (tmp_path / "mosei" / "train_valid_test.pt").write_bytes(b"")
    out = CliRunner().invoke(cli, ["datasets", "--data-dir", str(tmp_path)])
    assert "present" in [ln for ln in out.output.splitlines() if ln.startswith("mosei-aligned")][0]
    out = CliRunner().invoke(cli, ["methods"])
    assert out.exit_code == 0 and all(m in out.output for m in ("br", "cc", "lp", "mlp"))


def test_ctrl_c_says_the_run_resumes(monkeypatch, capsys, tmp_path):
    import pytest

    from mmerbench import runner
    from mmerbench.cli import main

    def interrupted(req, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run", interrupted)
    with pytest.raises(SystemExit) as exc:
        main(["run", "--method", "br", "--dataset", "synth-mosei-aligned", "--runs-dir", str(tmp_path), "-q"])
    assert exc.value.code == 130
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ["Aborted.", "A run resumes from its last checkpoint when the same command is run again."]
