"""The study in W&B: one run (job type ``report``, the sweep's group) that carries the report.

The W&B dashboard shows a sweep's runs one by one; the study — the per-group summary, the tests
between groups, the box plots and expected-max curves — lives in report.md. This puts the same
tables and figures into one W&B run in the sweep's group, so the dashboard shows the study next
to its runs. Like every run of tunelab it is offline unless W&B is set up (``tunelab.loggers``):
the files go to ``<report dir>/wandb`` and ``wandb sync`` uploads them later.

Tables: ``summary`` (report.csv: one row per group x metric), ``tests`` (every Welch comparison
with Hedges' g and seeds needed), ``paired`` (the pooled sign-flip/bootstrap rows, when the runs
saved predictions). Images: every plot the report wrote.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

from tunelab.report.model import Report
from tunelab.report.render import render_csv

TEST_COLUMNS = ["metric", "family", "a", "b", "n_a", "n_b", "diff", "diff_ci_low", "diff_ci_high", "t", "df", "p",
                "p_holm", "g", "g_ci_low", "g_ci_high", "seeds_needed"]


def sweep_group(sweep_dir) -> str:
    """The W&B group the sweep's runs used (``tunelab.run.RunContext.group``)."""
    return "_".join(Path(sweep_dir).parts[-2:])


def _cell(v):
    """W&B tables want plain values; NaN/inf become None."""
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return None
    return v


def tables(report: Report) -> dict[str, tuple[list[str], list[list]]]:
    """name -> (columns, rows) of the tables the run carries."""
    rows = list(csv.reader(io.StringIO(render_csv(report))))
    out = {"summary": (rows[0], rows[1:])}
    tests = []
    for metric, entry in report.metrics.items():
        c = entry.comparisons
        for family, comps in (("vs_reference", c.vs_reference), ("all_pairs", c.all_pairs)):
            tests += [[metric, family] + [_cell(getattr(row, k)) for k in TEST_COLUMNS[2:]] for row in comps]
    out["tests"] = (TEST_COLUMNS, tests)
    if report.examples and report.examples.pairs:
        cols = ["a", "b", "seeds", "a_right_b_wrong", "a_wrong_b_right", "p", "p_holm", "test"]
        parts = [(m, k) for m in sorted({m for r in report.examples.pairs for m in r.diffs})
                 for k in ("diff", "low", "high")]
        out["paired"] = (cols + [f"{m}:{k}" for m, k in parts], [
            [r.a, r.b, r.seeds, r.a_right_b_wrong, r.a_wrong_b_right, _cell(r.p), _cell(r.p_holm), r.test]
            + [_cell(r.diffs.get(m, {}).get(k)) for m, k in parts]
            for r in report.examples.pairs if r.seeds.startswith("pooled")])
    return out


def log_report(report: Report, *, project: str = "tunelab", entity: Optional[str] = None,
               group: Optional[str] = None, mode: str = "offline") -> str:
    """Log the report as one W&B run; returns the run's local dir. ``mode`` as ``logger.mode``
    (``auto``: online only with credentials); the WANDB_MODE environment variable wins."""
    import wandb

    from tunelab.loggers import _wandb_settings, wandb_mode

    out_dir = Path(report.files.get("md", Path(report.sweep_dir) / "report.md")).parent
    group = group or sweep_group(report.sweep_dir)
    header = report.header
    run = wandb.init(project=project, entity=entity, group=group, job_type="report", name=f"report {group}",
                     dir=str(out_dir), mode=wandb_mode(mode), settings=_wandb_settings(),
                     config={"sources": header.sources if header else [report.sweep_dir],
                             "swept_keys": report.swept_keys, "reference": report.reference})
    try:
        payload = {name: wandb.Table(columns=cols, data=rows) for name, (cols, rows) in tables(report).items()}
        payload.update({f"plots/{key.split(':', 1)[1]}/{key.split(':', 1)[0]}": wandb.Image(path)
                        for key, path in report.files.items() if key.startswith(("plot:", "expected_max:"))
                        and Path(path).is_file()})
        run.log(payload)
        run.summary["report_md"] = report.files.get("md")
        return str(Path(run.dir).parent)
    finally:
        run.finish()
