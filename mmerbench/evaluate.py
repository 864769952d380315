"""Scoring given weights, not trained ones: ``mmerbench evaluate``.

The weights (ours, or the authors' through :mod:`mmerbench.importers`) go into the model of the
method's config, and the valid and test splits are scored exactly as the runner scores a trained
run's selected weights (same batching, ``predict``, metrics and decision rule). The record is a
normal run folder, so ``leaderboard`` and ``compare`` read it like any other; its config carries
``imported_weights: {file, sha256, from}``, so its hash differs from a trained run's (the hash
covers the file's content and origin, not its path). Everything is computed before the folder is
written, and the folder appears whole (built under a temporary name, then renamed): a failure
leaves the store as it was.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mmerbench import config as configlib
from mmerbench import preflight
from mmerbench import results
from mmerbench import runner
from mmerbench.data import paths
from mmerbench.data.registry import load_dataset
from mmerbench.errors import MmerbenchError

ORIGINS = ("authors", "ours")


@dataclass
class EvaluateRequest:
    method: str
    dataset: str
    weights: str
    origin: str = "authors"  # "authors": through the method's importer; "ours": our own state dict
    seed: int = 1
    overrides: tuple[str, ...] = ()
    preset: str | None = None
    device: str = "auto"
    data_dir: str | None = None
    runs_dir: str | None = None
    force: bool = False
    scale: float | None = None
    data_seed: int | None = None


def _our_state(req: EvaluateRequest, model) -> dict:
    from mmerbench.importers import import_weights
    from mmerbench.weights import load_state_dict

    state = load_state_dict(req.weights)
    if req.origin == "authors":
        return import_weights(req.method, state, model)
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    extra = [k for k in state if k not in ours]
    if missing or extra:
        what = f"lacks our {missing[0]!r}" if missing else f"has {extra[0]!r}, which our model does not"
        raise MmerbenchError(f"{req.weights} does not fit {req.method} at this config: it {what} "
                             f"(an authors' checkpoint needs --from authors).")
    for k, ref in ours.items():
        if tuple(state[k].shape) != tuple(ref.shape):
            raise MmerbenchError(f"{req.weights}: {k!r} has shape {tuple(state[k].shape)}, ours is {tuple(ref.shape)} "
                                 f"at this config.")
    return dict(state)


def evaluate(req: EvaluateRequest) -> runner.SeedResult:
    """Score the weights in ``req.weights`` on valid and test and store the run; see the module docstring."""
    import torch

    from mmerbench.data.batching import DeviceSplit
    from mmerbench.weights import sha256

    if req.origin not in ORIGINS:
        raise MmerbenchError(f"--from must be one of {', '.join(ORIGINS)}, not {req.origin!r}.")
    prep = runner.prepare(runner.RunRequest(
        method=req.method, dataset=req.dataset, seeds=(req.seed,), overrides=req.overrides, preset=req.preset,
        device=req.device, data_dir=req.data_dir, runs_dir=req.runs_dir, scale=req.scale, data_seed=req.data_seed))
    if prep.cls.kind != "torch":
        raise MmerbenchError(f"{req.method!r} is not a neural method: there are no weights to evaluate.")
    preflight.check_config(prep)
    preflight.check_store(paths.runs_root(req.runs_dir))
    if req.origin == "authors":
        from mmerbench.importers import importable_methods

        if req.method not in importable_methods():
            raise MmerbenchError(f"No importer of the authors' weights for {req.method!r} "
                                 f"(importers: {', '.join(importable_methods()) or 'none'}).")
    path = Path(req.weights).expanduser()
    if not path.is_file():
        raise MmerbenchError(f"Weights file {path} does not exist." if not path.exists()
                             else f"Expected a weights file at {path}, found a folder.")
    digest = sha256(path)
    cfg = dict(prep.config)
    cfg["imported_weights"] = {"sha256": digest, "from": req.origin}
    chash = configlib.config_hash(cfg)  # before the path goes in: the same file anywhere is the same run
    cfg["imported_weights"] = {"file": str(path.resolve()), "sha256": digest, "from": req.origin}
    trained = Path(prep.folders[req.seed])  # <runs>/<dataset>/<method>/<hash>/seed-<n>
    folder = trained.parent.parent / chash / trained.name
    done = results.read_metrics(folder)
    if done is not None and not req.force:
        return runner.SeedResult(req.seed, folder, "skipped", done)

    t0 = time.perf_counter()
    device = runner.resolve_device(req.device)
    runner.deterministic_mode(device)
    runner.seed_everything(req.seed)
    torch.manual_seed(req.seed)
    model = runner.build_model(prep, prep.spec)
    state = _our_state(req, model)  # a file that does not fit fails here, before the data is read
    dataset = load_dataset(req.dataset, data_dir=req.data_dir, scale=req.scale, seed=req.data_seed)
    spec, p = dataset.spec, prep.config["params"]
    model.setup(dataset["train"])  # whatever it learns lives in buffers, which the weights then replace
    model.load_state_dict(state)
    model = model.to(device)
    mods = p.get("modalities") or list(spec.modalities)
    batch_size, threshold = int(p["batch_size"]), float(p["threshold"])
    autocast = runner.autocast_factory(device, runner.run_dtype(prep.config, device))
    from mmerbench.methods.text_encoder import run_tokens

    tokens = run_tokens(p, dataset, req.data_dir, results.SPLITS_SCORED) or {}
    data = {s: DeviceSplit(spec, dataset[s], device, mods, tokens.get(s)) for s in results.SPLITS_SCORED}
    scores = {s: runner.predict(model, data[s], batch_size, autocast)[0] for s in results.SPLITS_SCORED}
    score_name = getattr(prep.cls, "score_name", None) or \
        {"multilabel": "sigmoid", "binary": "sigmoid", "multiclass": "softmax"}.get(spec.task, "regression")

    # Written under a temporary name beside the final folder, then renamed: never half a run.
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    tmp.chmod(0o777 & ~results.current_umask())  # mkdtemp makes it 0700; the folder it becomes follows the umask
    try:
        results.write_yaml(tmp / "config.yaml", {**cfg, "seed": req.seed, "config_hash": chash})
        results.write_json(tmp / "env.json", runner.environment(device))
        runner._save_checkpoint(tmp / runner.MODEL, {"model": runner._cpu_state(model), "epoch": None,
                                                     "imported_weights": cfg["imported_weights"]})
        metrics = runner._finish(tmp, spec, dataset, scores, threshold, score_name)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return runner.SeedResult(req.seed, folder, "evaluated", metrics, time.perf_counter() - t0)
