"""One run that shows the GPU path works: every neural method's paper config, a few steps, bf16 and fp32.

    python benchmarks/gpu_check.py                                   # CUDA, paper configs (≤ 10 min on one H100)
    python benchmarks/gpu_check.py --device cpu --preset small --scale 0.01 --methods mlp mult
    python benchmarks/gpu_check.py --out gpu_check/ --methods hhmpn robmmr --dtypes bf16

Per method and dtype (``run --dtype``: bf16 autocast or float32; on a CPU only fp32 unless ``--dtypes`` names bf16):

* **same seed** — two runs of ``--epochs 2`` on the synthetic MOSEI twin (or the method's first task
  twin), each in its own run store: identical test metrics;
* **resume** — a third run interrupted after its first epoch and started again: it resumes from the
  checkpoint and ends with the first run's metrics;
* **checkpoint_layers parity** — one training step's loss and gradients (dropout on, same seed) with and
  without layer checkpointing: the largest |Δ| of any gradient;
* **accumulation parity** — where accumulation is exact (no term couples the samples of a batch), one
  step's gradients at ``accumulate=1`` and ``accumulate=2`` with dropout off: the largest |Δ|;
* **profile** — :mod:`mmerbench.profile` (CUDA events on CUDA): training samples/s, p50/p90/p99 batch-1
  latency, peak memory, TFLOP/s, and MFU = achieved TFLOP/s ÷ the device's dense peak for the dtype
  (a table of known devices; none on CPU).

Writes ``gpu_check.json`` and ``gpu_check.md`` under ``--out`` and exits 1 when a check fails. The
default tests run it on CPU with tiny settings through the same functions.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Dense peak TFLOP/s (no sparsity) by device-name fragment: bf16 tensor cores, fp32 (TF32 off).
PEAK_TFLOPS = {"H200": {"bf16": 989.0, "fp32": 67.0}, "H100": {"bf16": 989.0, "fp32": 67.0},
               "A100": {"bf16": 312.0, "fp32": 19.5}, "L4": {"bf16": 121.0, "fp32": 30.3}}
GRAD_TOL = {"fp32": 1e-4, "bf16": 5e-2}  # largest |Δ| of a gradient counted as parity


class _Stop(Exception):
    pass


def _dataset_for(method: str) -> str:
    from mmerbench.registry import get_method

    tasks = get_method(method).tasks
    return {"multilabel": "synth-mosei-aligned", "multiclass": "synth-iemocap",
            "regression": "synth-mosi", "binary": "synth-ur-funny"}[tasks[0]]


def _request(args, method: str, dtype: str, runs: Path, **kw):
    from mmerbench.runner import RunRequest

    return RunRequest(method=method, dataset=_dataset_for(method), seeds=(1,), epochs=2, preset=args.preset,
                      dtype=dtype, device=args.device, data_dir=args.data_dir, runs_dir=str(runs),
                      scale=args.scale, progress=False, **kw)


def _has(method: str, key: str) -> bool:
    from mmerbench.config import load_config_file
    from mmerbench.registry import get_method

    return key in load_config_file(method, get_method(method).config_package)["defaults"]


def check_runs(args, method: str, dtype: str, tmp: Path) -> dict[str, Any]:
    """Same seed → same metrics; an interrupted run resumes to the same metrics."""
    from mmerbench.runner import run

    (a,) = run(_request(args, method, dtype, tmp / "a"))
    (b,) = run(_request(args, method, dtype, tmp / "b"))

    def stop(epoch, _record):
        if epoch == 0:
            raise _Stop

    try:
        run(_request(args, method, dtype, tmp / "c"), on_epoch_end=stop)
    except _Stop:
        pass
    (c,) = run(_request(args, method, dtype, tmp / "c"))
    return {"same_seed": a.metrics["test"] == b.metrics["test"],
            "resume": c.status == "resumed" and c.metrics["test"] == a.metrics["test"],
            "test_metrics": a.metrics["test"], "run_seconds": round(a.seconds, 2)}


def _no_dropout(model) -> None:
    from torch import nn

    from mmerbench.methods._layers import MultiheadAttention

    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, MultiheadAttention):
            m.dropout = 0.0
        for k, v in list(vars(m).items()):
            if "dropout" in k and isinstance(v, float):
                setattr(m, k, 0.0)


def step_gradients(args, method: str, dtype: str, *, overrides=(), checkpoint=False, dropout=True):
    """Loss and gradients of one training step (an optimizer at lr 0 keeps them readable)."""
    import torch

    from mmerbench.data.registry import get_entry
    from mmerbench.methods.base import set_layer_checkpointing
    from mmerbench.profile import device_batch
    from mmerbench.runner import RunRequest, autocast_factory, prepare, resolve_device

    device = resolve_device(args.device)
    prep = prepare(RunRequest(method=method, dataset=_dataset_for(method), preset=args.preset,
                              overrides=tuple(overrides), device=args.device, progress=False))
    spec = get_entry(prep.request.dataset).spec
    torch.manual_seed(0)
    model = prep.cls(spec, **prep.config["params"])
    from mmerbench.profile import random_split

    mods = prep.config["params"].get("modalities") or list(spec.modalities)
    model.setup(random_split(spec, 16, seed=1, modalities=mods))
    model = model.to(device)
    set_layer_checkpointing(model, checkpoint)
    if not dropout:
        _no_dropout(model)
    model.train()
    model.configure_optimizer(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    batch = device_batch(spec, min(8, int(prep.config["params"]["batch_size"])), device, mods, seed=3)
    torch.manual_seed(11)
    parts = model.training_step(batch, opt, autocast=autocast_factory(device, dtype))
    return float(parts.total.detach()), {k: p.grad.float().cpu() for k, p in model.named_parameters() if p.grad is not None}


def _max_diff(a: dict, b: dict) -> float:
    if a.keys() != b.keys():
        return float("inf")
    return max((float((a[k] - b[k]).abs().max()) for k in a), default=0.0)


def check_parity(args, method: str, dtype: str) -> dict[str, Any]:
    from mmerbench.data.registry import get_entry
    from mmerbench.registry import get_method

    out: dict[str, Any] = {}
    if _has(method, "checkpoint_layers"):
        _, g0 = step_gradients(args, method, dtype, overrides=("accumulate=1",) if _has(method, "accumulate") else ())
        _, g1 = step_gradients(args, method, dtype, checkpoint=True,
                               overrides=("accumulate=1",) if _has(method, "accumulate") else ())
        out["checkpoint_max_abs_diff"] = _max_diff(g0, g1)
    import torch

    with torch.device("meta"):
        from mmerbench.runner import RunRequest, prepare

        prep = prepare(RunRequest(method=method, dataset=_dataset_for(method), preset=args.preset, progress=False))
        model = get_method(method)(get_entry(prep.request.dataset).spec, **prep.config["params"])
    reason = model.accumulation_refusal()
    if reason:
        out["accumulation"] = f"refused: {reason}"
    else:
        _, g1 = step_gradients(args, method, dtype, overrides=("accumulate=1",), dropout=False)
        _, g2 = step_gradients(args, method, dtype, overrides=("accumulate=2",), dropout=False)
        out["accumulation_max_abs_diff"] = _max_diff(g1, g2)
    return out


def check_profile(args, method: str, dtype: str) -> dict[str, Any]:
    from mmerbench.profile import ProfileRequest, profile

    res = profile(ProfileRequest(method=method, dataset=_dataset_for(method), preset=args.preset,
                                 device=args.device, dtype=dtype, batch_sizes=(), write=False,
                                 warmup=1, train_steps=args.steps, latency_iters=args.steps * 5,
                                 max_seconds=args.max_seconds))
    m = dict(res.record["metrics"])
    name = str(res.record.get("device_name", ""))
    peak = next((v[dtype] for k, v in PEAK_TFLOPS.items() if k in name), None)
    if peak and m.get("tflops_per_s_train"):
        m["mfu"] = m["tflops_per_s_train"] / peak
    return {"device_name": name, **{k: m[k] for k in sorted(m)}}


def check_method(args, method: str, dtype: str) -> dict[str, Any]:
    t = time.perf_counter()
    row: dict[str, Any] = {"method": method, "dtype": dtype, "dataset": _dataset_for(method)}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            row.update(check_runs(args, method, dtype, Path(tmp)))
        row.update(check_parity(args, method, dtype))
        row["profile"] = check_profile(args, method, dtype)
    except Exception as exc:  # one method's failure is a row of the report, not the end of the check
        row["error"] = f"{type(exc).__name__}: {exc}"
    row["ok"] = _ok(row)
    row["seconds"] = round(time.perf_counter() - t, 1)
    return row


def _ok(row: dict[str, Any]) -> bool:
    tol = GRAD_TOL[row["dtype"]]
    return ("error" not in row and row.get("same_seed") is True and row.get("resume") is True
            and row.get("checkpoint_max_abs_diff", 0.0) <= tol and row.get("accumulation_max_abs_diff", 0.0) <= tol)


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# gpu_check: {report['device']} ({report['device_name']}), preset {report['preset'] or 'paper'}",
             "", f"{report['passed']} of {len(report['rows'])} passed; {report['seconds']} s. {report['note']}", "",
             "| method | dtype | ok | same seed | resume | ckpt max Δ | accum max Δ | train samples/s | "
             "p50 / p90 / p99 ms | peak MB (train) | TFLOP/s | MFU |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def f(v, fmt="{:.3g}"):
        if isinstance(v, bool):
            return "yes" if v else "NO"
        return "—" if v is None else (fmt.format(v) if isinstance(v, (int, float)) else str(v))

    for r in report["rows"]:
        p = r.get("profile", {})
        acc = r.get("accumulation_max_abs_diff", "refused" if "accumulation" in r else None)
        lat = " / ".join(f(p.get(f"latency_ms_p{q}"), "{:.2f}") for q in (50, 90, 99))
        lines.append(f"| {r['method']} | {r['dtype']} | {'yes' if r['ok'] else 'NO'} | {f(r.get('same_seed'))} | "
                     f"{f(r.get('resume'))} | {f(r.get('checkpoint_max_abs_diff'))} | {f(acc)} | "
                     f"{f(p.get('train_samples_per_s'))} | {lat} | {f(p.get('peak_memory_mb_train'), '{:.0f}')} | "
                     f"{f(p.get('tflops_per_s_train'))} | {f(p.get('mfu'), '{:.1%}')} |")
    for r in report["rows"]:
        if "error" in r:
            lines.append(f"\n- {r['method']} {r['dtype']}: {r['error']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (small presets, the tests' way)")
    ap.add_argument("--preset", default=None, help="a config preset, e.g. small (default: the paper configs)")
    ap.add_argument("--methods", nargs="*", default=None, help="default: every neural method")
    ap.add_argument("--dtypes", nargs="*", default=None, help="default: bf16 fp32 on CUDA, fp32 on a CPU")
    ap.add_argument("--scale", type=float, default=0.02, help="synthetic twin size (fraction of the real splits)")
    ap.add_argument("--steps", type=int, default=5, help="timed training steps in the profile")
    ap.add_argument("--max-seconds", type=float, default=10.0, help="per profile phase")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="gpu_check", help="folder for gpu_check.json and gpu_check.md")
    args = ap.parse_args(argv)

    from mmerbench.registry import METHODS, get_method
    from mmerbench.runner import environment, resolve_device

    device = resolve_device(args.device)
    methods = args.methods or [n for n in METHODS.names() if get_method(n).kind == "torch"]
    cuda = device.startswith("cuda")
    dtypes = args.dtypes or (["bf16", "fp32"] if cuda else ["fp32"])
    note = "" if cuda or args.dtypes else "bf16 not asked for: on a CPU it runs with --dtypes bf16 (CPU autocast)."
    t = time.perf_counter()
    rows = []
    for method in methods:
        for dtype in dtypes:
            rows.append(check_method(args, method, dtype))
            print(f"{method} {dtype}: {'ok' if rows[-1]['ok'] else 'FAILED'} ({rows[-1]['seconds']} s)", flush=True)
    env = environment(device)
    report = {"device": device, "device_name": env.get("device_name"), "preset": args.preset, "scale": args.scale,
              "environment": env, "rows": rows, "passed": sum(r["ok"] for r in rows), "note": note,
              "seconds": round(time.perf_counter() - t, 1)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "gpu_check.md").write_text(markdown(report))
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}: {report['passed']} of {len(rows)} passed")
    return 0 if report["passed"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
