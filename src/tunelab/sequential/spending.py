"""Alpha spending and group-sequential levels: how much error each look may use.

Why: testing the same comparison after every round of seeds at a fixed 5 % level makes a false
decision far more likely than 5 % (Armitage, McPherson & Rowe 1969: ~14 % over five looks). A
group-sequential design fixes this by giving each look its own, stricter critical value so that
the chance of *ever* crossing — over all looks — is alpha. The Lan-DeMets alpha-spending approach
(Lan & DeMets 1983, Biometrika 70:659) lets the looks fall where they fall: a spending function
alpha(t) says how much of alpha may be used by the time a fraction t of the planned information
has come in, and each look's boundary is solved so that the probability of first crossing at it
is exactly alpha(t_k) - alpha(t_{k-1}).

The statistic is the standardised difference Z_k at information fraction t_k; under the null,
S_k = Z_k * sqrt(t_k) is a Brownian motion at times t_k (independent normal increments with
variance t_k - t_{k-1}; the "canonical joint distribution", Jennison & Turnbull 2000, ch. 3).
The first-crossing probabilities are computed by the recursive numerical integration of
Armitage, McPherson & Rowe (1969): the sub-density of S on the continuation region is carried
from look to look on a grid (Simpson's rule) and convolved with the normal increment.

Spending functions (two-sided, symmetric):

* ``obf``: O'Brien-Fleming type, alpha/2 spent on each side as 2 - 2 Phi(z_{1-alpha/4} / sqrt(t))
  (the per-side form gsDesign's ``sfLDOF`` and rpact use for symmetric two-sided designs, so
  their tables check these numbers: 4.877, 3.357, 2.680, 2.290, 2.031 at five equal looks, alpha
  .05): almost nothing early, nearly the fixed-sample level at the end;
* ``pocock``: Pocock type, alpha(t) = alpha ln(1 + (e - 1) t): spends evenly, so a large effect
  can stop a study at its first look (the case of most seed studies: arms that differ by many
  seed standard deviations).

:func:`boundaries` is this normal theory (known variance): the reference the spending functions
are checked against (published tables, scipy's multivariate normal). Both it and
:func:`t_levels` are memoised on their schedule: a replay of thousands of simulated studies
with the same schedule solves each look once.

**Seeds are few, so the variance is estimated** (2-9 degrees of freedom at the looks of a seed
study). Carrying each normal boundary to a t quantile through its nominal level (the
"significance level approach", Jennison & Turnbull 2000, sec. 3.8) assumes the looks' t
statistics are as correlated as the Z's; with 3-10 seeds they are less so, and 8 looks at the
Pocock levels crossed 5.8 % of the time instead of 5 % (20,000 simulated one-sample studies).
:func:`t_levels` instead calibrates the looks' nominal levels on the sequential one-sample t
statistic itself, whose joint null distribution is free of the unknown variance (Jennison &
Turnbull 1991, Biometrika 78:133, compute it by numerical integration; here by simulation, 200,000
seeded studies, the same every time): look k's level is the one at which exactly
alpha(t_k) - alpha(t_{k-1}) of the simulated studies first cross. The one-sample t with n - 1 df
is the heaviest-tailed case (two varying arms have more Welch df), so these levels, carried to a
contrast's own Welch df, hold the error for comparable variances and are exact for an arm
against a constant one.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
from scipy import optimize
from scipy.stats import norm

SPENDING = ("pocock", "obf")
SIMULATIONS = 200_000  # studies simulated to calibrate t_levels (seeded: the same levels every time)
GRID = 401  # Simpson points on each look's continuation region (odd)
TAIL = 8.0  # a look that spends nothing continues on +-8 sd of S: the rest is < 1e-15


def spent(kind: str, alpha: float, t: float) -> float:
    """alpha(t): the two-sided error allowed by information fraction ``t`` (0 at 0, alpha at 1)."""
    t = min(max(float(t), 0.0), 1.0)
    if t <= 0.0:
        return 0.0
    if kind == "obf":
        return float(4.0 * norm.sf(norm.isf(alpha / 4.0) / math.sqrt(t)))
    if kind == "pocock":
        return float(alpha * math.log1p((math.e - 1.0) * t))
    raise ValueError(f"spending={kind!r}: choose one of {', '.join(SPENDING)}")


def _simpson_weights(n: int) -> np.ndarray:
    w = np.ones(n)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w / 3.0


def _grid(half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """Points and Simpson weights on [-half_width, half_width]."""
    x = np.linspace(-half_width, half_width, GRID)
    return x, _simpson_weights(GRID) * (x[1] - x[0])


def _exit_prob(x: np.ndarray, fw: np.ndarray, var: float, b: float) -> float:
    """P(|S_prev + N(0, var)| >= b), S_prev with sub-density values times weights ``fw`` on ``x``."""
    sd = math.sqrt(var)
    return float(np.sum(fw * (norm.cdf((-b - x) / sd) + norm.sf((b - x) / sd))))


@lru_cache(maxsize=4096)
def _boundaries(alpha: float, kind: str, times: tuple[float, ...]) -> tuple[float, ...]:
    crit: list[float] = []
    x = fw = None  # sub-density on the previous look's continuation region (times Simpson weights)
    t_prev, spent_prev = 0.0, 0.0
    for t in times:
        target = spent(kind, alpha, t) - spent_prev
        if x is None:  # first look: S ~ N(0, t), no recursion needed
            c = float(norm.isf(target / 2.0)) if target > 0 else math.inf
        elif target <= 1e-15:
            c = math.inf
        else:
            var = t - t_prev
            lo, hi = 1e-9, (TAIL + 1.0) * math.sqrt(t)
            if _exit_prob(x, fw, var, hi) >= target:  # cannot happen with TAIL this wide; be safe
                c = hi / math.sqrt(t)
            else:
                b = optimize.brentq(lambda b: _exit_prob(x, fw, var, b) - target, lo, hi, xtol=1e-10)
                c = b / math.sqrt(t)
        crit.append(c)
        # carry the sub-density of S_t on the continuation region |S_t| < c sqrt(t) to this look
        half = min(c * math.sqrt(t), TAIL * math.sqrt(t))
        xn, wn = _grid(half)
        if x is None:
            f = norm.pdf(xn, scale=math.sqrt(t))
        else:
            sd = math.sqrt(t - t_prev)
            f = norm.pdf((xn[:, None] - x[None, :]) / sd) @ fw / sd
        x, fw = xn, f * wn
        spent_prev, t_prev = spent(kind, alpha, t), t
    return tuple(crit)


def boundaries(alpha: float, kind: str, times: Sequence[float]) -> list[float]:
    """Critical values c_1..c_K of |Z| at information fractions ``times`` (strictly increasing, in
    (0, 1]) so that P(|Z_k| >= c_k at some look k) = alpha(t_K) under the null; inf where a look
    may spend nothing."""
    ts = tuple(round(float(t), 12) for t in times)
    if any(not 0 < t <= 1 for t in ts) or any(b <= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"information fractions must increase within (0, 1]: {list(ts)}")
    if kind not in SPENDING:
        raise ValueError(f"spending={kind!r}: choose one of {', '.join(SPENDING)}")
    return list(_boundaries(float(alpha), kind, ts))


@lru_cache(maxsize=8)
def _abs_t(n_max: int) -> np.ndarray:
    """|one-sample t| of SIMULATIONS null studies after 2..n_max seeds (column n - 2), seeded."""
    # one seeded stream per seed index: the first columns are the same whatever n_max, so a
    # look's level depends on the looks before it only
    x = np.stack([np.random.default_rng([20260527, j]).standard_normal(SIMULATIONS) for j in range(n_max)], axis=1)
    n = np.arange(1, n_max + 1)
    s1, s2 = np.cumsum(x, axis=1), np.cumsum(x * x, axis=1)
    mean = s1 / n
    with np.errstate(divide="ignore", invalid="ignore"):
        var = (s2 - n * mean * mean) / (n - 1)
        t = np.abs(mean * np.sqrt(n) / np.sqrt(var))
    return t[:, 1:].astype(np.float32)


@lru_cache(maxsize=4096)
def _t_levels(alpha: float, kind: str, times: tuple[float, ...], ns: tuple[int, ...]) -> tuple[float, ...]:
    from scipy.stats import t as student_t

    sims = _abs_t(max(max(ns), 2))
    m = sims.shape[0]
    alive = np.ones(m, dtype=bool)
    levels, before = [], 0.0
    for t, n in zip(times, ns):
        target = spent(kind, alpha, t) - before
        before = spent(kind, alpha, t)
        k = int(round(target * m))
        col = sims[:, n - 2]
        left = col[alive]
        if not levels:  # the first look alone is a plain t-test: its level is exact, no simulation
            q = float(student_t.isf(target / 2.0, n - 1)) if target > 0 else math.inf
        elif k <= 0 or left.size == 0:
            q = math.inf  # this look may spend (next to) nothing
        else:
            k = min(k, left.size)
            q = float(np.partition(left, left.size - k)[left.size - k])
        alive &= ~(col >= q)
        levels.append(0.0 if math.isinf(q) else float(2.0 * student_t.sf(q, n - 1)))
    return tuple(levels)


def t_levels(alpha: float, kind: str, times: Sequence[float], ns: Sequence[int]) -> list[float]:
    """Nominal two-sided levels of the looks of a sequential one-sample t-test with ``ns[k]``
    observations at information fraction ``times[k]``: under the null it first crosses at look k
    with probability alpha(t_k) - alpha(t_{k-1}) (module doc; Monte Carlo, seeded)."""
    ts = tuple(round(float(t), 12) for t in times)
    if any(not 0 < t <= 1 for t in ts) or any(b <= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"information fractions must increase within (0, 1]: {list(ts)}")
    if kind not in SPENDING:
        raise ValueError(f"spending={kind!r}: choose one of {', '.join(SPENDING)}")
    if len(ns) != len(ts) or any(int(n) < 2 for n in ns):
        raise ValueError(f"one sample size >= 2 per look: {list(ns)}")
    return list(_t_levels(float(alpha), kind, ts, tuple(int(n) for n in ns)))
