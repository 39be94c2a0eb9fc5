"""At a glance: one row per arm with what a fair fight weighs — in- and out-of-domain scores,
calibration, and what the arm costs — best first, the majority class last.

The rest of the report gives each of these its own section (with the tests behind them); a paper
or a README wants them side by side. Every number here is the report's own (the metric summaries,
``report.ood``, ``report.calibration``, ``report.cost``): nothing is recomputed, so this table
and the sections always agree. Columns a study has no data for are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from tunelab.report.model import Report

# (column, in-domain metric, key of the same score out of domain in report.ood.arms[g].mean)
SCORES = (("ID acc", "test/acc", None), ("OOD acc", "test/acc", "acc_ood"),
          ("ID macro F1", "test/f1_macro", None), ("OOD macro F1", "test/f1_macro", "f1_macro_ood"))
# the same columns of the majority-class baseline: report.baseline field, report.ood.baseline key
BASELINE = {"ID acc": ("acc", None), "OOD acc": (None, "acc_ood"), "ID macro F1": ("f1_macro", None),
            "OOD macro F1": (None, "f1_macro_ood")}


@dataclass
class GlanceRow:
    group: str
    n: int
    scores: dict = field(default_factory=dict)  # column -> (mean, sd)
    ece: float = math.nan
    ece_ts: float = math.nan
    params: float = math.nan
    bytes_per_task: float = math.nan
    cpu_s: float = math.nan


@dataclass
class Glance:
    columns: list[str]                  # the score columns present
    rows: list[GlanceRow]               # best first by the first score column
    calibration: bool
    cost: bool
    baseline: dict = field(default_factory=dict)  # score column -> the majority class's score (one dataset)


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def glance(report: Report) -> Optional[Glance]:
    """The table's content; None when the report has no score, or neither an OOD split nor calibration."""
    ood = report.ood.arms if report.ood is not None else {}
    rows = []
    for g in report.groups:
        row = GlanceRow(g, 0)
        for col, metric, ood_key in SCORES:
            if metric not in report.metrics:
                continue
            if ood_key is None:
                s = report.metrics[metric].summary.get(g)
                if s is not None and s.all.n:
                    row.scores[col], row.n = (s.all.mean, s.all.sd), s.all.n
            elif g in ood and _finite(ood[g].mean.get(ood_key)):
                row.scores[col] = (ood[g].mean[ood_key], ood[g].sd.get(ood_key, math.nan))
        cal = report.calibration.arms.get(g) if report.calibration is not None else None
        if cal is not None:
            row.ece, row.ece_ts = cal.mean.get("ece", math.nan), cal.mean.get("ece_ts", math.nan)
        cost = (report.cost or {}).get(g)
        if cost is not None:
            row.params, row.bytes_per_task, row.cpu_s = cost.trainable_params, cost.bytes_per_task, cost.cpu_s_mean
        if row.scores:
            rows.append(row)
    columns = [col for col, _, _ in SCORES if any(col in r.scores for r in rows)]
    calibration = any(_finite(r.ece) for r in rows)
    if not columns or not (calibration or any(c.startswith("OOD") for c in columns)):
        return None  # scores and cost alone: the metric and cost sections already say it all
    first = columns[0]
    rows.sort(key=lambda r: -r.scores[first][0] if first in r.scores and _finite(r.scores[first][0]) else math.inf)
    return Glance(columns, rows, calibration=calibration,
                  cost=any(_finite(r.cpu_s) or _finite(r.params) for r in rows), baseline=_baseline(report, columns))


def _baseline(report: Report, columns: list[str]) -> dict:
    """The majority class's score per column, where every group has the same one (one dataset)."""
    out = {}
    for col in columns:
        field_id, ood_key = BASELINE[col]
        if field_id is not None:
            values = {getattr(b, field_id) for b in report.baseline.values()}
        else:
            values = {b.get(ood_key) for b in (report.ood.baseline.values() if report.ood is not None else ())}
        if len(values) == 1 and _finite(next(iter(values))):
            out[col] = next(iter(values))
    return out


def best_of(table: Glance, col: str) -> Optional[float]:
    """The highest mean of a score column (shown in bold)."""
    means = [r.scores[col][0] for r in table.rows if col in r.scores and _finite(r.scores[col][0])]
    return max(means) if len(means) > 1 else None


def glance_section(report: Report) -> str:
    from tunelab.report.formatting import fmt_count, fmt_size, md_table

    table = glance(report)
    if table is None:
        return ""

    def score(row: GlanceRow, col: str) -> str:
        if col not in row.scores:
            return "n/a"
        mean, sd = row.scores[col]
        text = f"{mean:.3f}" + (f" ± {sd:.3f}" if _finite(sd) and f"{sd:.3f}" != "0.000" else "")
        return f"**{text}**" if mean == best_of(table, col) else text

    header = ["group", "runs", *table.columns]
    header += ["ECE → TS"] if table.calibration else []
    header += ["trained params", "bytes/task", "CPU s/run"] if table.cost else []
    body = []
    for r in table.rows:
        cells = [f"`{r.group}`", r.n, *(score(r, c) for c in table.columns)]
        if table.calibration:
            cells.append(f"{r.ece:.3f} → {r.ece_ts:.3f}" if _finite(r.ece) and _finite(r.ece_ts) else "n/a")
        if table.cost:
            cells += [fmt_count(r.params), fmt_size(r.bytes_per_task), fmt_count(r.cpu_s)]
        body.append(cells)
    if table.baseline:
        extra = (1 if table.calibration else 0) + (3 if table.cost else 0)
        body.append(["majority class", "", *(f"{table.baseline[c]:.3f}" if c in table.baseline else "" for c in
                                             table.columns), *[""] * extra])
    return ("## At a glance\n\n"
            "One row per group, best first by its first column: mean ± sd over seeds (a single value: the "
            "seeds agree to 3 decimals), out-of-domain scores where the study has an OOD split, ECE before and after "
            "temperature scaling, and the cost of one run. Each number is taken from its own section below, "
            "with the tests behind it; bold: the best mean of the column.\n\n"
            + md_table(header, body) + "\n")
