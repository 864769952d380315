"""Write run-store folders by hand (config, metrics, predictions, profiles) for the report tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmerbench import results

SIGMOID = {"rule": "sigmoid > threshold", "threshold": 0.5, "score": "sigmoid"}


def fake_run(
    root: Path,
    dataset: str,
    method: str,
    chash: str,
    seed: int,
    test: dict[str, float],
    *,
    params: dict[str, Any] | None = None,
    preset: str | None = None,
    decision: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    predictions: dict[str, np.ndarray] | None = None,
) -> Path:
    folder = results.run_dir(root, dataset, method, chash, seed)
    cfg: dict[str, Any] = {"method": method, "dataset": dataset, "preset": preset, "params": params or {},
                           "seed": seed, "config_hash": chash}
    if data is not None:
        cfg["data"] = data
    results.write_yaml(folder / "config.yaml", cfg)
    if predictions is not None:
        results.write_predictions(folder / "predictions.npz", predictions)
    results.write_json(folder / results.METRICS_FILE,
                       {"valid": dict(test), "test": dict(test), "decision": decision or SIGMOID})
    return folder


def fake_profile(root: Path, dataset: str, method: str, chash: str, metrics: dict[str, float],
                 device: str = "cpu", dtype: str = "fp32", device_name: str = "test-cpu") -> Path:
    path = results.profile_path(root, dataset, method, chash, device, dtype)
    results.write_json(path, {"device": device, "device_name": device_name, "dtype": dtype, "batch_size": 8,
                              "metrics": metrics})
    return path


def multilabel_metrics(acc: float, hl: float, f1: float) -> dict[str, float]:
    return {"acc": acc, "hamming_loss": hl, "micro_f1": f1, "macro_f1": f1 - 0.1, "micro_precision": f1 + 0.01,
            "micro_recall": f1 - 0.01}
