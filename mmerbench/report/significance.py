"""Significance for the leaderboards, on top of :mod:`mmerbench.stats`.

Two layers, both optional (a leaderboard without ``--reference`` never
imports the statistics):

* :func:`compare` — each row of a table against a reference row, on every
  metric column. ``welch`` and ``aso`` use the per-seed values; ``two-level``
  (the default), ``bootstrap`` and ``permutation`` the stored per-sample test
  predictions
  (:func:`mmerbench.stats.compare_runs`, which matches samples by id and
  applies each run's stored decision rule). The family is the table: every
  (row, metric) comparison. p-value tests are Holm-adjusted over it
  (:func:`mmerbench.stats.holm`); ASO has no p-value, so its confidence level
  is Bonferroni-adjusted instead (1 − α/m, as Dror et al. 2019 advise for
  several comparisons) and a row wins when ε_min < τ (the stats module's τ).
  "Better" follows the metric's direction from :mod:`mmerbench.metrics`.
* :func:`rank_summary` — across datasets of one kind (real or synthetic,
  never mixed) and one primary metric: average ranks, Friedman's test, the
  Nemenyi critical difference and its diagram, as one table with a figure.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mmerbench.errors import MmerbenchError

TESTS: dict[str, str] = {
    "two-level": "two-level bootstrap over seeds and test samples together",
    "welch": "Welch's t-test over seeds",
    "aso": "Almost Stochastic Order over seeds",
    "bootstrap": "paired bootstrap over test samples",
    "permutation": "approximate randomization (paired permutation) over test samples",
}
P_VALUE_TESTS = ("two-level", "welch", "bootstrap", "permutation")


def _stats():
    try:
        from mmerbench import stats
    except ImportError:
        raise MmerbenchError(
            "Significance markers need mmerbench.stats, which this installation lacks; run without --reference."
        ) from None
    return stats


def check_test(test: str) -> None:
    if test not in TESTS:
        raise MmerbenchError(f"Unknown test {test!r}: use one of {', '.join(TESTS)}.")


@dataclass
class Outcome:
    """One (row, metric) comparison with the reference, after the family correction."""

    test: str
    metric: str
    significant: bool
    better: bool | None  # the row better than the reference (by the metric's direction); None if untested
    statistic: float | None = None
    p_value: float | None = None  # raw
    p_adjusted: float | None = None  # Holm
    eps_min: float | None = None  # ASO
    note: str = ""
    result: dict[str, Any] = field(default_factory=dict)  # the stats module's full result

    @property
    def summary(self) -> str:
        if self.note:
            return self.note
        if self.eps_min is not None:
            return f"ASO ε_min = {self.eps_min:.3f}" + (" (significant)" if self.significant else "")
        return (f"{self.test}: statistic {self.statistic:.4g}, p = {self.p_value:.3g}, Holm-adjusted "
                f"p = {self.p_adjusted:.3g}" + (" (significant)" if self.significant else ""))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def compare(reference, others, metrics: list[str], *, test: str, alpha: float, task: str, dataset: str,
            runs_dir=None) -> tuple[dict[tuple[str, str, str], Outcome], str]:
    """Outcomes keyed by (config hash, method, metric), and the footnote that names the test and α.

    ``reference`` and ``others`` are :class:`~mmerbench.report.leaderboard.ConfigRuns`.
    """
    stats = _stats()
    check_test(test)
    pairs = [(o, k) for o in others for k in metrics]
    m = max(len(pairs), 1)
    results: dict[tuple[str, str, str], Any] = {}
    notes: dict[tuple[str, str, str], str] = {}
    for other, k in pairs:
        key = (other.config_hash, other.method, k)
        a, b = other.values(k), reference.values(k)
        try:
            if test == "welch":
                results[key] = stats.welch(a, b, alpha=alpha, metric=k)
            elif test == "aso":
                results[key] = stats.aso(a, b, confidence=1 - alpha / m, metric=k)
            else:
                cmp = stats.compare_runs(runs_dir, dataset, f"{other.method}@{other.config_hash}",
                                         f"{reference.method}@{reference.config_hash}", metric=k, tests=test,
                                         alpha=alpha)
                results[key] = cmp.results[0]
        except MmerbenchError as e:
            notes[key] = f"not tested: {e}"
        except ValueError as e:  # input the test refuses is a reason, not a crash
            notes[key] = f"not tested: {e}"
        if key in results and not results[key].applicable:  # one seed, no variance: never a marker
            notes[key] = results.pop(key).note

    out: dict[tuple[str, str, str], Outcome] = {}
    for key, why in notes.items():
        out[key] = Outcome(test, key[2], False, None, note=why)
    if test in P_VALUE_TESTS:
        keys = list(results)
        holm = stats.holm([results[q].p_value for q in keys], alpha=alpha) if keys else None
        for i, q in enumerate(keys):
            r = results[q]
            better = (r.statistic > 0) == bool(r.higher_is_better) if r.statistic != 0 else None
            out[q] = Outcome(test, q[2], bool(holm.reject[i]) and better is not None, better,
                             statistic=float(r.statistic), p_value=float(r.p_value),
                             p_adjusted=float(holm.adjusted[i]), result=r.to_dict())
        how = f"Holm-adjusted over the table's {m} comparisons (rows × metrics)"
    else:
        for q, r in results.items():
            out[q] = Outcome(test, q[2], r.significant, r.sign > 0 if r.significant else None,
                             statistic=float(r.statistic), eps_min=float(r.eps_min), result=r.to_dict())
        tau = next((r.details.get("tau") for r in results.values()), None)
        how = (f"ε_min < τ{'' if tau is None else f' = {tau:g}'} at confidence 1 − α/m = {1 - alpha / m:.4g} "
               f"(Bonferroni over the table's {m} comparisons)")
    note = (f"Significance: each row against the reference {reference.method} ({reference.config_hash}), "
            f"{TESTS[test]}, α = {alpha:g}, {how}.")
    if notes:
        note += f" {len(notes)} comparison(s) not tested or not applicable (reason on hover / in the JSON)."
    return out, note


# Settings a config may set per dataset by design (the datasets: block), not a different method config.
_PER_DATASET = frozenset({"select", "modalities", "threshold"})


def _config_names(rows) -> dict[int, str]:
    """A rank-table name per leaderboard row: the method, with its preset, and with its config hash when the
    same name stands for different settings on different datasets (those are never pooled into one rank)."""
    def settings(r):
        params = r.meta.get("params") or {}
        return repr(sorted((k, repr(v)) for k, v in params.items() if k not in _PER_DATASET))

    base = {id(r): r.meta["method"] + (f" ({r.meta['preset']})" if r.meta.get("preset") else "") for r in rows}
    variants: dict[str, set[str]] = {}
    for r in rows:
        variants.setdefault(base[id(r)], set()).add(settings(r))
    return {id(r): base[id(r)] if len(variants[base[id(r)]]) == 1 else f"{base[id(r)]} @{r.meta['config_hash'][:6]}"
            for r in rows}


def rank_summary(tables, *, alpha: float, synthetic: bool):
    """Average ranks across the datasets of ``tables`` that share a task and a first metric, with Friedman's
    test and the Nemenyi critical-difference diagram; None when fewer than 2 datasets and 3 methods with
    one config each are comparable.
    """
    import pandas as pd

    from mmerbench.metrics import metric_info
    from mmerbench.report.plots import figure_to_svg
    from mmerbench.report.table import Cell, Column, Row, Table

    stats = _stats()
    groups: dict[tuple[str, str], list] = {}
    for t in tables:
        keys = t.meta.get("metrics") or []
        if keys:
            groups.setdefault((t.meta["task"], keys[0]), []).append(t)
    out = []
    for (task, metric), ts in sorted(groups.items()):
        frame: dict[str, dict[str, float]] = {}
        several: set[str] = set()
        col = f"metric:{metric}"
        names = _config_names([r for t in ts for r in t.rows])
        for t in ts:
            j = [c.key for c in t.columns].index(col)
            seen: dict[str, int] = {}
            for r in t.rows:
                seen[names[id(r)]] = seen.get(names[id(r)], 0) + 1
            several |= {m for m, n in seen.items() if n > 1}
            for r in t.rows:
                v = r.cells[j].value
                if v is not None and math.isfinite(v):
                    frame.setdefault(t.title, {})[names[id(r)]] = v
        df = pd.DataFrame(frame).T
        df = df[[c for c in df.columns if c not in several]]
        partial = sorted(c for c in df.columns if df[c].isna().any())
        df = df.dropna(axis=1)
        if df.shape[0] < 2 or df.shape[1] < 3:
            continue
        info = metric_info(metric)
        fr = stats.friedman(df, metric=metric, alpha=alpha)
        ne = stats.nemenyi(df, metric=metric, alpha=alpha)
        columns = [Column("method", "method", numeric=False),
                   Column("rank", "average rank", higher_is_better=False)]
        columns += [Column(f"ds:{d}", f"{d}: {info.display}", higher_is_better=info.higher_is_better,
                           emphasise=False) for d in df.index]
        rows = []
        for method in sorted(ne.avg_ranks, key=ne.avg_ranks.get):
            cells = [Cell(display=method), Cell(value=ne.avg_ranks[method], display=f"{ne.avg_ranks[method]:.2f}",
                                                higher_is_better=False)]
            cells += [Cell(value=float(df.loc[d, method]), display=f"{df.loc[d, method]:.4f}") for d in df.index]
            rows.append(Row(cells=cells, meta={"method": method}))
        title = f"Average ranks on {info.display} across {df.shape[0]} {'synthetic twins' if synthetic else 'datasets'}"
        footnotes = [
            f"Rank 1 = best mean {info.display} on a dataset (ties share the mean rank); methods with one config "
            f"on every dataset only" + (f" (left out, several configs: {', '.join(sorted(several))})" if several else "")
            + (f" (left out, not on every dataset: {', '.join(partial)})" if partial else "")
            + ". A name stands for one method config: a preset is named, and a name whose settings differ "
              "between datasets carries its config hash.",
            f"Friedman χ²_F = {fr.statistic:.3f}, p = {fr.p_value:.3g} (Iman–Davenport F_F = {fr.iman_davenport:.3f}, "
            f"p = {fr.iman_davenport_p:.3g}); Nemenyi critical difference CD = {ne.cd:.3f} at α = {alpha:g} "
            f"(Demšar 2006). Ranks closer than CD are joined in the diagram.",
        ]
        table = Table(id=f"ranks-{'synthetic' if synthetic else 'real'}-{task}-{metric}", title=title,
                      columns=columns, rows=rows, caption=f"{task} task", footnotes=footnotes,
                      labels=["synthetic"] if synthetic else [],
                      meta={"task": task, "metric": metric, "synthetic": synthetic, "friedman": fr.to_dict(),
                            "nemenyi": ne.to_dict()})
        fig = stats.cd_diagram(ne.avg_ranks, ne.cd, title=f"Critical difference, {info.display}")
        table.figures.append(figure_to_svg(fig, f"Critical-difference diagram ({info.display}, CD = {ne.cd:.2f})",
                                           "critical-difference"))
        out.append(table)
    return out
