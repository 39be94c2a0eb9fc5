"""Study report for a sweep (or several merged): what ran, what failed, and what the seeds say.

``build_report(sweep_dir)`` reads every job's ``results.json`` (docs/RESULTS_SCHEMA.md) below a
Hydra multirun dir, groups the runs by the overrides that vary between jobs (all but ``seed``),
and writes ``report.md``, ``report.csv``, ``report.json`` and one box plot per metric into the
sweep dir. CLI: ``python -m tunelab.report <sweep_dir> [--reference GROUP] [--metric M ...] [--aso]``
(also ``tunelab report``).

Design rules, because a report is evidence:
  * nothing is dropped silently: failed runs, job dirs without or with an unreadable
    ``results.json``, runs lacking a metric — each is named in the report;
  * a majority-class baseline is always shown next to the scores, and runs that predict one
    class or do not beat the majority rate are flagged, with statistics with and without them;
  * the test used is named in the text (Welch t-test, Holm within each family, optional ASO).

Only numpy/scipy/matplotlib are imported here (deepsig only for ``aso=True``), so a report can
be made on any machine that has the result files.

What a report is: ``build_report`` returns a typed ``Report`` (``model``); report.json is its
``to_dict()``, and report.md/csv (``render``) and the box plots (``plots``) are drawn from it.
The modules, each importing only the ones above it (``model`` names a few below it for type
annotations only); no two import each other, not even inside a function:

  * ``jobs``     — the ``Job`` record of one job dir, its overrides and seeds;
  * ``formatting`` — numbers, p-values, intervals and markdown tables, for every renderer;
  * ``model``    — the ``Report`` dataclasses (one per part of report.json);
  * ``baseline`` — the majority-class baseline and degenerate-run flags;
  * ``collect``  — job dirs, reading them, grouping (``collect(sweep_dir)``);
  * ``merge``    — several sweep dirs as one study (identical configs once, conflicts named);
  * ``header``   — what ran: model, data, task, fixed/swept overrides, seeds, versions;
  * ``analysis`` — metric choice, summaries, Welch + Holm + Hedges' g + seeds needed, ASO,
    and per group the expected-max curves (``expected_max``) and the init x order variance
    decomposition (``variance``);
  * ``paired`` / ``examples`` — from the runs' predictions.npz: McNemar, the sign-flip test, paired bootstrap,
    seed ensembles and agreement;
  * ``plots`` / ``render`` / ``render_study`` — figures and text; ``build`` — assembles and
    writes (``build_report``); ``wandb_run`` — the report as one W&B run;
  * ``cli``      — ``tunelab report`` and ``python -m tunelab.report``.
"""

from tunelab.report.baseline import run_baseline
from tunelab.report.build import LEVEL, N_BOOT, ReportError, build_report
from tunelab.report.cli import add_arguments, main, run
from tunelab.report.collect import SINGLE_GROUP, Job
from tunelab.report.model import Report

__all__ = ["build_report", "Report", "ReportError", "Job", "run_baseline", "SINGLE_GROUP", "LEVEL", "N_BOOT",
           "add_arguments", "run", "main"]
