"""Hydra callbacks: write the study report when a multirun sweep ends.

Enable in a config (or on the command line with ``hydra.callbacks.report._target_=...``)::

    hydra:
      callbacks:
        report:
          _target_: tunelab.hydra_callbacks.ReportCallback
          reference: null   # group label, e.g. "freeze=none"; default: first group
          aso: false
          metrics: null     # list of metric keys, or "all"

Hydra only calls ``on_multirun_end`` when every job returned; a job that raises aborts the sweep
first. Runs therefore record failures in results.json instead of raising, and
``tunelab report <sweep_dir>`` can always be run by hand afterwards.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback

log = logging.getLogger(__name__)


class ReportCallback(Callback):
    """Builds ``report.md`` (and csv/json/plots) in ``hydra.sweep.dir`` after a multirun."""

    def __init__(self, reference: str | None = None, aso: bool = False, metrics: Any = None,
                 aso_iterations: int = 1000, wandb: bool = True) -> None:
        self.wandb = wandb  # also log the report as a W&B run when the sweep logged to W&B
        self.reference = reference
        self.aso = aso
        self.metrics = list(metrics) if metrics is not None and not isinstance(metrics, str) else metrics
        self.aso_iterations = aso_iterations

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        """Never raises: a report problem must not turn a finished sweep into a failed command."""
        sweep_dir = str(config.hydra.sweep.dir)
        try:
            from tunelab.report import build_report

            # The metric list comes from the experiment's config, written for every variant of
            # it: a metric one variant does not produce (test/FWT without curriculum baselines)
            # is a note in the report, not a lost report.
            rep = build_report(sweep_dir, reference=self.reference, metrics=self.metrics, aso=self.aso,
                               aso_iterations=self.aso_iterations, strict_metrics=False)
            print(f"[tunelab] report: {rep.files['md']}", flush=True)
            self._log_wandb(config, rep)
        except Exception as exc:  # noqa: BLE001 - logged with traceback, by design never raised
            log.error("tunelab report failed for this sweep: %s: %s (run `tunelab report <sweep_dir>` "
                      "to retry)", type(exc).__name__, exc, exc_info=True)
        try:
            # Curriculum sweeps: mean ± sd of the accuracy matrix R over seeds, per group. Its own
            # try: it reads the results itself and does not need the report to have succeeded.
            from tunelab.methods.curriculum.summary import sweep_summary

            sweep_summary(sweep_dir)
        except Exception as exc:  # noqa: BLE001
            log.error("curriculum summary failed for this sweep: %s: %s", type(exc).__name__, exc, exc_info=True)


    def _log_wandb(self, config: Any, rep: Any) -> None:
        """The report as one W&B run in the sweep's group (job type ``report``), in the sweep's
        logger settings (offline unless W&B is set up); only when the sweep logged to W&B."""
        lg = config.get("logger")
        if not self.wandb or lg is None or lg.get("name") != "wandb":
            return
        try:
            from tunelab.report.wandb_run import log_report, sweep_group

            path = log_report(rep, project=lg.project, entity=lg.get("entity"), mode=lg.get("mode", "auto"),
                              group=lg.get("group") or sweep_group(config.hydra.sweep.dir))
            print(f"[tunelab] report W&B run: {path}", flush=True)
        except Exception as exc:  # noqa: BLE001 - the files are written; W&B is a copy
            log.error("W&B report run failed: %s: %s (run `tunelab report <sweep_dir> --wandb` to retry)",
                      type(exc).__name__, exc)


# When each sweep of this process started (whole seconds, like results.json's finished_at: a job
# skipped as already ok finished before): the summary counts the jobs of this launch only, also
# when a Ctrl-C ends the launch early (tunelab.run.hydra_main prints it then).
_LAUNCHED: dict[str, float] = {}


def _key(sweep_dir: Any) -> str:
    from pathlib import Path

    return str(Path(str(sweep_dir)).absolute())


def sweep_summary(sweep_dir: Any) -> list:
    """Print the one-line summary of this launch of ``sweep_dir``; returns its rows."""
    from tunelab.status import summary_line, sweep_rows

    rows = sweep_rows(sweep_dir, since=_LAUNCHED.get(_key(sweep_dir)), use_sacct=False)
    print(f"[tunelab] sweep {sweep_dir}: {summary_line(rows)}", flush=True)
    return rows


class SweepSummaryCallback(Callback):
    """Prints one line when a multirun ends (n ok / skipped / failed, the dirs of jobs that are
    not ok) and makes the command exit 1 when any job of this launch did not end ok.

    Jobs record failures instead of raising (so the sweep goes on), which used to leave the
    command's exit code 0 whatever happened; scripts and CI need to see it. It is listed first
    in ``hydra.callbacks``: Hydra calls ``on_multirun_end`` in reverse order, so it runs after
    the report is written. An Optuna search is the exception: a failed trial is part of the
    search (``max_failure_rate``), so the line is printed and the exit code stays 0.
    """

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        import time

        _LAUNCHED[_key(config.hydra.sweep.dir)] = float(int(time.time()))

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        import sys

        from tunelab.status import NOT_OK

        rows = sweep_summary(config.hydra.sweep.dir)
        search = "optuna" in str(config.hydra.sweeper.get("_target_", "")).lower()
        if any(r.state in NOT_OK for r in rows) and not search:
            sys.exit(1)


class OutputDirCallback(Callback):
    """Stops with one sentence (exit 2) when the run or sweep dir cannot be created, or when the
    sweep dir holds another sweep (``tunelab.ops.sweepdir``: it is then left untouched).

    Hydra creates the output dir before the job starts and reports a failure with a traceback;
    this runs first (``on_run_start``/``on_multirun_start``) and says which key to change.
    """

    @staticmethod
    def _check(path: str, key: str) -> None:
        import sys
        from pathlib import Path

        try:
            Path(path).mkdir(parents=True, exist_ok=True)
            probe = Path(path) / ".tunelab-write-test"
            probe.touch()
            probe.unlink()
        except OSError as e:
            print(f"error: cannot write the output dir {path}: {e.strerror}. Set {key}=<a writable dir>.",
                  file=sys.stderr)
            sys.exit(2)

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._check(str(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        import sys

        from tunelab.errors import ConfigError
        from tunelab.ops.sweepdir import check_sweep_dir, definition_of, write_definition

        sweep, defn = str(config.hydra.sweep.dir), definition_of(config)
        try:
            check_sweep_dir(sweep, defn)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        self._check(sweep, "hydra.sweep.dir")
        write_definition(sweep, defn)
