"""One box plot per metric: the spread over seeds, each seed visible, the baseline drawn in.

Matplotlib's Agg canvas is used directly (no pyplot and its global state), so a report can
be made in a headless job or a Hydra callback without a display or backend set-up.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from tunelab.io import atomic_write
from tunelab.report.analysis import Groups, group_values
from tunelab.report.model import Report


def slug(metric: str) -> str:
    """``test/acc`` -> ``test_acc`` for file names."""
    return re.sub(r"[^A-Za-z0-9]+", "_", metric).strip("_")


PLOT_GLOB = "boxplot_*.png"  # every plot_name(); the report removes the ones it did not write


def plot_name(metric: str) -> str:
    """File name of a metric's box plot, beside report.md (which links it)."""
    return f"boxplot_{slug(metric)}.png"


def plot_metric(path: Path, metric: str, report: Report, groups: Groups) -> None:
    """Box plot per group with each seed as a jittered point (degenerate: red x) and the
    majority baseline as a dashed line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = list(groups)
    fig = Figure(figsize=(max(4.0, 1.3 * len(labels) + 2), 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    data = [(i, group_values(groups[g], metric)) for i, g in enumerate(labels)]
    boxes = [(i, v) for i, v in data if v]
    if boxes:
        ax.boxplot([v for _, v in boxes], positions=[i for i, _ in boxes], widths=0.5, showfliers=False)
    for i, g in enumerate(labels):
        for j in groups[g]:
            v = j.metrics.get(metric)
            if j.state != "ok" or v is None or not math.isfinite(v):
                continue
            x = i + rng.uniform(-0.12, 0.12)
            style = (dict(marker="x", color="tab:red", s=40) if j.degenerate
                     else dict(marker="o", color="tab:blue", s=18, alpha=0.8))
            ax.scatter([x], [v], zorder=3, **style)
    _draw_baseline(ax, [report.baseline_value(g, metric) for g in labels])
    long = max(map(len, labels)) > 12
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=20 if long else 0, ha="right" if long else "center", fontsize=8)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylabel(f"{metric} ({report.metrics[metric].name})")
    ax.set_title(f"{metric} per group (points: seeds; red x: degenerate)", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110), binary=True, what="box plot ")


def _draw_baseline(ax, values: list[float | None]) -> None:
    """One dashed line if every group shares the baseline, else a dashed segment per group."""
    known = [v for v in values if v is not None]
    if not known:
        return
    if max(known) - min(known) <= 1e-9:
        ax.axhline(known[0], linestyle="--", color="gray", label="majority baseline")
    else:
        label = "majority baseline"
        for i, v in enumerate(values):
            if v is not None:
                ax.hlines(v, i - 0.4, i + 0.4, linestyles="--", color="gray", label=label)
                label = None
    ax.legend(loc="best", fontsize=8)


def expected_max_plot_name(metric: str) -> str:
    """File name of a metric's expected-max curves, beside report.md."""
    return f"expected_max_{slug(metric)}.png"


def plot_expected_max(path: Path, metric: str, curves: dict, unit: str = "runs", best: str = "max") -> None:
    """Expected best score vs. number of runs, one line per group with its bootstrap band;
    test on the left and, where the runs have it, validation on the right. ``unit``/``best``: what
    is counted and what "best" is (the tuning report's curves are over trials, maybe of a minimum)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kinds = [k for k in ("test", "val") if any(k in c for c in curves.values())]
    fig = Figure(figsize=(5.0 * len(kinds), 4.0))
    FigureCanvasAgg(fig)
    for pos, kind in enumerate(kinds, start=1):
        ax = fig.add_subplot(1, len(kinds), pos)
        for i, (group, by_kind) in enumerate(curves.items()):
            c = by_kind.get(kind)
            if c is None or not c.n:
                continue
            color = f"C{i % 10}"
            ax.plot(c.n, c.mean, marker="o", ms=3, color=color, label=group)
            if len(c.n) > 1:
                ax.fill_between(c.n, c.low, c.high, color=color, alpha=0.15, linewidth=0)
        name = next((by_kind[kind].metric for by_kind in curves.values() if kind in by_kind), metric)
        ax.set_xlabel(f"number of {unit} n")
        ax.set_ylabel(f"expected {best} {name}")
        ax.set_title(f"{kind}: E[{best} of n {unit}] (Tang et al. 2020) ± bootstrap band", fontsize=8)
        ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110), binary=True, what="expected-max plot ")
