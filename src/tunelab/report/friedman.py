"""Ranking arms over datasets: the Friedman test and the Nemenyi critical difference (Demšar 2006).

Demšar ("Statistical Comparisons of Classifiers over Multiple Data Sets", JMLR 7) recommends,
for k methods on N datasets, ranking the methods within each dataset (1 = best, ties share the
mean rank), testing with Friedman's χ² whether the average ranks differ at all (and the less
conservative Iman–Davenport F built from it), and calling two methods different when their
average ranks differ by more than the Nemenyi critical difference
``CD = q_α · sqrt(k (k + 1) / (6 N))``, where ``q_α`` is the studentized range quantile for k
groups and infinite degrees of freedom divided by √2 (his Table 5a: 2.343 for k = 3, 2.569 for
k = 4). The CD diagram draws the average ranks on an axis and joins the methods no CD apart.

The χ² and its p-value are scipy's ``friedmanchisquare``, which corrects for ties (Demšar's
formula does not: on his worked example scipy gives 10.23 where the paper prints 9.28; divide
by the tie factor to compare). The Friedman test treats each dataset as one block, so an arm's
score on a dataset is its mean over seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as st


@dataclass
class Ranking:
    """Friedman + Nemenyi over a datasets x arms matrix of scores."""

    arms: list[str]
    datasets: list[str]
    scores: list[list[float]]  # datasets x arms
    higher_is_better: bool
    avg_ranks: dict[str, float]
    chi2: float
    p: float
    iman_davenport_f: float
    iman_davenport_p: float
    alpha: float
    q_alpha: float
    cd: float
    # Arms whose average ranks lie within one CD of each other (maximal sets, by rank order).
    cliques: list[list[str]] = field(default_factory=list)


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Demšar's q_α: the studentized range quantile (k groups, infinite df) over √2."""
    return float(st.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi CD of average ranks for k methods on n datasets."""
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n))


def iman_davenport(chi2: float, n: int, k: int, arrangements: int | None = None) -> tuple[float, float]:
    """F_F = (N − 1) χ² / (N (k − 1) − χ²) with (k − 1, (k − 1)(N − 1)) df, and its p-value.

    χ² reaches its maximum N (k − 1) exactly when every dataset ranks the arms the same way; F_F is
    then infinite and the F tail says p = 0, which no rank test can give: under "the arms are
    exchangeable on each dataset" the N rankings all coincide with probability M^(1 − N), M the
    number of distinct orderings of one dataset's ranks (``arrangements``: k! without ties), and
    since F_F grows with χ² that is the exact p of the observed F_F (1/6 for 3 arms on 2 datasets,
    where the F tail printed 0.0000)."""
    denom = n * (k - 1) - chi2
    if denom <= 1e-9 * n * (k - 1):  # every dataset ranks the arms the same way (up to rounding)
        m = math.factorial(k) if arrangements is None else arrangements
        return math.inf, float(m) ** (1 - n)
    f = (n - 1) * chi2 / denom
    return float(f), float(st.f.sf(f, k - 1, (k - 1) * (n - 1)))


def cliques(avg_ranks: dict[str, float], cd: float) -> list[list[str]]:
    """Maximal runs of arms (in rank order) whose first and last average ranks differ by <= CD."""
    order = sorted(avg_ranks, key=avg_ranks.get)
    runs = []
    for i, a in enumerate(order):
        j = i
        while j + 1 < len(order) and avg_ranks[order[j + 1]] - avg_ranks[a] <= cd:
            j += 1
        if j > i and not (runs and runs[-1][1] >= j):
            runs.append((i, j))
    return [order[i:j + 1] for i, j in runs]


def rank_arms(scores, arms: list[str], datasets: list[str], higher_is_better: bool = True,
              alpha: float = 0.05) -> Ranking:
    """Friedman test, Iman–Davenport F, average ranks and the Nemenyi CD (needs >= 3 arms, >= 2 datasets)."""
    x = np.asarray(scores, dtype=np.float64)
    n, k = x.shape
    if k < 3 or n < 2:
        raise ValueError(f"the Friedman test needs >= 3 arms and >= 2 datasets (got {k} arms, {n} datasets)")
    ranks = np.array([st.rankdata(-row if higher_is_better else row) for row in x])
    chi2, p = st.friedmanchisquare(*x.T)
    ties = np.unique(ranks[0], return_counts=True)[1]  # the orderings of a row: k! / prod(ties!)
    f, fp = iman_davenport(float(chi2), n, k, math.factorial(k) // math.prod(math.factorial(int(t)) for t in ties))
    avg = {a: float(r) for a, r in zip(arms, ranks.mean(axis=0))}
    cd = critical_difference(k, n, alpha)
    return Ranking(arms=list(arms), datasets=list(datasets), scores=x.tolist(), higher_is_better=higher_is_better,
                   avg_ranks=avg, chi2=float(chi2), p=float(p), iman_davenport_f=f, iman_davenport_p=fp,
                   alpha=alpha, q_alpha=nemenyi_q(k, alpha), cd=cd, cliques=cliques(avg, cd))
