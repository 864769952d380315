"""`--dtype`: bf16 autocast on any device, in the config and its hash; float32 stays the CPU default."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from mmerbench.errors import MmerbenchError
from mmerbench.runner import RunRequest, autocast_factory, prepare, run, run_dtype


def _req(tmp_path, **kw):
    kw.setdefault("epochs", 2)
    return RunRequest(method="mlp", dataset="synth-mosei-aligned", preset="small", scale=0.01,
                      device="cpu", progress=False, data_dir=str(tmp_path / "data"),
                      runs_dir=str(tmp_path / "runs"), **kw)


def test_the_rule_without_and_with_an_asked_dtype():
    amp, plain = {"params": {"amp": True}}, {"params": {}}
    assert run_dtype(amp, "cpu") == "fp32" and run_dtype(amp, "cuda") == "bf16"
    assert run_dtype(plain, "cuda") == "fp32"
    assert run_dtype({**amp, "dtype": "fp32"}, "cuda") == "fp32"
    assert run_dtype({**plain, "dtype": "bf16"}, "cpu") == "bf16"


def test_cpu_autocast_computes_matrix_products_in_bf16():
    layer = torch.nn.Linear(4, 3)
    with autocast_factory("cpu", "bf16")():
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    with autocast_factory("cpu", "fp32")():
        assert layer(torch.randn(2, 4)).dtype == torch.float32


def test_asked_dtype_is_in_the_config_and_hash_and_changes_the_numbers(tmp_path):
    default = prepare(_req(tmp_path))
    assert "dtype" not in default.config  # runs made before --dtype keep their hashes
    (bf16,) = run(_req(tmp_path, dtype="bf16"))
    assert bf16.folder != default.folders[1]
    assert yaml.safe_load((bf16.folder / "config.yaml").read_text())["dtype"] == "bf16"
    (fp32,) = run(_req(tmp_path))
    assert fp32.folder == default.folders[1]
    with np.load(bf16.folder / "predictions.npz") as a, np.load(fp32.folder / "predictions.npz") as b:
        diff = np.abs(a["test_scores"] - b["test_scores"]).max()
    assert 0 < diff < 0.1  # bf16 rounding reaches the scores, and only as rounding does
    (again,) = run(_req(tmp_path, dtype="bf16"))
    assert again.status == "skipped" and again.folder == bf16.folder
    from mmerbench.report.leaderboard import LeaderboardRequest, build
    from mmerbench.report.render import to_markdown

    board = to_markdown(build(LeaderboardRequest(runs_dir=tmp_path / "runs", data="synthetic", plots=False)))
    assert f"dtype bf16 · {bf16.folder.parent.name}" in board  # the two rows say which is which


def test_bad_dtypes_are_one_sentence(tmp_path):
    with pytest.raises(MmerbenchError, match="Unknown dtype 'fp16'"):
        prepare(_req(tmp_path, dtype="fp16"))
    with pytest.raises(MmerbenchError, match="scikit-learn baseline"):
        prepare(RunRequest(method="br", dataset="synth-mosei-aligned", dtype="bf16", runs_dir=str(tmp_path)))
    assert not (tmp_path / "runs").exists()


def test_robustness_finds_a_bf16_run_by_its_dtype(tmp_path):
    from mmerbench.robustness.scoring import RobustnessRequest, robustness

    run(_req(tmp_path, dtype="bf16"))
    ask = dict(method="mlp", dataset="synth-mosei-aligned", preset="small", epochs=2, scale=0.01, device="cpu",
               data_dir=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs"), corruptions=("missing-text",))
    with pytest.raises(MmerbenchError, match="run `mmerbench run` with the same options first"):
        robustness(RobustnessRequest(**ask))  # the float32 run was never made
    (scored,) = robustness(RobustnessRequest(**ask, dtype="bf16"))
    assert scored.status == "scored"
    from mmerbench.report.leaderboard import LeaderboardRequest, build
    from mmerbench.report.render import to_markdown

    alone = to_markdown(build(LeaderboardRequest(runs_dir=tmp_path / "runs", data="synthetic", plots=False)))
    assert "dtype bf16" in alone  # the only config of its method, and still named


def test_a_bf16_profile_lands_beside_the_bf16_runs(tmp_path):
    from mmerbench.profile import ProfileRequest, profile

    (bf16,) = run(_req(tmp_path, dtype="bf16", epochs=None))  # a profile has the config's epochs
    res = profile(ProfileRequest(method="mlp", dataset="synth-mosei-aligned", preset="small", scale=0.01,
                                 device="cpu", dtype="bf16", runs_dir=str(tmp_path / "runs"), warmup=0, train_steps=1,
                                 latency_iters=1, batch_sizes=(), flops=False))
    assert res.config_hash == bf16.folder.parent.name and res.path.parent.parent == bf16.folder.parent
    plain = profile(ProfileRequest(method="mlp", dataset="synth-mosei-aligned", preset="small", scale=0.01,
                                   device="cpu", runs_dir=str(tmp_path / "runs"), warmup=0, train_steps=1,
                                   latency_iters=1, batch_sizes=(), flops=False))
    assert plain.config_hash == prepare(_req(tmp_path, epochs=None)).config_hash  # fp32 on a CPU: the default
