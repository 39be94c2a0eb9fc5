"""Expected max performance (Tang et al. 2020 unbiased; Dodge et al. 2019) on hand-computed cases."""

import itertools

import numpy as np
import pytest

from tunelab.report.expected_max import bootstrap_band, expected_max, val_metric_of


def test_three_values_by_hand():
    # n=2 without replacement: pairs {1,2},{1,3},{2,3} have maxima 2,3,3 -> 8/3.
    assert expected_max([3.0, 1.0, 2.0]) == pytest.approx([2.0, 8 / 3, 3.0])
    # Dodge (with replacement), n=2: 1*(1/9) + 2*(4/9-1/9) + 3*(1-4/9) = 22/9; n=3: 1/27+2*7/27+3*19/27 = 72/27
    assert expected_max([3.0, 1.0, 2.0], unbiased=False) == pytest.approx([2.0, 22 / 9, 72 / 27])


def test_unbiased_equals_enumeration_of_subsets():
    v = np.random.default_rng(0).normal(size=7)
    want = [np.mean([max(c) for c in itertools.combinations(v, n)]) for n in range(1, 8)]
    assert expected_max(v) == pytest.approx(want, rel=1e-12)


def test_band_brackets_and_edges():
    lo, hi = bootstrap_band([0.1, 0.5, 0.4, 0.3], n_boot=500)
    mean = expected_max([0.1, 0.5, 0.4, 0.3])
    assert all(l <= m + 1e-12 and m <= h + 1e-12 for l, m, h in zip(lo, mean, hi))
    assert expected_max([float("nan"), 0.5]) == [0.5] and expected_max([]) == []
    assert val_metric_of("test/acc", {"val/acc", "val/acc_best"}) == "val/acc_best"
    assert val_metric_of("test/f1", {"val/f1"}) == "val/f1" and val_metric_of("test/f1", set()) is None
