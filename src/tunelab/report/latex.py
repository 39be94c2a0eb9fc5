"""``tunelab report --latex``: the report's numbers as booktabs tables for a paper (``tables.tex``).

One table per reported metric: each group's mean ± sd over seeds, its confidence interval, a
significance mark from the report's own test against the reference group (Welch, Holm-adjusted:
* p < .05, ** p < .01, *** p < .001) and the majority-class baseline as the last row. A sweep over
datasets gets one wide table per metric instead (arms x datasets; marks from the within-dataset
tests; the arms' average rank where the report ranked them), and a calibration table when the
runs recorded calibration. The numbers are the report's (report.json), never recomputed here.

Include with ``\\usepackage{booktabs}`` and ``\\input{tables.tex}``.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from tunelab.report.model import Report, Summary

DIGITS = 3
MARKS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
            "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def tex(text) -> str:
    """Text with LaTeX's special characters escaped."""
    return re.sub(r"[&%$#_{}~^\\]", lambda m: _SPECIAL[m.group()], str(text))


def num(x, digits: int = DIGITS) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "--"
    return f"{x:.{digits}f}"


def mark(p_holm: Optional[float]) -> str:
    """``$^{**}$`` for a Holm-adjusted p below .01, and so on; nothing when not significant."""
    if p_holm is None or not math.isfinite(p_holm):
        return ""
    stars = next((s for bound, s in MARKS if p_holm < bound), "")
    return f"$^{{{stars}}}$" if stars else ""


def mean_sd(s: Summary, p_holm: Optional[float] = None) -> str:
    if s.n == 0 or not math.isfinite(s.mean):
        return "--"
    sd = f" $\\pm$ {num(s.sd)}" if math.isfinite(s.sd) else ""
    return f"{num(s.mean)}{sd}{mark(p_holm)}"


def _ci(s: Summary) -> str:
    return "--" if not math.isfinite(s.ci_low) else f"[{num(s.ci_low)}, {num(s.ci_high)}]"


def _label(metric: str) -> str:
    return "tab:tunelab-" + re.sub(r"[^A-Za-z0-9]+", "-", metric).strip("-")


def _table(cols: str, header: list[str], rows: list[list[str]], footer: list[list[str]], caption: str,
           label: str) -> str:
    line = (lambda cells: " & ".join(cells) + r" \\")
    out = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
           line(header), r"\midrule", *map(line, rows)]
    if footer:
        out += [r"\midrule", *map(line, footer)]
    out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}", rf"\label{{{label}}}", r"\end{table}", ""]
    return "\n".join(out)


def _stars_note() -> str:
    return ("Marks: Welch t-test against the reference, Holm-adjusted: $^{*}$ $p<.05$, $^{**}$ $p<.01$, "
            "$^{***}$ $p<.001$.")


def metric_table(report: Report, metric: str) -> str:
    entry = report.metrics[metric]
    p_of = {c.a: c.p_holm for c in entry.comparisons.vs_reference}
    rows = []
    for g, s in entry.summary.items():
        name = r"\texttt{" + tex(g) + "}" + (" (ref.)" if g == report.reference else "")
        rows.append([name, str(s.all.n), mean_sd(s.all, p_of.get(g)), _ci(s.all)])
    base = {report.baseline_value(g, metric) for g in entry.summary} - {None}
    footer = [["majority class", "", num(next(iter(base))), ""]] if len(base) == 1 else []
    if len(base) > 1:
        footer = [[r"majority class (\texttt{" + tex(g) + "})", "", num(report.baseline_value(g, metric)), ""]
                  for g in entry.summary if report.baseline_value(g, metric) is not None]
    caption = (f"{tex(entry.name)} (\\texttt{{{tex(metric)}}}): mean $\\pm$ sd over seeds ($n$ ok runs) and "
               f"{report.percent}\\% bootstrap CI of the mean. {_stars_note()}")
    return _table("lrcc", ["Group", "$n$", tex(entry.name), f"{report.percent}\\% CI"], rows, footer, caption,
                  _label(metric))


def datasets_table(report: Report, metric: str) -> str:
    sec, entry = report.datasets, report.metrics[metric]
    p_of = {c.a: c.p_holm for c in entry.comparisons.vs_reference}
    ranking = sec.rankings.get(metric)
    rows = []
    for arm in sec.arms:
        cells = [r"\texttt{" + tex(arm) + "}"]
        for d in sec.datasets:
            g = sec.cells[d].get(arm)
            s = entry.summary.get(g) if g else None
            cells.append(mean_sd(s.all, p_of.get(g)) if s is not None else "--")
        if ranking is not None:
            cells.append(num(ranking.avg_ranks.get(arm), 2) if arm in ranking.avg_ranks else "--")
        rows.append(cells)
    base = []
    for d in sec.datasets:
        vals = {report.baseline_value(g, metric) for g in sec.cells[d].values() if g in report.baseline} - {None}
        base.append(num(next(iter(vals))) if len(vals) == 1 else "--")
    footer = [["majority class", *base, *([""] if ranking is not None else [])]] if any(b != "--" for b in base) else []
    header = ["Arm", *(r"\texttt{" + tex(d.split("=", 1)[-1]) + "}" for d in sec.datasets),
              *(["avg.\\ rank"] if ranking is not None else [])]
    rank_note = (f" Average rank over the datasets (1 = best); Friedman $p = {ranking.p:.3g}$, Nemenyi "
                 f"CD $= {ranking.cd:.2f}$ at $\\alpha = {ranking.alpha:g}$." if ranking is not None else "")
    caption = (f"{tex(entry.name)} (\\texttt{{{tex(metric)}}}) per dataset: mean $\\pm$ sd over seeds. "
               f"Marks: Welch t-test against the reference arm on the same dataset, Holm-adjusted within "
               f"each dataset: $^{{*}}$ $p<.05$, $^{{**}}$ $p<.01$, $^{{***}}$ $p<.001$.{rank_note}")
    return _table("l" + "c" * (len(header) - 1), header, rows, footer, caption, _label(metric) + "-datasets")


def _arm_cell(arm, key: str) -> str:
    """An arm's ``mean[key] ± sd[key]`` (calibration, ID/OOD sections); -- when unknown."""
    m, s = arm.mean.get(key, math.nan), arm.sd.get(key, math.nan)
    if m is None or not math.isfinite(m):
        return "--"
    return num(m) + (f" $\\pm$ {num(s)}" if s is not None and math.isfinite(s) else "")


def calibration_table(report: Report) -> str:
    sec = report.calibration
    cell = _arm_cell
    rows = [[r"\texttt{" + tex(g) + "}", str(a.n_runs), cell(a, "ece"), cell(a, "ece_ts"), cell(a, "brier"),
             cell(a, "nll"), num(a.ensemble.get("ece"))] for g, a in sec.arms.items()]
    caption = (f"Calibration on the test split: ECE ({sec.n_bins} equal-width bins) before and after temperature "
               "scaling (T fitted on validation), multi-class Brier score and NLL, mean $\\pm$ sd over seeds; "
               "last column: ECE of the mean-probability seed ensemble.")
    return _table("lrccccc", ["Group", "$n$", "ECE", "ECE (TS)", "Brier", "NLL", "ens.\\ ECE"], rows, [], caption,
                  "tab:tunelab-calibration")


def ood_table(report: Report) -> str:
    """In-domain vs out-of-domain per arm (``report.ood``) with the majority-class baseline."""
    sec = report.ood
    keys = ("acc_id", "acc_ood", "acc_drop", "f1_macro_id", "f1_macro_ood", "f1_macro_drop")
    rows = [[r"\texttt{" + tex(g) + "}", str(a.n_runs), *(_arm_cell(a, k) for k in keys)] for g, a in sec.arms.items()]
    base = {tuple(b.get(k) for k in keys if not k.endswith("drop")) for b in sec.baseline.values()}
    footer = []
    if len(base) == 1:
        b = next(iter(sec.baseline.values()))
        footer = [["majority class", "", num(b.get("acc_id")), num(b.get("acc_ood")), "",
                   num(b.get("f1_macro_id")), num(b.get("f1_macro_ood")), ""]]
    caption = ("In-domain (ID) and out-of-domain (OOD) accuracy and macro F1, and the drop ID $-$ OOD per run, "
               "mean $\\pm$ sd over seeds ($n$ ok runs). Paired tests between arms on the OOD examples (sign-flip "
               "test over examples, paired bootstrap) are in the report.")
    return _table("lrcccccc", ["Group", "$n$", "ID acc.", "OOD acc.", "drop", "ID macro F1", "OOD macro F1", "drop"],
                  rows, footer, caption, "tab:tunelab-ood")


def paired_tex_table(report: Report, ood: bool = False) -> str:
    """The pooled paired tests between arms on the same test (or OOD) examples: Δ accuracy and Δ
    macro F1 (A − B, mean over seed pairs) with their paired-bootstrap CIs, and the sign-flip
    test's Holm-adjusted p with the report's marks; empty without pooled rows."""
    sec = report.ood if ood else report.examples
    pooled = [r for r in (sec.pairs if sec is not None else []) if r.seeds.startswith("pooled")]
    if not pooled:
        return ""
    split = "test_ood" if ood else "test"

    def diff(r, key: str) -> str:
        d = r.diffs.get(f"{split}/{key}")
        return "--" if not d else f"{num(d['diff'])} [{num(d['low'])}, {num(d['high'])}]"

    def p_cell(p) -> str:
        if p is None or not math.isfinite(p):
            return "--"
        return ("$<$0.001" if p < 0.001 else num(p)) + mark(p)

    rows = [[r"\texttt{" + tex(r.a) + "}", r"\texttt{" + tex(r.b) + "}", str(r.n_pairs), diff(r, "acc"),
             diff(r, "f1_macro"), p_cell(r.p_holm)] for r in pooled]
    where = "out-of-domain" if ood else "in-domain test"
    caption = (f"Paired comparisons on the same {where} examples: A $-$ B in accuracy and macro F1, the mean over "
               f"the seed pairs with a {report.percent}\\% paired-bootstrap CI (examples resampled), and the "
               "Holm-adjusted $p$ of the paired sign-flip test with the example as the unit "
               "($^{*}$ $p<.05$, $^{**}$ $p<.01$, $^{***}$ $p<.001$).")
    return _table("llcccc", ["A", "B", "seed pairs", "$\\Delta$ acc.", "$\\Delta$ macro F1", "$p$ (Holm)"], rows, [],
                  caption, "tab:tunelab-ood-paired" if ood else "tab:tunelab-paired")


def tune_table(report: Report) -> str:
    """A tuning study (hydra/sweeper=tune): per arm the bounds searched, the chosen values, and the
    test score tuned and at the default recipe (same fresh seeds)."""
    from tunelab.schemas.search import override_value

    t = report.tune
    cell = (lambda s: "--" if s is None or not s.n else
            num(s.mean) + (f" $\\pm$ {num(s.sd)}" if math.isfinite(s.sd) else "") + f" ({s.n})")
    rows = []
    for label, a in t.arms.items():
        space = "; ".join(rf"\texttt{{{tex(k)}}} {tex(a.bounds.get(k, a.search[k]))}" for k in a.search) or "--"
        chosen = "; ".join(tex(override_value(a.chosen.get(k))) for k in a.search) if a.best is not None else "--"
        rows.append([r"\texttt{" + tex(label) + "}", space, chosen or "--", num(a.val_best), cell(a.tuned),
                     cell(a.default)])
    s = t.settings
    caption = (f"Tuned vs default recipe: per arm, {s['trials']} trials $\\times$ {s['seeds_per_trial']} seeds "
               f"searched on validation (\\texttt{{{tex(t.metric)}}}, {s['sampler']} search, trial 0 = the default "
               f"recipe), then the best trial and the default each tested on {len(s['test_seeds'] or [])} fresh "
               f"seeds: \\texttt{{{tex(t.test_metric)}}}, mean $\\pm$ sd ($n$).")
    return _table("llcccc", ["Arm", "Search space", "Chosen", "Val.", "Test (tuned)", "Test (default)"], rows, [],
                  caption, "tab:tunelab-tuning")


def glance_table(report: Report) -> str:
    """One row per arm: ID/OOD scores, ECE before/after scaling, trained parameters, bytes per task
    and CPU seconds per run (``tunelab.report.glance``); empty when the report has no score."""
    from tunelab.report.formatting import fmt_count, fmt_size
    from tunelab.report.glance import best_of, glance

    t = glance(report)
    if t is None:
        return ""

    def score(row, col):
        if col not in row.scores:
            return "--"
        mean, sd = row.scores[col]
        text = num(mean) + (f" $\\pm$ {num(sd)}" if math.isfinite(sd) and num(sd) != num(0.0) else "")
        return rf"\textbf{{{text}}}" if mean == best_of(t, col) else text

    header = ["Group", "$n$", *(tex(c).replace("acc", "acc.") for c in t.columns)]
    header += ["ECE $\\to$ TS"] if t.calibration else []
    header += ["Params", "Bytes/task", "CPU s/run"] if t.cost else []
    rows = []
    for r in t.rows:
        cells = [r"\texttt{" + tex(r.group) + "}", str(r.n), *(score(r, c) for c in t.columns)]
        if t.calibration:
            cells.append(f"{num(r.ece)} $\\to$ {num(r.ece_ts)}")
        if t.cost:
            cells += [tex(fmt_count(r.params)), tex(fmt_size(r.bytes_per_task)), tex(fmt_count(r.cpu_s))]
        rows.append(cells)
    extra = (1 if t.calibration else 0) + (3 if t.cost else 0)
    footer = [["majority class", "", *(num(t.baseline.get(c)) if c in t.baseline else "" for c in t.columns),
               *[""] * extra]] if t.baseline else []
    caption = ("At a glance: per arm, mean $\\pm$ sd over seeds of the in-domain (ID) and out-of-domain (OOD) "
               "scores, ECE before and after temperature scaling, trained parameters, bytes kept per task and CPU "
               "seconds per run; bold: the best mean of a column.")
    return _table("lr" + "c" * (len(header) - 2), header, rows, footer, caption, "tab:tunelab-glance")


def latex_tables(report: Report) -> str:
    """Every table, one after the other (a file to ``\\input``)."""
    parts = [f"% tunelab report of {tex(report.sweep_dir)} ({report.generated_at}); needs \\usepackage{{booktabs}}", ""]
    glance = glance_table(report)
    if glance:
        parts.append(glance)
    for metric in report.metrics:
        parts.append(datasets_table(report, metric) if report.datasets else metric_table(report, metric))
    if report.calibration is not None:
        parts.append(calibration_table(report))
    if report.examples is not None:
        parts.append(paired_tex_table(report))
    if report.ood is not None:
        parts += [ood_table(report), paired_tex_table(report, ood=True)]
    if report.tune is not None:
        parts.append(tune_table(report))
    return "\n".join(parts)
