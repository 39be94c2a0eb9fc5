"""The annotated heatmap of an accuracy matrix R (one job's, or a sweep group's mean ± sd).

numpy and matplotlib (Agg, imported when called) only: the sweep callback draws it without torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np


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
