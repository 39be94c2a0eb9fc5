"""``build_report``: collect a sweep, compute the statistics, assemble the ``Report``, write it.

Writing goes through ``tunelab.io`` (atomic: a reader never sees half a report.md), plots
first because report.md links them, and report.json last-but-one so its ``files`` lists
every file the report made.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Sequence

from tunelab.errors import TunelabError
from tunelab.metrics import best_mode
from tunelab.io import atomic_write, write_json
from tunelab.report import analysis, claims
from tunelab.report.adaptive import adaptive_study
from tunelab.report.baseline import group_baseline, id_ood_baseline
from tunelab.report.calibration import calibration_section
from tunelab.report.cd_diagram import PLOT_PREFIX as CD_PREFIX, cd_plot_name, plot_cd
from tunelab.report.checklist import render_checklist
from tunelab.report.collect import Job, group_jobs, natural_key
from tunelab.report.datasets import split_groups
from tunelab.report.cost import group_costs
from tunelab.report.pareto import PLOT_PREFIX as PARETO_PREFIX
from tunelab.report.pareto import plot_name as pareto_plot_name
from tunelab.report.pareto import plot_pareto
from tunelab.report.examples import N_BOOT_PAIRED, example_level, positive_index_of
from tunelab.report.header import make_header
from tunelab.report.ood import ood_section
from tunelab.report.latex import latex_tables
from tunelab.report.merge import collect_dirs, several_sweeps_message, with_implied_data
from tunelab.report.paired import EXACT_BELOW
from tunelab.report.model import Comparisons, Counts, Group, MetricSection, Methods, Report, Run
from tunelab.report.plots import (PLOT_GLOB, expected_max_plot_name, no_result, plot_expected_max, plot_metric,
                                  plot_name)
from tunelab.report.reliability import PLOT_PREFIX, plot_reliability, reliability_plot_name
from tunelab.report.render import render_csv, render_markdown
from tunelab.report.plot_tune import write_plot
from tunelab.report.tune import tune_view

LEVEL = 0.95
N_BOOT = 10000


class ReportError(TunelabError):
    """The report cannot be made (no such dir, no runs, unknown reference group)."""


def _methods(n_boot: int, aso: bool, aso_iterations: int, paired_boot: int) -> Methods:
    return Methods(
        summary=f"percentile bootstrap CI of the mean ({n_boot} resamples, seed 0)",
        comparison="Welch two-sample t-test (unequal variances, two-sided, Welch-Satterthwaite df)",
        multiplicity="Holm step-down adjustment within each family (per metric: vs reference; all pairs)",
        diff_ci="Welch t interval of the difference of means",
        aso=(f"Almost Stochastic Order (deepsig.aso, {aso_iterations} bootstrap iterations, "
             f"Bonferroni over the pairs of a metric, seed 0)") if aso else None,
        paired=(f"McNemar for one seed pair (exact binomial below {EXACT_BELOW} discordant examples, else "
                f"continuity-corrected chi-square), over several seed pairs the exact paired sign-flip test with "
                f"the example as the unit, and a paired bootstrap over test "
                f"examples ({paired_boot} resamples, seed 0); the same on the out-of-domain examples"),
    )


def _dirs(sweep_dir) -> list[Path]:
    """One sweep dir or several (a list/tuple), each checked to exist."""
    dirs = [Path(d).expanduser() for d in (sweep_dir if isinstance(sweep_dir, (list, tuple)) else [sweep_dir])]
    if not dirs:
        raise ReportError("no sweep dir given")
    for d in dirs:
        if not d.is_dir():
            raise ReportError(f"sweep dir '{d}' does not exist or is not a directory")
        several = several_sweeps_message(d)
        if several:
            raise ReportError(several)
    return dirs


def build_report(sweep_dir, reference: str | None = None, metrics: Sequence[str] | str | None = None,
                 aso: bool = False, *, level: float = LEVEL, n_boot: int = N_BOOT,
                 aso_iterations: int = 1000, write: bool = True, out_dir=None,
                 paired_boot: int = N_BOOT_PAIRED, strict_metrics: bool = True, latex: bool = False) -> Report:
    """Build the report of a sweep dir (or of several, merged: ``tunelab.report.merge``) and
    (by default) write it; ``.to_dict()`` of the result is report.json's content.

    ``reference``: group label the others are tested against (default: first group in sorted
    order). ``metrics``: metric keys, or ``"all"``; default test/acc, test/f1, test/f1_macro
    where present. ``aso``: also run Almost Stochastic Order (deepsig) for every pair.
    ``out_dir``: where the files go (default: the sweep dir; for several, ``merged_report/``
    in the first). ``paired_boot``: resamples of the paired bootstrap. ``strict_metrics``: a
    metric no ok run has is an error (a typo on the command line); False notes it instead (an
    experiment's configured list, e.g. ``test/FWT``, which exists only with curriculum baselines).
    ``latex``: also write ``tables.tex``, booktabs tables of the numbers (``tunelab.report.latex``).
    Raises ReportError when a dir does not exist, holds no job dirs, or the reference is unknown.
    """
    dirs = _dirs(sweep_dir)
    sweep = dirs[0]
    jobs, groups, keys, merge_notes = collect_dirs(dirs)
    tuned = tune_view(dirs, jobs, level)  # hydra/sweeper=tune: the rest is each arm's tuned test runs
    if tuned is not None:
        # Arms only (their trials' values are no groups), split again where their configs' data differs.
        jobs, groups, keys, said = with_implied_data(*group_jobs(tuned.jobs, keys=tuned.keys, single=tuned.single), [])
        merge_notes = [n for n in merge_notes if n not in said] + said + tuned.notes
    if not jobs:
        raise ReportError(f"no runs in '{', '.join(map(str, dirs))}': no dir below it has results.json or "
                          f".hydra/overrides.yaml")
    out = Path(out_dir).expanduser() if out_dir else (sweep if len(dirs) == 1 else sweep / "merged_report")
    ok_groups = {g: js for g, js in groups.items() if any(j.state == "ok" for j in js)}
    if reference is not None and reference not in groups:
        raise ReportError(f"reference group '{reference}' not found; groups are: {', '.join(groups)}")
    if reference is None:
        reference = next(iter(ok_groups or groups))

    chosen, notes = analysis.select_metrics(jobs, metrics)
    notes = merge_notes + notes
    found = sorted({m for j in jobs for m in j.metrics}, key=natural_key)
    unknown = [m for m in ([metrics] if isinstance(metrics, str) else metrics or []) if m != "all" and m not in chosen]
    if unknown and found and strict_metrics:
        # A typo must not overwrite a good report with an empty one: stop before writing. (With
        # no ok run at all, nothing is known yet: the report then lists the failures.)
        raise ReportError(f"metric {', '.join(unknown)} is not in any ok run of '{sweep}'; the metrics "
                          f"found are: {', '.join(found) or 'none'}")
    notes += analysis.missing_metric_notes(jobs, chosen)
    if len(ok_groups) < 2:
        notes.append("fewer than two groups with ok runs: no comparisons")
    elif reference not in ok_groups:
        notes.append(f"reference group '{reference}' has no ok runs: no comparisons")
    aso_fn, aso_note = (analysis.load_aso() if aso else (None, ""))
    if aso_note:
        notes.append(aso_note)

    # A data sweep: tests within each dataset only (tunelab.report.claims).
    by_data = split_groups(groups, keys, alpha=1 - level)
    if by_data is not None:
        # each dataset's own positive class: another dataset may order its labels otherwise
        by_data.examples = {d: example_level(sub, positive_index_of([j for js in sub.values() for j in js]),
                                             level=level, n_boot=paired_boot)
                            for d, sub in ((d, by_data.groups_of(d, ok_groups)) for d in by_data.datasets)}
    report = Report(
        sweep_dir=str(sweep.resolve()),
        generated_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        swept_keys=keys, reference=reference, level=level, tests=_methods(n_boot, aso, aso_iterations, paired_boot),
        counts=Counts.from_jobs(jobs), runs=[Run.from_job(j) for j in jobs],
        groups={g: Group.from_jobs(js) for g, js in groups.items()},
        baseline={g: group_baseline(js) for g, js in groups.items()}, notes=notes,
        header=make_header([str(d.resolve()) for d in dirs], jobs, keys),
        examples=None if by_data else example_level(ok_groups, positive_index_of(jobs), level=level, n_boot=paired_boot),
        cost=group_costs(groups),
        calibration=calibration_section(ok_groups),
        ood=ood_section(ok_groups, positive_index_of(jobs), level=level, n_boot=paired_boot, by_data=by_data,
                        baseline=id_ood_baseline),
        adaptive=adaptive_study(dirs),
        tune=tuned.study if tuned is not None else None,
    )
    for metric in chosen:
        report.metrics[metric] = MetricSection(
            name=analysis.metric_name(metric, jobs),
            summary=analysis.summarize_metric(groups, metric, level, n_boot),
            comparisons=Comparisons() if reference not in ok_groups
            else claims.compare_within(by_data, ok_groups, metric, reference, level) if by_data
            else analysis.compare_metric(ok_groups, metric, reference, level),
            aso=None if not aso_fn
            else claims.aso_within(by_data, ok_groups, metric, aso_fn, aso_iterations, level) if by_data
            else analysis.aso_metric(ok_groups, metric, aso_fn, aso_iterations, level),
            expected_max=analysis.expected_max_metric(ok_groups, metric, level, min(n_boot, 2000)),
            variance=analysis.variance_metric(ok_groups, metric),
        )
    if by_data is not None:
        report.datasets = claims.fill(by_data, ok_groups, chosen)
    if write:
        write_report(out, report, groups, latex=latex)
    return report


def _write_text(path: Path, text: str) -> None:
    """UTF-8 whatever the locale (report.md has Δ, ε and dashes), with the newlines as given."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")), binary=True, what="report ")


def write_report(sweep: Path, report: Report, groups: dict[str, list[Job]], *, latex: bool = False) -> None:
    """Plots first (report.md links them), then csv, json and md (with checklist.md, and tables.tex
    when ``latex``); records them in ``report.files``.

    Box plots of metrics this report no longer has are removed at the end, so the sweep dir
    holds one report's files, never a new report.md beside an old run's plots."""
    for metric in report.metrics:
        plot_metric(sweep / plot_name(metric), metric, report, groups)
        report.files[f"plot:{metric}"] = str(sweep / plot_name(metric))
        if report.metrics[metric].expected_max:
            plot_expected_max(sweep / expected_max_plot_name(metric), metric, report.metrics[metric].expected_max,
                              no_result(groups, metric), best=best_mode(metric))
            report.files[f"expected_max:{metric}"] = str(sweep / expected_max_plot_name(metric))
    primary = next(iter(report.metrics), None)
    if primary is not None and report.cost and plot_pareto(sweep / pareto_plot_name(primary), primary, report):
        report.files[f"pareto:{primary}"] = str(sweep / pareto_plot_name(primary))
    if report.tune is not None:
        report.files.update(write_plot(sweep, report.tune))
    for g, arm in (report.calibration.arms.items() if report.calibration else ()):
        if arm.pooled_bins is not None:
            plot_reliability(sweep / reliability_plot_name(g), g, arm)
            report.files[f"reliability:{g}"] = str(sweep / reliability_plot_name(g))
    for metric, ranking in (report.datasets.rankings.items() if report.datasets else ()):
        plot_cd(sweep / cd_plot_name(metric), metric, ranking)
        report.files[f"cd:{metric}"] = str(sweep / cd_plot_name(metric))
    for kind in ("csv", "json", "md"):
        report.files[kind] = str(sweep / f"report.{kind}")
    report.files["checklist"] = str(sweep / "checklist.md")
    if latex:
        report.files["latex"] = str(sweep / "tables.tex")
        _write_text(sweep / "tables.tex", latex_tables(report))
    else:  # an earlier report's tables would no longer match this report's numbers
        (sweep / "tables.tex").unlink(missing_ok=True)
    _write_text(sweep / "checklist.md", render_checklist(report, groups))
    _write_text(sweep / "report.csv", render_csv(report))
    write_json(sweep / "report.json", report.to_dict())
    _write_text(sweep / "report.md", render_markdown(report))
    current = {Path(f).name for f in report.files.values()}
    for stale in [*sweep.glob(PLOT_GLOB), *sweep.glob(f"{PLOT_PREFIX}*.png"), *sweep.glob(f"{CD_PREFIX}*.png"),
                  *sweep.glob(f"{PARETO_PREFIX}*.png")]:
        if stale.name not in current:
            stale.unlink(missing_ok=True)
