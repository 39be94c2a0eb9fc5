"""Hedges' g and seeds needed, against hand computations and published power tables."""

import math

import numpy as np
import pytest

from tunelab import effect


def test_hedges_g_hand_computed():
    a, b = [0.80, 0.82, 0.84], [0.85, 0.86, 0.88]
    # by hand: means .82 and .8633..., variances .0004 and .000233..., pooled sd = sqrt(.00031667)
    d = (0.82 - 0.86333333333) / math.sqrt((0.0004 + 0.00023333333) / 2)
    j = 1 - 3 / (4 * 4 - 1)  # Hedges' approximation of J(4) (exact J(4) = 0.7978845608)
    res = effect.hedges_g(a, b)
    assert effect.hedges_correction(4) == pytest.approx(0.7978845608, abs=1e-9)
    assert res.g == pytest.approx(0.7978845608 * d, rel=1e-8)
    assert res.g == pytest.approx(j * d, rel=0.003)
    se = math.sqrt(6 / 9 + res.g ** 2 / 12)
    assert (res.low, res.high) == pytest.approx((res.g - 1.959963985 * se, res.g + 1.959963985 * se), abs=1e-8)
    assert effect.hedges_g([1.0], [2.0, 3.0]).note.startswith("n<2")
    assert math.isnan(effect.hedges_g([1, 1], [1, 1]).g)


@pytest.mark.parametrize("d,n", [(0.2, 394), (0.5, 64), (0.8, 26), (1.0, 17), (2.0, 6)])
def test_seeds_needed_matches_power_tables(d, n):
    # Two-sided alpha=.05, power=.8, n per group (Cohen 1988 Table 2.4.1; G*Power; statsmodels
    # TTestIndPower().solve_power gives 393.4, 63.8, 25.5, 16.7, 5.1 before rounding up).
    assert effect.seeds_needed(d) == n
    assert effect.seeds_needed(-d) == n


def test_seeds_needed_edges():
    assert effect.seeds_needed(0.0) == math.inf and math.isnan(effect.seeds_needed(float("nan")))
    assert effect.seeds_needed(1e-4) == math.inf
    assert effect.t_test_power(0.5, 64) == pytest.approx(0.8015, abs=1e-3)  # G*Power: 0.8015
