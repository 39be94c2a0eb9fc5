"""tunelab.sequential: boundaries against scipy's multivariate normal and published tables, the
repeated CIs' coverage and the rule's error rates in simulated studies (seeded), its decisions
against scipy's t intervals in cases with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tunelab.errors import ConfigError
from tunelab.sequential import Design, Run, Study, boundaries, fixed_decisions, spent
from tunelab.sequential.rule import rci
from tunelab.sequential.spending import t_levels


def _crossing_prob(crit, times):
    """1 - P(|Z_k| < c_k for every k) for Z_k = W(t_k)/sqrt(t_k): scipy's multivariate normal."""
    t = np.asarray(times)
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    c = np.asarray(crit)
    return 1 - stats.multivariate_normal(mean=np.zeros(len(t)), cov=cov).cdf(c, lower_limit=-c)


@pytest.mark.parametrize("kind,alpha,times", [("pocock", 0.05, [0.3, 0.4, 0.7, 1.0]),
                                              ("obf", 0.05, [0.3, 0.5, 1.0]),
                                              ("pocock", 0.05 / 3, [0.3, 0.4, 0.5, 0.6]),
                                              ("obf", 0.01, [0.25, 0.5, 0.75, 1.0])])
def test_boundaries_spend_exactly_alpha_t(kind, alpha, times):
    crit = boundaries(alpha, kind, times)
    for k in range(1, len(times) + 1):  # every prefix of looks crosses with the spent alpha
        assert _crossing_prob(crit[:k], times[:k]) == pytest.approx(spent(kind, alpha, times[k - 1]), abs=2e-5)


def test_boundaries_match_published_tables():
    # Five equally spaced looks, two-sided alpha .05: Lan-DeMets O'Brien-Fleming and Pocock types
    # (gsDesign sfLDOF / sfLDPocock, test.type = 2; Jennison & Turnbull 2000, table 7.x).
    t = [0.2, 0.4, 0.6, 0.8, 1.0]
    assert boundaries(0.05, "obf", t) == pytest.approx([4.8769, 3.3570, 2.6803, 2.2898, 2.0310], abs=1e-3)
    assert boundaries(0.05, "pocock", t) == pytest.approx([2.4380, 2.4268, 2.4102, 2.3966, 2.3860], abs=1e-3)
    assert boundaries(0.05, "pocock", [1.0]) == pytest.approx([stats.norm.isf(0.025)])


def test_spending_functions_by_hand():
    assert spent("pocock", 0.05, 0.5) == pytest.approx(0.05 * math.log(1 + (math.e - 1) * 0.5))
    assert spent("obf", 0.05, 0.5) == pytest.approx(4 * stats.norm.sf(stats.norm.isf(0.0125) / math.sqrt(0.5)))
    for kind in ("pocock", "obf"):
        assert spent(kind, 0.05, 1.0) == pytest.approx(0.05) and spent(kind, 0.05, 0.0) == 0.0


def _simulated_rcis(rng, m, sd_a, sd_b, kind, alpha, n_max=10, first=3):
    """RCIs of m simulated studies at looks n = first..n_max (one seed per arm per round),
    vectorised, as the rule computes them: Welch, the looks' calibrated levels, information n/n_max."""
    delta = 0.7
    a = rng.normal(delta, sd_a, (m, n_max))
    b = rng.normal(0.0, sd_b, (m, n_max)) if sd_b > 0 else np.zeros((m, n_max))
    ns = list(range(first, n_max + 1))
    levels = t_levels(alpha, kind, [n / n_max for n in ns], ns)
    covered = np.empty((m, len(ns)), dtype=bool)
    for k, (n, level) in enumerate(zip(ns, levels)):
        va, vb = a[:, :n].var(axis=1, ddof=1) / n, b[:, :n].var(axis=1, ddof=1) / n
        se2 = va + vb
        df = se2 ** 2 / (va ** 2 / (n - 1) + vb ** 2 / (n - 1))
        low, high = rci(a[:, :n].mean(axis=1) - b[:, :n].mean(axis=1), np.sqrt(se2), df, level)
        covered[:, k] = (low <= delta) & (delta <= high)
    return covered


@pytest.mark.parametrize("kind", ["pocock", "obf"])
@pytest.mark.parametrize("sd_a,sd_b", [(1.0, 1.0), (1.0, 2.0), (1.0, 0.0)])
def test_repeated_cis_cover_at_every_look(kind, sd_a, sd_b):
    """Coverage of the truth by all of a study's intervals at once (hence at every look) is at
    least 1 - alpha, over 20,000 simulated studies of normal seeds: equal and unequal variances,
    and against a constant arm (one-sample, exact t). The simulations are not those that
    calibrated the levels (other random numbers)."""
    alpha, m = 0.05, 20000
    covered = _simulated_rcis(np.random.default_rng(27), m, sd_a, sd_b, kind, alpha)
    tol = 3 * math.sqrt(alpha * (1 - alpha) / m)
    assert covered.all(axis=1).mean() >= 1 - alpha - tol
    assert covered.mean(axis=0).min() >= 1 - alpha
    # and it is not trivially conservative: the intervals do miss sometimes
    assert covered.all(axis=1).mean() < 1 - alpha / 4


def test_t_levels_spend_alpha_on_fresh_simulations():
    """A sequential one-sample t-test at the calibrated levels, on 100,000 new simulated null
    studies: first crossings by each look match the spending function within Monte Carlo error;
    one final look alone is the plain t-test at alpha."""
    ns, alpha = [3, 5, 10], 0.05
    times = [n / 10 for n in ns]
    levels = t_levels(alpha, "pocock", times, ns)
    x = np.random.default_rng(99).standard_normal((100_000, 10))
    crossed = np.zeros(len(x), dtype=bool)
    for n, level, t in zip(ns, levels, times):
        p = stats.ttest_1samp(x[:, :n], 0.0, axis=1).pvalue
        crossed |= p <= level
        assert crossed.mean() == pytest.approx(spent("pocock", alpha, t), abs=4 * math.sqrt(alpha / len(x)))
    assert t_levels(alpha, "obf", [1.0], [4]) == pytest.approx([alpha])


def _run_study(design, sample, rng):
    study = Study(design, list(sample))
    while plan := study.plan():
        study.record({a: [Run(float(sample[a](rng))) for _ in range(k)] for a, k in plan.items()})
    return study


def test_aa_studies_decide_a_sign_at_most_alpha_of_the_time():
    """Three arms of one normal distribution (all pairs: 3 contrasts): any sign decided is false;
    the family-wise rate stays <= alpha (1,000 studies; a binomial margin of 2.5 sd)."""
    rng = np.random.default_rng(5)
    design = Design(alpha=0.05, max_seeds=7)
    same = {a: (lambda r: r.normal(0.0, 1.0)) for a in ("a", "b", "c")}
    m = 1000
    false = sum(any(d in ("greater", "less") for d in _run_study(design, same, rng).decisions().values())
                for _ in range(m))
    assert false / m <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / m)


def test_clear_differences_stop_at_the_first_look():
    rng = np.random.default_rng(1)
    study = _run_study(Design(max_seeds=10), {"big": lambda r: r.normal(10, 0.1), "small": lambda r: r.normal(0, 0.1)},
                       rng)
    assert study.decisions() == {"big vs small": "greater"} and study.seeds_run() == {"big": 3, "small": 3}
    assert study.round == 1


def test_single_look_interval_is_welchs():
    """max_seeds = min_seeds: one final look at information 1, i.e. Welch's interval at 1 - alpha/C."""
    a, b = [0.91, 0.90, 0.93, 0.925], [0.88, 0.87, 0.872, 0.875]
    study = Study(Design(alpha=0.05, min_seeds=4, max_seeds=4), ["a", "b"])
    study.record({"a": [Run(x) for x in a], "b": [Run(x) for x in b]})
    lk = study.contrasts[0].last
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (lk.low, lk.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert study.decisions() == {"a vs b": "greater"}


def test_constant_arm_is_a_one_sample_test_and_stops_getting_seeds():
    b = [0.70, 0.74, 0.71, 0.77]
    study = Study(Design(alpha=0.1, min_seeds=4, max_seeds=4), ["probe", "tuned"])
    study.record({"probe": [Run(0.72)] * 4, "tuned": [Run(x) for x in b]})
    assert study.arms["probe"].constant and not study.arms["tuned"].constant
    lk = study.contrasts[0].last
    ci = stats.ttest_1samp(np.array(b) - 0.72, 0.0).confidence_interval(0.9)
    assert lk.df == pytest.approx(3) and (-lk.high, -lk.low) == pytest.approx((ci.low, ci.high), rel=1e-9)
    # two constant arms: decided exactly, at once, whatever alpha
    study = Study(Design(min_seeds=3), ["x", "y", "z"])
    study.record({"x": [Run(0.85)] * 3, "y": [Run(0.84)] * 3, "z": [Run(0.85)] * 3})
    assert study.decisions() == {"x vs y": "greater", "x vs z": "equivalent", "y vs z": "less"}
    assert study.plan() == {}


def _fp(acc, loss):
    return (("test/acc", acc), ("test/loss", loss))


def test_constant_means_the_same_run_to_solver_precision_not_a_tied_metric():
    """The frozen probe's runs agree in every metric up to its solver's last digits (loss to 1e-10):
    constant. A random arm's accuracies can tie across seeds while the runs differ (loss to 1e-3):
    not constant, and no test on its zero variance; it waits for seeds that vary."""
    probe = [Run(0.853, key=_fp(0.853, 0.3509718249 + 1e-10 * i)) for i in range(3)]
    tied = [Run(0.8, key=_fp(0.8, 0.41 + 1e-3 * i)) for i in range(3)]
    other = [Run(0.7 + 0.01 * i, key=_fp(0.7 + 0.01 * i, 0.5 + 0.01 * i)) for i in range(3)]
    study = Study(Design(min_seeds=3, max_seeds=5), ["probe", "tied", "other"])
    study.record({"probe": probe, "tied": tied, "other": other})
    assert study.arms["probe"].constant and not study.arms["tied"].constant
    assert {c.label: len(c.looks) for c in study.contrasts} == {"probe vs tied": 0, "probe vs other": 1,
                                                                 "tied vs other": 0}
    assert study.plan() == {"tied": 1, "other": 1}


def test_failed_runs_are_not_data_and_too_many_abandon_the_arm():
    study = Study(Design(min_seeds=3, max_seeds=6, max_failures=1), ["a", "b"])
    study.record({"a": [Run(1.0), Run(None), Run(1.1)], "b": [Run(0.0), Run(0.1), Run(0.05)]})
    assert study.arms["a"].failures == 1 and study.contrasts[0].looks == []  # 2 ok runs: not yet tested
    assert study.plan() == {"a": 1, "b": 1}
    study.record({"a": [Run(float("nan"))], "b": [Run(0.02)]})  # a non-finite metric is a failure too
    assert study.arms["a"].abandoned and study.decisions() == {"a vs b": "abandoned"}
    assert study.plan() == {}


def test_equivalence_within_the_margin():
    rng = np.random.default_rng(3)
    same = {"a": lambda r: r.normal(0.5, 0.001), "b": lambda r: r.normal(0.5, 0.001)}
    study = _run_study(Design(margin=0.02, max_seeds=10), same, rng)
    assert study.decisions() == {"a vs b": "equivalent"}
    lk = study.contrasts[0].last
    assert -0.02 < lk.low and lk.high < 0.02


def test_reference_contrasts_and_fixed_decisions():
    d = Design(contrasts="reference", reference="r", min_seeds=2, max_seeds=3)
    study = Study(d, ["a", "r", "b"])
    assert [c.label for c in study.contrasts] == ["a vs r", "b vs r"] and study.alpha_c == pytest.approx(0.025)
    runs = {"a": [Run(x) for x in (5.0, 5.1, 5.2)], "r": [Run(x) for x in (1.0, 1.1, 0.9)], "b": [Run(1.0)]}
    got = fixed_decisions(d, runs)
    assert got["a vs r"][0] == "greater"
    ci = stats.ttest_1samp([1.0 - x for x in (1.0, 1.1, 0.9)], 0.0).confidence_interval(0.975)
    assert (got["b vs r"][1].low, got["b vs r"][1].high) == pytest.approx((ci.low, ci.high))  # one run: constant


@pytest.mark.parametrize("kw,msg", [({"alpha": 1.5}, "alpha=1.5"), ({"spending": "linear"}, "spending=linear"),
                                    ({"min_seeds": 1}, "min_seeds=1"), ({"max_seeds": 2}, "max_seeds=2"),
                                    ({"contrasts": "reference", "reference": "zz"}, "reference=zz")])
def test_bad_designs_say_which_setting(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        Design(**kw).check(["a", "b"])
    with pytest.raises(ConfigError, match="at least 2 arms"):
        Design().check(["a"])
