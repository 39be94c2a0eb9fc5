"""tunelab.stats against the references it claims to equal (scikit-learn, scipy)."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats as st
from sklearn.metrics import accuracy_score, f1_score

from tunelab import metrics, stats

# ----------------------------------------------------------------------------- metrics

FIXED = [
    ([0, 1, 1, 0, 1], [0, 1, 0, 0, 1]),
    ([0, 0, 0, 0], [0, 0, 0, 0]),      # positive class absent everywhere: zero_division -> 0
    ([1, 1, 1], [1, 1, 1]),
    ([0, 0, 1, 1], [1, 1, 1, 1]),      # constant positive predictor
    ([0, 0, 1, 1], [0, 0, 0, 0]),      # constant negative predictor: positive F1 = 0
    ([1, 0], [0, 1]),
    ([1], [1]),
]


def _sk_f1(t, p, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f1_score(t, p, zero_division=0, **kw)


@pytest.mark.parametrize("y_true,y_pred", FIXED)
def test_metrics_match_sklearn_on_fixed_cases(y_true, y_pred):
    assert metrics.accuracy(y_true, y_pred) == accuracy_score(y_true, y_pred)
    assert metrics.f1_score_binary(y_true, y_pred, pos_label=1) == _sk_f1(y_true, y_pred)
    assert metrics.f1_macro(y_true, y_pred) == pytest.approx(_sk_f1(y_true, y_pred, average="macro"), abs=1e-15)


def test_metrics_match_sklearn_on_random_inputs():
    rng = np.random.default_rng(123)
    for _ in range(150):
        n = int(rng.integers(1, 40))
        k = int(rng.integers(2, 6))
        t, p = rng.integers(0, k, n), rng.integers(0, k, n)
        assert metrics.accuracy(t, p) == pytest.approx(accuracy_score(t, p), abs=1e-15)
        assert metrics.f1_macro(t, p) == pytest.approx(_sk_f1(t, p, average="macro"), abs=1e-12)
        tb, pb = t % 2, p % 2
        assert metrics.f1_score_binary(tb, pb) == pytest.approx(_sk_f1(tb, pb), abs=1e-12)


def test_batched_scores_match_sklearn_row_by_row():
    """classification_scores_batch (the paired bootstrap's) = scikit-learn on every row, with a
    class that no row of some batches has (zero_division=0, still averaged over n_classes)."""
    rng = np.random.default_rng(7)
    for k, pos in ((2, 1), (2, 0), (3, 0), (5, 0)):
        t, p = rng.integers(0, k, (40, 25)), rng.integers(0, k, (40, 25))
        t[:5], p[:5] = np.minimum(t[:5], k - 2), np.minimum(p[:5], k - 2)  # class k-1 absent
        got = metrics.classification_scores_batch(t, p, k, pos)
        labels = list(range(k))
        for r in range(40):
            assert got["test/acc"][r] == pytest.approx(accuracy_score(t[r], p[r]), abs=1e-15)
            macro = _sk_f1(t[r], p[r], average="macro", labels=labels)
            assert got["test/f1_macro"][r] == pytest.approx(macro, abs=1e-12)
            want_f1 = _sk_f1(t[r], p[r], average="binary", pos_label=pos) if k == 2 else macro
            assert got["test/f1"][r] == pytest.approx(want_f1, abs=1e-12)
    with pytest.raises(ValueError, match="0..1"):
        metrics.classification_scores_batch(np.array([[0, 2]]), np.array([[0, 1]]), 2)


def test_string_labels_and_explicit_labels_match_sklearn():
    t, p = ["neg", "pos", "pos", "neg"], ["neg", "neg", "neg", "neg"]
    assert metrics.f1_score_binary(t, p, pos_label="pos") == _sk_f1(t, p, pos_label="pos") == 0.0
    assert metrics.f1_score_binary(t, p, pos_label="neg") == pytest.approx(_sk_f1(t, p, pos_label="neg"))
    labels = ["neg", "pos", "neutral"]  # 'neutral' absent from both -> scores 0, still averaged
    assert metrics.f1_macro(t, p, labels=labels) == pytest.approx(_sk_f1(t, p, average="macro", labels=labels))


def test_binary_f1_refuses_what_sklearn_refuses():
    with pytest.raises(ValueError):
        metrics.f1_score_binary([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError):
        metrics.f1_score_binary([0, 2], [2, 2], pos_label=1)
    with pytest.raises(ValueError):
        metrics.accuracy([], [])
    with pytest.raises(ValueError):
        metrics.accuracy([0, 1], [0])
    # one label present and it is not pos_label: allowed, scores 0 (sklearn does the same)
    assert metrics.f1_score_binary([2, 2], [2, 2]) == _sk_f1([2, 2], [2, 2]) == 0.0


# ----------------------------------------------------------------------------- Welch


def test_welch_matches_scipy_fixed_and_random():
    cases = [([0.81, 0.83, 0.80, 0.84], [0.78, 0.79, 0.80]), ([1, 2, 3, 5], [2, 2.5, 2, 7])]
    rng = np.random.default_rng(7)
    for _ in range(50):
        na, nb = rng.integers(2, 12, 2)
        cases.append((rng.normal(0, rng.uniform(0.1, 3), na), rng.normal(0.5, rng.uniform(0.1, 3), nb)))
    for a, b in cases:
        ref = st.ttest_ind(a, b, equal_var=False)
        t, df, p = stats.welch_ttest(a, b)
        assert t == pytest.approx(ref.statistic, rel=1e-10)
        assert df == pytest.approx(ref.df, rel=1e-10)
        assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
        ci = ref.confidence_interval(0.95)
        diff, lo, hi = stats.mean_diff_ci(a, b, 0.95)
        assert diff == pytest.approx(np.mean(a) - np.mean(b))
        assert (lo, hi) == (pytest.approx(ci.low, rel=1e-9), pytest.approx(ci.high, rel=1e-9))


def test_welch_small_and_constant_samples_give_nan_with_note():
    r = stats.welch_ttest([0.8], [0.7, 0.75])
    assert math.isnan(r.t) and math.isnan(r.p) and "n<2" in r.note
    d = stats.mean_diff_ci([], [0.7, 0.75])
    assert math.isnan(d.diff) and "n<2" in d.note
    same = stats.welch_ttest([0.5, 0.5], [0.5, 0.5])
    assert math.isnan(same.t) and math.isnan(same.p) and "zero variance" in same.note
    apart = stats.welch_ttest([0.5, 0.5], [0.6, 0.6])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about the zero variance
        ref = st.ttest_ind([0.5, 0.5], [0.6, 0.6], equal_var=False)
    # scipy says t = -inf and p = 0; t agrees, but p = 0 from seeds that change nothing is no test
    # result (it was printed as 0.0000, starred in tables.tex and led Holm's family): p and df are NaN
    assert apart.t == ref.statistic == -math.inf and ref.pvalue == 0.0
    assert math.isnan(apart.p) and math.isnan(apart.df) and "paired test" in apart.note
    assert tuple(stats.mean_diff_ci([0.5, 0.5], [0.6, 0.6])) == pytest.approx((-0.1, -0.1, -0.1))
    assert "zero variance" in stats.welch_ttest([0.1] * 3, [0.1] * 3).note  # mean rounds, var must not


# ----------------------------------------------------------------------------- Holm


def _holm_bruteforce(p):
    m, order = len(p), np.argsort(p, kind="stable")
    adj = np.empty(m)
    for rank, i in enumerate(order):
        adj[i] = max(min(1.0, (m - r) * p[order[r]]) for r in range(rank + 1))
    return adj


def test_holm_known_values_and_random():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []
    rng = np.random.default_rng(3)
    for _ in range(30):
        p = rng.uniform(0, 0.2, int(rng.integers(1, 9)))
        assert stats.holm(p) == pytest.approx(_holm_bruteforce(p).tolist())


def test_holm_ignores_nan():
    out = stats.holm([0.01, float("nan"), 0.04])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)


# ----------------------------------------------------------------------------- summaries


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    x = [0.80, 0.82, 0.79, 0.85, 0.81]
    lo, hi = stats.bootstrap_ci(x)
    assert (lo, hi) == stats.bootstrap_ci(x)  # same seed, same report
    assert min(x) <= lo <= np.mean(x) <= hi <= max(x)
    lo90, hi90 = stats.bootstrap_ci(x, level=0.90)
    assert lo <= lo90 and hi90 <= hi
    # chunked resampling gives the same kind of answer for a long sample
    big = np.random.default_rng(0).normal(size=5000)
    lo, hi = stats.bootstrap_ci(big, n_boot=2000)
    assert lo < big.mean() < hi and hi - lo < 0.1


def test_summarize_values_and_small_samples():
    s = stats.summarize([1.0, 2.0, 4.0, float("nan")])
    assert s["n"] == 3 and s["mean"] == pytest.approx(7 / 3)
    assert s["sd"] == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert (s["min"], s["max"]) == (1.0, 4.0) and s["ci_low"] <= s["mean"] <= s["ci_high"]
    one = stats.summarize([0.7])
    assert one["n"] == 1 and one["mean"] == 0.7 and math.isnan(one["sd"]) and "n<2" in one["note"]
    none = stats.summarize([])
    assert none["n"] == 0 and math.isnan(none["mean"]) and none["note"] == "no values"
    assert math.isnan(stats.bootstrap_ci([0.7])[0])
