"""How much of an arm's seed variance comes from the initialisation, the data order, or neither.

With ``init_seed`` and ``order_seed`` swept as a crossed design (every init with every order,
``tunelab.seeds``), an arm's scores form an a x b table (r runs per cell, usually 1). A two-way
ANOVA splits the total sum of squares around the grand mean m exactly into

    SS_init  = b r sum_i (row mean_i - m)^2          df a-1
    SS_order = a r sum_j (column mean_j - m)^2       df b-1
    SS_inter = r sum_ij (cell_ij - row_i - col_j + m)^2   df (a-1)(b-1)
    SS_resid = sum (x - cell_ij)^2                   df ab(r-1)

and reports each as a share of SS_total. With one run per cell the interaction cannot be told
apart from noise, so the report shows "interaction + residual" together (Dodge et al. 2020 do
the same with their seed grid).

Sum-of-squares shares over-credit the main effects (noise alone gives SS_init an expected
share of (a-1)/(ab-1)), so the random-effects variance components are given too: from the
expected mean squares of the two-way random model, sigma²_init = (MS_init - MS_rest) / (b r),
sigma²_order = (MS_order - MS_rest) / (a r), sigma²_rest = MS_rest (negative estimates set to 0,
the usual convention), where "rest" pools interaction and residual. Their shares are the
estimated fractions of the variance of a single run's score.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

NAN = float("nan")


@dataclass
class Decomposition:
    """One arm x one metric; shares are fractions of SS_total (``ss_*``) or of the summed
    variance components (``var_*``). ``note`` explains a missing decomposition."""

    n_init: int = 0
    n_order: int = 0
    reps: int = 0
    ss_init: float = NAN
    ss_order: float = NAN
    ss_interaction: float = NAN
    ss_residual: float = NAN
    ss_total: float = NAN
    share_init: float = NAN
    share_order: float = NAN
    share_rest: float = NAN
    var_init: float = NAN
    var_order: float = NAN
    var_rest: float = NAN
    note: str = ""

    def var_shares(self) -> tuple[float, float, float]:
        total = self.var_init + self.var_order + self.var_rest
        if not np.isfinite(total) or total <= 0:
            return NAN, NAN, NAN
        return self.var_init / total, self.var_order / total, self.var_rest / total


def _grid(rows) -> tuple[np.ndarray | None, list, list, str]:
    """The a x b x r array of a complete, balanced crossed design, or None and why not."""
    cells: dict[tuple, list[float]] = defaultdict(list)
    for init, order, value in rows:
        if init is not None and order is not None and np.isfinite(value):
            cells[(init, order)].append(float(value))
    inits = sorted({k[0] for k in cells}, key=str)
    orders = sorted({k[1] for k in cells}, key=str)
    if len(inits) < 2 or len(orders) < 2:
        return None, inits, orders, (f"not a crossed design ({len(inits)} init seed(s) x {len(orders)} "
                                     f"order seed(s)): sweep init_seed and order_seed together")
    sizes = {len(cells.get((i, j), [])) for i in inits for j in orders}
    if len(sizes) != 1 or 0 in sizes:
        return None, inits, orders, ("incomplete or unbalanced grid (a run is missing or repeated): "
                                     "no decomposition")
    r = sizes.pop()
    return np.array([[cells[(i, j)] for j in orders] for i in inits]), inits, orders, ""


def decompose(rows) -> Decomposition:
    """Decompose ``(init_seed, order_seed, value)`` rows of one arm (see the module docstring)."""
    x, inits, orders, note = _grid(rows)
    if x is None:
        return Decomposition(len(inits), len(orders), note=note)
    a, b, r = x.shape
    m = x.mean()
    cell = x.mean(axis=2)
    row, col = cell.mean(axis=1), cell.mean(axis=0)
    ss_a = b * r * float(((row - m) ** 2).sum())
    ss_b = a * r * float(((col - m) ** 2).sum())
    ss_ab = r * float(((cell - row[:, None] - col[None, :] + m) ** 2).sum())
    ss_e = float(((x - cell[:, :, None]) ** 2).sum())
    ss_t = float(((x - m) ** 2).sum())
    out = Decomposition(a, b, r, ss_a, ss_b, ss_ab, ss_e, ss_t)
    if ss_t == 0:
        out.note = "all runs scored the same: no variance to decompose"
        return out
    out.share_init, out.share_order, out.share_rest = ss_a / ss_t, ss_b / ss_t, (ss_ab + ss_e) / ss_t
    df_rest = (a - 1) * (b - 1) + a * b * (r - 1)
    ms_rest = (ss_ab + ss_e) / df_rest
    out.var_init = max(0.0, (ss_a / (a - 1) - ms_rest) / (b * r))
    out.var_order = max(0.0, (ss_b / (b - 1) - ms_rest) / (a * r))
    out.var_rest = ms_rest
    return out
