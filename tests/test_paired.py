"""Paired statistics against scipy / hand-computed references (statsmodels is not installed)."""

import numpy as np
import pytest
from scipy import stats as st
from sklearn.metrics import accuracy_score, f1_score

from tunelab.report import paired


def test_mcnemar_exact_matches_binomtest_and_chi2_by_hand():
    for b, c in [(3, 10), (0, 5), (7, 7), (12, 2)]:
        r = paired.mcnemar(b, c)
        assert r.method == "exact binomial"
        assert r.p == pytest.approx(st.binomtest(b, b + c, 0.5).pvalue, rel=1e-12)
    # chi-square with continuity correction: (|30-15|-1)^2 / 45 = 196/45
    r = paired.mcnemar(30, 15)
    assert r.statistic == pytest.approx(196 / 45) and r.method.startswith("chi-square")
    assert r.p == pytest.approx(st.chi2.sf(196 / 45, 1)) and r.p == pytest.approx(0.036888, abs=1e-5)
    assert paired.mcnemar(0, 0).p == 1.0


def test_discordant_counts_and_bootstrap():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 200)
    a = np.where(rng.random((3, 200)) < 0.8, gold, 1 - gold)  # ~80% right
    b = np.where(rng.random((3, 200)) < 0.6, gold, 1 - gold)  # ~60% right
    bb, cc = paired.discordant(gold, a, b)
    assert bb == sum(int(np.sum((a[k] == gold) & (b[k] != gold))) for k in range(3))
    res = paired.paired_bootstrap(gold, a, b, 2, 1, n_boot=200)
    want = np.mean([accuracy_score(gold, a[k]) - accuracy_score(gold, b[k]) for k in range(3)])
    assert res["test/acc"].diff == pytest.approx(want)
    want_f1 = np.mean([f1_score(gold, a[k], average="macro") - f1_score(gold, b[k], average="macro") for k in range(3)])
    assert res["test/f1_macro"].diff == pytest.approx(want_f1)
    assert res["test/acc"].low < want < res["test/acc"].high and res["test/acc"].low > 0
    assert res["test/acc"].p < 0.01
    same = paired.paired_bootstrap(gold, a, a, 2, 1, n_boot=50)
    assert same["test/acc"].diff == 0 and same["test/acc"].p == 1.0


def test_bootstrap_ci_and_p_against_a_sklearn_loop():
    """The same resamples (seed 0: one draw of n indices per resample), scored one by one with
    scikit-learn: the percentile CI and the two-sided p follow exactly."""
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 3, 90)
    a = np.where(rng.random((2, 90)) < 0.7, gold, rng.integers(0, 3, (2, 90)))
    b = np.where(rng.random((2, 90)) < 0.65, gold, rng.integers(0, 3, (2, 90)))
    res = paired.paired_bootstrap(gold, a, b, 3, 0, n_boot=300, seed=0)
    draw = np.random.default_rng(0)
    diffs = []
    for _ in range(300):
        i = draw.integers(0, 90, 90)
        diffs.append(np.mean([f1_score(gold[i], a[k][i], average="macro", labels=[0, 1, 2], zero_division=0)
                              - f1_score(gold[i], b[k][i], average="macro", labels=[0, 1, 2], zero_division=0)
                              for k in range(2)]))
    d = np.array(diffs)
    lo, hi = np.percentile(d, [2.5, 97.5])
    got = res["test/f1_macro"]
    assert got.low == pytest.approx(lo, abs=1e-12) and got.high == pytest.approx(hi, abs=1e-12)
    k = min(np.sum(d <= 0), np.sum(d >= 0))
    assert got.p == pytest.approx(min(1.0, 2 * (k + 1) / 301))


def test_bootstrap_p_is_never_zero():
    """A right on every example, B wrong on every one: no resample crosses zero, and 200 resamples
    can only say p <= 2 / 201 (North et al. 2002), not p = 0."""
    gold = np.arange(40) % 2
    res = paired.paired_bootstrap(gold, gold[None, :], 1 - gold[None, :], 2, 1, n_boot=200)
    assert res["test/acc"].diff == 1.0
    assert res["test/acc"].p == pytest.approx(2 / 201)


def test_ensembles_and_agreement():
    preds = np.array([[0, 1, 1, 2], [0, 1, 2, 2], [1, 0, 2, 0]])
    assert paired.vote(preds, 3).tolist() == [0, 1, 2, 2]
    probs = np.zeros((2, 1, 3))
    probs[0, 0] = [0.1, 0.5, 0.4]
    probs[1, 0] = [0.1, 0.3, 0.6]
    assert paired.vote(np.array([[1], [2]]), 3, probs).tolist() == [2]  # tie -> higher mean probability
    assert paired.mean_probability(probs).tolist() == [2]
    mean_pair, all_agree = paired.agreement(preds)
    assert mean_pair == pytest.approx((3 / 4 + 0 + 1 / 4) / 3) and all_agree == 0.0


def test_sign_flip_one_seed_pair_is_mcnemars_exact_test():
    """One seed pair: the sign of each discordant example is a fair coin, so the test is the exact
    binomial on b of b + c (scipy's binomtest), also far out in the tail."""
    for b, c in [(3, 10), (0, 5), (7, 7), (41, 37), (858, 257)]:
        ra = np.r_[np.ones(b), np.zeros(c), np.ones(20)].astype(bool)
        rb = np.r_[np.zeros(b), np.ones(c), np.ones(20)].astype(bool)
        r = paired.sign_flip(ra[None], rb[None])
        assert (r.b, r.c) == (b, c) and r.method.startswith("sign-flip, exact")
        assert r.p == pytest.approx(st.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


def test_sign_flip_repeated_seed_pairs_add_no_evidence():
    """Five seed pairs that are copies of one (two deterministic arms) are one comparison: the
    p stays that of one pair, where summing the counts (McNemar on 5b vs 5c) would shrink it
    from 0.73 to 0.34 (41 vs 37) and from 0.09 to 2e-5 (3 vs 10)."""
    for b, c in [(41, 37), (3, 10)]:
        ra = np.r_[np.ones(b), np.zeros(c)].astype(bool)
        rb = ~ra
        one = paired.sign_flip(ra[None], rb[None]).p
        five = paired.sign_flip(np.tile(ra, (5, 1)), np.tile(rb, (5, 1)))
        assert five.p == pytest.approx(one, rel=1e-9) and (five.b, five.c) == (5 * b, 5 * c)
        assert paired.mcnemar(5 * b, 5 * c).p < 0.5 * one


def test_sign_flip_matches_scipys_exact_permutation_test():
    """Three seed pairs on 14 examples: every one of the 2^14 swaps of A and B per example
    (scipy.stats.permutation_test, exact) against the convolution."""
    rng = np.random.default_rng(7)
    for trial in range(3):
        a, b = rng.random((3, 14)) < 0.75, rng.random((3, 14)) < 0.45
        x, y = a.sum(axis=0).astype(float), b.sum(axis=0).astype(float)
        ref = st.permutation_test((x, y), lambda u, v, axis: np.sum(u - v, axis=axis),
                                  permutation_type="samples", n_resamples=np.inf)
        assert paired.sign_flip(a, b).p == pytest.approx(ref.pvalue, rel=1e-9), trial


def test_sign_flip_normal_approximation_for_huge_test_sets():
    """Past the work limit: z = (|sum s| - 1) / sqrt(sum s²), for one pair the chi-square McNemar
    statistic with continuity correction by hand ((|30 - 15| - 1)² / 45)."""
    ra = np.r_[np.ones(30), np.zeros(15)].astype(bool)
    r = paired.sign_flip(ra[None], ~ra[None], max_work=1)
    assert r.method.startswith("sign-flip, normal")
    assert r.p == pytest.approx(st.chi2.sf(196 / 45, 1), rel=1e-9)
    same = paired.sign_flip(ra[None], ra[None])
    assert same.p == 1.0 and (same.b, same.c) == (0, 0)
