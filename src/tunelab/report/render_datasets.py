"""report.md's section on claims across datasets: arms x datasets, replicability counts, CD ranking."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from tunelab.report import render_study
from tunelab.report.cd_diagram import cd_plot_name
from tunelab.report.formatting import fmt, fmt_p, md_table

if TYPE_CHECKING:
    from tunelab.report.model import Report


def _means(report: Report, metric: str) -> list[str]:
    sec, entry = report.datasets, report.metrics.get(metric)
    if entry is None:
        return []
    rows = []
    for arm in sec.arms:
        cells = []
        for d in sec.datasets:
            s = entry.summary.get(sec.cells[d].get(arm, ""))
            cells.append("n/a" if s is None or fmt(s.all.mean) == "n/a" else
                         f"{fmt(s.all.mean)} ± {fmt(s.all.sd)}" if fmt(s.all.sd) != "n/a" else fmt(s.all.mean))
        rows.append((f"`{arm}`", *cells))
    return [f"Mean ± sd over seeds of `{metric}`:", "",
            md_table(["arm", *(f"`{d}`" for d in sec.datasets)], rows), ""]


def _claims(report: Report, metric: str) -> list[str]:
    sec = report.datasets
    rows = [c for c in sec.claims if c.metric == metric and c.better_in > 0]
    if not rows:
        return []
    body = [(f"`{c.a}` > `{c.b}`", len(c.datasets), c.better_in,
             "; ".join(f"{d.split('=', 1)[-1]} {fmt_p(c.p[d])}" for d in c.datasets),
             f"**{c.k_bonferroni}** of {len(c.datasets)}", f"{c.k_fisher} of {len(c.datasets)}",
             ", ".join(f"`{d}`" for d in c.identified) or "none") for c in rows]
    return [md_table(["claim (better)", "datasets", "mean better on", "one-sided Welch p per dataset",
                      "k̂ (Bonferroni)", "k̂ (Fisher)", "where (Holm)"], body), ""]


def _ranking(metric: str, r) -> list[str]:
    rows = [(f"`{a}`", fmt(r.avg_ranks[a], 3)) for a in sorted(r.avg_ranks, key=r.avg_ranks.get)]
    cliques = "; ".join("{" + ", ".join(f"`{a}`" for a in c) + "}" for c in r.cliques) or "none (every pair differs)"
    return [f"Friedman χ² = {fmt(r.chi2, 3)} (tie-corrected, scipy), p = {fmt_p(r.p)}; Iman–Davenport "
            f"F = {fmt(r.iman_davenport_f, 3)}, p = {fmt_p(r.iman_davenport_p)}. Nemenyi at α = {r.alpha:g}: "
            f"q_α = {fmt(r.q_alpha, 3)}, CD = {fmt(r.cd, 3)} ({len(r.arms)} arms, {len(r.datasets)} datasets; "
            f"{'higher' if r.higher_is_better else 'lower'} is better). Not significantly different: {cliques}.", "",
            md_table(["arm", "average rank (1 = best)"], rows), "",
            f"![{metric} critical difference]({cd_plot_name(metric)})", ""]


def datasets_section(report: Report) -> str:
    sec = report.datasets
    if sec is None:
        return ""
    out = ["## Claims across datasets", "",
           f"The sweep varies the data ({', '.join(f'`{k}`' for k in sec.keys)}): {len(sec.datasets)} dataset(s) "
           f"({', '.join(f'`{d}`' for d in sec.datasets)}) x {len(sec.arms)} arm(s). Every Welch test above "
           "compares arms on one dataset, against the reference arm on that dataset, Holm within each "
           "dataset; no test compares runs on different datasets.", "",
           f"**Replicability** (Dror et al. 2017): for the claim \"A is better than B\", a one-sided Welch p "
           f"per dataset, then partial-conjunction tests: k̂ is the number of datasets on which the claim "
           f"holds at family-wise α = {sec.alpha:g} (Bonferroni: any dependence between datasets; Fisher: "
           "independent datasets, more power); *where*: the k̂ datasets with the smallest p (Holm). Claims "
           "that no dataset's mean supports are left out (report.json has them). **Ranking** (Demšar 2006): "
           "per dataset the arms' mean scores are ranked; Friedman tests whether the average ranks differ, "
           "and arms whose average ranks differ by less than the Nemenyi critical difference (CD) are joined "
           "in the diagram.", ""]
    for metric in report.metrics:
        out += [f"### `{metric}`", ""] + _means(report, metric) + _claims(report, metric)
        if metric in sec.rankings:
            out += _ranking(metric, sec.rankings[metric])
    for d, ex in sec.examples.items():
        text = render_study.examples_section(dataclasses.replace(report, examples=ex))
        out += [text.replace("## Example-level statistics (per-example predictions)",
                             f"### Example-level statistics on `{d}`", 1)]
    out += [f"- {n}" for n in sec.notes] + ([""] if sec.notes else [])
    return "\n".join(out)
