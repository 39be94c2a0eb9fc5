"""One reliability diagram per arm: accuracy against confidence in the 15 calibration bins.

Bars: every seed's test predictions pooled (a single run's calibration); the gap to the diagonal
is shaded (red above the bar: over-confident). Line: the arm's mean-probability seed ensemble.
Bins with no example are left empty. Agg canvas, no pyplot (as ``plots``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tunelab.io import atomic_write
from tunelab.report.calibration import ArmCalibration
from tunelab.report.plots import slug

PLOT_PREFIX = "reliability_"


def reliability_plot_name(group: str) -> str:
    """``reliability_freeze_last2.png``; a long group label (all the fixed overrides of a one-group
    sweep) is cut and made unique by a hash of the label, so the name fits a file system's limit."""
    name = slug(group)
    if len(name) > 60:
        name = f"{name[:50]}_{hashlib.sha1(group.encode()).hexdigest()[:8]}"
    return f"{PLOT_PREFIX}{name}.png"


def plot_reliability(path: Path, group: str, arm: ArmCalibration) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="calibrated")
    b = arm.pooled_bins
    if b is not None:
        edges = np.asarray(b.edges)
        width = np.diff(edges)
        acc, conf = np.asarray(b.accuracy, dtype=float), np.asarray(b.confidence, dtype=float)
        full = np.asarray(b.count) > 0
        ax.bar(edges[:-1][full], acc[full], width=width[full], align="edge", color="tab:blue", alpha=0.7,
               edgecolor="white", label=f"{arm.n_ensemble} seeds pooled")
        gap_lo, gap_hi = np.minimum(acc, conf)[full], np.abs(conf - acc)[full]
        ax.bar(edges[:-1][full], gap_hi, bottom=gap_lo, width=width[full], align="edge", color="tab:red",
               alpha=0.25, edgecolor="tab:red", linewidth=0.5, label="gap to confidence")
    e = arm.ensemble_bins
    if e is not None:
        full = np.asarray(e.count) > 0
        ax.plot(np.asarray(e.confidence, dtype=float)[full], np.asarray(e.accuracy, dtype=float)[full],
                marker="o", ms=3, color="black", label="seed ensemble")
    ece = arm.mean.get("ece", float("nan"))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-label probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{group}\nmean ECE {ece:.3f} over runs; ensemble ECE {arm.ensemble.get('ece', float('nan')):.3f}",
                 fontsize=8)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110), binary=True, what="reliability diagram ")
