"""The report's command line: ``tunelab report DIR ...`` and ``python -m tunelab.report DIR ...``.

Both share ``add_arguments`` and ``run``, so the two entries cannot drift apart.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from tunelab.errors import TunelabError
from tunelab.report.build import build_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The report's options, shared by ``python -m tunelab.report`` and ``tunelab report``."""
    parser.add_argument("sweep_dir", nargs="+",
                        help="Hydra multirun dir (e.g. multirun_outputs/2025-01-01/12-00-00); several dirs of "
                             "one study are merged into one report (identical configs counted once)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="where to write the report (default: the sweep dir; for several, "
                             "merged_report/ in the first)")
    parser.add_argument("--reference", metavar="GROUP", default=None,
                        help="group the others are tested against, e.g. 'freeze=none' (default: first group)")
    parser.add_argument("--metric", dest="metrics", metavar="METRIC", nargs="+", action="extend", default=None,
                        help="metric keys to report (repeatable), or 'all' for every numeric metric "
                             "(default: test/acc test/f1 test/f1_macro where present)")
    parser.add_argument("--aso", action="store_true",
                        help="also run Almost Stochastic Order (deepsig) for every pair of groups")
    parser.add_argument("--aso-iterations", type=int, default=1000, help="ASO bootstrap iterations (default 1000)")
    parser.add_argument("--paired-boot", type=int, default=1000, metavar="N",
                        help="paired-bootstrap resamples per arm pair and seed pair (default 1000; ~1 s per "
                             "1000 on 10k examples and one seed pair)")
    parser.add_argument("--latex", action="store_true",
                        help="also write tables.tex: booktabs tables (mean ± sd, CI, significance marks, the "
                             "majority baseline) to \\input in a paper")
    parser.add_argument("--wandb", action="store_true",
                        help="also log the report as one W&B run (job type 'report', the sweep's group); "
                             "offline unless WANDB_MODE says otherwise (upload later with `wandb sync`)")
    parser.add_argument("--wandb-project", default="tunelab", help="W&B project of that run (default tunelab)")
    parser.add_argument("--wandb-group", default=None,
                        help="W&B group of that run (default: the sweep's, <date>_<time> of the first dir)")


def run(args: argparse.Namespace) -> int:
    """Build the report from parsed arguments; user errors print one line and give exit code 2.

    Any ``TunelabError`` counts as one: a bad sweep dir or reference (``ReportError``), and
    also a report file that cannot be written (``tunelab.io`` names the file and the fix).
    """
    try:
        report = build_report(args.sweep_dir, reference=args.reference, metrics=args.metrics,
                              aso=args.aso, aso_iterations=args.aso_iterations, out_dir=args.out,
                              paired_boot=args.paired_boot, latex=args.latex)
        if args.wandb:
            from tunelab.report.wandb_run import log_report

            print(f"W&B report run: {log_report(report, project=args.wandb_project, group=args.wandb_group)}")
    except TunelabError as exc:
        print(f"tunelab report: error: {exc}", file=sys.stderr)
        return 2
    c = report.counts
    print(f"read {len(args.sweep_dir)} sweep dir(s): {', '.join(args.sweep_dir)}")
    print(f"{c.jobs} job dirs: {c.ok} ok, " + (f"{c.running} still running, " if c.running else "")
          + f"{c.failed} failed, {c.interrupted} interrupted, "
          f"{c.missing} without results.json, "
          f"{c.corrupt} corrupt, {c.degenerate} degenerate; {len(report.groups)} group(s)")
    print(report.files["md"])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tunelab.report <sweep_dir> [--reference GROUP] [--metric ...] [--aso]``."""
    import tunelab.report

    parser = argparse.ArgumentParser(prog="python -m tunelab.report",
                                     description=tunelab.report.__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
