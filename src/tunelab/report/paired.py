"""Paired statistics on per-example predictions: McNemar, the paired bootstrap, seed ensembles.

Two arms scored on the *same* test examples are paired data: example difficulty is shared, so a
paired test sees differences that the Welch test on per-seed means (which treats each arm's
scores as independent samples) cannot. Dror et al. 2018 ("The Hitchhiker's Guide to Testing
Statistical Significance in NLP") recommend McNemar for accuracy and the (paired) bootstrap
for other metrics such as F1.

* :func:`mcnemar`: only the discordant examples count — ``b`` = right in A and wrong in B,
  ``c`` = the reverse. Exact two-sided binomial test on b of b+c at 1/2 when b+c < 25, else the
  chi-square statistic with continuity correction, (|b-c| - 1)² / (b+c) on 1 df (Edwards 1948).
  One seed pair only: its examples are the units.
* :func:`sign_flip`: several seed pairs on the *same* examples. Summing their b and c (as the
  Mantel–Haenszel test would for strata of different subjects) counts each example once per seed
  pair, so five copies of one comparison would look five times as sure (two deterministic arms: a
  McNemar p of 0.002 became 1e-12). The unit stays the example: s_i = the sum over seed pairs of
  right(A) − right(B), and under "A and B are exchangeable on each example" every s_i's sign is a
  fair coin (the paired permutation or approximate randomization test, Noreen 1989; Riezler &
  Maxwell 2005). The exact two-sided p of the sum is taken from its sign-flip distribution,
  built by convolving one binomial per |s_i| value; for one seed pair it is McNemar's exact test.
* :func:`paired_bootstrap`: resample test examples (the same draw for both arms and for every
  seed pair), recompute the scores with :mod:`tunelab.metrics`, and take the percentile CI of
  the mean over seed pairs of score(A) - score(B) (Koehn 2004; Berg-Kirkpatrick et al. 2012).
* :func:`vote` / :func:`mean_probability`: the seed ensemble of an arm (majority vote, ties to
  the class with the highest mean probability; or argmax of the mean probability).
* :func:`agreement`: how often two seeds of an arm predict the same label for an example.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from tunelab import metrics

NAN = float("nan")
EXACT_BELOW = 25  # discordant pairs under which the exact binomial test is used


@dataclass(frozen=True)
class McNemar:
    b: int
    c: int
    statistic: float
    p: float
    method: str


def mcnemar(b: int, c: int, exact: bool | None = None) -> McNemar:
    """McNemar's test from the discordant counts (see the module docstring)."""
    b, c = int(b), int(c)
    n = b + c
    if n == 0:
        return McNemar(b, c, NAN, 1.0, "no discordant examples")
    if exact if exact is not None else n < EXACT_BELOW:
        p = min(1.0, 2.0 * float(_st.binom.cdf(min(b, c), n, 0.5)))
        return McNemar(b, c, float(min(b, c)), p, "exact binomial")
    stat = (abs(b - c) - 1) ** 2 / n
    return McNemar(b, c, float(stat), float(_st.chi2.sf(stat, 1)), "chi-square, continuity-corrected")


EXACT_WORK = 5e8  # multiply-adds the exact sign-flip distribution may take before the normal approximation


def sign_flip(right_a: np.ndarray, right_b: np.ndarray, max_work: float = EXACT_WORK) -> McNemar:
    """The paired sign-flip test with the example as the unit (see the module docstring).

    ``right_a``/``right_b``: (seed pairs x examples) booleans, row k of A paired with row k of B.
    ``b`` and ``c`` of the result are the discordant counts summed over the seed pairs (what the
    summed test would have used); ``statistic`` is the standardised sum, sum(s) / sqrt(sum(s²)).
    Exact unless the distribution would take more than ``max_work`` multiply-adds (tens of
    thousands of examples), then the normal approximation with a continuity correction of 1 —
    for one seed pair the chi-square McNemar statistic."""
    ra, rb = np.atleast_2d(right_a).astype(np.int64), np.atleast_2d(right_b).astype(np.int64)
    b, c = int(np.sum(ra & (1 - rb))), int(np.sum((1 - ra) & rb))
    s = (ra - rb).sum(axis=0)
    t_obs, s = abs(int(s.sum())), np.abs(s[s != 0])
    if s.size == 0:
        return McNemar(b, c, NAN, 1.0, "sign-flip: no discordant examples")
    sd = float(np.sqrt(np.sum(s.astype(float) ** 2)))  # of the sum under the sign flips
    z = t_obs / sd
    mags, counts = np.unique(s, return_counts=True)
    span = int(s.sum())  # the sum lies in [-span, span]
    if (2 * span + 1) * float(np.sum(2 * mags * counts + 1)) > max_work:
        return McNemar(b, c, z, float(2 * _st.norm.sf(max(t_obs - 1, 0) / sd)),
                       "sign-flip, normal approx. (examples as units)")
    # Each magnitude j taken by m examples adds j * (2 * Binomial(m, 1/2) - m): a kernel with the
    # binomial weights every 2j values. Index i of ``pmf`` is the value i - span.
    pmf = np.ones(1)
    for j, m in zip(mags.tolist(), counts.tolist()):
        kernel = np.zeros(2 * j * m + 1)
        kernel[::2 * j] = _st.binom.pmf(np.arange(m + 1), m, 0.5)
        pmf = np.convolve(pmf, kernel)
    values = np.abs(np.arange(pmf.size) - span)
    return McNemar(b, c, z, min(1.0, float(pmf[values >= t_obs].sum())), "sign-flip, exact (examples as units)")


def discordant(gold: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> tuple[int, int]:
    """(A right & B wrong, A wrong & B right), summed over the rows of 2-d predictions."""
    ra, rb = pred_a == gold, pred_b == gold
    return int(np.sum(ra & ~rb)), int(np.sum(~ra & rb))


def scores(gold, pred, n_classes: int, pos: int) -> dict[str, float]:
    """The reported scores of one prediction vector (``tunelab.metrics``), keyed test/acc etc."""
    return metrics.classification_scores(gold, pred, n_classes, pos, prefix="test")


@dataclass
class BootDiff:
    """Mean over seed pairs of score(A) - score(B), with its paired-bootstrap CI and p."""

    diff: float
    low: float
    high: float
    p: float


def paired_bootstrap(gold: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, n_classes: int, pos: int,
                     n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, BootDiff]:
    """Per metric: the observed mean difference, the percentile CI and a two-sided bootstrap p
    (twice the share of resampled differences on the other side of zero, at most 1), counted as
    (k + 1) / (B + 1) (North, Curtis & Sham 2002): B resamples cannot show a p below 1 / (B + 1),
    so none on the other side means p ≤ 2 / (B + 1), not p = 0.

    ``pred_a``/``pred_b`` are (seed pairs x examples); row k of A is paired with row k of B.
    """
    pred_a, pred_b = np.atleast_2d(pred_a), np.atleast_2d(pred_b)

    def mean_diff(idx) -> dict[str, np.ndarray]:
        """Per metric, the mean over seed pairs of score(A) - score(B) on each row of ``idx`` (R, n)."""
        g = gold[idx]
        per_pair = []
        for a, b in zip(pred_a, pred_b):
            sa = metrics.classification_scores_batch(g, a[idx], n_classes, pos)
            sb = metrics.classification_scores_batch(g, b[idx], n_classes, pos)
            per_pair.append({k: sa[k] - sb[k] for k in sa})
        return {k: np.mean([d[k] for d in per_pair], axis=0) for k in per_pair[0]}

    observed = {k: float(v[0]) for k, v in mean_diff(np.arange(gold.size)[None, :]).items()}
    rng = np.random.default_rng(seed)
    # every resample's n indices in one draw: the same resamples as one draw per resample (numpy
    # fills the block in order; test_paired checks against that loop), scored all at once
    boot = mean_diff(rng.integers(0, gold.size, (n_boot, gold.size)))
    a = (1 - level) / 2
    out = {}
    for key, obs in observed.items():
        d = boot[key]
        lo, hi = np.percentile(d, [100 * a, 100 * (1 - a)])
        k = min(int(np.sum(d <= 0)), int(np.sum(d >= 0)))
        p = min(1.0, 2 * (k + 1) / (d.size + 1)) if obs != 0 else 1.0
        out[key] = BootDiff(obs, float(lo), float(hi), float(p))
    return out


def vote(preds: np.ndarray, n_classes: int, probs: np.ndarray | None = None) -> np.ndarray:
    """Majority vote over seeds (rows); a tie goes to the tied class with the highest mean
    probability, or the lowest class id without probabilities."""
    counts = np.stack([(preds == c).sum(axis=0) for c in range(n_classes)], axis=1).astype(float)
    if probs is not None:
        counts += 1e-3 * probs.astype(float).mean(axis=0)  # < 1 vote: breaks ties only
    return counts.argmax(axis=1)


def mean_probability(probs: np.ndarray) -> np.ndarray:
    """Argmax of the seeds' mean class probabilities (probs: seeds x examples x classes)."""
    return probs.astype(float).mean(axis=0).argmax(axis=1)


def agreement(preds: np.ndarray) -> tuple[float, float]:
    """(mean over seed pairs of the share of examples with the same label, share of examples on
    which all seeds agree); NaN with fewer than two seeds."""
    if preds.shape[0] < 2:
        return NAN, NAN
    pair = [float(np.mean(preds[i] == preds[j])) for i, j in itertools.combinations(range(preds.shape[0]), 2)]
    return float(np.mean(pair)), float(np.mean((preds == preds[0]).all(axis=0)))
