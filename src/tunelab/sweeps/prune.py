"""When a tuning trial is clearly worse after its first seed(s): the tune sweeper's pruning rule.

A trial is one configuration run at ``n`` seeds (``seeds_per_trial``); its objective is the mean.
After its first ``k`` seeds (``prune_after``) it is compared with the best trial of the same arm
that already ran all ``n`` seeds (the *reference* trials: those of earlier batches), and pruned —
its other seeds never run — when its partial mean is below the best mean by more than

    margin = t * s * sqrt(1/k + 1/n),

``s`` the seed standard deviation pooled over the reference trials (each contributes n - 1 degrees
of freedom, ``df`` in all) and ``t`` Student's t quantile with ``df`` degrees of freedom at the
one-sided level of the ``prune_z`` setting (default 2: Phi(2) = 97.7 %). ``s * sqrt(1/k + 1/n)``
is the standard error of the difference between a k-seed mean and an n-seed mean when both
configurations have the seed variance of the arm's finished trials, so a trial *as good as* the
reference best is pruned with probability about ``1 - Phi(z)`` (2.3 % at z = 2) against a single
reference; against the maximum of several it is pruned a little more often (the maximum of noisy
means is biased upwards), which is the usual price of early stopping in hyper-parameter search
(successive halving, Jamieson & Talwalkar 2016; Hyperband, Li et al. 2017). A configuration worse
than the best by several seed sds, as most draws of a wide lr range are, stops after one seed.

Why t and not z: ``s`` is an estimate, and with one finished trial of two seeds it rests on one
degree of freedom. The normal quantile treats it as known: the fair fight's LoRA arm had two
default-recipe seeds 0.0006 apart (s = 0.0005, where the arm's seeds usually differ by ~0.01), a
margin of 0.0011, and pruned a trial 0.0044 below the best after one seed — by the luck of the
reference's seeds. The t quantile (13.97 at 1 df, 4.53 at 2, 2.43 at 7, 2.0 as df grows) makes
the test exact for normal seed noise: early on only gross failures stop (a diverged lr at the
majority rate); the rule sharpens as finished trials add degrees of freedom.

Why not Optuna's pruners: they compare learning curves within one run (steps), while the
question here is across seeds of a configuration; the rule above is a two-sample t-test one can
state in one line and check by hand (tests/test_tune_sweeper.py). With no reference trial yet, or
no degrees of freedom (``n`` = 1), nothing is pruned. A deterministic arm (every seed the same
run: a sparse baseline, a probe) has s = 0, so any trial below the best stops after its first
seed, and its other seeds would only have repeated the same number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

from scipy.stats import norm as normal
from scipy.stats import t as student_t

from tunelab.stats import pooled_sd_df


@dataclass
class PruneLook:
    """One look at a trial after its first ``k`` seeds."""

    pruned: bool
    partial: float               # mean of the first k seeds
    k: int
    best: Optional[float] = None  # best n-seed mean among the reference trials
    sd: Optional[float] = None    # pooled seed sd of the reference trials
    margin: Optional[float] = None
    df: Optional[int] = None      # the degrees of freedom of sd
    t: Optional[float] = None     # the critical value the margin is built from

    def to_dict(self) -> dict:
        return asdict(self)


def prune_look(partial: Sequence[float], reference: Sequence[Sequence[float]], n: int, z: float,
               maximize: bool = True) -> PruneLook:
    """Whether a trial whose first seeds gave ``partial`` is clearly worse than the best of
    ``reference`` (each the ``n`` seed values of a finished trial) — the module's rule."""
    k = len(partial)
    mean = sum(partial) / k
    sd, df = pooled_sd_df(reference)
    if not reference or sd is None or k >= n:
        return PruneLook(False, mean, k, sd=sd)
    means = [sum(xs) / len(xs) for xs in reference]
    best = max(means) if maximize else min(means)
    t = float(student_t.ppf(normal.cdf(z), df))
    margin = t * sd * math.sqrt(1.0 / k + 1.0 / n)
    worse_by = (best - mean) if maximize else (mean - best)
    return PruneLook(worse_by > margin, mean, k, best, sd, margin, df, t)
