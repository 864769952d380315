"""Profiles on CPU: the record and where it is stored, FLOPs against hand counts, the timing and
per-phase memory logic, baselines, and bad requests as one-sentence errors."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mmerbench import results
from mmerbench.cli import cli
from mmerbench.errors import MmerbenchError, UnknownNameError
from mmerbench.registry import get_method, list_methods
from mmerbench.profile import (Clock, PeakMemory, ProfileRequest, _fitted_size, count_flops, device_batch, format_record,
                               profile,
                               random_split, timed)
from mmerbench.runner import RunRequest, parameter_count, prepare
from mmerbench.data.registry import load_dataset

from conftest import TINY_SCALE

ALIGNED = "synth-mosei-aligned"
QUICK = dict(device="cpu", warmup=1, train_steps=3, latency_iters=12, infer_iters=3, batch_sizes=(1, 8))


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a shared CPU, torch's thread team stalls while waiting for a busy core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_mlp_profile_record_is_stored_beside_the_configs_runs(tmp_path):
    runs = tmp_path / "runs"
    res = profile(ProfileRequest(method="mlp", dataset=ALIGNED, preset="small", runs_dir=str(runs), **QUICK))
    chash = prepare(RunRequest(method="mlp", dataset=ALIGNED, preset="small")).config_hash
    assert res.config_hash == chash
    assert res.path == results.profile_path(runs, ALIGNED, "mlp", chash, "cpu", "fp32")
    stored = json.loads(res.path.read_text())
    assert stored == json.loads(json.dumps(res.record))
    assert stored["device"] == "cpu" and stored["dtype"] == "fp32" and stored["batch_size"] == 64
    assert stored["versions"]["torch"] == torch.__version__ and isinstance(stored["tf32"], bool)
    assert stored["inference_batch_sizes"] == [1, 8] and stored["iterations"]["train"] == 3

    m = stored["metrics"]
    assert m["params"] == parameter_count("mlp", ALIGNED, preset="small")
    assert 0 < m["latency_ms_p50"] <= m["latency_ms_p90"] <= m["latency_ms_p99"]
    assert stored["iterations"]["latency"] == 12
    for key in ("train_samples_per_s", "infer_samples_per_s_bs1", "infer_samples_per_s_bs8"):
        assert np.isfinite(m[key]) and m[key] > 0
    assert not any(k.startswith("tflops") for k in m)  # achieved TFLOP/s only on CUDA
    if sys.platform.startswith("linux"):
        for phase in ("latency", "infer_bs1", "infer_bs8", "train"):
            assert m[f"peak_memory_mb_{phase}"] >= m["baseline_rss_mb"] * 0.5 > 0

    frame = results.collect_profiles(runs)
    assert set(frame["method"]) == {"mlp"} and set(frame["config_hash"]) == {chash}
    assert frame.set_index("metric").loc["params", "value"] == m["params"]


def test_mlp_flops_match_a_hand_count(tmp_path):
    # LayerNorm(409) → Linear(409, 64) → ReLU → Linear(64, 6): 2·MAC per sample for the two
    # linear layers; a training step adds the weight and the input gradient of each (the first
    # layer's input is the LayerNorm output, which needs a gradient): 3 × the forward.
    res = profile(ProfileRequest(method="mlp", dataset=ALIGNED, preset="small", runs_dir=str(tmp_path), **QUICK))
    forward = 2 * (409 * 64 + 64 * 6)
    assert res.record["metrics"]["flops_per_sample"] == forward
    assert res.record["metrics"]["train_flops_per_sample"] == 3 * forward


def test_no_flops_skips_the_count_and_bf16_runs_on_cpu(tmp_path):
    res = profile(ProfileRequest(method="mlp", dataset=ALIGNED, preset="small", runs_dir=str(tmp_path), flops=False,
                                 dtype="bf16", **QUICK))
    m = res.record["metrics"]
    assert res.record["dtype"] == "bf16" and m["train_samples_per_s"] > 0
    assert "flops_per_sample" not in m and "train_flops_per_sample" not in m


def test_attention_flops_are_counted_on_cpu():
    b, h, length, d = 2, 4, 16, 8
    q = torch.randn(b, h, length, d)
    flops = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q))
    assert flops == 2 * (2 * b * h * length * length * d)  # Q·Kᵀ and A·V


NEURAL = [m for m in list_methods() if get_method(m).kind == "torch"]
# One twin per task; each method is profiled on the first one it handles.
TWINS = ("synth-mosei-aligned", "synth-iemocap", "synth-mosei-senti", "synth-ur-funny", "synth-msp-improv")


def _twin_for(method: str) -> str:
    from mmerbench.data.registry import get_entry

    cls = get_method(method)
    for name in TWINS:
        spec = get_entry(name).spec
        if spec.task in cls.tasks and set(cls.required_modalities) <= set(spec.modalities):
            return name
    raise AssertionError(f"no twin in {TWINS} suits {method!r}")


@pytest.mark.parametrize("method", NEURAL)
def test_every_neural_method_profiles_on_cpu(method):
    # Small preset, batch 2, one timed call per phase: the whole code path, quickly.
    dataset = _twin_for(method)
    res = profile(ProfileRequest(method=method, dataset=dataset, preset="small", overrides=("batch_size=2",),
                                 device="cpu", warmup=0, train_steps=1, latency_iters=1, infer_iters=1,
                                 batch_sizes=(2,), write=False))
    m = res.record["metrics"]
    assert res.path is None and res.record["batch_size"] == 2
    assert m["params"] == parameter_count(method, dataset, preset="small")
    assert m["train_flops_per_sample"] > m["flops_per_sample"] > 0
    assert all(np.isfinite(m[k]) and m[k] > 0 for k in ("train_samples_per_s", "infer_samples_per_s_bs2",
                                                          "latency_ms_p50"))


def test_timed_respects_minimum_maximum_and_budget():
    clock = Clock("cpu")
    calls = []
    s = timed(clock, lambda: (calls.append(1), time.sleep(0.01)), min_iters=3, max_iters=50, max_seconds=0.0,
              sync_each=True)
    assert len(s) == len(calls) == 3 and (s >= 0.009).all()
    s = timed(clock, lambda: None, min_iters=1, max_iters=7, max_seconds=60.0, sync_each=False)
    assert len(s) == 7 and (s >= 0).all()


@pytest.mark.skipif(not PeakMemory("cpu").per_phase, reason="needs a writable /proc/self/clear_refs (Linux)")
def test_cpu_peak_memory_is_reset_per_phase():
    mem = PeakMemory("cpu")
    mem.reset()
    before = mem.current_mb()
    big = np.ones(100 * 2**20 // 8)  # 100 MiB, touched
    first = mem.peak_mb()
    del big
    mem.reset()
    second = mem.peak_mb()
    assert first - before >= 90
    assert second < first - 60  # a monotone ru_maxrss would still show the first phase's peak
    # ... while the whole profile's peak still holds the first phase's (getrusage alone would not)
    assert mem.process_peak_rss_mb() >= first


def test_process_peak_is_at_least_every_phase_peak_and_names_what_it_measures(twin_data_dir, tmp_path):
    res = profile(ProfileRequest(method="br", dataset=ALIGNED, data_dir=str(twin_data_dir), scale=TINY_SCALE,
                                 runs_dir=str(tmp_path), device="cpu", train_steps=1, latency_iters=10,
                                 infer_iters=3, batch_sizes=(4,)))
    m = res.record["metrics"]
    phases = [k for k in m if k.startswith("peak_memory_mb_")]
    if sys.platform.startswith("linux"):
        assert len(phases) == 3
    assert all(m["peak_rss_mb_process"] >= m[k] for k in phases)
    n_train = len(load_dataset(ALIGNED, data_dir=twin_data_dir, scale=TINY_SCALE)["train"])
    assert res.record["batch_size"] == n_train
    text = format_record(res.record)
    assert "None" not in text
    assert f"train: one fit on the {n_train} training samples" in text
    assert "peak process RSS, whole profile (MiB)" in text and "peak process RSS in phase train (MiB)" in text


def test_random_inputs_have_the_specs_shapes_and_task_labels():
    spec = prepare(RunRequest(method="mlp", dataset=ALIGNED)).spec
    batch = device_batch(spec, 5, "cpu")
    for m, ms in spec.modalities.items():
        assert batch.inputs[m].shape == (5, ms.length, ms.dim) and batch.masks[m].all()
    assert batch.labels.shape == (5, spec.num_labels)
    for task, dtype in (("multiclass", np.int64), ("regression", np.float32), ("binary", np.int64)):
        split = random_split(spec.with_(task=task), 4)
        assert split.labels.shape == (4,) and split.labels.dtype == dtype


def test_baseline_profile_counts_fitted_values(twin_data_dir, tmp_path):
    res = profile(ProfileRequest(method="br", dataset=ALIGNED, data_dir=str(twin_data_dir), scale=TINY_SCALE,
                                 runs_dir=str(tmp_path), device="cpu", train_steps=1, latency_iters=10,
                                 infer_iters=3, batch_sizes=(4,)))
    m = res.record["metrics"]
    assert res.path.is_file() and res.record["dtype"] == "fp32"
    assert m["train_samples_per_s"] > 0 and m["latency_ms_p50"] > 0 and m["infer_samples_per_s_bs4"] > 0
    assert "flops_per_sample" not in m
    # 409 pooled features: per label a coefficient row and an intercept (or a constant), and the scaler's mean, var, scale.
    from mmerbench.baselines.br import BinaryRelevance
    from mmerbench.baselines.base import pooled_features
    from mmerbench.data.registry import load_dataset

    train = load_dataset(ALIGNED, data_dir=twin_data_dir, scale=TINY_SCALE)["train"]
    est = BinaryRelevance(seed=0).fit(pooled_features(train, ["text", "audio", "vision"]), train.labels)
    hand = 3 * 409 + sum(e.coef_.size + e.intercept_.size for e in est.estimators_ if not isinstance(e, float))
    assert m["params"] == _fitted_size(est) == hand


def test_bad_requests_are_one_sentence_errors(tmp_path):
    with pytest.raises(MmerbenchError, match="Unknown dtype 'fp16'"):
        profile(ProfileRequest(method="mlp", dataset=ALIGNED, device="cpu", dtype="fp16", write=False))
    with pytest.raises(MmerbenchError, match="batch-sizes"):
        profile(ProfileRequest(method="mlp", dataset=ALIGNED, device="cpu", batch_sizes=(0,), write=False))
    with pytest.raises(UnknownNameError, match="Did you mean 'mlp'"):
        profile(ProfileRequest(method="mpl", dataset=ALIGNED, device="cpu", write=False))
    with pytest.raises(MmerbenchError, match="no setting 'hiden'"):
        profile(ProfileRequest(method="mlp", dataset=ALIGNED, device="cpu", overrides=("hiden=3",), write=False))


def test_profile_command_prints_the_table_and_the_path(tmp_path):
    runs = tmp_path / "runs"
    out = CliRunner().invoke(cli, ["profile", "--method", "mlp", "--dataset", ALIGNED, "--preset", "small",
                                   "--device", "cpu", "--batch-sizes", "1", "4", "--steps", "2", "--warmup", "1",
                                   "--latency-iters", "10", "--runs-dir", str(runs)])
    assert out.exit_code == 0, out.output
    assert "train samples/s" in out.output and "inference samples/s (batch 4)" in out.output
    assert "latency p99 (ms, batch 1)" in out.output and "2·MAC" in out.output
    assert str(runs) in out.output and not results.collect_profiles(runs).empty
