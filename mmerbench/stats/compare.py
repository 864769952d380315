"""`mmerbench compare`: two methods' runs from the store, every test, and the printed table."""

from __future__ import annotations

import difflib
import os
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Literal

import numpy as np

from mmerbench import metrics as metricslib
from mmerbench.errors import MmerbenchError
from mmerbench.stats.checks import _check_alpha, _expected
from mmerbench.stats.counts import _check_metric_for_task
from mmerbench.stats.samples import paired_bootstrap, permutation_test
from mmerbench.stats.seeds import aso, welch
from mmerbench.stats.store import RunGroup, _predictions, _stored_values, _threshold_of, find_runs
from mmerbench.stats.verdicts import A_BETTER, B_BETTER, NO_DIFFERENCE, ComparisonResult, StatsError, _plain

TestName = Literal["welch", "aso", "bootstrap", "permutation"]
TESTS: tuple[str, ...] = ("welch", "aso", "bootstrap", "permutation")
SEED_TESTS = ("welch", "aso")
SAMPLE_TESTS = ("bootstrap", "permutation")


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_runs` found and every test it ran."""

    dataset: str
    metric: str
    higher_is_better: bool
    a: RunGroup
    b: RunGroup
    values_a: tuple[float, ...]  # the metric per seed (test split), in seed order
    values_b: tuple[float, ...]
    results: tuple[ComparisonResult, ...]
    alpha: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def _expand_tests(tests: str | Iterable[str]) -> tuple[list[str], bool]:
    names = [tests] if isinstance(tests, str) else list(tests)
    if not names:
        raise _expected("tests", f"one or more of {', '.join(TESTS)} or 'all'", "none")
    explicit = "all" not in names
    out: list[str] = []
    for t in names:
        if t == "all":
            out.extend(TESTS)
        elif t in TESTS:
            out.append(t)
        else:
            close = difflib.get_close_matches(str(t), list(TESTS) + ["all"], n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise StatsError(f"Unknown test {t!r}.{hint} Known: {', '.join(TESTS)}, all.")
    return list(dict.fromkeys(out)), explicit


def compare_runs(
    runs_dir: str | os.PathLike | None,
    dataset: str,
    a: str,
    b: str,
    *,
    metric: str = "micro_f1",
    tests: TestName | Literal["all"] | Iterable[str] = "all",
    alpha: float = 0.05,
    seed: int = 0,
    n_resamples: int = 10_000,
    n_bootstrap_aso: int = 1000,
) -> Comparison:
    """Compare two methods' runs of ``dataset`` in the run store on ``metric`` (test split).

    ``a`` and ``b`` are method names, or ``method@config_hash`` when a method
    has several configs in the store. Welch and ASO use the per-seed values
    in ``metrics.json`` (ASO at confidence 1 − ``alpha``); the bootstrap and
    permutation tests use ``predictions.npz``, matched by sample id (the id
    sets must be equal), each run scored with the decision rule its
    ``metrics.json`` records — and each run must reproduce its stored metric
    from its predictions, or it is refused as altered.

    Several seeds: the per-sample tests compare the mean over seeds of the
    metric (the leaderboard's number), resampling each sample with all its
    seeds' predictions (see :func:`paired_bootstrap`); the permutation test
    pairs seeds in seed order, and with unequal seed counts uses the first
    min(n_A, n_B) of each (a note says so). With ``tests="all"``, Welch and
    ASO are skipped with a note when a side has a single seed; named
    explicitly, that is an error.
    """
    from mmerbench.data.registry import get_entry

    alpha = _check_alpha(alpha)
    selected, explicit = _expand_tests(tests)
    task = get_entry(dataset).spec.task
    info = _check_metric_for_task(metric, task)
    spec_labels = list(get_entry(dataset).spec.labels) if task in ("multilabel", "multiclass") else None
    ga, gb = find_runs(runs_dir, dataset, a), find_runs(runs_dir, dataset, b)
    if ga.label == gb.label:
        raise MmerbenchError(f"A and B are the same runs ({ga.label}); name two different methods or configs.")
    va, da = _stored_values(ga, metric)
    vb, db = _stored_values(gb, metric)
    hib = info.higher_is_better
    notes: list[str] = []
    results: list[ComparisonResult] = []

    seed_tests = [t for t in selected if t in SEED_TESTS]
    few = [g for g, v in ((ga, va), (gb, vb)) if len(v) < 2]
    if seed_tests and few:
        who = "; ".join(f"{g.label} has {len(g.seeds)} (seed {', '.join(map(str, g.seeds))})" for g in few)
        if explicit:
            raise MmerbenchError(f"{' and '.join(seed_tests)} need at least 2 seeds per method, but {who}; run more "
                                 f"seeds or use --test bootstrap / permutation.")
        notes.append(f"{', '.join(seed_tests)} skipped: they need at least 2 seeds per method ({who}).")
        seed_tests = []
    for t in seed_tests:
        if t == "welch":
            results.append(welch(va, vb, alpha=alpha, metric=metric))
        else:
            results.append(aso(va, vb, confidence=1 - alpha, seed=seed, n_bootstrap=n_bootstrap_aso, metric=metric))

    sample_tests = [t for t in selected if t in SAMPLE_TESTS]
    if sample_tests:
        thr_a, thr_b = _threshold_of(ga, da, task), _threshold_of(gb, db, task)
        ya, sa, ref, ref_where = _predictions(ga, task, metric, spec_labels, thr_a, va, None, None)
        _, sb, _, _ = _predictions(gb, task, metric, spec_labels, thr_b, vb, ref, ref_where)
        kw = dict(task=task, metric=metric, threshold=(thr_a, thr_b), labels=spec_labels, seed=seed, alpha=alpha)
        for t in sample_tests:
            if t == "bootstrap":
                results.append(paired_bootstrap(ya, np.stack(sa), np.stack(sb), n_resamples=n_resamples, **kw))
            else:
                k = min(len(sa), len(sb))
                if len(sa) != len(sb):
                    notes.append(f"permutation: seeds paired in seed order; used the first {k} of each "
                                 f"({ga.label}: {', '.join(map(str, ga.seeds[:k]))}; "
                                 f"{gb.label}: {', '.join(map(str, gb.seeds[:k]))}).")
                results.append(permutation_test(ya, np.stack(sa[:k]), np.stack(sb[:k]),
                                                n_permutations=n_resamples, **kw))
    return Comparison(dataset=dataset, metric=metric, higher_is_better=hib, a=ga, b=gb,
                      values_a=tuple(va.tolist()), values_b=tuple(vb.tolist()), results=tuple(results),
                      alpha=alpha, notes=tuple(notes))


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "—"
    if x != 0 and abs(x) < 10 ** -digits:
        return f"{x:.2e}"
    return f"{x:.{digits}f}"


def format_comparison(comp: Comparison) -> str:
    """The text ``mmerbench compare`` prints: both sides, then one row per test."""
    from tabulate import tabulate

    info = metricslib.metric_info(comp.metric)
    better = "higher" if comp.higher_is_better else "lower"

    def side(tag: str, g: RunGroup, v: tuple[float, ...]) -> list[str]:
        spread = f" ± {np.std(v, ddof=1):.4f}" if len(v) > 1 else ""  # ddof = 1, as the leaderboards
        return [tag, g.label, " ".join(map(str, g.seeds)), f"{np.mean(v):.4f}{spread}"]

    head = (f"{comp.dataset}, test split: {comp.metric} ({info.display}, {better} is better), "
            f"α = {comp.alpha:g}")
    sides = tabulate([side("A", comp.a, comp.values_a), side("B", comp.b, comp.values_b)],
                     headers=["", "runs", "seeds", f"{comp.metric} mean ± std"], disable_numparse=True)
    names = {A_BETTER: f"A better ({comp.a.method})", B_BETTER: f"B better ({comp.b.method})",
             NO_DIFFERENCE: f"no significant difference at α = {comp.alpha:g}"}
    rows = []
    for r in comp.results:
        if r.test == "welch":
            stat, evidence, what = f"t = {r.statistic:.3f}", f"p = {_fmt(r.p_value)}", f"seeds {r.n}"
        elif r.test == "aso":
            stat = f"ε = {r.statistic:.3f}"
            evidence = f"ε_min = {_fmt(r.eps_min, 3)} (τ = {r.details['tau']:g})"
            what = f"seeds {r.n}"
        else:
            stat, evidence = f"Δ = {r.statistic:+.4f}", f"p = {_fmt(r.p_value)}"
            what = f"samples {r.n}"
        rows.append([r.test, stat, evidence, what, names.get(r.verdict, r.verdict)])
    table = tabulate(rows, headers=["test", "statistic", "p-value / ε_min", "n", "verdict"],
                     disable_numparse=True) if rows else "(no test ran)"
    extra = [r.note for r in comp.results if r.note] + list(comp.notes)
    boot = [r for r in comp.results if r.test == "bootstrap"]
    if boot:
        d = boot[0].details
        extra.insert(0, f"bootstrap {100 * (1 - comp.alpha):g}% CI of Δ (A − B): "
                        f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")
    tail = "".join(f"\n- {x}" for x in extra)
    return f"{head}\n\n{sides}\n\n{table}\n{tail}".rstrip() + "\n"
