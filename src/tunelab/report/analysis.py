"""The statistics of a report: which metrics, per-group summaries, Welch + Holm, and ASO.

Every number comes from ``tunelab.stats`` (tested against scipy); this module only decides
which values go in: the finite metric values of a group's ok runs, with and without the
degenerate ones. Two test families per metric — each group vs the reference, and all pairs —
each Holm-adjusted on its own, because they answer different questions.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from tunelab import effect, stats
from tunelab.metrics import higher_is_better
from tunelab.report import expected_max
from tunelab.report.collect import Job, natural_key
from tunelab.report.variance import Decomposition, decompose
from tunelab.report.model import NO_RESULT, AsoResult, Comparison, Comparisons, GroupSummary, Summary

# Shown when present: classification metrics, then curriculum (forgetting) metrics and the
# cost of a continual-learning strategy.
DEFAULT_METRICS = ("test/acc", "test/f1", "test/f1_macro",
                   # the out-of-domain test split, where the runs have one (tunelab.data.ood)
                   "test_ood/acc", "test_ood/f1", "test_ood/f1_macro",
                   "test/ACC", "test/BWT", "test/FWT", "params/trainable", "params/bytes_per_task")

# metric key -> name used in the text; "F1" alone is ambiguous, so it is never written alone.
METRIC_NAMES = {
    "test/acc": "accuracy",
    "test/f1": "F1 (positive class)",
    "test/f1_macro": "macro F1",
    "test_ood/acc": "out-of-domain accuracy",
    "test_ood/f1": "out-of-domain F1 (positive class)",
    "test_ood/f1_macro": "out-of-domain macro F1",
}

Groups = dict[str, list[Job]]


def select_metrics(jobs: Sequence[Job], metrics: Sequence[str] | str | None) -> tuple[list[str], list[str]]:
    """(metrics to report, notes). None -> the defaults present; ``all`` -> every numeric metric."""
    found = sorted({m for j in jobs for m in j.metrics}, key=natural_key)
    if isinstance(metrics, str):
        metrics = [metrics]
    if not metrics:
        return [m for m in DEFAULT_METRICS if m in found], []
    if "all" in metrics:
        return found, []
    chosen = list(dict.fromkeys(metrics))
    notes = [f"metric {m} was asked for but no ok run has it" for m in chosen if m not in found]
    return [m for m in chosen if m in found], notes


def missing_metric_notes(jobs: Sequence[Job], metrics: Sequence[str]) -> list[str]:
    """Name every ok run that lacks a reported metric or has a non-finite value for it."""
    notes = []
    for metric in metrics:
        for j in jobs:
            if j.state != "ok":
                continue
            v = j.metrics.get(metric)
            if v is None:
                notes.append(f"run {j.name} ({j.group}) has no {metric}: left out of its statistics")
            elif not math.isfinite(v):
                notes.append(f"run {j.name} ({j.group}) has {metric}={v}: left out of its statistics")
    return notes


def metric_name(metric: str, jobs: Sequence[Job]) -> str:
    """Name for the text; test/f1 is entity F1 for token classification (schema)."""
    if metric == "test/f1":
        tasks = {(j.result or {}).get("task") for j in jobs if j.state == "ok"}
        if tasks == {"token_cls"}:
            return "entity F1"
        if "token_cls" in tasks:
            return "F1 (positive class; entity F1 for token_cls)"
    return METRIC_NAMES.get(metric, metric)


def group_values(jobs: Sequence[Job], metric: str, skip_degenerate: bool = False) -> list[float]:
    """Finite values of a metric over a group's ok runs."""
    vals = []
    for j in jobs:
        v = j.metrics.get(metric)
        if j.state == "ok" and v is not None and math.isfinite(v) and not (skip_degenerate and j.degenerate):
            vals.append(v)
    return vals


def summarize_metric(groups: Groups, metric: str, level: float, n_boot: int) -> dict[str, GroupSummary]:
    """Per group: n ok/failed/degenerate and summaries of all ok runs and of non-degenerate ones."""
    def summary(values: list[float]) -> Summary:
        return Summary(**stats.summarize(values, level=level, n_boot=n_boot))

    return {label: GroupSummary(
        n_ok=len(group_values(jobs, metric)),
        n_failed=sum(j.state in NO_RESULT for j in jobs),
        n_degenerate=sum(bool(j.degenerate) for j in jobs if j.state == "ok"),
        all=summary(group_values(jobs, metric)),
        non_degenerate=summary(group_values(jobs, metric, True)),
    ) for label, jobs in groups.items()}


def _test_row(a_label: str, b_label: str, a: list[float], b: list[float], level: float) -> Comparison:
    """Welch test and difference-of-means CI for a - b."""
    w = stats.welch_ttest(a, b)
    d = stats.mean_diff_ci(a, b, level)
    g = effect.hedges_g(a, b, level)
    return Comparison(a=a_label, b=b_label, n_a=len(a), n_b=len(b), diff=d.diff, diff_ci_low=d.low,
                      diff_ci_high=d.high, t=w.t, df=w.df, p=w.p, note=w.note or d.note,
                      g=g.g, g_ci_low=g.low, g_ci_high=g.high, seeds_needed=effect.seeds_needed(g.g))


def _with_holm(rows: list[Comparison]) -> list[Comparison]:
    """Holm-adjust the p-values of one family in place."""
    for row, adj in zip(rows, stats.holm([r.p for r in rows])):
        row.p_holm = adj
    return rows


def _pairs(labels: list[str]) -> list[tuple[str, str]]:
    """Every unordered pair of groups, in group order."""
    return [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]]


def compare_metric(groups: Groups, metric: str, reference: str, level: float) -> Comparisons:
    """Two families of Welch tests: each group vs the reference, and all pairs; Holm within each."""
    vals = {g: group_values(jobs, metric) for g, jobs in groups.items()}
    labels = list(groups)
    vs_ref = [_test_row(g, reference, vals[g], vals[reference], level) for g in labels if g != reference]
    pairs = [_test_row(a, b, vals[a], vals[b], level) for a, b in _pairs(labels)]
    return Comparisons(vs_reference=_with_holm(vs_ref), all_pairs=_with_holm(pairs))


def expected_max_metric(groups: Groups, metric: str, level: float, n_boot: int) -> dict[str, dict]:
    """Per group: the expected best test score of n runs and, where the runs have it, the
    expected best validation score (the monitored ``val/x_best``) — Dodge et al. 2019. Best is
    the maximum, or the minimum where lower is better (``--metrics test/ece``: the expected
    maximum ECE of n runs is the worst, not the best)."""
    out = {}
    for g, jobs in groups.items():
        curves = {"test": expected_max.best_curve(metric, group_values(jobs, metric), higher_is_better(metric),
                                                  level, n_boot)}
        val = expected_max.val_metric_of(metric, {m for j in jobs for m in j.metrics})
        if val:
            curves["val"] = expected_max.best_curve(val, group_values(jobs, val), higher_is_better(val), level,
                                                    n_boot)
        out[g] = curves
    return out


def variance_metric(groups: Groups, metric: str) -> dict[str, Decomposition]:
    """Per group: the init x order decomposition, for groups where both seeds vary."""
    out = {}
    for g, jobs in groups.items():
        rows = [((j.result or {}).get("init_seed"), (j.result or {}).get("order_seed"), j.metrics[metric])
                for j in jobs if j.state == "ok" and metric in j.metrics]
        # Only when the seeds were split: with ``seed`` alone init == order in every run (the
        # diagonal of the grid), which is no design to decompose.
        split = any(r[0] != r[1] for r in rows)
        if split and (len({r[0] for r in rows}) > 1 or len({r[1] for r in rows}) > 1):
            out[g] = decompose(rows)
    return out


def load_aso() -> tuple[Callable | None, str]:
    """deepsig's ``aso`` or the reason it is unavailable (it pulls in torch; it may be absent)."""
    try:
        from deepsig import aso
    except Exception as exc:  # ImportError, or a broken torch underneath
        return None, f"ASO skipped: deepsig could not be imported ({type(exc).__name__}: {exc})"
    return aso, ""


def aso_metric(groups: Groups, metric: str, aso: Callable, iterations: int, level: float) -> list[AsoResult]:
    """ASO for every pair, testing the group with the better mean as the better one.

    ``eps_min`` < 0.5 means that group is almost stochastically better; deepsig applies a
    Bonferroni correction for the number of pairs of this metric. deepsig asks whether the first
    sample is stochastically *larger*; for a metric where lower is better (loss, ECE, NLL, Brier:
    ``tunelab.metrics.higher_is_better``) the better group is the lower mean and both samples are
    negated, so "better" means what the metric means.
    """
    sign = 1.0 if higher_is_better(metric) else -1.0
    vals = {g: [sign * v for v in group_values(jobs, metric)] for g, jobs in groups.items()}
    pairs = _pairs(list(groups))
    rows = []
    for a, b in pairs:
        better, worse = (a, b) if np.mean(vals[a] or [np.nan]) >= np.mean(vals[b] or [np.nan]) else (b, a)
        row = AsoResult(a=a, b=b, better=better, worse=worse, eps_min=math.nan)
        if len(vals[a]) < 2 or len(vals[b]) < 2:
            row.note = f"n<2 (n={len(vals[a])} vs n={len(vals[b])})"
        else:
            try:
                row.eps_min = float(aso(vals[better], vals[worse], confidence_level=level,
                                        num_comparisons=len(pairs), num_bootstrap_iterations=iterations,
                                        seed=0, show_progress=False))
            except Exception as exc:
                row.note = f"ASO failed: {type(exc).__name__}: {exc}"
        rows.append(row)
    return rows
