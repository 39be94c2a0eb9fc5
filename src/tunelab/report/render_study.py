"""report.md sections of the study tools: what ran, variance decomposition, expected-max curves,
and the example-level (paired) statistics. Text only; every number is computed elsewhere.

Kept apart from ``render`` (the per-metric summary and Welch tables) so each file stays one
idea; ``render.render_markdown`` calls these in order.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tunelab.metrics import best_mode
from tunelab.report.formatting import fmt, fmt_p, md_table
from tunelab.report.plots import expected_max_plot_name

if TYPE_CHECKING:
    from tunelab.report.model import MetricSection, Report

SCORES = ("test/acc", "test/f1", "test/f1_macro")


def what_ran(report: Report) -> str:
    """The header: model, data, task, method, fixed overrides, swept keys, seeds, versions."""
    h = report.header
    if h is None:
        return ""
    join = (lambda xs: ", ".join(f"`{x}`" for x in xs) or "n/a")
    lines = ["## What ran", "",
             f"- Model: {join(h.models)}; data: {join(h.data)}; task: {join(h.tasks)}; method: {join(h.methods)}",
             f"- Fixed overrides (same in every job): {join(h.fixed_overrides)}",
             f"- Swept keys (the groups): {join(h.swept_keys) if h.swept_keys else 'none (one group)'}",
             "- Seeds: " + ("; ".join(f"`{k}` ∈ {{{', '.join(map(str, v))}}}" for k, v in h.seeds.items()) or "n/a"),
             f"- Code: tunelab commit(s) {join(h.git_commits)}",
             "- Libraries (of the runs): " + ("; ".join(f"{lib} {', '.join(v)}" for lib, v in h.versions.items())
                                               or "not recorded (runs made before versions were saved)"),
             f"- Report made with tunelab {h.report_versions.get('tunelab', '?')}"]
    if len(h.sources) > 1:
        lines.insert(2, "- Merged from " + ", ".join(f"`{s}`" for s in h.sources)
                     + " (identical configs counted once; see Notes)")
        if any(len(v) > 1 for v in h.versions.values()) or len(h.git_commits) > 1:
            lines.append("- **Warning**: the merged sweeps ran different code or library versions (above).")
    return "\n".join(lines) + "\n"


def variance_section(entry: MetricSection) -> list[str]:
    if not entry.variance:
        return []
    rows = []
    for g, d in entry.variance.items():
        vi, vo, vr = d.var_shares()
        rows.append((f"`{g}`", f"{d.n_init}×{d.n_order}×{d.reps}" if d.reps else f"{d.n_init}×{d.n_order}",
                     fmt(d.share_init, 3), fmt(d.share_order, 3), fmt(d.share_rest, 3),
                     fmt(vi, 3), fmt(vo, 3), fmt(vr, 3), d.note))
    return ["### Variance decomposition: initialisation vs. data order", "",
            "Two-way ANOVA over the crossed `init_seed` × `order_seed` grid (init = initial weights and "
            "dropout masks; order = batch order). SS share: the part of the total sum of squares; "
            "component share: random-effects variance components (negative estimates set to 0), the "
            "better estimate of where a single run's variance comes from.", "",
            md_table(["group", "grid (init×order×reps)", "SS init", "SS order", "SS interaction+residual",
                    "component init", "component order", "component rest", "note"], rows), ""]


def expected_max_section(metric: str, entry: MetricSection) -> list[str]:
    if not entry.expected_max:
        return []
    groups = list(entry.expected_max)
    n_max = max((len(c["test"].n) for c in entry.expected_max.values()), default=0)
    out = ["### Expected best score vs. number of runs", "",
           f"E[{best_mode(metric)} of n runs] with Tang et al.'s (2020) unbiased estimator (n = 1 is the mean, n = N "
           "the observed best), [95% percentile bootstrap band]. Test score; the validation curve is in the plot.",
           ""]
    rows = []
    for n in range(1, n_max + 1):
        row = [n]
        for g in groups:
            c = entry.expected_max[g]["test"]
            row.append(f"{fmt(c.mean[n - 1])} [{fmt(c.low[n - 1])}, {fmt(c.high[n - 1])}]" if n <= len(c.n) else "")
        rows.append(row)
    out += [md_table(["n", *(f"`{g}`" for g in groups)], rows), "",
            f"![{metric} expected max]({expected_max_plot_name(metric)})", ""]
    return out


def _diff_cell(d: dict | None) -> str:
    if not d:
        return "n/a"
    return f"{fmt(d['diff'])} [{fmt(d['low'])}, {fmt(d['high'])}]"


def examples_section(report: Report) -> str:
    ex = report.examples
    if ex is None:
        return ""
    out = ["## Example-level statistics (per-example predictions)", ""]
    if not ex.arms:
        return "\n".join(out + ["No predictions to compare.", ""] + [f"- {n}" for n in ex.notes]) + "\n"
    out += [f"{ex.n_examples} test examples shared by every run; labels {', '.join(ex.label_names)}.", "",
            "### Seed ensembles and agreement", "",
            "mean single: the mean over seeds; vote: majority vote of the seeds; mean prob.: argmax of the "
            "mean class probability. Agreement: mean over seed pairs of the share of examples with the same "
            "prediction; all agree: share of examples on which every seed predicts the same.", ""]
    rows = []
    for g, a in ex.arms.items():
        mp = a.mean_probability or {}
        rows.append((f"`{g}`", a.n_seeds, *(fmt(a.mean_single.get(m)) for m in SCORES),
                     *(fmt(a.vote.get(m)) for m in SCORES), *(fmt(mp.get(m)) for m in SCORES),
                     fmt(a.agreement, 3), fmt(a.all_agree, 3)))
    heads = [f"{kind} {m.split('/')[1]}" for kind in ("mean single", "vote", "mean prob.") for m in SCORES]
    out += [md_table(["group", "seeds", *heads, "agreement", "all agree"], rows), ""]
    pooled = [r for r in ex.pairs if r.seeds.startswith("pooled")]
    if pooled:
        out += ["### Paired tests between groups (same examples, seeds paired by init/order seed)", "",
                "Pooled rows pair every shared seed pair and keep the example as the unit: the seed pairs reuse "
                "the same examples, so their counts summed are not new evidence (each example's right(A) − "
                "right(B) is summed over the seed pairs and its sign is a fair coin under no difference); "
                "in them A✓B✗ and A✗B✓ are mean counts per seed pair; Holm over the pooled rows. Δ = A − B "
                f"averaged over seed pairs, with a {report.percent}% paired-bootstrap CI (test examples "
                f"resampled). Tests: {report.tests.paired}. "
                "These tests hold the seeds "
                "fixed and ask whether *these* runs differ on this test set; whether the arms differ across "
                "seeds is the Welch test above.", "",
                paired_table(pooled, holm=True), ""]
        per_seed = [r for r in ex.pairs if not r.seeds.startswith("pooled")]
        if per_seed:  # folded: arms x arms x seeds rows (225 for 10 arms and 5 seeds) would bury the rest
            out += [f"<details><summary>Per seed pair (init/order): {len(per_seed)} rows</summary>", "",
                    paired_table(per_seed, holm=False), "", "</details>", ""]
    if ex.notes:
        out += [f"- {n}" for n in ex.notes] + [""]
    return "\n".join(out)


def paired_table(rows, *, holm: bool, keys=SCORES) -> str:
    """The paired tests' table (``keys``: the score keys of the bootstrap differences, acc, F1, macro F1)."""
    header = ["A", "B", "seeds", "A✓B✗", "A✗B✓", "p", *(["p (Holm)"] if holm else []),
              "Δ acc [CI]", "Δ F1 [CI]", "Δ macro F1 [CI]", "test"]
    return md_table(header, [
        (f"`{r.a}`", f"`{r.b}`", r.seeds, _count(r.a_right_b_wrong), _count(r.a_wrong_b_right), fmt_p(r.p),
         *([fmt_p(r.p_holm)] if holm else []), *(_diff_cell(r.diffs.get(m)) for m in keys), r.test)
        for r in rows])


def _count(n: float) -> str:
    """A discordant count: as is for one seed pair, one decimal for a mean over seed pairs."""
    return str(int(n)) if float(n).is_integer() else f"{n:.1f}"


def seeds_cell(n: float) -> str:
    """Seeds per arm for 80% power: an integer, '>100000' when out of reach, n/a when unknown."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "n/a"
    return ">100000" if math.isinf(n) else str(int(n))
