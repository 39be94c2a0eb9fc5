"""Two-way variance decomposition of a crossed init x order seed grid, against a hand computation."""

import itertools

import numpy as np
import pytest

from tunelab.report.variance import decompose


def test_two_by_three_by_hand():
    # rows = init seeds 0,1; columns = order seeds 0,1,2
    table = [[1.0, 2.0, 6.0],
             [3.0, 4.0, 2.0]]
    rows = [(i, j, table[i][j]) for i in range(2) for j in range(3)]
    d = decompose(rows)
    # grand mean 3; row means 3, 3; column means 2, 3, 4
    assert d.ss_total == pytest.approx(4 + 1 + 9 + 0 + 1 + 1)          # 16
    assert d.ss_init == pytest.approx(0.0)                               # 3*(0+0)
    assert d.ss_order == pytest.approx(2 * (1 + 0 + 1))                  # 4
    # interaction residuals x - row - col + m: [[-1,-1,2],[1,1,-2]] -> 12
    assert d.ss_interaction == pytest.approx(12.0) and d.ss_residual == 0.0
    assert (d.share_init, d.share_order, d.share_rest) == pytest.approx((0.0, 0.25, 0.75))
    # MS_rest = 12/2 = 6; MS_order = 4/2 = 2 -> (2-6)/2 < 0 -> 0; MS_init = 0 -> 0
    assert (d.var_init, d.var_order, d.var_rest) == pytest.approx((0.0, 0.0, 6.0))
    assert d.var_shares() == pytest.approx((0.0, 0.0, 1.0))


def test_replicated_grid_sums_and_components():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 2)) + np.array([0, 1, 2])[:, None, None]
    rows = [(i, j, x[i, j, k]) for i, j, k in itertools.product(range(3), range(4), range(2))]
    d = decompose(rows)
    # The four parts add up to the total (the identity the ANOVA rests on) ...
    assert d.ss_init + d.ss_order + d.ss_interaction + d.ss_residual == pytest.approx(d.ss_total)
    # ... and each equals its textbook formula, computed here independently with loops.
    m = x.mean()
    assert d.ss_init == pytest.approx(sum(8 * (x[i].mean() - m) ** 2 for i in range(3)))
    assert d.ss_residual == pytest.approx(sum((x[i, j, k] - x[i, j].mean()) ** 2
                                              for i in range(3) for j in range(4) for k in range(2)))
    ms_rest = (d.ss_interaction + d.ss_residual) / (2 * 3 + 12)
    assert d.var_init == pytest.approx(max(0.0, (d.ss_init / 2 - ms_rest) / 8))
    assert d.share_init > 0.5  # the init effect built into the data dominates


def test_not_crossed_or_incomplete():
    assert "not a crossed design" in decompose([(0, 0, 1.0), (1, 0, 2.0)]).note
    assert "incomplete" in decompose([(0, 0, 1.0), (1, 0, 2.0), (0, 1, 3.0)]).note
