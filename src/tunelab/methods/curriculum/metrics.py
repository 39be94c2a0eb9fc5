"""Continual-learning metrics of the accuracy matrix R: ACC, BWT, FWT, forgetting.

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

Only numpy here, so the report and the sweep summary use it without torch.
"""

from __future__ import annotations

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
