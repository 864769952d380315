"""Where data and runs live: a flag, else an environment variable, else a default."""

from __future__ import annotations

import os
from pathlib import Path


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """`--data-dir`, else `$MMERBENCH_DATA`, else `~/.cache/mmerbench/data`."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("MMERBENCH_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "mmerbench" / "data"


def cache_root(data_dir: str | os.PathLike | None = None) -> Path:
    """Converted `.npy` arrays live beside the data, under `<data root>/.cache`."""
    return data_root(data_dir) / ".cache"


def runs_root(runs_dir: str | os.PathLike | None = None) -> Path:
    """`--runs-dir`, else `$MMERBENCH_RUNS`, else `./runs`."""
    if runs_dir:
        return Path(runs_dir).expanduser()
    env = os.environ.get("MMERBENCH_RUNS")
    return Path(env).expanduser() if env else Path("runs")
