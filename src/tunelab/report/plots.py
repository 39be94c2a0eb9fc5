"""One box plot per metric: the spread over seeds, each seed visible, the baseline drawn in.

Matplotlib's Agg canvas is used directly (no pyplot and its global state), so a report can
be made in a headless job or a Hydra callback without a display or backend set-up.
"""

from __future__ import annotations

import math
import re
import textwrap
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


def no_result(groups: Groups, metric: str) -> dict[str, str]:
    """Per group, the mark of its runs that gave no value for ``metric`` (failed, interrupted,
    missing, corrupt, or ok without it): ``"3 failed"``, ``"no result (3 failed)"`` when none
    did. Every plot shows it, so a failed group is never an empty column or a missing line."""
    marks = {}
    for g, jobs in groups.items():
        running = sum(j.state == "running" for j in jobs)
        n_bad = len(jobs) - len(group_values(jobs, metric)) - running
        said = ", ".join(x for x in (f"{n_bad} failed" if n_bad else "", f"{running} running" if running else "") if x)
        if said:
            marks[g] = said if group_values(jobs, metric) else f"no result ({said})"
    return marks


def _wrapped(label: str, width: int = 22) -> str:
    """A group label on lines of about ``width`` characters, broken after its commas (then
    anywhere), so that no label is wider than its column and none is cut off."""
    parts = [p + "," for p in label.split(",")]
    parts[-1] = parts[-1][:-1]
    lines, line = [], ""
    for part in parts:
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    lines.append(line)
    return "\n".join(textwrap.fill(x, width, break_on_hyphens=False) for x in lines)


def plot_metric(path: Path, metric: str, report: Report, groups: Groups) -> None:
    """Box plot per group with each seed as a jittered point (degenerate: red x), the majority
    baseline as a dashed line, and under each group the runs that gave no value (red)."""
    fig = box_figure(metric, report, groups)
    # bbox_inches="tight" as well: whatever is still outside the figure is saved, never cut off
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"), binary=True,
                 what="box plot ")


def box_figure(metric: str, report: Report, groups: Groups):
    """The figure :func:`plot_metric` saves (a matplotlib ``Figure`` on an Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = list(groups)
    ticks = [_wrapped(g) for g in labels]
    widest = max(len(line) for t in ticks for line in t.splitlines())
    lines = max(t.count("\n") for t in ticks)
    fig = Figure(figsize=(max(4.0, len(labels) * max(1.3, 0.075 * widest) + 1.5), 4.2 + 0.13 * lines))
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
    marks = no_result(groups, metric)
    for i, g in enumerate(labels):
        if g in marks:  # in axes-fraction height: placed the same whatever the metric's range
            empty = not data[i][1]
            ax.text(i, 0.5 if empty else 0.02, marks[g].replace(" (", "\n("), transform=ax.get_xaxis_transform(),
                    ha="center", va="center" if empty else "bottom", color="tab:red",
                    fontsize=9 if empty else 7, fontweight="bold" if empty else "normal",
                    bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1), zorder=4)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(ticks, fontsize=8)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylabel(f"{metric} ({report.metrics[metric].name})")
    ax.set_title(f"{metric} per group (points: seeds; red x: degenerate; red text: runs without a value)",
                 fontsize=8)
    fig.tight_layout()
    return fig


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


def plot_expected_max(path: Path, metric: str, curves: dict, marks: dict[str, str] | None = None,
                      unit: str = "runs", best: str = "max") -> None:
    """Expected best score vs. number of runs, one line per group with its bootstrap band;
    test on the left and, where the runs have it, validation on the right. ``marks``
    (:func:`no_result`): groups with runs that gave no value, named in the legend in red.
    ``unit``/``best``: what is counted and what "best" is (the tuning report's curves are over
    trials, maybe of a minimum)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    marks = marks or {}
    kinds = [k for k in ("test", "val") if any(k in c for c in curves.values())]
    fig = Figure(figsize=(5.0 * len(kinds), 4.0))
    FigureCanvasAgg(fig)
    red = {f"{g} ({m})" for g, m in marks.items()} | {f"{g}: {m}" for g, m in marks.items()}
    for pos, kind in enumerate(kinds, start=1):
        ax = fig.add_subplot(1, len(kinds), pos)
        for i, (group, by_kind) in enumerate(curves.items()):
            c = by_kind.get(kind)
            if c is None or not c.n:
                continue
            color = f"C{i % 10}"
            label = f"{group} ({marks[group]})" if group in marks else group
            ax.plot(c.n, c.mean, marker="o", ms=3, color=color, label=label)
            if len(c.n) > 1:
                ax.fill_between(c.n, c.low, c.high, color=color, alpha=0.15, linewidth=0)
        for group, mark in marks.items():
            if group not in curves:  # no curve to draw: a red x in the legend says why
                ax.plot([], [], linestyle="none", marker="x", color="tab:red", label=f"{group}: {mark}")
        name = next((by_kind[kind].metric for by_kind in curves.values() if kind in by_kind), metric)
        ax.set_xlabel(f"number of {unit} n")
        ax.set_ylabel(f"expected {best} {name}")
        ax.set_title(f"{kind}: E[{best} of n {unit}] (Tang et al. 2020) ± bootstrap band", fontsize=8)
        legend = ax.legend(loc="lower right", fontsize=7)
        for text in legend.get_texts():
            if text.get_text() in red:
                text.set_color("tab:red")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"), binary=True,
                 what="expected-max plot ")
