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
    assert got.p == pytest.approx(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))


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
