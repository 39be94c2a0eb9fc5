"""Small, tested statistics for study reports (numpy/scipy only): bootstrap CIs, Welch, Holm.

Why not scikit-learn/statsmodels here: the report must run anywhere the results are (a laptop
with only the result files), and each short implementation is checked against scipy in the
tests. Every function answers NaN with a ``note`` instead of raising when a sample is too small
(n < 2), because a sweep with one surviving seed must still get a report. The scores themselves
(accuracy, F1) are :mod:`tunelab.metrics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Iterable, Sequence

import numpy as np
from scipy import stats as _st

__all__ = [
    "bootstrap_ci",
    "welch_ttest",
    "WelchResult",
    "mean_diff_ci",
    "DiffCI",
    "holm",
    "pooled_sd",
    "configs_differ_p",
    "summarize",
]

NAN = float("nan")


# --------------------------------------------------------------------------- samples


def _finite(values: Iterable[float]) -> np.ndarray:
    """Values as a float array without NaN/inf (a diverged run must not poison a mean)."""
    arr = np.asarray(list(values), dtype=float).ravel()
    return arr[np.isfinite(arr)]


def bootstrap_ci(values, level: float = 0.95, n_boot: int = 10000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean; (NaN, NaN) when fewer than 2 values.

    Seeded so that the same results always give the same report, and the values are sorted
    first so the interval does not depend on the order the runs were found in (a report merged
    from two sweep dirs equals the report of one dir with all the runs). Resampling is chunked so
    a long list of values never needs more than a few million numbers in memory at once.
    """
    x = np.sort(_finite(values))
    if x.size < 2:
        return NAN, NAN
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // x.size)
    means = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def summarize(values, level: float = 0.95, n_boot: int = 10000, seed: int = 0) -> dict:
    """n, mean, sd (ddof=1), min, max and a bootstrap CI of the mean; ``note`` says what is NaN and why."""
    x = _finite(values)
    out = {"n": int(x.size), "mean": NAN, "sd": NAN, "min": NAN, "max": NAN,
           "ci_low": NAN, "ci_high": NAN, "note": ""}
    if x.size == 0:
        out["note"] = "no values"
        return out
    out.update(mean=float(x.mean()), min=float(x.min()), max=float(x.max()))
    if x.size < 2:
        out["note"] = "n<2: no sd or CI"
        return out
    out["sd"] = float(x.std(ddof=1))
    out["ci_low"], out["ci_high"] = bootstrap_ci(x, level=level, n_boot=n_boot, seed=seed)
    return out


# --------------------------------------------------------------------------- two-sample


@dataclass(frozen=True)
class _Numbers:
    """A result that unpacks as its numbers; ``note`` (keyword) says why a value is NaN."""

    note: str = field(default="", kw_only=True)

    def __iter__(self):
        return iter(getattr(self, f.name) for f in fields(self) if f.name != "note")


@dataclass(frozen=True)
class WelchResult(_Numbers):
    """Welch t-test result; unpacks as ``t, df, p``."""

    t: float
    df: float
    p: float


@dataclass(frozen=True)
class DiffCI(_Numbers):
    """Difference of means a - b with a Welch CI; unpacks as ``diff, low, high``."""

    diff: float
    low: float
    high: float


def _var(x: np.ndarray) -> float:
    """Sample variance (ddof=1), exactly 0 for constant values (the mean can round off: 0.1*3/3)."""
    return 0.0 if np.ptp(x) == 0 else float(x.var(ddof=1))


def _welch_parts(a, b):
    """Means, standard error and Welch–Satterthwaite df, or a note saying why they don't exist."""
    x, y = _finite(a), _finite(b)
    if x.size < 2 or y.size < 2:
        return None, f"n<2 (n={x.size} vs n={y.size})"
    va, vb = _var(x) / x.size, _var(y) / y.size
    se2 = va + vb
    diff = float(x.mean() - y.mean())
    if se2 == 0:
        # Deterministic arms (a convex fit, a sparse baseline): Welch can only say the means
        # differ; whether they differ beyond test-set noise is the paired test on examples.
        return (diff, 0.0, NAN), "both samples have zero variance (seeds change nothing): see the paired test"
    df = se2**2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    return (diff, math.sqrt(se2), float(df)), ""


def welch_ttest(a, b) -> WelchResult:
    """Two-sided Welch t-test (unequal variances), as ``scipy.stats.ttest_ind(equal_var=False)``.

    Seeds of two configurations rarely share a variance, so the pooled-variance test is wrong
    here. With zero variance in both samples (two deterministic arms: a sparse baseline, a frozen
    probe) t is ±inf if the means differ (as scipy) and NaN if they are equal, and df and p are NaN:
    scipy's p = 0 there is no test result (the statistic has no null distribution when the seeds
    change nothing), and a p of 0 would be printed, starred in the paper table and counted in Holm's
    family as the strongest evidence of the study. Such arms differ beyond test-set noise or not
    by the paired test on examples (``report.paired``), which the note points to.
    """
    parts, note = _welch_parts(a, b)
    if parts is None:
        return WelchResult(NAN, NAN, NAN, note=note)
    diff, se, df = parts
    if se == 0:
        return WelchResult(NAN if diff == 0 else math.copysign(math.inf, diff), NAN, NAN, note=note)
    t = diff / se
    p = float(2 * _st.t.sf(abs(t), df))
    return WelchResult(float(t), df, p, note="")


def mean_diff_ci(a, b, level: float = 0.95) -> DiffCI:
    """mean(a) - mean(b) with the Welch t interval (the CI that matches ``welch_ttest``).

    With zero variance in both samples the interval collapses onto the difference (noted).
    """
    parts, note = _welch_parts(a, b)
    if parts is None:
        return DiffCI(NAN, NAN, NAN, note=note)
    diff, se, df = parts
    if se == 0:
        return DiffCI(diff, diff, diff, note=note)
    half = float(_st.t.ppf(1 - (1 - level) / 2, df)) * se
    return DiffCI(diff, diff - half, diff + half, note="")


def holm(pvals) -> list[float]:
    """Holm step-down adjusted p-values, in the input order; NaN stays NaN and does not count.

    Holm controls the family-wise error rate like Bonferroni but rejects more, with no
    assumption about how the tests depend on each other (they share groups here).
    """
    p = np.asarray(list(pvals), dtype=float)
    out = np.full(p.shape, NAN)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def pooled_sd(samples: Iterable[Sequence[float]]) -> float | None:
    """The within-sample standard deviation pooled over samples (e.g. the seeds of each of several
    configurations): sqrt(sum of squared deviations from each sample's mean / sum of (n_i - 1));
    None without a degree of freedom (every sample has fewer than 2 values)."""
    return pooled_sd_df(samples)[0]


def pooled_sd_df(samples: Iterable[Sequence[float]]) -> tuple[float | None, int]:
    """:func:`pooled_sd` and its degrees of freedom, sum of (n_i - 1)."""
    ss, df = 0.0, 0
    for xs in samples:
        x = np.asarray(list(xs), dtype=float)
        if x.size >= 2:
            ss += float(((x - x.mean()) ** 2).sum())
            df += x.size - 1
    return (math.sqrt(ss / df) if df else None), df


def configs_differ_p(samples: Iterable[Sequence[float]]) -> float:
    """Do several configurations differ beyond seed noise? The one-way ANOVA F test (Fisher) over
    each configuration's seed scores: F = (between-configuration mean square) / (pooled seed
    variance) on (k - 1, sum of (n_i - 1)) degrees of freedom, the p the F distribution's upper tail.

    This is the question "was the search able to tell its configurations apart on validation at
    all?": a pick among configurations that do not differ beyond their seeds is a pick of noise.
    (Comparing the sd across configuration means with the seed sd, as the report once did, flags
    at ratio < 1 though the means of n seeds spread only 1/sqrt(n) of a seed sd when nothing
    differs.) NaN without two configurations or a degree of freedom within; every seed of each
    configuration identical (a deterministic arm): 0 when the means differ, NaN when not."""
    groups = [x[np.isfinite(x)] for x in (np.asarray(list(xs), dtype=float) for xs in samples)]
    groups = [x for x in groups if x.size]
    n = sum(x.size for x in groups)
    k = len(groups)
    if k < 2 or n - k < 1:
        return NAN
    grand = np.concatenate(groups).mean()
    between = sum(x.size * (x.mean() - grand) ** 2 for x in groups)
    within = sum(float(((x - x.mean()) ** 2).sum()) for x in groups)
    if within == 0:
        return 0.0 if between > 0 else NAN
    return float(_st.f.sf((between / (k - 1)) / (within / (n - k)), k - 1, n - k))
