"""The tuning report's plot: each arm's expected best validation score vs trials (``tunelab.report.tune``)."""

from __future__ import annotations

from pathlib import Path

from tunelab.report.plots import plot_expected_max
from tunelab.report.tune import PLOT, TuneStudy


def write_plot(sweep: Path, study: TuneStudy) -> dict:
    """``expected_max_trials.png``, one line per arm with its bootstrap band; the file's entry for
    ``report.files`` (none when no arm has a curve)."""
    curves = {label: {"val": a.curve} for label, a in study.arms.items() if a.curve is not None}
    if not curves:
        return {}
    plot_expected_max(Path(sweep) / PLOT, study.metric, curves, unit="trials",
                      best="max" if study.direction == "maximize" else "min")
    return {"tune:expected_max": str(Path(sweep) / PLOT)}
