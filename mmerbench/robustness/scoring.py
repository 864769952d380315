"""``mmerbench robustness``: every finished run's stored model scored on corrupted test splits.

Nothing is trained. A neural run's ``model.pt`` goes into the model of the run's config (built
and set up as the runner builds it); a baseline (BR, CC, LP, linear) stores no model, and is
refitted from the run's config and seed on the clean training split (lbfgs logistic
regression: deterministic). Before any corruption is scored, the model's clean test scores are
compared with the run's stored ones: a model that does not reproduce its run is an error, never
a silently different baseline.

Each corruption of each seed is stored beside the run, in ``<seed folder>/robustness/``:
``<name>.npz`` (test ids, truth, scores) and then ``<name>.json`` (the corruption, its seed, the
test metrics and the decision rule), both written atomically, the JSON last; a corruption whose
JSON exists is skipped unless ``force``. The stored clean run (its metrics, predictions and
weights) is only read.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mmerbench import results, runner
from mmerbench.data.dataset import Split
from mmerbench.data.registry import load_dataset
from mmerbench.errors import MmerbenchError
from mmerbench.robustness import corruptions as corr
from mmerbench.safepath import is_plain_name, join

FOLDER = "robustness"
# Clean scores recomputed from the stored model must match the stored ones this closely
# (float32 forward passes; a refitted baseline is bit-identical on the same machine).
REPRODUCE_ATOL = 1e-4


@dataclass
class RobustnessRequest:
    method: str
    dataset: str
    seeds: tuple[int, ...] = (1,)
    corruptions: tuple[str, ...] = ()  # names or families; empty: every default corruption
    epochs: int | None = None
    overrides: tuple[str, ...] = ()
    preset: str | None = None
    device: str = "auto"
    data_dir: str | None = None
    runs_dir: str | None = None
    force: bool = False
    scale: float | None = None
    data_seed: int | None = None
    dtype: str | None = None  # the runs' --dtype


@dataclass
class Scored:
    seed: int
    corruption: str
    status: str  # "scored" or "skipped"
    test: dict[str, float]


def record_path(folder: Path, name: str) -> Path:
    return join(Path(folder) / FOLDER, f"{name}.json")


def read_record(path: Path) -> dict[str, Any] | None:
    """A stored corruption record, or None when absent or unusable (then it is scored again)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    test = data.get("test") if isinstance(data, dict) else None
    if not isinstance(test, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             for v in test.values()):
        return None
    c = data.get("corruption")
    # The name must be the file's own (it names the predictions file beside it) and plain.
    if not isinstance(c, dict) or c.get("name") != Path(path).stem or not is_plain_name(c.get("name")) \
            or c.get("family") not in corr.FAMILIES or isinstance(c.get("level"), bool) \
            or not isinstance(c.get("level"), (int, float)) or not isinstance(c.get("modalities"), list) \
            or not all(isinstance(m, str) for m in c["modalities"]):
        return None
    return data


def robustness(req: RobustnessRequest, log: Callable[[str], None] | None = None) -> list[Scored]:
    """Score every requested corruption of every requested seed; see the module docstring."""
    prep = runner.prepare(runner.RunRequest(
        method=req.method, dataset=req.dataset, seeds=req.seeds, epochs=req.epochs, overrides=req.overrides,
        preset=req.preset, device=req.device, data_dir=req.data_dir, runs_dir=req.runs_dir, scale=req.scale,
        data_seed=req.data_seed, dtype=req.dtype))
    spec = prep.spec
    chosen = corr.parse(req.corruptions, spec) if req.corruptions else corr.default_corruptions(spec)
    unfinished = [s for s, f in prep.folders.items() if results.read_metrics(f) is None]
    if unfinished:
        s = unfinished[0]
        raise MmerbenchError(
            f"{req.method} on {req.dataset} has no finished run for seed {s} at this config "
            f"({prep.folders[s]}); run `mmerbench run` with the same options first.")
    todo = {s: [c for c in chosen if req.force or read_record(record_path(f, c.name)) is None]
            for s, f in prep.folders.items()}
    out: list[Scored] = []
    dataset = None
    if any(todo.values()):
        dataset = load_dataset(req.dataset, data_dir=req.data_dir, scale=req.scale, seed=req.data_seed)
    std = corr.train_std(dataset["train"]) if dataset is not None and any(
        c.family == "noise" for cs in todo.values() for c in cs) else None
    device = runner.resolve_device(req.device)
    for seed, folder in prep.folders.items():
        with runner.seed_lock(folder, f"{req.method} on {req.dataset}, seed {seed}"):
            pending = [c for c in todo[seed] if req.force or read_record(record_path(folder, c.name)) is None]
            scorer = _scorer(prep, dataset, seed, folder, device) if pending else None
            for c in chosen:
                path = record_path(folder, c.name)
                if c not in pending:
                    rec = read_record(path)
                    out.append(Scored(seed, c.name, "skipped", rec["test"] if rec else {}))
                    continue
                t0 = time.perf_counter()
                test = dataset["test"]
                scores = scorer(corr.apply(test, c, seed=seed, std=std))
                out.append(Scored(seed, c.name, "scored", _store(prep, folder, seed, c, test, scores, t0)))
                if log:
                    log(f"seed {seed}: {c.name} scored")
    return out


def _store(prep, folder: Path, seed: int, c: corr.Corruption, test: Split, scores: np.ndarray, t0: float) -> dict:
    spec, p = prep.spec, prep.config["params"]
    threshold = float(p["threshold"])
    y = np.asarray(test.labels)
    metrics = runner.score(spec, y, scores, threshold)
    stored = results.read_metrics(folder)
    path = record_path(folder, c.name)
    results.write_predictions(path.with_suffix(".npz"), {
        "test_ids": np.asarray(test.ids).astype(str), "test_true": y, "test_scores": scores})
    results.write_json(path, {  # last: marks the corruption scored
        "corruption": {"name": c.name, "family": c.family, "level": c.level, "modalities": list(c.modalities)},
        "seed": seed,
        "config_hash": prep.config_hash,
        "test": metrics,
        "decision": stored["decision"] if stored else runner.decision(spec, threshold, ""),
        "model": "refitted" if prep.cls.kind == "sklearn" else "model.pt",
        "seconds": round(time.perf_counter() - t0, 3),
    })
    return metrics


def _scorer(prep, dataset, seed: int, folder: Path, device: str) -> Callable[[Split], np.ndarray]:
    """A function from a (corrupted) test split to test scores, from the run's model; checked
    against the run's stored clean test scores first."""
    score = _sklearn_scorer(prep, dataset, seed) if prep.cls.kind == "sklearn" else \
        _torch_scorer(prep, dataset, seed, folder, device)
    stored = _stored_test_scores(folder)
    clean = score(dataset["test"])
    if stored.shape != clean.shape or not np.allclose(clean, stored, atol=REPRODUCE_ATOL, rtol=0):
        diff = float(np.max(np.abs(clean - stored))) if stored.shape == clean.shape else float("nan")
        ran_on = _run_device(folder)
        hint = (f"it ran on {ran_on} and this is {device}: score it with --device {ran_on}"
                if ran_on and ran_on.split(":")[0] != device.split(":")[0] else
                "was the data or the code changed since the run? Run it again with `mmerbench run --force`")
        raise MmerbenchError(
            f"The model of {folder} does not reproduce its stored clean test scores (max |Δ| {diff:.3g}); {hint}.")
    return score


def _run_device(folder: Path) -> str | None:
    try:
        dev = json.loads((Path(folder) / "env.json").read_text()).get("device")
    except (OSError, ValueError, AttributeError):
        return None
    return dev if isinstance(dev, str) else None


def _stored_test_scores(folder: Path) -> np.ndarray:
    path = Path(folder) / "predictions.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z["test_scores"], dtype=np.float64)
    except (OSError, KeyError, ValueError) as e:
        raise MmerbenchError(f"Could not read the stored test scores in {path} ({type(e).__name__}).") from None


def _sklearn_scorer(prep, dataset, seed: int) -> Callable[[Split], np.ndarray]:
    from mmerbench.baselines.base import pooled_features

    p = prep.config["params"]
    mods = p["modalities"]
    hparams = {k: v for k, v in p.items() if k not in ("modalities", "threshold")}
    runner.seed_everything(seed)  # as the runner fits it
    est = prep.cls.for_spec(dataset.spec, seed=seed, **hparams)
    est.fit(pooled_features(dataset["train"], mods), dataset["train"].labels)
    return lambda split: est.predict_proba(pooled_features(split, mods))


def _torch_scorer(prep, dataset, seed: int, folder: Path, device: str) -> Callable[[Split], np.ndarray]:
    import torch

    from mmerbench.data.batching import DeviceSplit
    from mmerbench.weights import load_state_dict

    model_file = Path(folder) / runner.MODEL
    if not model_file.is_file():
        raise MmerbenchError(f"{folder} holds no {runner.MODEL}; run it again with `mmerbench run --force`.")
    runner.deterministic_mode(device)
    runner.seed_everything(seed)
    torch.manual_seed(seed)
    spec, p = dataset.spec, prep.config["params"]
    model = runner.build_model(prep, spec)
    model.setup(dataset["train"])  # what it learns lives in buffers, which the stored weights replace
    try:
        model.load_state_dict(load_state_dict(model_file))
    except RuntimeError as e:
        raise MmerbenchError(f"{model_file} does not fit {prep.request.method} at this config "
                             f"({str(e).splitlines()[0][:160]}).") from None
    model = model.to(device)
    mods = p.get("modalities") or list(spec.modalities)
    batch_size = int(p["batch_size"])
    autocast = runner.autocast_factory(device, runner.run_dtype(prep.config, device))
    return lambda split: runner.predict(model, DeviceSplit(spec, split, device, mods), batch_size, autocast)[0]
