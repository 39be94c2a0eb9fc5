"""Effect sizes and power for seed studies: Hedges' g with a CI, and how many seeds a test needs.

Why next to every Welch test: a p-value says whether a difference is detectable with the seeds
that ran, not how large it is. Hedges' g puts the difference of means in units of the seeds'
standard deviation (bias-corrected for small samples, which seed studies always are), and the
power calculation turns it around: how many seeds per arm a two-sided test at alpha would need
to detect a difference this large with the asked-for power (80% by default). An arm pair
needing 40 seeds when 5 ran says "inconclusive", not "no difference".

numpy/scipy only, like ``tunelab.stats``; NaN with a ``note`` instead of raising.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special as _sp
from scipy import stats as _st

NAN = float("nan")
MAX_SEEDS = 100_000  # beyond this "seeds needed" is reported as not reachable


@dataclass(frozen=True)
class EffectSize:
    """Hedges' g of a - b and its normal-approximation CI; ``note`` says why a value is NaN."""

    g: float
    low: float
    high: float
    note: str = ""


def _finite(values) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float).ravel()
    return arr[np.isfinite(arr)]


def hedges_correction(df: float) -> float:
    """The exact small-sample factor J(df) = Γ(df/2) / (sqrt(df/2) Γ((df-1)/2)) (Hedges 1981)."""
    return float(math.exp(_sp.gammaln(df / 2) - math.log(math.sqrt(df / 2)) - _sp.gammaln((df - 1) / 2)))


def hedges_g(a, b, level: float = 0.95) -> EffectSize:
    """Hedges' g = J * (mean(a) - mean(b)) / pooled sd, with the CI g ± z * se,
    se = sqrt((n_a + n_b) / (n_a n_b) + g² / (2 (n_a + n_b))) (Hedges & Olkin 1985, eq. 5.15)."""
    x, y = _finite(a), _finite(b)
    na, nb = x.size, y.size
    if na < 2 or nb < 2:
        return EffectSize(NAN, NAN, NAN, note=f"n<2 (n={na} vs n={nb})")
    df = na + nb - 2
    pooled = ((na - 1) * (0.0 if np.ptp(x) == 0 else x.var(ddof=1))
              + (nb - 1) * (0.0 if np.ptp(y) == 0 else y.var(ddof=1))) / df
    if pooled == 0:
        return EffectSize(NAN, NAN, NAN, note="both samples have zero variance")
    g = hedges_correction(df) * (x.mean() - y.mean()) / math.sqrt(pooled)
    se = math.sqrt((na + nb) / (na * nb) + g * g / (2 * (na + nb)))
    z = float(_st.norm.ppf(1 - (1 - level) / 2))
    return EffectSize(float(g), float(g - z * se), float(g + z * se))


def t_test_power(d: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided two-sample t-test with n per group at standardised effect d
    (noncentral t with df = 2n - 2 and noncentrality d * sqrt(n / 2))."""
    df = 2 * n - 2
    nc = abs(d) * math.sqrt(n / 2)
    crit = float(_st.t.ppf(1 - alpha / 2, df))
    return float(_st.nct.sf(crit, df, nc) + _st.nct.cdf(-crit, df, nc))


def seeds_needed(d: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest n per arm whose two-sided t-test reaches ``power`` at effect size ``d``.

    ``inf`` when d is 0 or so small that more than ``MAX_SEEDS`` would be needed; NaN for NaN d.
    (Seeds of two arms rarely share a variance, but with equal n per arm Welch's test and the
    pooled test have nearly the same power, so the standard calculation applies.)
    """
    if d is None or not math.isfinite(d):
        return NAN
    if d == 0 or t_test_power(d, MAX_SEEDS, alpha) < power:
        return math.inf
    lo, hi = 2, 2
    while t_test_power(d, hi, alpha) < power:
        lo, hi = hi, hi * 2
    while lo < hi:  # power grows with n: the first n that reaches it
        mid = (lo + hi) // 2
        if t_test_power(d, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return float(lo)
