"""report.md and report.csv from a ``Report``: text only, no statistics computed here.

The markdown names the test behind every number and lists every job that gave no result;
the CSV has one row per group x metric with full-precision numbers for further analysis.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from tunelab.report.cost import cost_section
from tunelab.report.glance import glance_section
from tunelab.report.pareto import pareto_section
from tunelab.report.formatting import fmt, fmt_ci, fmt_p, md_table
from tunelab.report.render_calibration import calibration_section
from tunelab.report.render_datasets import datasets_section
from tunelab.report.render_ood import ood_section
from tunelab.report.model import BASELINE_OF, Comparison, MetricSection, Report, Summary
from tunelab.report import render_study
from tunelab.report.render_adaptive import adaptive_section
from tunelab.report.render_tune import tune_section
from tunelab.report.plots import plot_name

# =============================================================================== markdown


def render_markdown(report: Report) -> str:
    """The human-readable report."""
    c = report.counts
    keys = ", ".join(f"`{k}`" for k in report.swept_keys) or "nothing (only the seed varies): one group"
    parts = [
        f"# Study report: `{Path(report.sweep_dir).name}`",
        "",
        f"- Sweep dir: `{report.sweep_dir}`",
        f"- Generated: {report.generated_at} by `tunelab.report`",
        f"- Job dirs found: {c.jobs} — ok {c.ok}, "
        + (f"**still running {c.running}** (not results yet: run the report again when they end), " if c.running else "")
        + f"failed {c.failed}, interrupted {c.interrupted}, "
        f"without results.json {c.missing}, corrupt results.json {c.corrupt}; degenerate ok runs {c.degenerate}",
        f"- Grouped by: {keys} (every override key whose value differs between jobs, except the seeds "
        f"`seed`, `init_seed`, `order_seed`)",
        f"- Reference group: `{report.reference}`",
        "",
        render_study.what_ran(report),
        _how_to_read(report),
        _groups_section(report),
        _problems_section(report),
        _degenerate_section(report),
        _baseline_section(report),
        glance_section(report),
        adaptive_section(report.adaptive),
        tune_section(report.tune, plot="tune:expected_max" in report.files),
    ]
    for metric, entry in report.metrics.items():
        parts.append(_metric_section(report, metric, entry))
    parts.append(cost_section(report.cost))
    parts.append(pareto_section(report, next(iter(report.metrics), "")))
    parts.append(calibration_section(report))
    parts.append(ood_section(report))
    parts.append(datasets_section(report))
    if not report.metrics:
        parts.append("## Metrics\n\nNo metric to report (no ok run has any of the metrics asked for).\n")
    parts.append(render_study.examples_section(report))
    parts.append("## Notes\n\n" + ("\n".join(f"- {n}" for n in report.notes) if report.notes else "None.") + "\n")
    return "\n".join(parts)


def _how_to_read(report: Report) -> str:
    t, pct = report.tests, report.percent
    lines = [
        "## How to read this report",
        "",
        "- **n ok**: runs with status ok that have the metric; **n failed**: jobs of the group that "
        "failed, died without results.json, or left an unreadable one (all named under *Problems*).",
        "- **mean, sd, min, max** are over seeds; sd is the sample standard deviation (ddof=1).",
        f"- **{pct}% CI**: {t.summary}; n/a when n < 2. With few seeds it is optimistic "
        "(it never reaches beyond min..max); read it with the sd and the Welch intervals below.",
        "- **accuracy** = `test/acc`; **F1 (positive class)** = `test/f1` (F1 of label index 1 for binary "
        "tasks; entity F1 for token classification); **macro F1** = `test/f1_macro` (unweighted mean of per-class F1).",
        "- **majority-class baseline**: always predicting the most frequent training class, scored on the test split.",
        "- **degenerate run**: predicts a single class, or its accuracy is not above the majority rate; "
        "tables are shown with all ok runs and again without degenerate runs.",
        f"- **Comparisons**: {t.comparison}. Δ is the difference of means (first group minus second) "
        f"with the {pct}% {t.diff_ci}. **p (Holm)**: {t.multiplicity}.",
        "- **Hedges' g**: the difference of means in pooled standard deviations, small-sample corrected "
        "(exact J), with a normal-approximation CI; **seeds/arm for 80% power**: seeds per group a two-sided "
        "t-test at α = 0.05 needs to detect a difference of that size 80% of the time.",
    ]
    if t.aso:
        lines.append(f"- **ASO**: {t.aso}. ε_min < 0.5: the *better* group is almost stochastically "
                     "better than the other; ε_min near 0 is strong evidence, ≥ 0.5 none.")
    return "\n".join(lines) + "\n"


def _groups_section(report: Report) -> str:
    rows = [(f"`{g}`", len(r.jobs), r.ok, r.n_not_ok,
             ", ".join(str(s) for s in r.seeds if s is not None) or "n/a", ", ".join(r.jobs))
            for g, r in report.groups.items()]
    return "## Groups\n\n" + md_table(["group", "jobs", "ok", "failed", "seeds", "job dirs"], rows) + "\n"


def _problems_section(report: Report) -> str:
    out = ["## Problems (every job that did not give a result, by name)", ""]
    for state, title in (("failed", "Failed runs (status failed)"),
                         ("interrupted", "Interrupted runs (stopped by Ctrl-C/SIGTERM, or killed: results.json still "
                                         "says running)"),
                         ("missing", "Job dirs without results.json"),
                         ("corrupt", "Job dirs with a corrupt results.json")):
        bad = report.runs_in(state)
        out.append(f"### {title}: {len(bad)}\n")
        if bad:
            out.append(md_table(["job", "group", "seed", "error"],
                                [(f"`{r.name}`", f"`{r.group}`", r.seed if r.seed is not None else "n/a",
                                  r.problem) for r in bad]) + "\n")
    # Ok runs that give no value for a reported metric are left out of its statistics: say which.
    lacking = [(r, m) for m in report.metrics for r in report.runs_in("ok")
               if r.metrics.get(m) is None or not math.isfinite(r.metrics[m])]
    out.append(f"### Ok runs without a value for a reported metric: {len(lacking)}\n")
    if lacking:
        out.append(md_table(["job", "group", "seed", "error"],
                            [(f"`{r.name}`", f"`{r.group}`", r.seed if r.seed is not None else "n/a",
                              f"{m} is {r.metrics[m]}: left out of its statistics" if m in r.metrics else
                              f"no {m} in results.json (absent, or null for NaN/inf): left out of its statistics")
                             for r, m in lacking]) + "\n")
    return "\n".join(out)


def _degenerate_section(report: Report) -> str:
    bad = [r for r in report.runs if r.degenerate]
    body = md_table(["job", "group", "seed", "why"],
                    [(f"`{r.name}`", f"`{r.group}`", r.seed, "; ".join(r.degenerate)) for r in bad]) if bad else "None."
    return f"## Degenerate runs: {len(bad)}\n\n{body}\n"


def _baseline_section(report: Report) -> str:
    rows = [(f"`{g}`", fmt(b.acc), fmt(b.f1), fmt(b.f1_macro), b.note or "")
            for g, b in report.baseline.items()]
    return ("## Majority-class baseline\n\n"
            "Always predicting the most frequent training class. accuracy = the runs' `majority_rate`; "
            "F1 (positive class) is 0 when that class is the negative one.\n\n"
            + md_table(["group", "accuracy", "F1 (positive class)", "macro F1", "note"], rows) + "\n")


def _summary_cells(x: Summary) -> tuple:
    return (fmt(x.mean), fmt(x.sd), fmt(x.min), fmt(x.max), fmt_ci(x.ci_low, x.ci_high), x.note)


def _summary_rows(report: Report, metric: str, entry: MetricSection, non_degenerate: bool) -> list[tuple]:
    rows = []
    for g, s in entry.summary.items():
        x = s.non_degenerate if non_degenerate else s.all
        rows.append((f"`{g}`", x.n, s.n_failed, *_summary_cells(x)))
    base = {g: report.baseline_value(g, metric) for g in entry.summary}
    if BASELINE_OF.get(metric):
        if len(set(base.values())) == 1:
            rows.append(("majority-class baseline", "", "", fmt(next(iter(base.values()))), "", "", "", "", ""))
        else:
            rows += [(f"majority-class baseline (`{g}`)", "", "", fmt(v), "", "", "", "", "") for g, v in base.items()]
    return rows


def _metric_section(report: Report, metric: str, entry: MetricSection) -> str:
    header = ["group", "n ok", "n failed", "mean", "sd", "min", "max", f"{report.percent}% CI", "note"]
    out = [f"## `{metric}` — {entry.name}", "",
           "All ok runs:", "", md_table(header, _summary_rows(report, metric, entry, False)), ""]
    if entry.n_degenerate:
        out += [f"Without the {entry.n_degenerate} degenerate run(s):", "",
                md_table(header, _summary_rows(report, metric, entry, True)), ""]
    comp = entry.comparisons
    if comp.vs_reference:
        out += [f"### vs reference `{report.reference}` (Welch t-test, {_family(report)})", "",
                _comparison_table(comp.vs_reference, "group"), ""]
    if comp.all_pairs:
        out += [f"### All pairs (Welch t-test, {_family(report)})", "",
                _comparison_table(comp.all_pairs, "A"), ""]
    if entry.aso:
        out += ["### Almost Stochastic Order (ASO)", "",
                md_table(["better (tested)", "other", "ε_min", "note"],
                         [(f"`{r.better}`", f"`{r.worse}`", fmt(r.eps_min, 3), r.note) for r in entry.aso]), ""]
    out += [f"![{metric} box plot]({plot_name(metric)})", ""]
    out += render_study.variance_section(entry) + render_study.expected_max_section(metric, entry)
    return "\n".join(out)


def _family(report: Report) -> str:
    """Where Holm adjusts: a data sweep tests (and adjusts) within each dataset only."""
    return "within each dataset, Holm within each" if report.datasets else "Holm within this family"


def _comparison_table(rows: list[Comparison], first: str) -> str:
    second = "reference" if first == "group" else "B"
    return md_table(
        [first, second, "n", f"Δ mean ({first} − {second})", "95% CI of Δ", "t", "df", "p", "p (Holm)",
         "Hedges' g [95% CI]", "seeds/arm for 80% power", "note"],
        [(f"`{r.a}`", f"`{r.b}`", f"{r.n_a} vs {r.n_b}", fmt(r.diff),
          fmt_ci(r.diff_ci_low, r.diff_ci_high), fmt(r.t, 2), fmt(r.df, 1), fmt_p(r.p),
          fmt_p(r.p_holm), f"{fmt(r.g, 2)} {fmt_ci(r.g_ci_low, r.g_ci_high)}" if fmt(r.g) != "n/a" else "n/a",
          render_study.seeds_cell(r.seeds_needed), r.note) for r in rows])


# =============================================================================== CSV

SUMMARY_FIELDS = ("mean", "sd", "min", "max", "ci_low", "ci_high", "note")
CSV_FIELDS = ["group", "metric", "metric_name", "n_ok", "n_failed", "n_degenerate", *SUMMARY_FIELDS,
              "n_non_degenerate", "mean_non_degenerate", "sd_non_degenerate",
              "ci_low_non_degenerate", "ci_high_non_degenerate", "majority_baseline", "reference",
              "diff_vs_reference", "diff_ci_low", "diff_ci_high", "t", "df", "p", "p_holm"]
TEST_FIELDS = {"diff_vs_reference": "diff", "diff_ci_low": "diff_ci_low", "diff_ci_high": "diff_ci_high",
               "t": "t", "df": "df", "p": "p", "p_holm": "p_holm"}  # CSV column -> Comparison field


def render_csv(report: Report) -> str:
    """One row per group x metric; the test vs the reference on the same row (empty for the reference)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for metric, entry in report.metrics.items():
        vs_ref = {r.a: r for r in entry.comparisons.vs_reference}
        for g, s in entry.summary.items():
            a, nd, r = s.all, s.non_degenerate, vs_ref.get(g)
            row = {"group": g, "metric": metric, "metric_name": entry.name, "n_ok": s.n_ok,
                   "n_failed": s.n_failed, "n_degenerate": s.n_degenerate,
                   **{k: getattr(a, k) for k in SUMMARY_FIELDS},
                   "n_non_degenerate": nd.n, "mean_non_degenerate": nd.mean, "sd_non_degenerate": nd.sd,
                   "ci_low_non_degenerate": nd.ci_low, "ci_high_non_degenerate": nd.ci_high,
                   "majority_baseline": report.baseline_value(g, metric), "reference": report.reference,
                   **{col: getattr(r, f) if r else None for col, f in TEST_FIELDS.items()}}
            w.writerow({k: _csv_cell(v) for k, v in row.items()})
    return buf.getvalue()


def _csv_cell(v):
    """Empty for missing/NaN, full precision otherwise."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(float(v)) if isinstance(v, (float, np.floating)) else v
