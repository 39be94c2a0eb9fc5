"""Score against price: which arms no other arm beats on both (the Pareto front), and its plot.

"Which way to adapt an encoder?" has no single answer: LoRA trains 0.3 % of the parameters and
is a point or two behind full fine-tuning; the frozen probe costs seconds. A reader picks on a
front, so the report marks the arms that are *Pareto-optimal*: no other arm has a mean score at
least as high with a price at most as low (and one of the two strictly better). Two prices:
the parameters each task trains (what it costs to store one task beside the shared encoder) and
the CPU seconds of a run (what it costs to train). ``pareto_<metric>.png`` draws both, with the
front joined; the markdown lists the front. Where the runs scored an out-of-domain split, the
same fronts for the metric's OOD counterpart (``test/acc`` -> ``test_ood/acc``, from the report's
OOD section) follow as a second row: a cheap arm can sit on the in-domain front and fall off the
out-of-domain one (Kumar et al. 2022's question, priced).
"""

from __future__ import annotations

import math
from pathlib import Path

PLOT_PREFIX = "pareto_"


def plot_name(metric: str) -> str:
    from tunelab.report.plots import slug

    return f"{PLOT_PREFIX}{slug(metric)}.png"


def front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Groups whose (score: higher is better, price: lower is better) no other group dominates,
    in increasing price. Points with a NaN are left out."""
    ok = {g: (s, c) for g, (s, c) in points.items() if not (math.isnan(s) or math.isnan(c))}

    def dominated(g: str) -> bool:
        s, c = ok[g]
        return any(s2 >= s and c2 <= c and (s2 > s or c2 < c) for h, (s2, c2) in ok.items() if h != g)

    return sorted((g for g in ok if not dominated(g)), key=lambda g: (ok[g][1], -ok[g][0]))


def ood_metric(report, metric: str) -> str | None:
    """The out-of-domain counterpart of ``metric`` when the report has an OOD section, else None."""
    from tunelab.report.ood import SCORES

    if report.ood is None or not report.ood.arms:
        return None
    return next((ood for id_metric, ood in SCORES.values() if id_metric == metric), None)


def _scores(report, metric: str) -> dict[str, tuple[float, float]]:
    """Per group (mean, sd) over all ok runs: the metric's section, or for an OOD counterpart
    that has none (not asked for with --metric) the OOD section's numbers, over the same runs."""
    if metric in report.metrics:
        return {g: (s.all.mean, s.all.sd) for g, s in report.metrics[metric].summary.items()}
    from tunelab.report.ood import SCORES

    key = next((k for k, (_, ood) in SCORES.items() if ood == metric), None)
    if key is None or report.ood is None:
        return {}
    return {g: (a.mean.get(f"{key}_ood", math.nan), a.sd.get(f"{key}_ood", math.nan))
            for g, a in report.ood.arms.items()}


def points(report, metric: str) -> dict[str, dict[str, float]]:
    """Per group: mean and sd of ``metric`` (all ok runs), trained parameters and CPU seconds per
    run (``report.cost``)."""
    out = {}
    for g, (mean, sd) in _scores(report, metric).items():
        cost = report.cost.get(g)
        if cost is None:
            continue
        out[g] = {"mean": mean, "sd": sd, "params": cost.trainable_params, "cpu_s": cost.cpu_s_mean}
    return out


def _metrics(report, metric: str) -> list[str]:
    """The metric, and its OOD counterpart where there is one."""
    return [metric] + [m for m in [ood_metric(report, metric)] if m]


def fronts(report, metric: str) -> dict[str, list[str]]:
    """Both prices' fronts; the score is negated where lower is better (``--metrics test/ece`` first:
    the front kept the arms with the *highest* ECE)."""
    from tunelab.metrics import higher_is_better

    sign = 1.0 if higher_is_better(metric) else -1.0
    pts = points(report, metric)
    return {price: front({g: (sign * p["mean"], p[price]) for g, p in pts.items()}) for price in ("params", "cpu_s")}


def short_labels(groups) -> dict[str, str]:
    """Point labels: where every group is one ``key=value`` of the same key (``arm=bert_lora``),
    the value alone; the key is in the title. Otherwise the group as it is."""
    keys = {g.split("=", 1)[0] for g in groups if "=" in g and "," not in g}
    if len(keys) != 1 or any("=" not in g or "," in g for g in groups):
        return {g: g for g in groups}
    return {g: g.split("=", 1)[1] for g in groups}


# Where a label may go, in points from its marker (label centre), nearest first: the four corners,
# then up and down the same side in steps of about a line, so a cluster of close arms (the
# fine-tuning arms on the CPU-seconds axis) becomes a column of labels with a leader line each.
_OFFSETS = [(dx, dy) for dx in (6, -6) for dy in (6, -6)] + [
    (dx, sign * (6 + 9 * k)) for k in range(1, 9) for dx in (6, -6) for sign in (1, -1)]


def _annotate(ax, text: str, xy, offset, fontsize: float, leader: bool):
    return ax.annotate(text, xy, xytext=offset, textcoords="offset points", fontsize=fontsize,
                       ha="left" if offset[0] > 0 else "right", va="center",
                       arrowprops={"arrowstyle": "-", "color": "0.55", "linewidth": 0.6, "shrinkA": 1, "shrinkB": 3}
                       if leader else None)


def place_labels(ax, items: list[tuple[float, float, float, str]], fontsize: float = 7) -> list:
    """Annotate each (x, y, sd, text) at the first offset whose box overlaps no label placed
    before, no marker or error bar (y ± sd), not the legend, and stays inside the axes (highest point first); the axes' limits must be final.
    A label moved off its marker's corners gets a thin leader line; one with nowhere free goes to
    the first corner (overlapping beats missing). Returns the annotations."""
    from matplotlib.text import Text

    renderer = ax.figure.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    r = 4.0 * ax.figure.dpi / 72  # a marker's half-width in pixels (errorbar's default 6 pt + edge)
    marks = []  # (x0, x1, y0, y1) in pixels: each marker with its error bar and caps
    for x, y, sd, _ in items:
        (mx, lo), (_, hi) = ax.transData.transform([(x, y - (sd if sd == sd else 0)), (x, y + (sd if sd == sd else 0))])
        my = ax.transData.transform((x, y))[1]
        marks.append((mx - r, mx + r, min(lo, my - r), max(hi, my + r)))

    def free(box) -> bool:
        return (box.x0 >= inside.x0 and box.x1 <= inside.x1 and box.y0 >= inside.y0 and box.y1 <= inside.y1
                and not any(box.overlaps(b) for b in taken)
                and not any(box.x0 < x1 and box.x1 > x0 and box.y0 < y1 and box.y1 > y0 for x0, x1, y0, y1 in marks))

    legend = ax.get_legend()
    taken, out = ([legend.get_window_extent(renderer)] if legend else []), []
    for x, y, _, text in sorted(items, key=lambda t: -t[1]):
        ann, where = None, 0
        for i, offset in enumerate(_OFFSETS):
            probe = _annotate(ax, text, (x, y), offset, fontsize, leader=False)
            ok = free(probe.get_window_extent(renderer))
            probe.remove()
            if ok:
                where = i
                break
        ann = _annotate(ax, text, (x, y), _OFFSETS[where], fontsize, leader=where >= 4)
        ann.update_positions(renderer)
        taken.append(Text.get_window_extent(ann, renderer))  # the text's box, not its leader line's
        out.append(ann)
    return out


def plot_pareto(path: Path, metric: str, report) -> bool:
    """Both panels, and a second row for the OOD counterpart where there is one; False (nothing
    written) with fewer than two groups that have a price."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    from tunelab.io import atomic_write

    if sum(1 for p in points(report, metric).values() if not math.isnan(p["params"])) < 2:
        return False
    rows = _metrics(report, metric)
    fig = Figure(figsize=(10.0, 4.2 * len(rows)))
    FigureCanvasAgg(fig)
    panels = [(m, price, label) for m in rows
              for price, label in (("params", "parameters trained per task"), ("cpu_s", "CPU seconds per run"))]
    labels_to_place = []
    for pos, (m, price, label) in enumerate(panels, start=1):
        pts, fr = points(report, m), fronts(report, m)
        names = short_labels(list(pts))
        key = next(iter(pts)).split("=", 1)[0] + ": " if names and any(names[g] != g for g in pts) else ""
        ax = fig.add_subplot(len(rows), 2, pos)
        items = []
        for g, p in pts.items():
            if math.isnan(p[price]) or math.isnan(p["mean"]):
                continue
            on = g in fr[price]
            ax.errorbar(max(p[price], 1.0), p["mean"], yerr=0 if math.isnan(p["sd"]) else p["sd"], fmt="o",
                        color="tab:blue" if on else "tab:gray", capsize=3)
            items.append((max(p[price], 1.0), p["mean"], p["sd"], names[g]))
        line = [(max(pts[g][price], 1.0), pts[g]["mean"]) for g in fr[price]]
        if len(line) > 1:
            ax.plot(*zip(*line), color="tab:blue", linewidth=1, alpha=0.6, label="Pareto front")
            ax.legend(loc="lower right", fontsize=7)
        ax.set_xscale("log")
        ax.margins(x=0.25, y=0.12)  # room for the labels inside the axes
        ax.xaxis.set_minor_formatter(NullFormatter())  # a narrow range labels every minor tick, overlapping
        ax.set_xlabel(label + " (log)")
        ax.set_ylabel(f"{m} (mean ± sd over seeds)")
        ax.set_title(f"{key}{m} vs {label}", fontsize=9)
        labels_to_place.append((ax, items))
    fig.tight_layout()
    fig.canvas.draw()  # limits and layout final before the labels look for free space
    for ax, items in labels_to_place:
        ax.set_xlim(ax.get_xlim())
        ax.set_ylim(ax.get_ylim())
        place_labels(ax, items)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"), binary=True,
                 what="plot ")
    return True


def pareto_section(report, metric: str) -> str:
    """The markdown: each price's front, best score first."""
    if metric not in report.metrics or not report.cost:
        return ""
    fr = fronts(report, metric)
    if not any(fr.values()) or len(points(report, metric)) < 2:
        return ""
    lines = [f"## Score vs price: the Pareto front ({metric})", "",
             "Arms no other arm beats on both the mean score and the price (cheapest first):", ""]
    for m in _metrics(report, metric):
        fr = fronts(report, m)
        for price, label in (("params", "parameters trained per task"), ("cpu_s", "CPU seconds per run")):
            where = " (out of domain)" if m != metric else ""
            lines.append(f"- `{m}` vs {label}{where}: " + (", ".join(f"`{g}`" for g in fr[price]) or "n/a"))
    name = plot_name(metric)
    if name in {Path(f).name for f in report.files.values()}:
        lines += ["", f"![Pareto: {metric}]({name})"]
    return "\n".join(lines) + "\n"
