"""report.md's calibration section: the table per arm and its ensemble, and the reliability diagrams."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunelab.report.formatting import fmt, fmt_pm, md_table
from tunelab.report.reliability import reliability_plot_name

if TYPE_CHECKING:
    from tunelab.report.model import Report


def _pm(arm, key: str) -> str:
    return fmt_pm(arm.mean.get(key), arm.sd.get(key))


def calibration_section(report: Report) -> str:
    sec = report.calibration
    if sec is None:
        return ""
    rows = [(f"`{g}`", a.n_runs, _pm(a, "ece"), _pm(a, "ece_ts"), _pm(a, "brier"), _pm(a, "nll"),
             _pm(a, "temperature"), a.n_ensemble or "n/a", fmt(a.ensemble.get("ece")), fmt(a.ensemble.get("ece_ts")),
             fmt(a.ensemble.get("brier")), fmt(a.ensemble.get("nll"))) for g, a in sec.arms.items()]
    out = ["## Calibration", "",
           f"Per arm, mean ± sd over its ok runs of each run's test-set numbers: **ECE** (top-label expected "
           f"calibration error, {sec.n_bins} equal-width confidence bins; 0 = calibrated), **ECE (TS)** after "
           "temperature scaling (one temperature **T** per run, fitted on the validation predictions of the "
           "tested weights by minimising their NLL; T > 1: the run was over-confident), the multi-class "
           "**Brier** score (sum over classes, 0..2) and the **NLL** of the gold class. **Ensemble**: the "
           "arm's mean-probability seed ensemble scored the same way (from the float16 probabilities of "
           "predictions.npz; its T fitted on the mean validation probabilities).", "",
           md_table(["group", "runs", "ECE", "ECE (TS)", "Brier", "NLL", "T", "ensemble seeds", "ens. ECE",
                     "ens. ECE (TS)", "ens. Brier", "ens. NLL"], rows), ""]
    plots = [g for g, a in sec.arms.items() if a.pooled_bins is not None]
    if plots:
        out += ["Reliability diagrams (bars: every seed's test predictions pooled; line: the seed ensemble):", ""]
        out += [f"![reliability {g}]({reliability_plot_name(g)})" for g in plots] + [""]
    out += [f"- {n}" for n in sec.notes] + ([""] if sec.notes else [])
    return "\n".join(out)
