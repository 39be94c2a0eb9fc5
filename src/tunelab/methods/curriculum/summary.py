"""The sweep-level curriculum summary: mean ± sd over seeds of R and its metrics, per group.

Called by the sweep's report callback (``tunelab.hydra_callbacks``) after ``build_report``; it
groups jobs the way the report does (``tunelab.report.collect``). numpy only (no torch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunelab.methods.curriculum.heatmap import plot_matrix

SUMMARY_KEYS = ("ACC", "BWT", "FWT", "FWT_zeroshot", "forgetting")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_=." else "_" for c in name)[:120] or "all"


def sweep_summary(sweep_dir, *, write: bool = True) -> dict:
    """Mean ± sd over seeds of R, ACC, BWT, FWT and the parameter counts, per report group.

    Reads the sweep's ok curriculum runs (``extra.curriculum``), groups them the way the report
    does (by the swept overrides except seed) and, with ``write``, puts ``curriculum_summary.md``
    and one mean-R heatmap per group (``curriculum_R_<group>.png``) in the sweep dir. Returns
    ``{group: {"n": runs, "tasks": [...], "R_mean", "R_sd", "<metric>": {"mean", "sd"}}}``.
    The integrator's report callback can call it after ``build_report``.
    """
    from tunelab.report.collect import collect

    sweep = Path(sweep_dir)
    _, groups, _ = collect(sweep)
    out: dict = {}
    for group, jobs in groups.items():
        curr = [j.result["extra"]["curriculum"] for j in jobs
                if j.state == "ok" and isinstance((j.result or {}).get("extra", {}).get("curriculum"), dict)]
        if not curr:
            continue
        shapes = {np.asarray(c["R"]).shape for c in curr}
        entry: dict = {"n": len(curr), "tasks": curr[0]["tasks"]}
        if len(shapes) == 1:
            stack = np.stack([np.asarray(c["R"], dtype=float) for c in curr])
            entry["R_mean"] = stack.mean(0).tolist()
            entry["R_sd"] = (stack.std(0, ddof=1) if len(curr) > 1 else np.zeros_like(stack[0])).tolist()
            entry["rows"] = curr[0].get("rows")
        for key in SUMMARY_KEYS + ("trainable_params", "bytes_per_task"):
            vals = [float(c[key]) for c in curr if isinstance(c.get(key), (int, float))]
            if vals:
                entry[key] = {"mean": float(np.mean(vals)),
                              "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, "n": len(vals)}
        out[group] = entry
    if write and out:
        lines = ["# Curriculum summary (mean ± sd over seeds)", "",
                 "FWT needs `curriculum.baselines=true` (each task trained alone); FWT (zero-shot) is "
                 "Lopez-Paz & Ranzato's: accuracy on a task just before training on it minus the "
                 "original encoder's.", "",
                 "| group | n | ACC | BWT | FWT | FWT (zero-shot) | forgetting | trainable params | bytes per task |",
                 "|---|---|---|---|---|---|---|---|---|"]

        def cell(e, k, fmt="{:.3f}"):
            if k not in e:
                return "n/a"
            return f"{fmt.format(e[k]['mean'])} ± {fmt.format(e[k]['sd'])}"

        for group, e in out.items():
            lines.append(f"| {group} | {e['n']} | {cell(e, 'ACC')} | {cell(e, 'BWT')} | {cell(e, 'FWT')} | "
                         f"{cell(e, 'FWT_zeroshot')} | {cell(e, 'forgetting')} | {cell(e, 'trainable_params', '{:,.0f}')} | "
                         f"{cell(e, 'bytes_per_task', '{:,.0f}')} |")
            if "R_mean" in e:
                png = plot_matrix(e["R_mean"], sweep / f"curriculum_R_{_safe(group)}.png", tasks=e["tasks"],
                                  rows=e.get("rows"), sd=e["R_sd"], title=f"{group}: mean R over {e['n']} runs")
                e["heatmap"] = str(png)
        (sweep / "curriculum_summary.md").write_text("\n".join(lines) + "\n")
    return out
