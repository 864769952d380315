"""Sweeps: many runs from one grid, run here one after another or submitted to Slurm through submitit.

A sweep is the product methods × datasets × settings × seeds, where the
settings are one config per combination of a hyperparameter ``grid``
(``{lr: [1e-3, 3e-4], hidden: [64, 128]}`` → four configs) on top of the
fixed ``set`` values. Each cell is one seed of one config: exactly what
``mmerbench run`` writes into one run folder, so the run store, the
leaderboards and resuming work unchanged.

* **Skipping.** A cell whose run folder is complete (its ``metrics.json``
  exists) is reported as skipped; this is decided from the resolved config's
  hash alone (:func:`mmerbench.runner.prepare`), without reading any data.
* **Failures.** A cell that fails (a setting the method lacks, a task it does
  not handle, an exception in training) is logged and reported; the other
  cells go on. Unknown method or dataset names stop the sweep before it
  starts (a typo, not a finding).
* **Logs.** Every cell that is not skipped writes a log under
  ``<runs>/_sweeps/<sweep id>/``: its request, one line per epoch, the result
  or the traceback. The summary (``summary.json`` there, and a table on the
  console) names the log of each failed cell.
* **Launchers.** ``local`` runs the cells in this process, one after another.
  ``slurm`` submits them as a job array with ``submitit.AutoExecutor``;
  ``submitit-local`` uses submitit's local executor (each cell a process on
  this machine, all at once), the same code path without a cluster. Both
  call :func:`run_cell`, as the local launcher does, and wait for the jobs.
  Slurm parameters: submitit's shared ones (``timeout_min``, ``mem_gb``,
  ``gpus_per_node``, ``cpus_per_task``, ``nodes``, ``tasks_per_node``) as
  they are, any other key becomes ``slurm_<key>`` (``partition``,
  ``account``, ``qos``, ``array_parallelism``, ``constraint``, …).
  Synthetic twins are generated once here before submitting, so jobs never
  race to write the same cache entry.

A grid file (``--grid sweep.yaml``) holds the same options as the command
line; options given on the command line win::

    methods: [br, mlp]
    datasets: [synth-mosei-aligned, synth-mosei-unaligned]
    seeds: [1, 2, 3]
    preset: small                 # or per method: {mlp: small}
    epochs: 5                     # neural methods only
    set: {mlp: [hidden=64]}       # a list for every method, or per method
    grid: {mlp: {lr: [1.0e-3, 3.0e-4]}}
    scale: 0.2                    # twins only
    slurm: {partition: gpu, timeout_min: 240, gpus_per_node: 1, cpus_per_task: 8}
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import yaml

from mmerbench import results
from mmerbench.data import paths
from mmerbench.errors import MmerbenchError

LAUNCHERS = ("local", "slurm", "submitit-local")
SWEEPS_DIR = "_sweeps"
GRID_KEYS = {"methods", "datasets", "seeds", "preset", "epochs", "set", "grid", "scale", "data_seed", "device",
             "launcher", "slurm"}
SUBMITIT_SHARED = {"timeout_min", "mem_gb", "gpus_per_node", "cpus_per_task", "nodes", "tasks_per_node", "name"}


@dataclass(frozen=True)
class Cell:
    """One seed of one config: one run folder."""

    method: str
    dataset: str
    seed: int
    preset: str | None = None
    epochs: int | None = None
    overrides: tuple[str, ...] = ()
    scale: float | None = None
    data_seed: int | None = None
    device: str = "auto"
    data_dir: str | None = None
    runs_dir: str | None = None

    def request(self):
        from mmerbench.runner import RunRequest

        return RunRequest(method=self.method, dataset=self.dataset, seeds=(self.seed,), epochs=self.epochs,
                          overrides=self.overrides, preset=self.preset, device=self.device, data_dir=self.data_dir,
                          runs_dir=self.runs_dir, scale=self.scale, data_seed=self.data_seed, progress=False)

    def label(self) -> str:
        extra = " ".join(self.overrides)
        return f"{self.method} {self.dataset} seed {self.seed}" + (f" [{extra}]" if extra else "")


@dataclass
class CellResult:
    cell: Cell
    status: str  # "ran", "resumed", "skipped" (finished before), "incompatible" (task the method lacks), "failed"
    seconds: float = 0.0
    config_hash: str | None = None
    folder: str | None = None
    log: str | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # test split


@dataclass
class SweepRequest:
    methods: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (1,)
    preset: str | dict[str, str] | None = None
    epochs: int | None = None
    overrides: tuple[str, ...] | dict[str, list[str]] = ()
    grid: dict[str, Any] = field(default_factory=dict)  # key -> values, or method -> {key -> values}
    scale: float | None = None
    data_seed: int | None = None
    device: str = "auto"
    data_dir: str | None = None
    runs_dir: str | None = None
    launcher: str = "local"
    slurm: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepReport:
    results: list[CellResult]
    folder: Path
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[CellResult]:
        return [r for r in self.results if r.status == "failed"]


# ---------------------------------------------------------------------------- the grid


def load_grid(path: str | Path) -> dict[str, Any]:
    """A grid file's options (see the module docstring); unknown keys are an error."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise MmerbenchError(f"Grid file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise MmerbenchError(f"Grid file {path} is not readable YAML ({type(e).__name__}).") from None
    if not isinstance(data, dict):
        raise MmerbenchError(f"Grid file {path} must hold a mapping of options.")
    unknown = sorted(set(data) - GRID_KEYS)
    if unknown:
        raise MmerbenchError(f"Grid file {path} has unknown keys {unknown} (known: {sorted(GRID_KEYS)}).")
    return data


def request_from(grid: dict[str, Any] | None = None, **cli: Any) -> SweepRequest:
    """Merge a grid file's options with command-line ones (given, non-empty values win)."""
    merged: dict[str, Any] = dict(grid or {})
    if "set" in merged:
        merged["overrides"] = merged.pop("set")
    for k, v in cli.items():
        if v is not None and v != () and v != [] and v != {}:
            merged[k] = v
    for k in ("methods", "datasets", "seeds"):
        v = merged.get(k)
        if isinstance(v, (str, int)):
            merged[k] = [v]
    for k in ("methods", "datasets"):
        v = merged.get(k)
        if not v or not all(isinstance(x, str) for x in v):
            raise MmerbenchError(f"A sweep needs --{k} (one or more names), but got {v!r}.")
    seeds = merged.get("seeds", [1])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise MmerbenchError(f"Expected `seeds` to be integers, but got {seeds!r}.")
    launcher = merged.get("launcher", "local")
    if launcher not in LAUNCHERS:
        raise MmerbenchError(f"Unknown launcher {launcher!r}: use {', '.join(LAUNCHERS)}.")
    slurm = merged.get("slurm") or {}
    if not isinstance(slurm, dict):
        raise MmerbenchError("`slurm` must be a mapping of submitit/Slurm parameters.")
    fields = {k: merged[k] for k in merged if k in SweepRequest.__dataclass_fields__}
    fields.update(methods=tuple(dict.fromkeys(merged["methods"])), datasets=tuple(dict.fromkeys(merged["datasets"])),
                  seeds=tuple(dict.fromkeys(seeds)), slurm=dict(slurm), launcher=launcher)
    return SweepRequest(**fields)


def _per_method(value: Any, method: str, methods: tuple[str, ...], what: str) -> Any:
    """`value` for every method, or, given as a mapping method → value, this method's entry."""
    if not isinstance(value, dict):
        return value
    unknown = sorted(set(value) - set(methods))
    if unknown:
        raise MmerbenchError(f"`{what}` names methods that are not in the sweep: {unknown} (sweep: {list(methods)}).")
    return value.get(method)


def _grid_overrides(grid: Any, method: str, methods: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The grid's points for one method as `key=value` overrides; a grid of mappings is per method."""
    if not isinstance(grid, dict):
        raise MmerbenchError(f"`grid` must map setting names to lists of values, but got {grid!r}.")
    if grid and all(isinstance(v, dict) for v in grid.values()):
        grid = _per_method(grid, method, methods, "grid") or {}
    keys = sorted(grid)
    values = []
    for k in keys:
        v = grid[k] if isinstance(grid[k], list) else [grid[k]]
        if not v:
            raise MmerbenchError(f"`grid.{k}` has no values.")
        values.append(v)
    return [tuple(f"{k}={_yaml_value(v)}" for k, v in zip(keys, combo)) for combo in itertools.product(*values)]


def _yaml_value(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


def expand(req: SweepRequest) -> list[Cell]:
    """Every cell of the sweep, in order: method, dataset, grid point, seed."""
    from mmerbench.data.registry import get_entry
    from mmerbench.registry import get_method

    for m in req.methods:
        get_method(m)  # an unknown name stops the sweep here, with a suggestion
    for d in req.datasets:
        get_entry(d)
    cells = []
    for m in req.methods:
        kind = get_method(m).kind
        preset = _per_method(req.preset, m, req.methods, "preset")
        fixed = _per_method(req.overrides, m, req.methods, "set") or ()
        if isinstance(fixed, str):
            fixed = (fixed,)
        for d in req.datasets:
            for point in _grid_overrides(req.grid, m, req.methods):
                for s in req.seeds:
                    cells.append(Cell(
                        method=m, dataset=d, seed=int(s), preset=preset,
                        epochs=req.epochs if kind == "torch" else None,  # baselines are not trained in epochs
                        overrides=tuple(fixed) + point, scale=req.scale, data_seed=req.data_seed,
                        device=req.device, data_dir=None if req.data_dir is None else str(Path(req.data_dir).resolve()),
                        runs_dir=str(paths.runs_root(req.runs_dir).resolve())))
    return cells


# ---------------------------------------------------------------------------- one cell


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120]


def _log_line(f, text: str) -> None:
    f.write(f"{datetime.now().isoformat(timespec='seconds')} {text}\n")
    f.flush()


def run_cell(cell: Cell, log: str) -> CellResult:
    """Run one cell, logging to `log`; never raises for a failure of the run (it is returned)."""
    from mmerbench.runner import run

    t = time.perf_counter()
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        _log_line(f, f"start {cell.label()} on {os.uname().nodename} (pid {os.getpid()})")
        _log_line(f, "request " + json.dumps(asdict(cell), sort_keys=True))

        def on_epoch(epoch: int, rec: dict) -> None:
            loss = rec.get("train_loss", {}).get("total", float("nan"))
            _log_line(f, f"epoch {epoch}: train loss {loss:.4f}, valid loss {rec.get('valid_loss', float('nan')):.4f}, "
                         f"{rec.get('seconds', 0):.1f} s")

        try:
            with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                (res,) = run(cell.request(), on_epoch_end=on_epoch)
        except Exception as exc:
            f.write(traceback.format_exc())
            msg = str(exc) if isinstance(exc, MmerbenchError) else f"{type(exc).__name__}: {exc}"
            _log_line(f, f"failed: {msg}")
            return CellResult(cell, "failed", time.perf_counter() - t, log=log, error=msg)
        test = {k: float(v) for k, v in res.metrics["test"].items()}
        _log_line(f, f"{res.status}: {res.folder} test " + json.dumps(test, sort_keys=True))
    return CellResult(cell, res.status, time.perf_counter() - t, config_hash=res.folder.parent.name,
                      folder=str(res.folder), log=log, metrics=test)


# ---------------------------------------------------------------------------- the sweep


def _incompatible(cell: Cell) -> str | None:
    """Why ``cell``'s method cannot run on its dataset's task at all, or None (unknown names fail later)."""
    from mmerbench.data.registry import get_entry
    from mmerbench.registry import get_method

    try:
        tasks, task = get_method(cell.method).tasks, get_entry(cell.dataset).spec.task
    except (MmerbenchError, AttributeError):
        return None
    if task in tasks:
        return None
    return f"{cell.method} handles {', '.join(tasks)} tasks, not {task}"


def sweep(req: SweepRequest, progress: Callable[[str], None] | None = None) -> SweepReport:
    """Run (or submit) every unfinished cell of the sweep; finished ones are skipped."""
    from mmerbench.runner import prepare

    say = progress or (lambda line: None)
    t0 = time.perf_counter()
    cells = expand(req)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = paths.runs_root(req.runs_dir).resolve() / SWEEPS_DIR / f"{stamp}-{os.getpid()}"
    out: list[CellResult | None] = [None] * len(cells)
    pending: list[tuple[int, Cell, str]] = []
    for i, cell in enumerate(cells):
        log = str(folder / f"{i + 1:04d}-{_slug(cell.method)}-{_slug(cell.dataset)}-seed{cell.seed}.log")
        why = _incompatible(cell)
        if why:  # BR on a regression set: an impossible pair, not a failure
            out[i] = CellResult(cell, "incompatible", error=why)
            continue
        try:
            prep = prepare(cell.request())
        except MmerbenchError as exc:  # e.g. a setting the method lacks: this cell fails, the others go on
            folder.mkdir(parents=True, exist_ok=True)
            Path(log).write_text(f"{cell.label()}\nfailed before running: {exc}\n")
            out[i] = CellResult(cell, "failed", log=log, error=str(exc))
            say(f"[{i + 1}/{len(cells)}] {cell.label()}: failed ({exc})")
            continue
        run_folder = prep.folders[cell.seed]
        done = results.read_metrics(run_folder)
        if done is not None:
            out[i] = CellResult(cell, "skipped", config_hash=prep.config_hash, folder=str(run_folder),
                                metrics={k: float(v) for k, v in done["test"].items()})
            continue
        pending.append((i, cell, log))
    skipped = sum(r is not None and r.status == "skipped" for r in out)
    odd = sum(r is not None and r.status == "incompatible" for r in out)
    say(f"sweep: {len(cells)} runs, {skipped} already finished, " + (f"{odd} incompatible (task), " if odd else "")
        + f"{len(pending)} to run ({req.launcher}); logs in {folder}")
    if pending:
        folder.mkdir(parents=True, exist_ok=True)
        if req.launcher == "local":
            for n, (i, cell, log) in enumerate(pending, 1):
                res = run_cell(cell, log)
                out[i] = res
                say(_progress_line(n, len(pending), res))
        else:
            for i, res in _submit(req, pending, folder, say):
                out[i] = res
    report = SweepReport([r for r in out if r is not None], folder, time.perf_counter() - t0)
    if report.results and folder.is_dir():
        results.write_json(folder / "summary.json", [_summary_dict(r) for r in report.results])
    return report


def _progress_line(n: int, total: int, res: CellResult) -> str:
    what = f"failed: {res.error} (log: {res.log})" if res.status == "failed" else f"{res.status} in {res.seconds:.1f} s"
    return f"[{n}/{total}] {res.cell.label()}: {what}"


def _summary_dict(r: CellResult) -> dict[str, Any]:
    d = asdict(r)
    d["cell"] = {k: v for k, v in d["cell"].items() if v not in (None, ())}
    return d


def _executor_parameters(slurm: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"name": "mmerbench-sweep"}
    for k, v in slurm.items():
        key = k if k in SUBMITIT_SHARED or k.startswith("slurm_") else f"slurm_{k}"
        params[key] = v
    return params


def _submit(req: SweepRequest, pending: list[tuple[int, Cell, str]], folder: Path,
            say: Callable[[str], None]):
    """Submit the pending cells as one job array and yield (index, result) as jobs finish."""
    import submitit

    from mmerbench.data.registry import get_entry, load_dataset

    cluster = "slurm" if req.launcher == "slurm" else "local"
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise MmerbenchError("--launcher slurm needs Slurm's `sbatch` on PATH; use --launcher local here.")
    for name, scale, seed, data_dir in sorted({(c.dataset, c.scale, c.data_seed, c.data_dir) for _, c, _ in pending},
                                              key=str):
        if get_entry(name).synthetic:
            load_dataset(name, data_dir=data_dir, scale=scale, seed=seed)  # generate and cache once, here
    executor = submitit.AutoExecutor(folder=folder / "submitit", cluster=cluster)
    try:
        executor.update_parameters(**_executor_parameters(req.slurm))
    except (NameError, AssertionError, ValueError, TypeError) as e:
        raise MmerbenchError(f"Invalid Slurm/submitit parameters {req.slurm}: {str(e).splitlines()[0]}") from None
    jobs = executor.map_array(run_cell, [c for _, c, _ in pending], [log for _, _, log in pending])
    index = {id(job): item for job, item in zip(jobs, pending)}
    say(f"submitted {len(jobs)} job(s) to {cluster}: {jobs[0].job_id}" + (f" … {jobs[-1].job_id}" if len(jobs) > 1 else ""))
    poll = 1.0 if cluster == "local" else 30.0  # seconds between status queries (sacct on Slurm)
    for n, job in enumerate(submitit.helpers.as_completed(jobs, poll_frequency=poll), 1):
        i, cell, log = index[id(job)]
        try:
            res = job.result()
        except Exception as exc:  # the job itself died (time limit, node failure, out of memory)
            lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
            res = CellResult(cell, "failed", log=str(job.paths.stderr),
                             error=f"job {job.job_id} failed: {lines[-1] if lines else type(exc).__name__}")
        say(_progress_line(n, len(jobs), res))
        yield i, res


def format_report(report: SweepReport) -> str:
    from tabulate import tabulate

    from mmerbench.report.console import HEADLINE

    rows = []
    for r in report.results:
        keys = next((k for k in HEADLINE.values() if set(k) <= set(r.metrics)), ())[:3]
        shown = ", ".join(f"{k} {r.metrics[k]:.4f}" for k in keys)
        rows.append([r.cell.method, r.cell.dataset, r.config_hash or "", r.cell.seed, r.status,
                     f"{r.seconds:.1f}" if r.status not in ("skipped", "incompatible") else "",
                     f"{r.error}  (log: {r.log})" if r.status == "failed" else r.error if r.status == "incompatible"
                     else shown])
    table = tabulate(rows, headers=["method", "dataset", "config", "seed", "status", "s", "test / error"],
                     disable_numparse=True)
    counts = ", ".join(f"{report.count(s)} {s}" for s in ("ran", "resumed", "skipped", "incompatible", "failed")
                       if report.count(s))
    logs = f" Logs: {report.folder}" if report.folder.is_dir() else ""
    return f"{table}\n\n{len(report.results)} runs: {counts}; {report.seconds:.0f} s.{logs}"
