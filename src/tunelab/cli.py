"""The ``tunelab`` console command: one subcommand per tool.

Each subcommand has a module exposing ``add_arguments(parser)`` and ``run(args) -> int`` (for
the report: ``tunelab.report.cli``) so that its own ``python -m`` entry and this command share
one definition. Imports are lazy: ``tunelab report`` must not pay for torch.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def _report(sub: argparse._SubParsersAction) -> None:
    import tunelab.report
    from tunelab.report import cli as report_cli

    p = sub.add_parser("report", help="write report.md/csv/json and box plots for a sweep dir",
                       description=tunelab.report.__doc__.splitlines()[0])
    report_cli.add_arguments(p)
    p.set_defaults(func=report_cli.run)


def _status(sub: argparse._SubParsersAction) -> None:
    import tunelab.status as status

    p = sub.add_parser("status", help="table of a sweep's jobs: ok/failed/running/interrupted/missing",
                       description=status.__doc__.splitlines()[0])
    status.add_arguments(p)
    p.set_defaults(func=status.run)


def _replay(sub: argparse._SubParsersAction) -> None:
    import tunelab.replay as replay

    p = sub.add_parser("replay", help="replay the adaptive seed rule on a fixed study's results (CPU, agreement, A/A)",
                       description=replay.__doc__.splitlines()[0])
    replay.add_arguments(p)
    p.set_defaults(func=replay.run)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand registered (add new ones here)."""
    parser = argparse.ArgumentParser(prog="tunelab", description="tunelab: studies of BERT fine-tuning")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _report(sub)
    _status(sub)
    _replay(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tunelab`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
