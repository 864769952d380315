"""Speed and memory profiles of one method config on one device: what the leaderboards' efficiency columns read.

``profile(ProfileRequest(method=..., dataset=...))`` measures, for a neural method,

* **training throughput** — samples/s of the method's ``training_step``
  (forward, loss, backward, clip, optimizer step) at the config's batch size,
  after ``warmup`` untimed steps (steady state);
* **inference latency** at batch 1 — p50/p90/p99 (and mean) of forward +
  probabilities, each call synchronised, over ``latency_iters`` calls;
* **inference throughput** at each of ``batch_sizes`` (samples/s);
* **peak memory** per phase (below), the **parameter count** (trainable), and
  **FLOPs per sample** from ``torch.utils.flop_counter.FlopCounterMode`` —
  the 2·MAC convention (a multiply-accumulate of a matmul, convolution or
  attention product counts 2 FLOPs; elementwise ops, softmax and
  normalisation are not counted). FLOPs are counted with the SDPA "math"
  backend on every device, so the count is a property of the model and not
  of the kernel: the fused CPU attention kernel is not seen by the counter.
  On CUDA the record adds the **achieved TFLOP/s** (counted FLOPs × samples/s).

Inputs have the dataset spec's real shapes (every modality ``[B, L, D]``,
full-length masks, random features and labels: the worst case of a padded
batch) and are cut by the runner's own batching code from device tensors, so
profiling needs no data files. The process runs as the runner does:
deterministic algorithms on, and the runner's autocast (bf16 on CUDA when the
config's ``amp`` is on; CPU stays float32); ``dtype="bf16"`` profiles bf16 autocast on
any device, as ``run --dtype bf16`` trains.

Timing: ``time.perf_counter`` on CPU; on CUDA one event before the first call
and one after each call, read after a ``torch.cuda.synchronize()``. Latency
synchronises after every call (launch to completion); throughput phases let
calls queue and synchronise once at the end. Every phase runs at least its
minimum number of iterations and stops adding more after ``max_seconds``;
the iteration counts used are in the record.

Peak memory per phase: on CUDA ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats`` at the start of the phase (tensors only, not the
allocator's cache). On CPU the peak resident set size (``VmHWM``): the
kernel's high-water mark is reset at the start of each phase by writing ``5``
to ``/proc/self/clear_refs`` (Linux ≥ 4.0), which ``getrusage``'s monotone
``ru_maxrss`` cannot do. RSS includes the interpreter, torch and the model
(``baseline_rss_mb``, measured before the first phase, says how much), and
memory that glibc keeps after an earlier phase is not returned; phases
therefore run smallest first (latency, inference by ascending batch size,
training). Where ``/proc`` is not writable (macOS), per-phase peaks are left
out and only the process peak is recorded.

``peak_rss_mb_process`` is the largest resident set of the whole profile
(host RAM, also on CUDA): the larger of ``ru_maxrss`` and every phase's
``VmHWM`` read before its reset, since resetting the high-water mark also
lowers what ``getrusage`` reports. On CPU it is therefore at least every
phase's peak. A baseline's training "batch" is its whole training split
(one ``fit``): its record's ``batch_size`` is that split's size.

Classical baselines (scikit-learn) get the same record where it applies:
training throughput is the training split's size over the time of pooling +
``fit`` (the runner's training), latency and inference throughput time
pooling + ``predict_proba``, ``params`` counts the fitted floating-point
values (coefficients, intercepts, scaler statistics), and FLOPs are not
counted. They need the dataset itself (a twin is generated).

The record is written with :func:`mmerbench.results.write_json` to
:func:`mmerbench.results.profile_path` under the config hash that
:func:`mmerbench.runner.prepare` gives the same method, dataset, preset and
``--set`` values, so it sits beside those runs' seed folders.
"""

from __future__ import annotations

import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mmerbench import preflight, results, runner
from mmerbench.data import paths
from mmerbench.data.dataset import Split
from mmerbench.data.spec import DatasetSpec
from mmerbench.errors import MmerbenchError

DTYPES = ("fp32", "bf16")
FLOPS_CONVENTION = (
    "2·MAC (torch.utils.flop_counter.FlopCounterMode, SDPA math backend): matmul, convolution and "
    "attention products; elementwise ops not counted"
)
INPUTS = "random features at the dataset spec's shapes, full-length masks"


@dataclass
class ProfileRequest:
    method: str
    dataset: str
    preset: str | None = None
    overrides: tuple[str, ...] = ()
    device: str = "auto"
    dtype: str | None = None  # "fp32" | "bf16"; None: as the runner runs this config on this device
    batch_sizes: tuple[int, ...] = (1, 64)  # inference throughput; () for none
    runs_dir: str | None = None
    data_dir: str | None = None  # baselines read the dataset
    scale: float | None = None  # synthetic twins: part of the config hash
    data_seed: int | None = None
    warmup: int = 3
    train_steps: int = 20
    latency_iters: int = 200
    infer_iters: int = 20
    max_seconds: float = 30.0  # per phase, once its minimum iterations are done
    write: bool = True
    flops: bool = True  # False: skip the FLOP count (one more forward and training step at full batch)


@dataclass
class ProfileResult:
    record: results.ProfileRecord
    path: Path | None
    config_hash: str
    extras: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- timing and memory


class Clock:
    """Per-call times on one device: ``perf_counter`` on CPU, CUDA events read after a synchronise."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.device = device

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def mark(self) -> Any:
        if self.cuda:
            import torch

            ev = torch.cuda.Event(enable_timing=True)
            ev.record(torch.cuda.current_stream(self.device))
            return ev
        return time.perf_counter()

    def seconds(self, a: Any, b: Any) -> float:
        """Seconds from mark `a` to mark `b` (CUDA: call after `sync`)."""
        return a.elapsed_time(b) / 1000.0 if self.cuda else b - a


def timed(clock: Clock, fn: Callable[[], Any], *, min_iters: int, max_iters: int, max_seconds: float,
          sync_each: bool) -> np.ndarray:
    """Seconds per call of `fn`: at least `min_iters` calls, at most `max_iters`, no new call after
    `max_seconds` of wall time once the minimum is reached. `sync_each` waits for each call's
    device work before the next (latency); otherwise calls queue and one sync ends the phase
    (throughput: the per-call spans add up to the phase's total)."""
    max_iters = max(int(max_iters), int(min_iters), 1)
    clock.sync()  # nothing queued before the first mark
    marks = [clock.mark()]
    start = time.perf_counter()
    n = 0
    while n < max_iters and (n < min_iters or time.perf_counter() - start < max_seconds):
        fn()
        if sync_each:
            clock.sync()
        marks.append(clock.mark())
        n += 1
    clock.sync()
    return np.array([clock.seconds(a, b) for a, b in zip(marks, marks[1:])])


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class PeakMemory:
    """Peak memory of a phase: CUDA allocator peak, or the CPU resident-set high-water mark reset per phase."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.device = device
        if self.cuda:
            self.measure = "torch.cuda.max_memory_allocated, reset per phase"
            self.per_phase = True
        else:
            self.per_phase = self._reset_cpu()
            self.measure = ("peak RSS (VmHWM), reset per phase via /proc/self/clear_refs" if self.per_phase
                            else "process peak RSS (ru_maxrss); per-phase peaks unavailable here")

    @staticmethod
    def _reset_cpu() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            return False
        return _proc_status_kib("VmHWM") is not None

    def reset(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.per_phase:
            self._keep_hwm()
            self._reset_cpu()

    def _keep_hwm(self) -> None:
        # Resetting VmHWM also lowers what getrusage reports as ru_maxrss (the kernel takes the
        # larger of the two), so the process peak is kept here before each reset.
        kib = _proc_status_kib("VmHWM")
        self._phase_mb = None if kib is None else kib / 1024
        if kib is not None:
            self._hwm_mb = max(getattr(self, "_hwm_mb", 0.0), kib / 1024)

    def process_peak_rss_mb(self) -> float:
        """The largest resident set of the whole process so far (host RAM, on CUDA too):
        every phase's peak, and what happened between and before the phases."""
        self._keep_hwm()
        return max(process_peak_rss_mb(), getattr(self, "_hwm_mb", 0.0))

    def peak_mb(self) -> float | None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if not self.per_phase:
            return None
        self._keep_hwm()  # the kernel's RSS counters are approximate: keep the figure reported, too
        return getattr(self, "_phase_mb", None)

    def current_mb(self) -> float | None:
        if self.cuda:
            import torch

            return torch.cuda.memory_allocated(self.device) / 2**20
        kib = _proc_status_kib("VmRSS")
        return None if kib is None else kib / 1024


def process_peak_rss_mb() -> float:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of `fn` (2·MAC), with attention on SDPA's math backend so that its
    products are counted on every device (the counter does not see the fused CPU kernel)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _latency_stats(seconds: np.ndarray) -> dict[str, float]:
    ms = seconds * 1000.0
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"latency_ms_p50": float(p50), "latency_ms_p90": float(p90), "latency_ms_p99": float(p99),
            "latency_ms_mean": float(ms.mean())}


# ---------------------------------------------------------------------------- inputs


def random_split(spec: DatasetSpec, n: int, seed: int = 0, modalities: list[str] | None = None) -> Split:
    """`n` samples at the spec's real shapes: standard-normal features, full-length masks, labels
    drawn for the spec's task (multi-label: each label present with probability 0.3), and per-modality
    valence/arousal extras in [-1, 1] as the synthetic twins carry them (UniVA reads them)."""
    rng = np.random.default_rng(seed)
    mods = modalities or list(spec.modalities)
    inputs = {m: rng.standard_normal((n, spec.modalities[m].length, spec.modalities[m].dim), dtype=np.float32)
              for m in mods}
    masks = {m: np.ones((n, spec.modalities[m].length), dtype=bool) for m in mods}
    if spec.task == "multilabel":
        labels: np.ndarray = (rng.random((n, spec.num_labels)) < 0.3).astype(np.int8)
    elif spec.task == "multiclass":
        labels = rng.integers(0, spec.num_labels, n).astype(np.int64)
    elif spec.task == "binary":
        labels = rng.integers(0, 2, n).astype(np.int64)
    else:
        labels = rng.uniform(-3, 3, n).astype(np.float32)
    extras = {f"va_{m}": rng.uniform(-1, 1, (n, 2)).astype(np.float32) for m in mods}
    return Split(inputs=inputs, masks=masks, labels=labels, ids=np.array([f"profile/{i}" for i in range(n)]),
                 extras=extras)


def device_batch(spec: DatasetSpec, n: int, device: str, modalities: list[str] | None = None, seed: int = 0):
    """One batch of `n` random samples (see :func:`random_split`), cut by the runner's batching code."""
    import torch

    from mmerbench.data.batching import DeviceSplit

    split = DeviceSplit(spec, random_split(spec, n, seed, modalities), device, modalities)
    return split.take(torch.arange(n))


# ---------------------------------------------------------------------------- the profile


def resolve_dtype(dtype: str | None, config: dict[str, Any], device: str) -> str:
    """The asked dtype, or the one the runner trains this config in on `device` (:func:`runner.run_dtype`)."""
    if dtype is None:
        return runner.run_dtype(config, device)
    if dtype not in DTYPES:
        raise MmerbenchError(f"Unknown dtype {dtype!r}: use fp32 or bf16.")
    return dtype


def _check_request(req: ProfileRequest) -> None:
    sizes = tuple(req.batch_sizes)
    if any(int(b) < 1 for b in sizes):
        raise MmerbenchError(f"Expected --batch-sizes to be positive integers, but got {list(sizes)}.")
    for name in ("warmup", "train_steps", "latency_iters", "infer_iters"):
        value = getattr(req, name)
        if int(value) < (0 if name == "warmup" else 1):
            raise MmerbenchError(f"Expected `{name}` to be {'≥ 0' if name == 'warmup' else '≥ 1'}, but got {value}.")
    if not np.isfinite(req.max_seconds) or req.max_seconds <= 0:
        raise MmerbenchError(f"Expected `max_seconds` to be a positive number, but got {req.max_seconds}.")


def environment_record(device: str) -> dict[str, Any]:
    """Where and how: device name, versions (torch, CUDA, cuDNN, driver), TF32 settings, threads, date."""
    import torch

    env = runner.environment(device)
    versions = {k: env[k] for k in ("mmerbench", "python", "torch", "numpy", "sklearn") if k in env}
    versions["git_commit"] = env.get("git_commit")
    rec: dict[str, Any] = {
        "device": "cuda" if device.startswith("cuda") else "cpu",
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else _cpu_name(),
        "tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
        "threads": torch.get_num_threads(),
        "platform": env["platform"],
        "date": env["date"],
        "versions": versions,
    }
    if device.startswith("cuda"):
        versions["cuda"] = torch.version.cuda
        versions["cudnn"] = str(torch.backends.cudnn.version())
        versions["driver"] = _nvidia_driver()
    return rec


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def profile(req: ProfileRequest) -> ProfileResult:
    """Profile one config (see the module docstring) and store the record beside its runs."""
    _check_request(req)
    ask = runner.RunRequest(method=req.method, dataset=req.dataset, preset=req.preset, overrides=tuple(req.overrides),
                            device=req.device, data_dir=req.data_dir, runs_dir=req.runs_dir, scale=req.scale,
                            data_seed=req.data_seed, progress=False)
    prep = runner.prepare(ask)
    device = runner.resolve_device(req.device)
    if prep.cls.kind == "torch" and req.dtype in runner.DTYPES and req.dtype != runner.run_dtype(prep.config, device):
        # Another precision than this config's runs train in is the config of `run --dtype` (its own hash),
        # so the record lands beside those runs.
        from dataclasses import replace

        prep = runner.prepare(replace(ask, dtype=req.dtype))
    preflight.check_config(prep)
    if req.write:
        preflight.check_store(paths.runs_root(req.runs_dir))
    if prep.cls.kind != "torch":
        device = "cpu"  # scikit-learn baselines run on the CPU whatever the device
    params = prep.config["params"]
    dtype = resolve_dtype(req.dtype, prep.config, device)
    runner.deterministic_mode(device)
    memory = PeakMemory(device)
    if prep.cls.kind == "torch":
        metrics, iterations = _profile_torch(prep, req, device, dtype, memory)
    else:
        if dtype != "fp32":
            raise MmerbenchError(f"{req.method!r} is a scikit-learn baseline: it runs in float64 on CPU, not bf16.")
        metrics, iterations = _profile_sklearn(prep, req, memory)
    metrics["peak_rss_mb_process"] = memory.process_peak_rss_mb()
    # A baseline fits the whole training split at once: that is its "batch".
    bs = int(params.get("batch_size", 0)) or metrics.pop("train_samples", None)
    record: dict[str, Any] = {
        "method": req.method,
        "dataset": req.dataset,
        "config_hash": prep.config_hash,
        "preset": req.preset,
        "overrides": list(req.overrides),
        **environment_record(device),
        "dtype": dtype,
        "batch_size": bs,
        "inference_batch_sizes": sorted({int(b) for b in req.batch_sizes}),
        "iterations": iterations,
        "memory_measure": memory.measure,
        "flops_convention": FLOPS_CONVENTION if prep.cls.kind == "torch" else None,
        "inputs": INPUTS if prep.cls.kind == "torch" else f"the dataset's splits ({req.dataset})",
        "metrics": {k: float(v) for k, v in metrics.items() if v is not None},
    }
    path = None
    if req.write:
        root = paths.runs_root(req.runs_dir)
        path = results.profile_path(root, prep.config["dataset"], req.method, prep.config_hash, record["device"], dtype)
        results.write_json(path, record)
    return ProfileResult(record, path, prep.config_hash)  # type: ignore[arg-type]


def _phase(memory: PeakMemory, out: dict[str, Any], name: str, run: Callable[[], np.ndarray]) -> np.ndarray:
    memory.reset()
    seconds = run()
    out[f"peak_memory_mb_{name}"] = memory.peak_mb()
    return seconds


def _profile_torch(prep, req: ProfileRequest, device: str, dtype: str, memory: PeakMemory):
    import torch

    spec, p = prep.spec, prep.config["params"]
    bs = int(p["batch_size"])
    mods = p.get("modalities") or list(spec.modalities)
    autocast = runner.autocast_factory(device, dtype)
    clock = Clock(device)

    torch.manual_seed(0)
    model = runner.build_model(prep, spec)
    model.setup(random_split(spec, max(bs, 64), seed=1, modalities=mods))
    model = model.to(device)
    setup = model.configure_optimizer(-(-int(spec.splits["train"]) // bs), int(p.get("epochs", 1)))
    out: dict[str, Any] = {"params": sum(q.numel() for q in model.parameters() if q.requires_grad),
                           "batch_size": bs, "baseline_rss_mb": None if memory.cuda else memory.current_mb()}
    iters: dict[str, Any] = {"warmup": req.warmup}

    def infer_fn(batch):
        def call():
            with torch.no_grad():
                with autocast():
                    output = model(batch)
                return model.probabilities(output)
        return call

    def loop(fn, min_iters, max_iters, sync_each):
        def run():
            for _ in range(req.warmup):
                fn()
            return timed(clock, fn, min_iters=min_iters, max_iters=max_iters, max_seconds=req.max_seconds,
                         sync_each=sync_each)
        return run

    model.eval()
    one = device_batch(spec, 1, device, mods)
    lat = _phase(memory, out, "latency", loop(infer_fn(one), min(10, req.latency_iters), req.latency_iters, True))
    out.update(_latency_stats(lat))
    iters["latency"] = len(lat)
    for b in sorted({int(x) for x in req.batch_sizes}):
        batch = device_batch(spec, b, device, mods, seed=b)
        s = _phase(memory, out, f"infer_bs{b}", loop(infer_fn(batch), min(3, req.infer_iters), req.infer_iters, False))
        out[f"infer_samples_per_s_bs{b}"] = b * len(s) / s.sum()
        iters[f"infer_bs{b}"] = len(s)
        del batch

    model.train()
    train_batch = device_batch(spec, bs, device, mods, seed=2)

    def step():
        model.training_step(train_batch, setup.optimizer, autocast=autocast)

    s = _phase(memory, out, "train", loop(step, min(3, req.train_steps), req.train_steps, False))
    out["train_samples_per_s"] = bs * len(s) / s.sum()
    out["train_step_ms"] = 1000.0 * float(s.mean())
    iters["train"] = len(s)

    if req.flops:
        _count_flops(model, train_batch, step, autocast, bs, req.batch_sizes, device, out)
    return out, iters


def _count_flops(model, train_batch, step, autocast, bs, batch_sizes, device, out) -> None:
    import torch

    # FLOPs of one forward (eval) and one training step at the training batch size, per sample.
    # The forward is counted with autograd on (and no backward): the counter's module tracker
    # fails under no_grad when a module is handed a parameter as an input; the count is the same.
    model.eval()

    def forward():
        # No backward follows, so autograd keeps nothing (a graph at the training batch size can
        # exceed the memory a checkpointed training step needs).
        with autocast(), torch.autograd.graph.saved_tensors_hooks(lambda t: None, _never_unpacked):
            model.probabilities(model(train_batch))

    out["flops_per_sample"] = count_flops(forward) / bs
    model.train()
    out["train_flops_per_sample"] = count_flops(step) / bs
    if device.startswith("cuda"):
        out["tflops_per_s_train"] = out["train_flops_per_sample"] * out["train_samples_per_s"] / 1e12
        for b in sorted({int(x) for x in batch_sizes}):
            out[f"tflops_per_s_infer_bs{b}"] = out["flops_per_sample"] * out[f"infer_samples_per_s_bs{b}"] / 1e12


def _never_unpacked(_: Any) -> Any:
    raise RuntimeError("the FLOP-counting forward has no backward")


def _fitted_size(obj: Any, seen: set[int] | None = None) -> int:
    """Floating-point values in a fitted estimator's learned state (attributes ending in `_`), recursively."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return int(obj.size) if np.issubdtype(obj.dtype, np.floating) else 0
    if isinstance(obj, (list, tuple)):
        return sum(_fitted_size(x, seen) for x in obj)
    if isinstance(obj, dict):
        return sum(_fitted_size(x, seen) for x in obj.values())
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(_fitted_size(v, seen) for k, v in vars(obj).items() if k.endswith("_") and not k.startswith("_"))
    return 0


def _profile_sklearn(prep, req: ProfileRequest, memory: PeakMemory):
    from mmerbench.baselines.base import pooled_features
    from mmerbench.data.registry import load_dataset

    p = prep.config["params"]
    mods = p["modalities"]
    hparams = {k: v for k, v in p.items() if k not in ("modalities", "threshold")}
    data = load_dataset(req.dataset, data_dir=req.data_dir, scale=req.scale, seed=req.data_seed)
    train, valid = data["train"], data["valid"]
    clock = Clock("cpu")
    out: dict[str, Any] = {"baseline_rss_mb": memory.current_mb()}
    iters: dict[str, Any] = {"warmup": 0}
    holder: dict[str, Any] = {}

    def fit():
        holder["est"] = prep.cls(seed=0, **hparams).fit(pooled_features(train, mods), train.labels)

    def take(n: int) -> Split:
        idx = np.arange(n) % len(valid)
        return Split(inputs={m: np.asarray(valid.inputs[m])[idx] for m in mods},
                     masks={m: np.asarray(valid.masks[m])[idx] for m in mods},
                     labels=np.asarray(valid.labels)[idx], ids=np.asarray(valid.ids)[idx])

    # Training first here: the later phases need the fitted estimator.
    s = _phase(memory, out, "train", lambda: timed(clock, fit, min_iters=1, max_iters=req.train_steps,
                                                   max_seconds=req.max_seconds, sync_each=False))
    out["train_samples_per_s"] = len(train) * len(s) / s.sum()
    out["fit_seconds"] = float(s.mean())
    out["train_samples"] = len(train)
    iters["train"] = len(s)
    est = holder["est"]
    out["params"] = _fitted_size(est)

    def infer_fn(split: Split):
        return lambda: est.predict_proba(pooled_features(split, mods))

    one = take(1)
    lat = _phase(memory, out, "latency", lambda: timed(clock, infer_fn(one), min_iters=min(10, req.latency_iters),
                                                       max_iters=req.latency_iters, max_seconds=req.max_seconds,
                                                       sync_each=True))
    out.update(_latency_stats(lat))
    iters["latency"] = len(lat)
    for b in sorted({int(x) for x in req.batch_sizes}):
        split = take(b)
        s = _phase(memory, out, f"infer_bs{b}", lambda: timed(clock, infer_fn(split), min_iters=min(3, req.infer_iters),
                                                              max_iters=req.infer_iters, max_seconds=req.max_seconds,
                                                              sync_each=False))
        out[f"infer_samples_per_s_bs{b}"] = b * len(s) / s.sum()
        iters[f"infer_bs{b}"] = len(s)
    return out, iters


def _train_batch_text(record: dict[str, Any]) -> str:
    if record.get("flops_convention") is None and record.get("batch_size"):  # a scikit-learn baseline
        return f"train: one fit on the {record['batch_size']} training samples"
    return f"train batch {record['batch_size']}" if record.get("batch_size") else "train batch: not timed"


def format_record(record: dict[str, Any], path: Path | None = None) -> str:
    """The record as a short table: what was measured, then where and how."""
    from tabulate import tabulate

    units = [("params", "parameters", "{:,.0f}"), ("train_samples_per_s", "train samples/s", "{:.1f}"),
             ("train_step_ms", "train step (ms)", "{:.2f}"), ("fit_seconds", "fit (s)", "{:.3f}"),
             ("latency_ms_p50", "latency p50 (ms, batch 1)", "{:.3f}"),
             ("latency_ms_p90", "latency p90 (ms, batch 1)", "{:.3f}"),
             ("latency_ms_p99", "latency p99 (ms, batch 1)", "{:.3f}")]
    m = record["metrics"]
    rows = [[label, fmt.format(m[k])] for k, label, fmt in units if k in m]
    for b in record.get("inference_batch_sizes", []):
        if f"infer_samples_per_s_bs{b}" in m:
            rows.append([f"inference samples/s (batch {b})", f"{m[f'infer_samples_per_s_bs{b}']:.1f}"])
    phases = ["latency"] + [f"infer_bs{b}" for b in record.get("inference_batch_sizes", [])] + ["train"]
    what = "CUDA tensors" if record.get("device") == "cuda" else "process RSS"
    for phase in phases:
        if f"peak_memory_mb_{phase}" in m:
            rows.append([f"peak {what} in phase {phase} (MiB)", f"{m[f'peak_memory_mb_{phase}']:.1f}"])
    for k, label in (("baseline_rss_mb", f"{what} before the phases (MiB)"),
                     ("peak_rss_mb_process", "peak process RSS, whole profile (MiB)"),
                     ("flops_per_sample", "forward GFLOP/sample (2·MAC)"),
                     ("train_flops_per_sample", "train step GFLOP/sample (2·MAC)")):
        if k in m:
            rows.append([label, f"{m[k] / 1e9:.4f}" if "flops" in k else f"{m[k]:.1f}"])
    for k in sorted(m):
        if k.startswith("tflops_per_s"):
            rows.append([f"achieved TFLOP/s ({k[len('tflops_per_s_'):]})", f"{m[k]:.2f}"])
    v = record.get("versions", {})
    where = (f"{record['method']} on {record['dataset']} (config {record['config_hash']}), "
             f"{record['device']} [{record['device_name']}], {record['dtype']}, {_train_batch_text(record)}, "
             f"torch {v.get('torch')}" + (f", CUDA {v['cuda']}, driver {v.get('driver')}" if v.get("cuda") else "")
             + f", TF32 {'on' if record.get('tf32') else 'off'}, threads: {record.get('threads')}")
    text = tabulate(rows, headers=["measure", "value"], disable_numparse=True, colalign=("left", "right"))
    text += f"\n\n{where}\nmemory: {record['memory_measure']}"
    if path is not None:
        text += f"\nprofile: {path}"
    return text
