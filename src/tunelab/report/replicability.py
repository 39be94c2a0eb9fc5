"""On how many datasets does a claim hold? Partial conjunction tests (Dror et al. 2017).

"A beats B" tested on each of N datasets gives N one-sided p-values. Counting the significant
ones overstates the evidence (N tests, no correction), and a single combined test only says
"somewhere". Dror, Baumer, Bogomolov & Reichart ("Replicability Analysis for Natural Language
Processing", TACL 2017) test, for each u = 1..N, the partial conjunction null "the claim holds
on fewer than u datasets", with the u-th smallest p-value p_(u):

* Bonferroni (valid under any dependence between datasets): ``p^u = (N − u + 1) · p_(u)``;
* Fisher (datasets independent): ``p^u = P(χ²_{2(N−u+1)} ≥ −2 Σ_{i≥u} ln p_(i))``, the N − u + 1
  largest p-values combined.

The sequence is made non-decreasing (a running maximum) and k̂, the number of datasets on which
the claim is supported at family-wise level α, is the number of u with ``p^u <= α``. Which
datasets: with Bonferroni, the k̂ with the smallest p-values (Holm's procedure rejects exactly
those).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as st

METHODS = ("bonferroni", "fisher")


def partial_conjunction(pvalues: Sequence[float], method: str = "bonferroni") -> list[float]:
    """``p^u`` for u = 1..N, made non-decreasing in u (NaN p-values count as 1: no evidence)."""
    p = np.sort(np.nan_to_num(np.asarray(pvalues, dtype=np.float64), nan=1.0))  # ascending: p_(1) first
    n = len(p)
    out, running = [], 0.0
    for u in range(1, n + 1):
        rest = p[u - 1:]  # p_(u) .. p_(N): the N - u + 1 largest
        if method == "bonferroni":
            pu = min(1.0, (n - u + 1) * rest[0])
        elif method == "fisher":
            stat = -2.0 * float(np.sum(np.log(np.clip(rest, 1e-300, 1.0))))
            pu = float(st.chi2.sf(stat, 2 * (n - u + 1)))
        else:
            raise ValueError(f"method must be one of {METHODS}, not {method!r}")
        running = max(running, pu)
        out.append(running)
    return out


def k_hat(pvalues: Sequence[float], alpha: float = 0.05, method: str = "bonferroni") -> int:
    """The number of datasets the claim holds on, at family-wise error rate ``alpha``."""
    return sum(pu <= alpha for pu in partial_conjunction(pvalues, method))


def one_sided_welch(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True) -> float:
    """p of "a is better than b" (Welch, one-sided, scipy); NaN when a sample has < 2 values, or
    both are constant (scipy's p = 0 for two constant, different samples is no test: seeds that
    change nothing say nothing about test-set noise, so the dataset counts as no evidence)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return math.nan
    res = st.ttest_ind(a, b, equal_var=False, alternative="greater" if higher_is_better else "less")
    return float(res.pvalue)
