"""The `mmerbench` command line: parse options, call the library, print.

Heavy imports (torch, pandas, scikit-learn) happen inside the commands, so
``mmerbench --help`` answers at once.
"""

from __future__ import annotations

import sys

import click

from mmerbench.errors import MmerbenchError

# Options that take several values after one flag (`--seeds 1 2 3`), rewritten
# to click's repeated form (`--seeds 1 --seeds 2 --seeds 3`) before parsing.
GREEDY_OPTIONS = ("--seeds", "--set", "--batch-sizes", "--methods", "--datasets")


def _is_flag(token: str) -> bool:
    if not token.startswith("-") or token == "-":
        return False
    try:
        float(token)  # a negative number is a value
        return False
    except ValueError:
        return True


def _expand_greedy(args: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a in GREEDY_OPTIONS:
            j = i + 1
            while j < len(args) and not _is_flag(args[j]):
                out += [a, args[j]]
                j += 1
            if j == i + 1:
                out.append(a)  # let click report the missing value
            i = j
        else:
            out.append(a)
            i += 1
    return out


class GreedyCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _expand_greedy(args))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mmerbench")
def cli() -> None:
    """Benchmark multimodal emotion recognition methods under one protocol.

    \b
    Examples:
      mmerbench datasets
      mmerbench run --method br --dataset synth-mosei-aligned --seeds 1 2 3
      mmerbench run --method tailor --dataset mosei-unaligned --data-dir ~/data
    """


@cli.command(cls=GreedyCommand)
@click.option("--method", "-m", required=True, help="A registered method or baseline (see `mmerbench methods`).")
@click.option("--dataset", "-d", required=True,
              help="A registered dataset (see `mmerbench datasets`) or the path of a canonical folder.")
@click.option("--seeds", multiple=True, type=int, default=(1,), show_default=True, help="One run per seed: --seeds 1 2 3.")
@click.option("--epochs", type=int, default=None, help="Override the config's number of epochs.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value: --set lr=1e-4 modalities=[text].")
@click.option("--preset", default=None, help="A named preset of the method's config, e.g. `small` for CPU smoke runs.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Data root (default $MMERBENCH_DATA, else ~/.cache/mmerbench/data).")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None, help="Run store (default $MMERBENCH_RUNS, else ./runs).")
@click.option("--force", is_flag=True, help="Run again even when a finished run exists.")
@click.option("--scale", type=float, default=None, help="Synthetic twins: fraction of the real split sizes (default 0.2; 1 = full size).")
@click.option("--data-seed", type=int, default=None, help="Synthetic twins: the seed the data is generated from (default 0).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--max-memory", default=None, metavar="SIZE",
              help="Fit training into SIZE (e.g. 20GB): turn on checkpoint_layers, then exact gradient accumulation, as needed.")
@click.option("--dtype", type=click.Choice(["fp32", "bf16"]), default=None,
              help="Train and score in this precision on any device (bf16 = autocast). Default: bf16 on CUDA where the config's `amp` is on, else fp32.")
def run(method, dataset, seeds, epochs, overrides, preset, device, data_dir, runs_dir, force, scale, data_seed, quiet,
        max_memory, dtype):
    """Train and score METHOD on DATASET, one run per seed, into the run store.

    \b
    Example:
      mmerbench run --method br --dataset synth-mosei-aligned --seeds 1 2 3
    """
    from mmerbench.report.console import run_table
    from mmerbench.runner import RunRequest, run as run_all

    req = RunRequest(
        method=method, dataset=dataset, seeds=tuple(dict.fromkeys(seeds)), epochs=epochs,
        overrides=tuple(overrides), preset=preset, device=device, data_dir=data_dir, runs_dir=runs_dir,
        force=force, scale=scale, data_seed=data_seed, progress=not quiet, max_memory=max_memory, dtype=dtype,
    )
    out = run_all(req)
    click.echo(run_table(out))


@cli.command(cls=GreedyCommand)
@click.option("--method", "-m", required=True, help="A registered neural method (see `mmerbench methods`).")
@click.option("--dataset", "-d", required=True, help="A registered dataset or the path of a canonical folder.")
@click.option("--weights", required=True, type=click.Path(dir_okay=True), help="A torch.save file: a state dict, a checkpoint holding one, or a pickled module (read without running code).")
@click.option("--from", "origin", type=click.Choice(["authors", "ours"]), default="authors", show_default=True, help="authors: the authors' state dict, mapped by the method's importer; ours: our own (e.g. a run's model.pt).")
@click.option("--seed", type=int, default=1, show_default=True, help="The seed folder the record goes into.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value (the model must match the weights).")
@click.option("--preset", default=None, help="A named preset of the method's config.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Data root (default $MMERBENCH_DATA, else ~/.cache/mmerbench/data).")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None, help="Run store (default $MMERBENCH_RUNS, else ./runs).")
@click.option("--force", is_flag=True, help="Score again even when this record exists.")
@click.option("--scale", type=float, default=None, help="Synthetic twins: fraction of the real split sizes (default 0.2).")
@click.option("--data-seed", type=int, default=None, help="Synthetic twins: the seed the data is generated from (default 0).")
def evaluate(method, dataset, weights, origin, seed, overrides, preset, device, data_dir, runs_dir, force, scale,
             data_seed):
    """Score given weights (the authors' or ours) on valid and test, stored as a run marked imported.

    \b
    Examples:
      mmerbench evaluate --method mult --dataset mosei-aligned --weights mult.pt
      mmerbench evaluate -m mlp -d synth-mosei-aligned --weights runs/.../seed-1/model.pt --from ours
    """
    from mmerbench.evaluate import EvaluateRequest, evaluate as run_evaluate
    from mmerbench.report.console import run_table

    req = EvaluateRequest(method=method, dataset=dataset, weights=weights, origin=origin, seed=seed,
                          overrides=tuple(overrides), preset=preset, device=device, data_dir=data_dir,
                          runs_dir=runs_dir, force=force, scale=scale, data_seed=data_seed)
    click.echo(run_table([run_evaluate(req)]))


@cli.command(cls=GreedyCommand)
@click.option("--method", "-m", required=True, help="A registered method or baseline with finished runs.")
@click.option("--dataset", "-d", required=True, help="The dataset the runs were trained on.")
@click.option("--seeds", multiple=True, type=int, default=(1,), show_default=True, help="The runs' seeds: --seeds 1 2 3.")
@click.option("--corruptions", multiple=True, help="Names or families (default: all): missing, noise, tmask, misalign, or e.g. missing-text noise-0.3 tmask-0.5 misalign-vision.")
@click.option("--epochs", type=int, default=None, help="The --epochs the runs used.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="The --set values the runs used.")
@click.option("--preset", default=None, help="The --preset the runs used.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Data root (default $MMERBENCH_DATA, else ~/.cache/mmerbench/data).")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None, help="Run store (default $MMERBENCH_RUNS, else ./runs).")
@click.option("--force", is_flag=True, help="Score a corruption again even when its record exists.")
@click.option("--scale", type=float, default=None, help="Synthetic twins: the --scale the runs used.")
@click.option("--data-seed", type=int, default=None, help="Synthetic twins: the --data-seed the runs used.")
@click.option("--dtype", type=click.Choice(["fp32", "bf16"]), default=None, help="The --dtype the runs used.")
def robustness(method, dataset, seeds, corruptions, epochs, overrides, preset, device, data_dir, runs_dir, force,
               scale, data_seed, dtype):
    """Score finished runs' stored models on the test split under missing and corrupted modalities.

    \b
    Example:
      mmerbench robustness --method mlp --dataset synth-mosei-aligned --seeds 1 2 3 --preset small
    """
    from mmerbench.report.leaderboard import select_metrics
    from mmerbench.robustness.scoring import RobustnessRequest, robustness as run_robustness

    req = RobustnessRequest(method=method, dataset=dataset, seeds=tuple(dict.fromkeys(seeds)),
                            corruptions=tuple(corruptions), epochs=epochs, overrides=tuple(overrides),
                            preset=preset, device=device, data_dir=data_dir, runs_dir=runs_dir, force=force,
                            scale=scale, data_seed=data_seed, dtype=dtype)
    out = run_robustness(req)
    if not out:
        return
    from mmerbench.data.registry import get_entry

    metric = select_metrics(get_entry(dataset).spec.task, list(out[0].test), None)[0][0]
    by_name: dict[str, list] = {}
    for r in out:
        by_name.setdefault(r.corruption, []).append(r)
    click.echo(f"{'corruption':<24} {'seeds':>5}  {'status':<8} {metric} (test, mean over seeds)")
    for name, rs in by_name.items():
        vals = [r.test[metric] for r in rs if metric in r.test]
        status = "scored" if any(r.status == "scored" for r in rs) else "skipped"
        mean = f"{sum(vals) / len(vals):.4f}" if vals else "-"
        click.echo(f"{name:<24} {len(rs):>5}  {status:<8} {mean}")


@cli.command()
@click.option("--dataset", "-d", default=None,
              help="Also count each neural method's parameters at its paper config for this dataset.")
def methods(dataset):
    """List the registered methods and baselines.

    \b
    Example:
      mmerbench methods --dataset mosei-aligned
    """
    from tabulate import tabulate

    from mmerbench.registry import METHODS

    rows, headers = [], ["method", "kind", "tasks", "paper"]
    if dataset:
        from mmerbench.runner import parameter_count

        headers.append(f"parameters ({dataset})")
    for name in METHODS.names():
        cls = METHODS.get(name)
        row = [name, cls.kind, ", ".join(cls.tasks), cls.paper]
        if dataset:
            n = parameter_count(name, dataset)
            row.append("—" if n is None else f"{n:,}")
        rows.append(row)
    click.echo(tabulate(rows, headers=headers, disable_numparse=True))


@cli.group("config")
def config_group():
    """Show the config a run would use."""


@config_group.command("show", cls=GreedyCommand)
@click.option("--method", "-m", required=True, help="A registered method or baseline (see `mmerbench methods`).")
@click.option("--dataset", "-d", required=True, help="The dataset: its entry in the config file and its threshold are part of the config.")
@click.option("--preset", default=None, help="A named preset of the method's config.")
@click.option("--epochs", type=int, default=None, help="As `run --epochs`.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="As `run --set`.")
@click.option("--scale", type=float, default=None, help="Synthetic twins: as `run --scale` (part of the hash).")
@click.option("--data-seed", type=int, default=None, help="Synthetic twins: as `run --data-seed` (part of the hash).")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None, help="Run store the folder is shown in.")
def config_show(method, dataset, preset, epochs, overrides, scale, data_seed, runs_dir):
    """Print the resolved config of METHOD on DATASET and its hash: the same hash `run` would use.

    \b
    Example:
      mmerbench config show --method tailor --dataset synth-mosei-aligned --preset small --set threshold=0.35
    """
    from mmerbench.config_show import show
    from mmerbench.runner import RunRequest

    click.echo(show(RunRequest(method=method, dataset=dataset, preset=preset, epochs=epochs,
                               overrides=tuple(overrides), scale=scale, data_seed=data_seed, runs_dir=runs_dir)),
               nl=False)


@cli.command()
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Data root to look in.")
def datasets(data_dir):
    """List the registered datasets: task, labels, modalities, sizes, and the files found.

    \b
    Example:
      mmerbench datasets --data-dir ~/data
    """
    from tabulate import tabulate

    from mmerbench.data import paths
    from mmerbench.data.overview import overview

    rows = [(r.name, r.task, ", ".join(r.labels), r.modalities, r.sizes, r.status, r.format)
            for r in overview(data_dir)]
    headers = ["dataset", "task", "labels", "modalities (dim×len)", "train/valid/test", "data", "format"]
    click.echo(tabulate(rows, headers=headers, disable_numparse=True))
    click.echo(f"\ndata root: {paths.data_root(data_dir)}  (twins' sizes shown at full scale; default --scale 0.2)")


@cli.group()
def data():
    """Check datasets and convert them to the canonical format.

    \b
    Examples:
      mmerbench data verify mosi --data-dir ~/data
      mmerbench data export synth-iemocap ./iemocap-twin
      mmerbench data inspect CMU_MOSI_Opinion_Labels.csd
    """


@data.command("verify")
@click.argument("name")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Data root to look in.")
@click.option("--scale", type=float, default=None, help="Synthetic twins: fraction of the real split sizes (default 0.2).")
@click.option("--data-seed", type=int, default=None, help="Synthetic twins: the seed the data is generated from.")
def data_verify(name, data_dir, scale, data_seed):
    """Read NAME from its files (not the cache) and check shapes, labels, non-finite values and checksums.

    NAME is a registered dataset, a twin, or a canonical folder's path. Exits
    with status 1 when a check fails.

    \b
    Example:
      mmerbench data verify mosei-aligned --data-dir ~/data
    """
    from tabulate import tabulate

    from mmerbench.data.overview import modalities_text, sizes_text, verify

    rep = verify(name, data_dir=data_dir, scale=scale, seed=data_seed)
    click.echo(f"{rep.name}: {rep.spec.task}, format {rep.format}, {modalities_text(rep.spec)}, "
               f"sizes {sizes_text(rep.spec)}")
    click.echo(f"source: {rep.source}")
    click.echo(tabulate(rep.splits, headers="keys", disable_numparse=True))
    for c in rep.checks:
        click.echo(f"  [{c.level}] {c.message}")
    n_warn = sum(c.level == "warn" for c in rep.checks)
    if not rep.ok:
        raise MmerbenchError(f"{name} failed verification ({sum(c.level == 'error' for c in rep.checks)} error(s)).")
    click.echo(f"OK ({n_warn} warning(s))")


@data.command("export")
@click.argument("name")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Data root to read from.")
@click.option("--scale", type=float, default=None, help="Synthetic twins: fraction of the real split sizes (default 0.2).")
@click.option("--data-seed", type=int, default=None, help="Synthetic twins: the seed the data is generated from.")
@click.option("--force", is_flag=True, help="Replace OUT when it exists.")
def data_export(name, out, data_dir, scale, data_seed, force):
    """Write dataset NAME to the folder OUT in the canonical format (spec.yaml + one .npz per split).

    The folder can then be used as `--dataset OUT`, or copied under the data
    root as `msp-improv/` or `ur-funny/` for those datasets.

    \b
    Example:
      mmerbench data export mosi ./mosi-canonical --data-dir ~/data
    """
    from mmerbench.data.overview import export

    path = export(name, out, data_dir=data_dir, scale=scale, seed=data_seed, overwrite=force)
    click.echo(f"wrote {path} (spec.yaml, train.npz, valid.npz, test.npz)")


@data.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False))
def data_inspect(file):
    """Show what a CMU-MultimodalSDK computational sequence (.csd) holds, from its headers.

    Prints the sequence's name, its feature dimension, its entries (videos or
    segments) and their intervals in total. Needs h5py (pip install "mmerbench[csd]").

    \b
    Example:
      mmerbench data inspect CMU_MOSI_Opinion_Labels.csd
    """
    from mmerbench.data.csd import CsdFile

    with CsdFile(file) as f:
        s = f.summary()
    click.echo(f"sequence: {s.name}")
    click.echo(f"features: {'words (byte strings)' if s.text else f'{s.dim} per interval'}")
    click.echo(f"entries: {s.entries:,}")
    click.echo(f"intervals: {s.intervals:,}")
    for key in ("dataset name", "computational sequence version", "dimension names"):
        if s.metadata.get(key) not in (None, "", []):
            click.echo(f"{key}: {str(s.metadata[key])[:200]}")


@data.command("import-csd")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--modality", "modalities", multiple=True, required=True, metavar="NAME=FILE.csd",
              help="A feature sequence and the modality it becomes (repeat: text=…WordVectors.csd audio=…COVAREP.csd …).")
@click.option("--labels", "labels", required=True, type=click.Path(dir_okay=False), help="The label sequence (.csd).")
@click.option("--folds", required=True, metavar="cmu-mosi|cmu-mosei|FILE.json",
              help="The SDK's standard folds (shipped), or a JSON file {train: [...], valid: [...], test: [...]} of video ids.")
@click.option("--reference", default="text", show_default=True, help="The modality whose intervals are the words everything is averaged over.")
@click.option("--task", type=click.Choice(["auto", "sentiment", "emotions"]), default="auto", show_default=True,
              help="sentiment: regression on [-3, 3]; emotions: MOSEI's six emotions, present when intensity > 0; auto: emotions for 7-column labels.")
@click.option("--length", type=int, default=50, show_default=True, help="Words per segment (pad or truncate).")
@click.option("--keep", type=click.Choice(["last", "first"]), default="last", show_default=True, help="Which words a truncated segment keeps (last: the SDK's get_tensors).")
@click.option("--name", default=None, help="The dataset's name (default: OUT's folder name).")
@click.option("--work", type=click.Path(file_okay=False), default=None, help="Cache of aligned videos (default: .OUT.csd-work next to OUT); a rerun resumes from it.")
@click.option("--force", is_flag=True, help="Replace OUT when it exists.")
def data_import_csd(out, modalities, labels, folds, reference, task, length, keep, name, work, force):
    """Build a canonical dataset folder OUT from CMU-MultimodalSDK .csd files.

    Every feature sequence is averaged over the words of the reference
    sequence (as the SDK's align with an averaging collapse), segments are cut
    by the label intervals and split by the folds. Train on it with
    `mmerbench run --dataset OUT`.

    \b
    Example:
      mmerbench data import-csd ./mosi-csd --folds cmu-mosi \\
        --modality text=CMU_MOSI_TimestampedWordVectors.csd \\
        --modality audio=CMU_MOSI_COVAREP.csd --modality vision=CMU_MOSI_Visual_Facet_41.csd \\
        --labels CMU_MOSI_Opinion_Labels.csd
    """
    from mmerbench.data.csd_import import CsdImport, import_csd

    mods = {}
    for item in modalities:
        m, sep, path = item.partition("=")
        if not sep or not m or not path:
            raise MmerbenchError(f"--modality {item!r} is not NAME=FILE.csd.")
        if m in mods:
            raise MmerbenchError(f"--modality {m!r} is given twice.")
        mods[m] = path
    job = CsdImport(modalities=mods, labels=labels, folds=folds, reference=reference, task=task,
                    length=length, keep=keep, name=name)
    r = import_csd(job, out, work=work, overwrite=force)
    click.echo(f"wrote {r.out}: {r.spec.task} ({', '.join(r.spec.labels)}), "
               f"{', '.join(f'{m} {v.dim}x{v.length}' for m, v in r.spec.modalities.items())}, "
               f"train/valid/test {'/'.join(str(r.spec.splits[s]) for s in ('train', 'valid', 'test'))} segments "
               f"from {r.videos} videos ({r.reused} from the work cache)")
    left = [f"{n:,} {what}" for what, n in r.dropped.items() if n]
    if left:
        click.echo("left out: " + "; ".join(left))
    filled = [f"{m} {n:,}" for m, n in r.zero_filled.items() if n]
    if filled:
        click.echo("words with no overlapping feature row (zeros): " + ", ".join(filled))
    if r.nonfinite:
        click.echo(f"non-finite feature values set to 0: {r.nonfinite:,}")


def _write_or_print(doc, out: str, fmt: str, stem: str) -> None:
    from mmerbench.report import render

    fmts = render.formats(fmt)
    if out == "-":
        if len(fmts) != 1:
            raise MmerbenchError("--out - prints one format: add --format md, html or json.")
        click.echo(render.render(doc, fmts[0]), nl=False)
        return
    for path in render.write(doc, out, stem, fmts):
        click.echo(f"wrote {path}")


@cli.command()
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None, help="Run store (default $MMERBENCH_RUNS, else ./runs).")
@click.option("--out", default="leaderboards", show_default=True, help="Output folder; `-` prints one format to stdout.")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json", "all"]), default="all", show_default=True)
@click.option("--metric", "metrics", multiple=True, help="Metric columns (repeat or comma-separate); `all` = every metric; default: the task's headline metrics.")
@click.option("--reference", default=None, metavar="METHOD[@HASH]", help="Mark rows significantly better (▲) / worse (▼) than this one, after Holm.")
@click.option("--test", type=click.Choice(["two-level", "welch", "aso", "bootstrap", "permutation"]), default="two-level", show_default=True, help="Significance test for --reference (two-level: seeds and test samples resampled together).")
@click.option("--interval", type=click.Choice(["std", "ci"]), default="std", show_default=True, help="Cells: mean ± std over seeds, or mean [1 − alpha interval] from a two-level bootstrap of the stored predictions.")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Family-wise significance level (Holm across each table's comparisons).")
@click.option("--data", type=click.Choice(["real", "synthetic", "all"]), default="real", show_default=True, help="Real datasets, synthetic twins, or both (always in separate tables).")
@click.option("--no-plots", is_flag=True, help="Leave the plots out of the HTML page.")
def leaderboard(runs_dir, out, fmt, metrics, reference, test, interval, alpha, data, no_plots):
    """Leaderboards from the run store: one table per dataset, as Markdown, HTML and JSON.

    \b
    Examples:
      mmerbench leaderboard --data synthetic
      mmerbench leaderboard --reference br --metric micro_f1,acc --interval ci
      mmerbench leaderboard --format md --out -
    """
    from mmerbench.data import paths
    from mmerbench.report.leaderboard import LeaderboardRequest, build

    keys = tuple(k.strip() for m in metrics for k in m.split(",") if k.strip())
    req = LeaderboardRequest(runs_dir=paths.runs_root(runs_dir), metrics=keys, data=data, reference=reference,
                             test=test, alpha=alpha, plots=not no_plots, interval=interval)
    stem = {"real": "leaderboard", "synthetic": "leaderboard-synthetic", "all": "leaderboard-all"}[data]
    from mmerbench import results

    for folder, why in results.malformed_runs(req.runs_dir):
        click.echo(f"skipped {folder}: {results.METRICS_FILE} is not a usable result ({why}).", err=True)
    _write_or_print(build(req), out, fmt, stem)


@cli.command(cls=GreedyCommand)
@click.argument("ids", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json", "all"]), default="all", show_default=True)
@click.option("--data", type=click.Choice(["real", "synthetic"]), default="real", show_default=True, help="Look our numbers up on the real datasets or on their synth-* twins.")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None, help="Run store (default $MMERBENCH_RUNS, else ./runs).")
@click.option("--runs", "list_runs", is_flag=True, help="Print the `mmerbench run` commands that fill the tables instead.")
@click.option("--seeds", multiple=True, type=int, default=(1, 2, 3), show_default=True, help="Seeds in the --runs commands: --seeds 1 2 3.")
@click.option("--preset", default=None, help="A preset for every row that names none (e.g. `small` for CPU runs on the twins).")
@click.option("--scale", type=float, default=None, help="Twins only: the --scale the runs used (default 0.2).")
@click.option("--data-seed", type=int, default=None, help="Twins only: the --data-seed the runs used (default 0).")
@click.option("--papers-dir", type=click.Path(file_okay=False), default=None, help="Folder of the papers' *.yaml (default leaderboards/papers of this checkout, or $MMERBENCH_PAPERS).")
@click.option("--out", default="leaderboards", show_default=True, help="Output folder; `-` prints one format to stdout.")
def table(ids, fmt, data, runs_dir, list_runs, seeds, preset, scale, data_seed, papers_dir, out):
    """The papers' tables (IDS, default all) with our runs beside the published numbers.

    \b
    Examples:
      mmerbench table tailor-t3 --runs --data synthetic --preset small
      mmerbench table tailor-t2 tailor-t3 --format md --out -
      mmerbench table --data synthetic --preset small
    """
    from mmerbench.report import papers

    req = papers.TableRequest(ids=tuple(ids), data=data, runs_dir=runs_dir, papers_dir=papers_dir, scale=scale,
                              data_seed=data_seed, seeds=tuple(dict.fromkeys(seeds)), preset=preset)
    if list_runs:
        click.echo("\n".join(papers.run_commands(req)))
        return
    _write_or_print(papers.build(req), out, fmt, "tables" + ("-synthetic" if data == "synthetic" else ""))


@cli.command()
@click.argument("a")
@click.argument("b")
@click.option("--dataset", "-d", required=True, help="The dataset both methods ran on.")
@click.option("--metric", default="micro_f1", show_default=True,
              help="Any metric of the dataset's task (its direction comes from mmerbench.metrics).")
@click.option("--test", "tests", multiple=True, default=("two-level",), show_default=True,
              type=click.Choice(["two-level", "welch", "aso", "bootstrap", "permutation", "all"]),
              help="Which tests; repeat for several (--test welch --test bootstrap), or all. The default "
                   "resamples seeds and test samples together.")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None,
              help="Run store (default $MMERBENCH_RUNS, else ./runs).")
@click.option("--alpha", type=float, default=0.05, show_default=True,
              help="Significance level (ASO: confidence 1 - alpha).")
@click.option("--resamples", type=int, default=10_000, show_default=True,
              help="Bootstrap resamples and permutations of the per-sample tests.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the resampling.")
def compare(a, b, dataset, metric, tests, runs_dir, alpha, resamples, seed):
    """Test whether method A or method B is better on DATASET.

    A and B are method names, or METHOD@CONFIG_HASH when a method has several
    configs in the run store. Prints each test's statistic, p-value (ASO:
    ε_min) and verdict. The default, two-level, resamples seeds and test
    samples together (the stored test predictions, matched by sample id) and
    adds the interval of the difference and P(A > B); Welch and ASO work
    over seeds, bootstrap and permutation over samples. A test whose input
    cannot decide (one seed, no variance) says "not applicable" and why.

    \b
    Examples:
      mmerbench compare mlp br --dataset synth-mosei-aligned --metric micro_f1
      mmerbench compare mlp br -d synth-mosei-aligned --test all
    """
    from mmerbench.stats import compare_runs, format_comparison

    comp = compare_runs(runs_dir, dataset, a, b, metric=metric, tests=tests, alpha=alpha, seed=seed,
                        n_resamples=resamples)
    click.echo(format_comparison(comp), nl=False)


@cli.command(cls=GreedyCommand)
@click.option("--method", "-m", required=True, help="A registered method or baseline (see `mmerbench methods`).")
@click.option("--dataset", "-d", required=True, help="A registered dataset: its spec gives the input shapes (no files needed for neural methods).")
@click.option("--preset", default=None, help="A named preset of the method's config, e.g. `small`.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value: --set hidden=64.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--batch-sizes", multiple=True, type=int, default=(1, 64), show_default=True, help="Inference throughput at these batch sizes: --batch-sizes 1 64.")
@click.option("--dtype", type=click.Choice(["fp32", "bf16"]), default=None, help="Default: as the runner runs the config (bf16 autocast on CUDA when `amp` is on, else fp32).")
@click.option("--steps", type=int, default=20, show_default=True, help="Timed training steps (after --warmup).")
@click.option("--warmup", type=int, default=3, show_default=True, help="Untimed calls before each timed phase.")
@click.option("--latency-iters", type=int, default=200, show_default=True, help="Batch-1 calls for the latency percentiles.")
@click.option("--max-seconds", type=float, default=30.0, show_default=True, help="Per phase: no new iteration after this long (once a minimum is done).")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None, help="Run store (default $MMERBENCH_RUNS, else ./runs).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Data root (baselines read the dataset).")
@click.option("--scale", type=float, default=None, help="Synthetic twins: the --scale of the runs to sit beside (part of the config hash).")
@click.option("--data-seed", type=int, default=None, help="Synthetic twins: the --data-seed of those runs.")
@click.option("--flops/--no-flops", default=True, show_default=True, help="Count FLOPs (one more forward and training step at the training batch size).")
def profile(method, dataset, preset, overrides, device, batch_sizes, dtype, steps, warmup, latency_iters, max_seconds,
            runs_dir, data_dir, scale, data_seed, flops):
    """Training throughput, batch-1 latency, inference throughput, peak memory, parameters and FLOPs
    of METHOD's config on DATASET; the record is stored beside that config's runs.

    \b
    Examples:
      mmerbench profile --method mlp --dataset synth-mosei-aligned --device cpu
      mmerbench profile --method tailor --dataset mosei-unaligned --device cuda --dtype bf16 --batch-sizes 1 64 256
    """
    from mmerbench.profile import ProfileRequest, format_record, profile as run_profile

    req = ProfileRequest(method=method, dataset=dataset, preset=preset, overrides=tuple(overrides), device=device,
                         dtype=dtype, batch_sizes=tuple(batch_sizes), runs_dir=runs_dir, data_dir=data_dir,
                         scale=scale, data_seed=data_seed, warmup=warmup, train_steps=steps,
                         latency_iters=latency_iters, max_seconds=max_seconds, flops=flops)
    res = run_profile(req)
    click.echo(format_record(res.record, res.path))


@cli.command()
@click.option("--suite", type=click.Path(dir_okay=False), default="ci/suite.yaml", show_default=True, help="The suite: which runs, seeds, metrics and floors.")
@click.option("--baseline", type=click.Path(dir_okay=False), default="ci/baseline.json", show_default=True, help="The stored per-seed metrics to compare with.")
@click.option("--update", is_flag=True, help="Rewrite the baseline from this run (deliberately: review the diff before committing it).")
@click.option("--reason", default=None, help="With --update: why the numbers moved (recorded in the baseline's history).")
@click.option("--floors-only", is_flag=True, help="Check the quality floors only, not the exact numbers (a machine whose numbers differ bitwise: another CPU, a GPU).")
@click.option("--device", default=None, help="With --floors-only: run the suite on this device (cpu, cuda, auto) instead of the suite's.")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None, help="Keep the suite's runs here: a new or empty folder (default: a temporary folder).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Data root where the twins are cached (default $MMERBENCH_DATA, else ~/.cache/mmerbench/data).")
@click.option("--all", "show_all", is_flag=True, help="List every compared metric and floor, not only those that failed.")
@click.option("--quiet", "-q", is_flag=True, help="No per-run progress lines.")
def check(suite, baseline, update, reason, floors_only, device, runs_dir, data_dir, show_all, quiet):
    """Run the regression suite: its numbers must reproduce the baseline exactly, and each
    floored run must beat its label-prior score by a margin.

    Exit code 1 when a number changed, a metric vanished or appeared, a run fell below its
    floor, a run failed, or a run is missing from the baseline.

    \b
    Examples:
      mmerbench check
      mmerbench check --update --reason "MulT: fix the attention mask"   # commit ci/baseline.json
      mmerbench check --floors-only --device cuda   # on a GPU, or another CPU
      mmerbench check --runs-dir /tmp/check-runs --all
    """
    from mmerbench.check import CheckRequest, check as run_check, format_report

    say = None if quiet else (lambda line: click.echo(line, err=True))
    report = run_check(CheckRequest(suite=suite, baseline=baseline, update=update, reason=reason,
                                    exact=not floors_only, device=device, runs_dir=runs_dir, data_dir=data_dir,
                                    progress=say))
    click.echo(format_report(report, show_all=show_all))
    if report.failed:
        sys.exit(1)


@cli.command(cls=GreedyCommand)
@click.option("--methods", multiple=True, help="Methods and baselines: --methods br mlp.")
@click.option("--datasets", multiple=True, help="Datasets: --datasets synth-mosei-aligned synth-mosei-unaligned.")
@click.option("--seeds", multiple=True, type=int, help="Seeds: --seeds 1 2 3 (default 1).")
@click.option("--preset", default=None, help="A preset for every method, e.g. `small` (per method in a --grid file).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Fixed settings for every method: --set lr=1e-4.")
@click.option("--epochs", type=int, default=None, help="Epochs for the neural methods (baselines are not trained in epochs).")
@click.option("--grid", "grid_file", type=click.Path(dir_okay=False), default=None, help="A YAML file with these options and a hyperparameter `grid` (see README).")
@click.option("--launcher", type=click.Choice(["local", "slurm", "submitit-local"]), default=None, help="local (default): one run after another here; slurm: a submitit job array; submitit-local: submitit's local executor.")
@click.option("--partition", default=None, help="Slurm partition.")
@click.option("--timeout-min", type=int, default=None, help="Slurm time limit per run, minutes.")
@click.option("--gpus-per-node", type=int, default=None, help="Slurm GPUs per run.")
@click.option("--cpus-per-task", type=int, default=None, help="Slurm CPUs per run.")
@click.option("--mem-gb", type=float, default=None, help="Slurm memory per run, GB.")
@click.option("--device", default=None, help="auto (default), cpu or cuda.")
@click.option("--scale", type=float, default=None, help="Synthetic twins: fraction of the real split sizes.")
@click.option("--data-seed", type=int, default=None, help="Synthetic twins: the data seed.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Data root.")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None, help="Run store (default $MMERBENCH_RUNS, else ./runs).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def sweep(methods, datasets, seeds, preset, overrides, epochs, grid_file, launcher, partition, timeout_min,
          gpus_per_node, cpus_per_task, mem_gb, device, scale, data_seed, data_dir, runs_dir, quiet):
    """Run every method × dataset × setting × seed that is not finished yet; a failed run is
    reported with its log and does not stop the others (exit code 1 if any failed).

    \b
    Examples:
      mmerbench sweep --methods br mlp --datasets synth-mosei-aligned synth-mosei-unaligned --seeds 1 2 --preset small
      mmerbench sweep --grid sweep.yaml --launcher slurm --partition gpu --gpus-per-node 1 --timeout-min 240
    """
    from mmerbench.sweep import format_report, load_grid, request_from, sweep as run_sweep

    grid = load_grid(grid_file) if grid_file else {}
    slurm = dict(grid.get("slurm") or {})
    slurm.update({k: v for k, v in (("partition", partition), ("timeout_min", timeout_min),
                                    ("gpus_per_node", gpus_per_node), ("cpus_per_task", cpus_per_task),
                                    ("mem_gb", mem_gb)) if v is not None})
    req = request_from(grid, methods=methods, datasets=datasets, seeds=seeds, preset=preset, overrides=overrides,
                       epochs=epochs, launcher=launcher, device=device, scale=scale, data_seed=data_seed,
                       data_dir=data_dir, runs_dir=runs_dir, slurm=slurm)
    report = run_sweep(req, progress=None if quiet else (lambda line: click.echo(line, err=True)))
    click.echo(format_report(report))
    if report.failed:
        sys.exit(1)


# Ctrl-C reaches click as Abort; finished seeds and the last epoch's checkpoint are on disk by then.
RESUME_HINT = "A run resumes from its last checkpoint when the same command is run again."


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="mmerbench", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        click.echo(RESUME_HINT, err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except MmerbenchError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted; finished seeds are stored, an unfinished one resumes on the next run.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
