"""Seeded train → select-on-valid → test loop, for torch methods and scikit-learn baselines.

Protocol (the same for every method):

* Python, NumPy and torch are seeded; deterministic algorithms are on. The
  torch RNG is re-seeded from (seed, epoch) at the start of every epoch and
  the batch order comes from a generator seeded the same way, so a run resumed
  from its checkpoint after epoch k continues exactly as if never stopped.
* The epoch is selected on the validation split only (``select``: a metric
  or ``loss``); the selected weights are copied (never a live reference) and
  the test split is scored once, with them, on every sample.
* A checkpoint is written atomically after every epoch; a finished run (its
  ``metrics.json`` exists) is skipped unless ``force``. Once ``model.pt`` and
  ``metrics.json`` are written the checkpoint is removed (also on a later
  skip, when a kill came between the two).
* One process at a time per seed folder: a run holds an OS file lock on
  ``<seed folder>/.lock`` (released by the kernel if the process dies); a
  second process says so in one line, waits, and then skips the finished run
  (or resumes a crashed one from its checkpoint).
* On CUDA, bf16 autocast when the config's ``amp`` is on; CPU stays float32. ``--dtype bf16``
  asks for bf16 autocast on any device (on a CPU with bf16 matrix units the large models train
  about 2x faster), ``--dtype fp32`` for float32 anywhere; either is then in the config and its hash.
"""

from __future__ import annotations

import io
import os
import platform
import random
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from mmerbench import config as configlib
from mmerbench import metrics as metricslib
from mmerbench import preflight, progress
from mmerbench import results
from mmerbench.data import paths
from mmerbench.data.dataset import Dataset
from mmerbench.data.registry import DEFAULT_TWIN_SCALE, DEFAULT_TWIN_SEED, get_entry, load_dataset
from mmerbench.data.spec import DatasetSpec
from mmerbench.errors import MmerbenchError
from mmerbench.locks import file_lock
from mmerbench.registry import get_method

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
LOCK = ".lock"
DTYPES = ("fp32", "bf16")


@dataclass
class RunRequest:
    method: str
    dataset: str
    seeds: tuple[int, ...] = (1,)
    epochs: int | None = None
    overrides: tuple[str, ...] = ()
    preset: str | None = None
    device: str = "auto"
    data_dir: str | None = None
    runs_dir: str | None = None
    force: bool = False
    scale: float | None = None  # synthetic twins only
    data_seed: int | None = None  # synthetic twins only
    progress: bool = True
    max_memory: str | None = None  # e.g. "20GB": pick checkpointing and accumulation to fit (mmerbench.memory)
    dtype: str | None = None  # "fp32" | "bf16" on any device (then in the config and its hash); None: run_dtype's rule


@dataclass
class SeedResult:
    seed: int
    folder: Path
    status: str  # "ran", "resumed", "skipped"
    metrics: results.RunMetrics
    seconds: float = 0.0


@dataclass
class Prepared:
    """A request resolved to one config, its hash and the method class, before any data is read."""

    request: RunRequest
    cls: type
    spec: DatasetSpec
    config: dict[str, Any]
    config_hash: str
    folders: dict[int, Path] = field(default_factory=dict)
    memory_plan: dict[str, Any] | None = None  # what --max-memory picked, and its estimate


# ---------------------------------------------------------------------------- set-up


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise MmerbenchError("--device cuda was asked for, but torch sees no CUDA device here.")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise MmerbenchError(f"Unknown device {device!r}: use auto, cpu or cuda.")
    return device


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def deterministic_mode(device: str = "cpu") -> None:
    import torch

    # cuBLAS needs this set before the first CUDA call to be deterministic.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # On CUDA a few kernels (some attention backward passes) have no deterministic
    # version; there they warn instead of stopping the run.
    torch.use_deterministic_algorithms(True, warn_only=device.startswith("cuda"))
    torch.backends.cudnn.benchmark = False


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63 - 1)


def prepare(req: RunRequest) -> Prepared:
    cls = get_method(req.method)
    entry = get_entry(req.dataset)
    spec = entry.spec
    if spec.task not in cls.tasks:
        raise MmerbenchError(
            f"{req.method!r} does not handle {spec.task} datasets like {req.dataset!r} "
            f"(it handles: {', '.join(cls.tasks)})."
        )
    extra: dict[str, Any] = {}
    if entry.synthetic:
        extra["data"] = {
            "scale": DEFAULT_TWIN_SCALE if req.scale is None else float(req.scale),
            "seed": DEFAULT_TWIN_SEED if req.data_seed is None else int(req.data_seed),
        }
    elif req.scale is not None or req.data_seed is not None:
        raise MmerbenchError(f"--scale and --data-seed apply to synthetic twins only, not to {req.dataset!r}.")
    if req.dtype is not None:
        if req.dtype not in DTYPES:
            raise MmerbenchError(f"Unknown dtype {req.dtype!r}: use {' or '.join(DTYPES)}.")
        if cls.kind != "torch":
            raise MmerbenchError(f"{req.method!r} is a scikit-learn baseline: it runs in float64 on the CPU; "
                                 "drop --dtype.")
        extra["dtype"] = req.dtype
    cfg = configlib.resolve(
        req.method,
        cls.config_package,
        dataset=entry.name,
        base_dataset=spec.base_name,
        preset=req.preset,
        epochs=req.epochs if cls.kind == "torch" else None,
        overrides=req.overrides,
        base={"threshold": spec.threshold},
        extra=extra,
    )
    if req.epochs is not None and cls.kind != "torch":
        raise MmerbenchError(f"{req.method!r} is not trained in epochs; drop --epochs.")
    params = cfg["params"]
    if "modalities" in params:
        mods = params["modalities"] or list(spec.modalities)
        if isinstance(mods, str):
            mods = [mods]
        unknown = [m for m in mods if m not in spec.modalities]
        if unknown or not mods:
            raise MmerbenchError(
                f"Unknown modalities {unknown} for {req.dataset!r}: it has {', '.join(spec.modalities)}."
            )
        params["modalities"] = [m for m in spec.modalities if m in mods]  # canonical order for the hash
    if cls.kind == "torch" and (type(params.get("accumulate", 1)) is not int or params.get("accumulate", 1) != 1):
        _check_accumulation(cls, spec, params)
    chash = configlib.config_hash(cfg)
    root = paths.runs_root(req.runs_dir)
    folders = {s: results.run_dir(root, entry.name, req.method, chash, s) for s in req.seeds}
    return Prepared(req, cls, spec, cfg, chash, folders)


def _check_accumulation(cls, spec: DatasetSpec, params: dict[str, Any]) -> None:
    """Refuse an `accumulate` the method cannot take before any folder exists (the model is built on
    the meta device: its structure and settings, no memory)."""
    import torch

    n = params.get("accumulate")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise MmerbenchError(f"`accumulate` must be a whole number of micro-batches ≥ 1, but got {n!r}.")
    with torch.device("meta"):
        model = cls(spec, **params)
    model.check_accumulation(params.get("batch_size"))


def parameter_count(method: str, dataset: str, preset: str | None = None) -> int | None:
    """Trainable parameters of a neural method at its (paper) config for a dataset; None for
    baselines and for tasks the method does not handle."""
    import torch

    cls = get_method(method)
    if cls.kind != "torch" or get_entry(dataset).spec.task not in cls.tasks:
        return None
    prep = prepare(RunRequest(method=method, dataset=dataset, preset=preset))
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = cls(prep.spec, **prep.config["params"])
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def environment(device: str) -> dict[str, Any]:
    import sklearn
    import torch

    import mmerbench

    env: dict[str, Any] = {
        "mmerbench": mmerbench.__version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "platform": platform.platform(),
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
    }
    if device.startswith("cuda"):
        env["cuda"] = torch.version.cuda
    return env


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def decision(spec: DatasetSpec, threshold: float, score: str) -> results.Decision:
    if spec.task in ("multilabel", "binary"):
        return {"rule": f"{score} > threshold", "threshold": float(threshold), "score": score}
    if spec.task == "multiclass":
        return {"rule": "argmax", "score": score}
    return {"rule": "identity", "score": "regression output"}


def score(spec: DatasetSpec, y_true: np.ndarray, y_score: np.ndarray, threshold: float) -> dict[str, float]:
    return metricslib.compute(spec.task, y_true=y_true, y_score=y_score, threshold=threshold, labels=list(spec.labels))


# ---------------------------------------------------------------------------- the runs


def run(req: RunRequest, on_epoch_end: Callable[[int, dict], None] | None = None) -> list[SeedResult]:
    """Run (or skip, or resume) every seed of the request; returns one result per seed."""
    with progress.showing(req.progress):
        return _run(req, on_epoch_end)


def _run(req: RunRequest, on_epoch_end: Callable[[int, dict], None] | None) -> list[SeedResult]:
    prep = prepare(req)
    device = resolve_device(req.device)
    preflight.check_config(prep)  # before any data is read or generated, and before any folder exists
    preflight.check_store(paths.runs_root(req.runs_dir))
    dataset: Dataset | None = None
    if req.max_memory is not None:
        prep, dataset = fit_memory(prep, device)
    # Data first, before any seed folder or lock exists: a dataset that fails to load leaves the
    # run store as it was.
    if req.force or any(results.read_metrics(f) is None for f in prep.folders.values()):
        dataset = load_dataset(req.dataset, data_dir=req.data_dir, scale=req.scale, seed=req.data_seed)
    out = []
    for seed, folder in prep.folders.items():
        with seed_lock(folder, f"{req.method} on {req.dataset}, seed {seed}"):
            done = results.read_metrics(folder)
            if done is not None and not req.force:
                if (folder / MODEL).is_file():  # a kill after the metrics, before the clean-up
                    (folder / CHECKPOINT).unlink(missing_ok=True)
                out.append(SeedResult(seed, folder, "skipped", done))
                continue
            if dataset is None:
                dataset = load_dataset(req.dataset, data_dir=req.data_dir, scale=req.scale, seed=req.data_seed)
            out.append(run_seed(prep, dataset, seed, device, on_epoch_end=on_epoch_end))
    return out


def fit_memory(prep: Prepared, device: str) -> tuple[Prepared, Dataset]:
    """Re-prepare the request with the settings :func:`mmerbench.memory.plan` picks for its budget."""
    from dataclasses import replace

    from mmerbench import memory

    req = prep.request
    budget = memory.parse_size(req.max_memory)
    dataset = load_dataset(req.dataset, data_dir=req.data_dir, scale=req.scale, seed=req.data_seed)
    chosen = memory.plan(prep, dataset, device, budget)
    fitted = prepare(replace(req, overrides=(*req.overrides, *chosen.overrides(prep.config["params"]))))
    fitted.memory_plan = chosen.record()
    return fitted, dataset


@contextmanager
def seed_lock(folder: Path, label: str) -> Iterator[None]:
    """Hold the seed folder's lock; if another process holds it, say so in one line and wait."""
    lock = folder / LOCK
    with file_lock(lock, wait=False) as held:
        if held:
            yield
            return
    print(f"{label}: another process is running it in {folder}; waiting for it to finish.",
          file=sys.stderr, flush=True)
    with file_lock(lock):
        yield


def _start_folder(prep: Prepared, folder: Path, seed: int, device: str, force: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if force:
        for name in (results.METRICS_FILE, CHECKPOINT, MODEL, "predictions.npz", "history.json"):
            (folder / name).unlink(missing_ok=True)
    record = {**prep.config, "seed": seed, "config_hash": prep.config_hash}
    if prep.memory_plan is not None:  # beside the config, not in its hash: the picks are in `params`
        record["memory_plan"] = prep.memory_plan
    results.write_yaml(folder / "config.yaml", record)
    results.write_json(folder / "env.json", environment(device))


def run_seed(
    prep: Prepared,
    dataset: Dataset,
    seed: int,
    device: str,
    *,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> SeedResult:
    folder = prep.folders[seed]
    t0 = time.perf_counter()
    _start_folder(prep, folder, seed, device, prep.request.force)
    seed_everything(seed)
    if prep.cls.kind == "sklearn":
        metrics, status = _run_sklearn(prep, dataset, seed, folder), "ran"
    else:
        import torch

        try:
            metrics, status = _run_torch(prep, dataset, seed, folder, device, on_epoch_end)
        except torch.OutOfMemoryError as exc:  # CUDA; a CPU run out of memory is killed by the kernel instead
            p = prep.config["params"]
            hint = "" if p.get("checkpoint_layers", True) else (
                "--set checkpoint_layers=true (training; same numbers) or ")
            raise MmerbenchError(
                f"{prep.request.method!r} ran out of {device} memory at batch size {p.get('batch_size')}; "
                f"try {hint}a smaller --set batch_size.") from exc
    return SeedResult(seed, folder, status, metrics, time.perf_counter() - t0)


def _finish(folder: Path, spec: DatasetSpec, dataset: Dataset, scores: dict[str, np.ndarray],
            threshold: float, score_name: str) -> results.RunMetrics:
    preds: dict[str, np.ndarray] = {}
    metrics: dict[str, Any] = {}
    for split in results.SPLITS_SCORED:
        s = dataset[split]
        y = np.asarray(s.labels)
        preds[f"{split}_ids"] = np.asarray(s.ids).astype(str)
        preds[f"{split}_true"] = y
        preds[f"{split}_scores"] = scores[split]
        metrics[split] = score(spec, y, scores[split], threshold)
    metrics["decision"] = decision(spec, threshold, score_name)
    results.write_predictions(folder / "predictions.npz", preds)
    results.write_json(folder / results.METRICS_FILE, metrics)  # last: marks the run complete
    return metrics  # type: ignore[return-value]


def _run_sklearn(prep: Prepared, dataset: Dataset, seed: int, folder: Path) -> results.RunMetrics:
    from mmerbench.baselines.base import pooled_features

    p = prep.config["params"]
    mods = p["modalities"]
    hparams = {k: v for k, v in p.items() if k not in ("modalities", "threshold")}
    t = time.perf_counter()
    est = prep.cls.for_spec(dataset.spec, seed=seed, **hparams)
    est.fit(pooled_features(dataset["train"], mods), dataset["train"].labels)
    fit_s = time.perf_counter() - t
    scores = {s: est.predict_proba(pooled_features(dataset[s], mods)) for s in results.SPLITS_SCORED}
    results.write_json(folder / "history.json", [{"fit_seconds": round(fit_s, 3)}])
    return _finish(folder, dataset.spec, dataset, scores, float(p["threshold"]), "probability")


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    results._atomic_write_bytes(path, buf.getvalue())


def _load_checkpoint(path: Path) -> dict[str, Any] | None:
    import torch

    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # an unreadable checkpoint means: start this seed again
        return None


def _cpu_state(model) -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _run_torch(prep, dataset, seed, folder, device, on_epoch_end):
    import torch

    from mmerbench.data.batching import DeviceSplit

    deterministic_mode(device)
    spec = dataset.spec
    p = prep.config["params"]
    epochs, batch_size = int(p["epochs"]), int(p["batch_size"])
    threshold, select = float(p["threshold"]), str(p.get("select", "loss"))
    autocast = autocast_factory(device, run_dtype(prep.config, device))
    higher = False if select == "loss" else metricslib.direction(select)

    mods = p.get("modalities") or list(spec.modalities)
    from mmerbench.methods.text_encoder import run_tokens

    tokens = run_tokens(p, dataset, prep.request.data_dir, ("train", "valid", "test")) or {}
    data = {s: DeviceSplit(spec, dataset[s], device, mods, tokens.get(s)) for s in ("train", "valid", "test")}

    torch.manual_seed(seed)
    model = build_model(prep, spec)
    model.setup(dataset["train"])
    model = model.to(device)
    setup = model.configure_optimizer(data["train"].num_batches(batch_size), epochs)
    optimizer, scheduler = setup.optimizer, setup.scheduler

    state = _load_checkpoint(folder / CHECKPOINT)
    status, start, history, best = "ran", 0, [], {"state": None, "epoch": -1, "score": None}
    if state is not None and state.get("config_hash") == prep.config_hash and not prep.request.force:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        start, history, best = int(state["epoch"]), list(state["history"]), state["best"]
        status = "resumed"

    from tqdm.auto import tqdm

    show = prep.request.progress
    bar = tqdm(range(start, epochs), desc=f"{prep.request.method} seed {seed}", initial=start, total=epochs,
               disable=not show, leave=False, file=sys.stderr)
    for epoch in bar:
        torch.manual_seed(_epoch_seed(seed, epoch))
        gen = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
        t = time.perf_counter()
        train_loss = train_epoch(model, data["train"], batch_size, setup, autocast, gen,
                                 desc=f"epoch {epoch + 1}/{epochs}")
        valid_scores, valid_loss = predict(model, data["valid"], batch_size, autocast)
        valid_metrics = score(spec, np.asarray(dataset["valid"].labels), valid_scores, threshold)
        crit = valid_loss if select == "loss" else valid_metrics[select]
        improved = best["score"] is None or (crit > best["score"] if higher else crit < best["score"])
        if improved:
            best = {"state": _cpu_state(model), "epoch": epoch, "score": float(crit)}
        if scheduler is not None and setup.interval == "epoch":
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(valid_loss)
            else:
                scheduler.step()
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "valid_loss": valid_loss,
            "valid": valid_metrics,
            "selected": improved,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - t, 3),
        }
        history.append(record)
        _save_checkpoint(folder / CHECKPOINT, {
            "config_hash": prep.config_hash,
            "epoch": epoch + 1,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "best": best,
            "history": history,
        })
        results.write_json(folder / "history.json", history)
        bar.set_postfix({"loss": f"{train_loss['total']:.4f}", f"valid_{select}": f"{crit:.4f}"})
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
    bar.close()

    if best["state"] is None:
        raise MmerbenchError(f"{prep.request.method!r} ran no epoch (epochs={epochs}).")
    model.load_state_dict(best["state"])
    scores = {s: predict(model, data[s], batch_size, autocast)[0] for s in results.SPLITS_SCORED}
    _save_checkpoint(folder / MODEL, {"model": best["state"], "epoch": best["epoch"]})
    score_name = getattr(prep.cls, "score_name", None) or \
        {"multilabel": "sigmoid", "binary": "sigmoid", "multiclass": "softmax"}.get(spec.task, "regression")
    metrics = _finish(folder, spec, dataset, scores, threshold, score_name)
    (folder / CHECKPOINT).unlink(missing_ok=True)  # the run is complete; model.pt keeps the selected weights
    return metrics, status


def build_model(prep: Prepared, spec: DatasetSpec):
    """The method's model at the prepared config, with its memory switch (``checkpoint_layers``:
    recompute the shared transformer layers in the backward pass) applied; not yet set up or moved."""
    from mmerbench.methods.base import set_layer_checkpointing

    p = prep.config["params"]
    model = prep.cls(spec, **p)
    model.check_accumulation(p.get("batch_size"))
    set_layer_checkpointing(model, bool(p.get("checkpoint_layers", False)))
    return model


def run_dtype(config: dict[str, Any], device: str) -> str:
    """The precision a config trains and scores in on `device`: the run's ``--dtype`` where one was
    asked for (it is then in the config and its hash), else bf16 autocast on CUDA when the config's
    ``amp`` is on, and float32 otherwise (so a CPU run stays float32 unless asked)."""
    asked = config.get("dtype")
    if asked is not None:
        return str(asked)
    return "bf16" if config["params"].get("amp", False) and device.startswith("cuda") else "fp32"


def autocast_factory(device: str, dtype: str):
    """The context the runner (and the profiler) wraps forward passes in: bf16 autocast on the
    device for ``dtype="bf16"`` (CUDA, or the CPU's bf16 matrix units), else a no-op (float32)."""
    from contextlib import nullcontext
    from functools import partial

    import torch

    if dtype == "bf16":
        return partial(torch.autocast, device_type="cuda" if device.startswith("cuda") else "cpu",
                       dtype=torch.bfloat16)
    return nullcontext


def train_epoch(model, split, batch_size: int, setup, autocast, generator, desc: str = "epoch") -> dict[str, float]:
    """One pass over the training split in the generator's order: the method's
    ``training_step`` per batch, the per-step schedule, and the sample-weighted
    mean of each named loss part (summed on the device, read once at the end).
    A batch bar shows once the epoch has taken ``progress.SLOW_EPOCH_S`` (when progress is on)."""
    model.train()
    sums: dict[str, Any] = {}
    n_seen = 0
    with progress.bar(split.num_batches(batch_size), desc, unit="batch", delay=progress.SLOW_EPOCH_S) as bar:
        for batch in split.batches(batch_size, shuffle=True, generator=generator):
            parts = model.training_step(batch, setup.optimizer, autocast=autocast)
            if setup.scheduler is not None and setup.interval == "step":
                setup.scheduler.step()
            b = len(batch)
            n_seen += b
            for name, v in {"total": parts.total, **parts.parts}.items():
                sums[name] = sums.get(name, 0.0) + v.detach().float() * b
            bar.update(1)
    return {k: float(v) / max(n_seen, 1) for k, v in sums.items()}


def predict(model, split, batch_size: int, autocast) -> tuple[np.ndarray, float]:
    """Scores (probabilities / regression outputs) for every sample in order, and the mean loss."""
    import torch

    model.eval()
    outs, loss_sum = [], torch.zeros((), device=split.device)
    with torch.no_grad():
        for batch in split.batches(batch_size, shuffle=False):
            with autocast():
                out = model(batch)
                loss = model.loss(batch, out).total
            outs.append(model.probabilities(out).float())
            loss_sum += loss.detach().float() * len(batch)
    scores = torch.cat(outs).cpu().numpy().astype(np.float64)
    return scores, float(loss_sum) / max(len(split), 1)
