"""Expected maximum performance vs. number of runs (Dodge et al. 2019, "Show Your Work").

Why: reporting the best of N seeds favours the arm that got more runs, and the mean hides that
one arm needs many runs to look good while another is good at once. The expected best score
among n runs, for n = 1..N, draws the whole curve: where the curves cross tells which arm wins
at which budget.

Estimator: Tang et al. 2020 ("Showing Your Work Doesn't Always Work") showed that Dodge et
al.'s formula, which draws the n runs *with* replacement from the N observed ones, is biased
(it underestimates for n close to N and never reaches the observed maximum); the unbiased
estimator draws them *without* replacement. With the observed values sorted, v_(1) <= ... <=
v_(N), the maximum of n distinct runs is v_(i) with probability C(i-1, n-1) / C(N, n), so

    E[max of n] = sum_i v_(i) * C(i-1, n-1) / C(N, n)          (n = 1..N; n = 1 is the mean,
                                                                  n = N the observed maximum).

Dodge's version (``expected_max(..., unbiased=False)``) weights v_(i) by (i/N)^n - ((i-1)/N)^n.
The bands are percentile bootstrap bands: the N values are resampled with replacement and the
curve recomputed (seeded, so a report is reproducible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

NAN = float("nan")


def _weights(N: int, n: int, unbiased: bool) -> np.ndarray:
    """P(max of n draws = i-th smallest of N), i = 1..N."""
    i = np.arange(1, N + 1, dtype=float)
    if not unbiased:
        return (i / N) ** n - ((i - 1) / N) ** n
    w = np.zeros(N)
    ok = i >= n  # C(i-1, n-1) = 0 below
    log_c = lambda a, b: gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)  # noqa: E731
    w[ok] = np.exp(log_c(i[ok] - 1, n - 1) - log_c(N, n))
    return w


def expected_max(values, unbiased: bool = True) -> list[float]:
    """E[max of n runs] for n = 1..N from the N finite ``values`` (empty list when none)."""
    v = np.sort(np.asarray([x for x in values if np.isfinite(x)], dtype=float))
    N = v.size
    return [float(_weights(N, n, unbiased) @ v) for n in range(1, N + 1)]


def bootstrap_band(values, level: float = 0.95, n_boot: int = 2000, seed: int = 0,
                   unbiased: bool = True) -> tuple[list[float], list[float]]:
    """Percentile band of the curve over resamples of the values (NaN when fewer than 2); the
    values are sorted first, so the band does not depend on the order the runs were found in."""
    v = np.sort(np.asarray([x for x in values if np.isfinite(x)], dtype=float))
    N = v.size
    if N < 2:
        return [NAN] * N, [NAN] * N
    W = np.stack([_weights(N, n, unbiased) for n in range(1, N + 1)])  # n x N
    rng = np.random.default_rng(seed)
    curves = np.sort(v[rng.integers(0, N, size=(n_boot, N))], axis=1) @ W.T  # n_boot x n
    a = (1 - level) / 2
    lo, hi = np.percentile(curves, [100 * a, 100 * (1 - a)], axis=0)
    return lo.tolist(), hi.tolist()


@dataclass
class Curve:
    """One arm's expected-max curve of one metric: ``mean[k]`` is E[max of k+1 runs]."""

    metric: str
    n: list[int]
    mean: list[float]
    low: list[float]  # bootstrap band, NaN with fewer than 2 runs
    high: list[float]


def curve(metric: str, values, level: float, n_boot: int) -> Curve:
    """The unbiased curve with its bootstrap band."""
    mean = expected_max(values)
    low, high = bootstrap_band(values, level, n_boot)
    return Curve(metric, list(range(1, len(mean) + 1)), mean, low, high)


def best_curve(metric: str, values, maximize: bool, level: float, n_boot: int) -> Curve:
    """Expected best of n runs (n = 1..N): the maximum, or where lower is better (loss, ECE, NLL:
    ``tunelab.metrics.higher_is_better``) the minimum — the expected maximum of the negated values,
    negated back; its band's ends swap."""
    if maximize:
        return curve(metric, values, level, n_boot)
    c = curve(metric, [-v for v in values], level, n_boot)
    return Curve(c.metric, c.n, [-x for x in c.mean], [-x for x in c.high], [-x for x in c.low])


def val_metric_of(metric: str, available) -> str | None:
    """The validation counterpart of a test metric: the monitored best (``val/x_best``) if the
    runs have it, else the last epoch's ``val/x``."""
    if not metric.startswith("test/"):
        return None
    base = "val/" + metric[len("test/"):]
    return next((m for m in (base + "_best", base) if m in available), None)
