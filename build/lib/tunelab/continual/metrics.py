"""Continual-learning metrics of an accuracy matrix, its heatmap, and the sweep-level summary.

``R[i][j]`` is the test accuracy on task ``j`` after training stage ``i`` (rows: stages in
order, columns: tasks in the same order). With ``T`` tasks (0-based indices):

* ``ACC`` = mean_j R[T-1][j]: average accuracy at the end.
* ``BWT`` = 1/(T-1) * sum_{j<T-1} (R[T-1][j] - R[j][j]): backward transfer; negative = forgetting.
* ``FWT`` = 1/(T-1) * sum_{j>=1} (R[j][j] - S[j]): forward transfer, where ``S[j]`` is the
  accuracy of task ``j`` trained *alone* from the original encoder (same recipe). Positive: the
  earlier stages helped task j. Task 0 is left out (it is trained from the original encoder in
  both cases).
* ``FWT_zeroshot`` = 1/(T-1) * sum_{j>=1} (R[j-1][j] - b[j]) (Lopez-Paz & Ranzato 2017), ``b`` the
  accuracy of the untrained model (``initial`` row): what the earlier stages give task j before
  it is trained on.
* ``forgetting[j]`` = max_{j<=i<T-1} R[i][j] - R[T-1][j] for j < T-1 (Chaudhry et al. 2018): the
  best accuracy the task had once learned minus its final accuracy; ``forgetting`` = their mean.

Only numpy here (matplotlib lazily), so the report can import it without torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def continual_metrics(R: Sequence[Sequence[float]], alone: Optional[Sequence[float]] = None,
                      initial: Optional[Sequence[float]] = None) -> dict:
    """ACC, BWT, FWT, FWT_zeroshot and per-task forgetting of ``R`` (see module doc).

    A one-row ``R`` (joint training) gets ACC only; BWT/FWT need one row per task.
    """
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.size == 0:
        raise ValueError(f"R must be a non-empty matrix, got shape {R.shape}")
    T = R.shape[1]
    out: dict = {"ACC": float(R[-1].mean()), "T": T}
    if R.shape[0] != T or T < 2:
        return out
    out["BWT"] = float(np.mean([R[T - 1, j] - R[j, j] for j in range(T - 1)]))
    forgetting = [float(R[j:T - 1, j].max() - R[T - 1, j]) for j in range(T - 1)]
    out["forgetting_per_task"] = forgetting
    out["forgetting"] = float(np.mean(forgetting))
    if alone is not None:
        s = np.asarray(alone, dtype=float)
        out["FWT"] = float(np.mean([R[j, j] - s[j] for j in range(1, T)]))
        out["transfer_per_task"] = [float(R[j, j] - s[j]) for j in range(T)]
    if initial is not None:
        b = np.asarray(initial, dtype=float)
        out["FWT_zeroshot"] = float(np.mean([R[j - 1, j] - b[j] for j in range(1, T)]))
    return out


def plot_matrix(R, path, *, tasks: Sequence[str], rows: Optional[Sequence[str]] = None,
                sd=None, title: str = "") -> Path:
    """Annotated heatmap of R (rows: after stage i; columns: task j), ``mean±sd`` when sd given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    R = np.asarray(R, dtype=float)
    rows = list(rows) if rows is not None else [f"after {t}" for t in tasks[:R.shape[0]]]
    fig, ax = plt.subplots(figsize=(1.6 + 1.25 * R.shape[1], 1.2 + 0.6 * R.shape[0]))
    im = ax.imshow(R, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(R.shape[1]), labels=list(tasks), rotation=30, ha="right")
    ax.set_yticks(range(R.shape[0]), labels=rows)
    ax.set_xlabel("evaluated on task")
    ax.set_ylabel("trained through stage")
    for i in range(R.shape[0]):
        for j in range(R.shape[1]):
            v = R[i, j]
            text = "n/a" if not math.isfinite(v) else (f"{v:.3f}" if sd is None else f"{v:.3f}\n±{np.asarray(sd)[i, j]:.3f}")
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="black" if math.isfinite(v) and v > 0.6 else "white")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="test accuracy")
    if title:
        import textwrap

        ax.set_title("\n".join(textwrap.wrap(title, 55)), fontsize=8)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


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
                 "| group | n | ACC | BWT | FWT | forgetting | trainable params | bytes per task |",
                 "|---|---|---|---|---|---|---|---|"]

        def cell(e, k, fmt="{:.3f}"):
            if k not in e:
                return "n/a"
            return f"{fmt.format(e[k]['mean'])} ± {fmt.format(e[k]['sd'])}"

        for group, e in out.items():
            lines.append(f"| {group} | {e['n']} | {cell(e, 'ACC')} | {cell(e, 'BWT')} | {cell(e, 'FWT')} | "
                         f"{cell(e, 'forgetting')} | {cell(e, 'trainable_params', '{:,.0f}')} | "
                         f"{cell(e, 'bytes_per_task', '{:,.0f}')} |")
            if "R_mean" in e:
                png = plot_matrix(e["R_mean"], sweep / f"curriculum_R_{_safe(group)}.png", tasks=e["tasks"],
                                  rows=e.get("rows"), sd=e["R_sd"], title=f"{group}: mean R over {e['n']} runs")
                e["heatmap"] = str(png)
        (sweep / "curriculum_summary.md").write_text("\n".join(lines) + "\n")
    return out
