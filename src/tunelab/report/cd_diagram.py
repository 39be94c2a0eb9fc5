"""The critical-difference diagram of Demšar (2006): average ranks on an axis, arms within one
Nemenyi CD of each other joined by a thick bar. Rank 1 (best) is on the left.
Agg canvas, no pyplot (as ``plots``)."""

from __future__ import annotations

from pathlib import Path

from tunelab.io import atomic_write
from tunelab.report.friedman import Ranking
from tunelab.report.plots import slug

PLOT_PREFIX = "cd_"


def cd_plot_name(metric: str) -> str:
    return f"{PLOT_PREFIX}{slug(metric)}.png"


def plot_cd(path: Path, metric: str, r: Ranking) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(r.arms)
    order = sorted(r.avg_ranks, key=r.avg_ranks.get)
    half = (k + 1) // 2
    rows = max(half, k - half)
    fig = Figure(figsize=(7.0, 1.6 + 0.3 * rows + 0.12 * len(r.cliques)))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    left, right = 0.25, 0.75  # the rank axis spans the middle; labels go to both sides

    def x(rank: float) -> float:
        return left + (rank - 1) / max(k - 1, 1) * (right - left)

    top = 0.78
    ax.plot([left, right], [top, top], color="black", linewidth=1)
    for t in range(1, k + 1):
        ax.plot([x(t), x(t)], [top, top + 0.03], color="black", linewidth=1)
        ax.text(x(t), top + 0.05, str(t), ha="center", va="bottom", fontsize=8)
    # the CD as a bar above the axis, starting at rank 1
    cd_end = x(1 + r.cd) if r.cd < k - 1 else right
    ax.plot([x(1), cd_end], [0.95, 0.95], color="black", linewidth=2)
    ax.text((x(1) + cd_end) / 2, 0.965, f"CD = {r.cd:.2f}", ha="center", va="bottom", fontsize=8)
    step = (top - 0.12) / (rows + 1)
    for i, arm in enumerate(order):
        side_left = i < half
        row = i if side_left else k - 1 - i
        y = top - 0.08 - (row + 1) * step
        xr = x(r.avg_ranks[arm])
        x_end = 0.22 if side_left else 0.78
        ax.plot([xr, xr, x_end], [top, y, y], color="black", linewidth=0.8)
        ax.text(x_end - 0.01 if side_left else x_end + 0.01, y, f"{arm} ({r.avg_ranks[arm]:.2f})",
                ha="right" if side_left else "left", va="center", fontsize=8)
    for j, clique in enumerate(r.cliques):
        y = top - 0.05 - j * 0.035
        ax.plot([x(r.avg_ranks[clique[0]]) - 0.005, x(r.avg_ranks[clique[-1]]) + 0.005], [y, y],
                color="black", linewidth=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.text(0.5, 0.0, f"{metric}: average rank over {len(r.datasets)} datasets (1 = best); "
            f"Friedman p = {r.p:.3g}; bars join arms within one Nemenyi CD (α = {r.alpha:g})",
            ha="center", va="bottom", fontsize=7)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110), binary=True, what="CD diagram ")
