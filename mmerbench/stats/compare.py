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
from mmerbench.stats.two_level import metric_interval, two_level_bootstrap
from mmerbench.stats.store import RunGroup, _predictions, _stored_values, _threshold_of, find_runs
from mmerbench.stats.verdicts import A_BETTER, B_BETTER, NO_DIFFERENCE, ComparisonResult, StatsError, _plain

TestName = Literal["two-level", "welch", "aso", "bootstrap", "permutation"]
TESTS: tuple[str, ...] = ("two-level", "welch", "aso", "bootstrap", "permutation")
DEFAULT_TEST = "two-level"  # counts the seeds' and the test set's variance together
SEED_TESTS = ("welch", "aso")
SAMPLE_TESTS = ("two-level", "bootstrap", "permutation")


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


def _expand_tests(tests: str | Iterable[str]) -> list[str]:
    names = [tests] if isinstance(tests, str) else list(tests)
    if not names:
        raise _expected("tests", f"one or more of {', '.join(TESTS)} or 'all'", "none")
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
    return list(dict.fromkeys(out))


def compare_runs(
    runs_dir: str | os.PathLike | None,
    dataset: str,
    a: str,
    b: str,
    *,
    metric: str = "micro_f1",
    tests: TestName | Literal["all"] | Iterable[str] = DEFAULT_TEST,
    alpha: float = 0.05,
    seed: int = 0,
    n_resamples: int = 10_000,
    n_bootstrap_aso: int = 1000,
) -> Comparison:
    """Compare two methods' runs of ``dataset`` in the run store on ``metric`` (test split).

    ``a`` and ``b`` are method names, or ``method@config_hash`` when a method
    has several configs in the store. ``tests`` defaults to the two-level
    bootstrap over seeds and samples (:func:`two_level_bootstrap`); ``"all"``
    runs every test. Welch and ASO use the per-seed values
    in ``metrics.json`` (ASO at confidence 1 − ``alpha``); the per-sample
    tests use ``predictions.npz``, matched by sample id (the id
    sets must be equal), each run scored with the decision rule its
    ``metrics.json`` records — and each run must reproduce its stored metric
    from its predictions, or it is refused as altered.

    Several seeds: the per-sample tests compare the mean over seeds of the
    metric (the leaderboard's number), resampling each sample with all its
    seeds' predictions (see :func:`paired_bootstrap`); the permutation test
    pairs seeds in seed order, and with unequal seed counts uses the first
    min(n_A, n_B) of each (a note says so). Welch and ASO answer "not
    applicable", with the reason, when a side has one seed or no variance.
    """
    from mmerbench.data.registry import get_entry

    alpha = _check_alpha(alpha)
    selected = _expand_tests(tests)
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

    for t in (t for t in selected if t in SEED_TESTS):  # one seed or none of spread: "not applicable"
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
            if t == "two-level":
                results.append(two_level_bootstrap(ya, np.stack(sa), np.stack(sb), n_resamples=n_resamples, **kw))
            elif t == "bootstrap":
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
        what = f"seeds {r.n}" if r.test in SEED_TESTS else f"samples {r.n}"
        if not r.applicable:
            rows.append([r.test, "—", "—", what, r.note])
            continue
        if r.test == "welch":
            stat, evidence = f"t = {r.statistic:.3f}", f"p = {_fmt(r.p_value)}"
        elif r.test == "aso":
            stat = f"ε = {r.statistic:.3f}"
            evidence = f"ε_min = {_fmt(r.eps_min, 3)} (τ = {r.details['tau']:g})"
        else:
            stat, evidence = f"Δ = {r.statistic:+.4f}", f"p = {_fmt(r.p_value)}"
        rows.append([r.test, stat, evidence, what, names.get(r.verdict, r.verdict)])
    table = tabulate(rows, headers=["test", "statistic", "p-value / ε_min", "n", "verdict"],
                     disable_numparse=True, maxcolwidths=[None, None, None, None, 60]) if rows else "(no test ran)"
    extra = [r.note for r in comp.results if r.note and r.applicable] + list(comp.notes)
    for r in reversed([r for r in comp.results if r.test in SAMPLE_TESTS and "ci_low" in r.details]):
        d = r.details
        line = f"{r.test}: {100 * (1 - comp.alpha):g}% interval of Δ (A − B) [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"
        if "p_a_better" in d:
            line += (f"; P(A > B) = {d['p_a_better']:.3f}, the chance that one run of A beats one run of B "
                     f"on a test set drawn like this one")
        extra.insert(0, line)
    tail = "".join(f"\n- {x}" for x in extra)
    return f"{head}\n\n{sides}\n\n{table}\n{tail}".rstrip() + "\n"


def interval_of_runs(runs_dir: str | os.PathLike | None, dataset: str, spec: str, *, metric: str,
                     alpha: float = 0.05, seed: int = 0, n_resamples: int = 2_000) -> tuple[float, float, float]:
    """The mean over seeds of ``metric`` for one method's runs and its 1 − ``alpha`` two-level interval.

    Reads the stored predictions like :func:`compare_runs` (each run must
    reproduce its ``metrics.json``); see :func:`metric_interval`.
    """
    from mmerbench.data.registry import get_entry

    alpha = _check_alpha(alpha)
    task = get_entry(dataset).spec.task
    _check_metric_for_task(metric, task)
    labels = list(get_entry(dataset).spec.labels) if task in ("multilabel", "multiclass") else None
    group = find_runs(runs_dir, dataset, spec)
    values, decisions = _stored_values(group, metric)
    thr = _threshold_of(group, decisions, task)
    y, scores, _, _ = _predictions(group, task, metric, labels, thr, values, None, None)
    return metric_interval(y, np.stack(scores), task=task, metric=metric, threshold=thr, labels=labels,
                           n_resamples=n_resamples, seed=seed, alpha=alpha)
