"""The tests of a sweep over datasets: within each dataset, then the count over datasets.

:func:`compare_within` replaces the report's Welch families when a data key is swept (no test
between arms on different datasets); :func:`fill` adds to the ``DatasetsSection`` the
replicability of every claim "arm A is better than arm B" (Dror et al. 2017) and the Friedman /
Nemenyi ranking of the arms (Demšar 2006). What the groups are: :mod:`tunelab.report.datasets`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from tunelab.metrics import higher_is_better
from tunelab.report import analysis
from tunelab.report.datasets import Claim, DatasetsSection
from tunelab.report.friedman import Ranking, rank_arms
from tunelab.report.jobs import Job, natural_key
from tunelab.report.model import Comparisons
from tunelab.report.replicability import k_hat, one_sided_welch, partial_conjunction


def compare_within(sec: DatasetsSection, groups: dict[str, list[Job]], metric: str, reference: str,
                   level: float) -> Comparisons:
    """Welch tests between the arms of each dataset (the reference: the reference group's arm on
    that dataset, else the dataset's first arm); Holm within each dataset's families."""
    ref_arm = sec.arm_of(reference)[1] if any(reference in c.values() for c in sec.cells.values()) else None
    out = Comparisons()
    for d in sec.datasets:
        sub = sec.groups_of(d, groups)
        if len(sub) < 2:
            continue
        ref = sec.cells[d].get(ref_arm) if ref_arm in sec.cells[d] else None
        ref = ref if ref in sub else next(iter(sub))
        c = analysis.compare_metric(sub, metric, ref, level)
        out.vs_reference += c.vs_reference
        out.all_pairs += c.all_pairs
    return out


def _claim(sec: DatasetsSection, groups, metric: str, a: str, b: str) -> Optional[Claim]:
    hib = higher_is_better(metric)
    ds, p, better = [], {}, 0
    for d in sec.datasets:
        ga, gb = sec.cells[d].get(a), sec.cells[d].get(b)
        if ga not in groups or gb not in groups:
            continue
        va, vb = analysis.group_values(groups[ga], metric), analysis.group_values(groups[gb], metric)
        if not va or not vb:
            continue
        ds.append(d)
        p[d] = one_sided_welch(va, vb, hib)
        diff = np.mean(va) - np.mean(vb)
        better += bool(diff > 0 if hib else diff < 0)
    if not ds:
        return None
    ps = [p[d] for d in ds]
    kb = k_hat(ps, sec.alpha, "bonferroni")
    smallest = sorted(ds, key=lambda d: (np.nan_to_num(p[d], nan=1.0), natural_key(d)))[:kb]
    return Claim(metric=metric, a=a, b=b, datasets=ds, better_in=better, p=p,
                 pc_bonferroni=partial_conjunction(ps, "bonferroni"), pc_fisher=partial_conjunction(ps, "fisher"),
                 k_bonferroni=kb, k_fisher=k_hat(ps, sec.alpha, "fisher"),
                 identified=[d for d in ds if d in smallest])


def _ranking(sec: DatasetsSection, groups, metric: str) -> Optional[Ranking]:
    arms = [a for a in sec.arms
            if all(sec.cells[d].get(a) in groups and analysis.group_values(groups[sec.cells[d][a]], metric)
                   for d in sec.datasets)]
    left_out = [a for a in sec.arms if a not in arms]
    if left_out:
        sec.notes.append(f"{metric}: critical-difference ranking without {', '.join(left_out)} (not run, or no "
                         f"ok run, on every dataset)")
    if len(arms) < 3 or len(sec.datasets) < 2:
        sec.notes.append(f"{metric}: no Friedman/Nemenyi ranking ({len(arms)} arm(s) on all of "
                         f"{len(sec.datasets)} dataset(s); it needs >= 3 arms and >= 2 datasets)")
        return None
    scores = [[float(np.mean(analysis.group_values(groups[sec.cells[d][a]], metric))) for a in arms]
              for d in sec.datasets]
    return rank_arms(scores, arms, sec.datasets, higher_is_better(metric), sec.alpha)


def fill(sec: DatasetsSection, groups: dict[str, list[Job]], metrics: Sequence[str]) -> DatasetsSection:
    """Claims (every ordered pair of arms) and rankings for each metric."""
    if len(sec.arms) < 2:
        sec.notes.append("only one arm: the groups differ by dataset alone, so no test compares them")
    for metric in metrics:
        for a in sec.arms:
            for b in sec.arms:
                if a != b:
                    c = _claim(sec, groups, metric, a, b)
                    if c is not None:
                        sec.claims.append(c)
        if len(sec.arms) >= 2:
            r = _ranking(sec, groups, metric)
            if r is not None:
                sec.rankings[metric] = r
    return sec


def aso_within(sec: DatasetsSection, groups: dict[str, list[Job]], metric: str, aso, iterations: int,
               level: float) -> list:
    """ASO between the arms of each dataset (Bonferroni over the pairs of that dataset)."""
    out = []
    for d in sec.datasets:
        sub = sec.groups_of(d, groups)
        if len(sub) >= 2:
            out += analysis.aso_metric(sub, metric, aso, iterations, level)
    return out
