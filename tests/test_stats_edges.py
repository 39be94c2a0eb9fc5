"""The report's statistics at the edges a real study reaches, against independent references.

Deterministic arms (a sparse baseline, a frozen probe: sd 0 over seeds), perfect agreement between
datasets, two seeds per arm, lower-is-better metrics and p-values below what a double holds. Each
reference is computed here from scipy or by enumeration, not by the code under test.
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

from tunelab.report import analysis
from tunelab.report.jobs import Job


def _job(group: str, i: int, **metrics) -> Job:
    return Job(f"{group}{i}", Path("."), "ok", [], result={"metrics": metrics, "seed": i}, group=group)


def _groups(values: dict[str, list[float]], metric: str = "test/acc") -> dict[str, list[Job]]:
    return {g: [_job(g, i, **{metric: v}) for i, v in enumerate(vs)] for g, vs in values.items()}


def _holm_reference(p: list[float]) -> list[float]:
    """Holm (1979) by its definition: sort, multiply the r-th smallest by m - r + 1, running max, cap 1."""
    order = np.argsort(p, kind="stable")
    out, running = [0.0] * len(p), 0.0
    for r, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - r) * p[i]))
        out[i] = running
    return out


def test_two_deterministic_arms_get_no_welch_p_and_leave_holms_family():
    """Two arms with sd 0 (TF-IDF and a frozen probe: every seed the same run) have no Welch test:
    scipy's p = 0 was printed as 0.0000 (p (Holm) 0.0000, three stars in tables.tex). The family is
    the tests that exist (dropping a p of 0 leaves the other rows' Holm values as they were)."""
    vals = {"probe": [0.883] * 5, "sparse": [0.849] * 5,
            "lora": [0.900, 0.903, 0.896, 0.902, 0.899], "bitfit": [0.892, 0.900, 0.883, 0.895, 0.891]}
    comp = analysis.compare_metric(_groups(vals), "test/acc", "probe", 0.95)
    rows = {(r.a, r.b): r for r in comp.all_pairs}
    none = rows[("probe", "sparse")]
    assert math.isnan(none.p) and math.isnan(none.p_holm) and none.t == math.inf and "paired test" in none.note
    assert none.diff == pytest.approx(0.034)
    tested = [k for k in rows if k != ("probe", "sparse")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_p = [st.ttest_ind(vals[a], vals[b], equal_var=False).pvalue for a, b in tested]
    assert [rows[k].p for k in tested] == pytest.approx(ref_p, rel=1e-9)
    assert [rows[k].p_holm for k in tested] == pytest.approx(_holm_reference(ref_p), rel=1e-9)
    vs_ref = {r.a: r for r in comp.vs_reference}
    assert math.isnan(vs_ref["sparse"].p_holm)
    ref_p = [st.ttest_ind(vals[g], vals["probe"], equal_var=False).pvalue for g in ("lora", "bitfit")]
    assert [vs_ref[g].p_holm for g in ("lora", "bitfit")] == pytest.approx(_holm_reference(ref_p), rel=1e-9)


def test_replicability_counts_no_dataset_for_two_deterministic_arms():
    """"probe > sparse" on three datasets where both arms are deterministic: scipy's one-sided p = 0
    on each made k̂ = 3 of 3 at family-wise α = 0.05 from seeds that change nothing."""
    from tunelab.report.replicability import k_hat, one_sided_welch

    const = [one_sided_welch([0.88] * 5, [0.85 + d] * 5) for d in (0.0, 0.01, 0.02)]
    assert all(math.isnan(p) for p in const) and k_hat(const) == 0
    a, b = [0.90, 0.91, 0.89], [0.85] * 3  # one arm varies: Welch is defined, one-sided as scipy
    assert one_sided_welch(a, b) == pytest.approx(st.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)
    assert one_sided_welch(a, b, higher_is_better=False) == pytest.approx(
        st.ttest_ind(a, b, equal_var=False, alternative="less").pvalue)


def test_aso_on_a_lower_is_better_metric_calls_the_lower_mean_better():
    """deepsig's aso(A, B) asks whether A's scores are stochastically larger. On ECE (lower is
    better) the arm with the higher ECE was reported as the almost stochastically *better* one."""
    pytest.importorskip("deepsig")
    from deepsig import aso

    good, bad = [0.020, 0.025, 0.022, 0.018, 0.021], [0.060, 0.055, 0.070, 0.065, 0.058]
    rows = analysis.aso_metric(_groups({"good": good, "bad": bad}, "test/ece"), "test/ece", aso, 200, 0.95)
    assert (rows[0].better, rows[0].worse) == ("good", "bad")
    # the reference: deepsig on the negated ECE (higher = better), called here directly
    ref = aso([-x for x in good], [-x for x in bad], confidence_level=0.95, num_comparisons=1,
              num_bootstrap_iterations=200, seed=0, show_progress=False)
    assert rows[0].eps_min == pytest.approx(ref) and rows[0].eps_min < 0.5
    acc = analysis.aso_metric(_groups({"good": [1 - x for x in good], "bad": [1 - x for x in bad]}), "test/acc",
                              aso, 200, 0.95)
    assert acc[0].better == "good" and acc[0].eps_min == pytest.approx(ref)  # the same data, higher is better


def _exact_friedman_p(ranks: np.ndarray) -> float:
    """P(χ²_F >= observed) under "each dataset's ranks are a random ordering of themselves", by
    enumerating every combination of orderings (the permutation distribution, Friedman 1937)."""
    def stat(r):
        return float(((r.sum(axis=0) - r.sum() / r.shape[1]) ** 2).sum())  # monotone in χ²_F for fixed ties
    obs, rows = stat(ranks), [sorted(set(itertools.permutations(row))) for row in ranks]
    hits = [stat(np.array(c)) >= obs - 1e-9 for c in itertools.product(*rows)]
    return sum(hits) / len(hits)


@pytest.mark.parametrize("scores", [
    [[0.90, 0.80, 0.70], [0.85, 0.80, 0.60]],                          # 3 arms, 2 datasets: 1/6
    [[0.90, 0.80, 0.70, 0.6], [0.85, 0.80, 0.60, 0.5], [0.7, 0.6, 0.5, 0.4]],  # 4 arms, 3 datasets: 1/576
    [[0.90, 0.90, 0.70], [0.85, 0.85, 0.60], [0.8, 0.8, 0.1]],          # a tie shared by every dataset: 1/9
])
def test_iman_davenport_when_every_dataset_ranks_alike_is_the_exact_p_not_zero(scores):
    """Perfect agreement makes χ²_F its maximum and F_F infinite; the F tail printed p = 0.0000 for
    3 arms on 2 datasets, where chance alone gives that agreement one time in six."""
    from tunelab.report.friedman import rank_arms

    r = rank_arms(scores, [f"a{i}" for i in range(len(scores[0]))], [f"d{i}" for i in range(len(scores))])
    ranks = np.array([st.rankdata([-v for v in row]) for row in scores])
    assert r.iman_davenport_f == math.inf
    assert r.iman_davenport_p == pytest.approx(_exact_friedman_p(ranks), rel=1e-12) and r.iman_davenport_p > 0


def _tune_arm(tuned: list[float], default: list[float]):
    from tunelab.report.tune import TestScores, TuneArm

    return TuneArm(search={}, bounds={}, defaults={}, trials=[], best=2, chosen={}, val_default=None, val_best=None,
                   tuned=TestScores(2, dict(enumerate(tuned))), default=TestScores(0, dict(enumerate(default))))


def test_tuned_vs_default_of_a_deterministic_arm_has_no_p():
    """A sparse arm whose tuned C differs: every test seed moves by the same 0.01. The paired t's
    standard error is 0 (scipy: t = inf, p = 0): no null distribution, so no p; the report said
    p = 0 (printed 0.0000), the same non-test as Welch on two deterministic arms."""
    from tunelab.report.tune import _paired

    arm = _tune_arm([0.734] * 5, [0.724] * 5)
    _paired(arm, 0.95)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = st.ttest_rel([0.734] * 5, [0.724] * 5)
    assert ref.statistic == math.inf and math.isnan(arm.paired_p)
    assert arm.paired_diff == pytest.approx(0.01) and arm.paired_low == arm.paired_high == arm.paired_diff


def test_brown_forsythe_needs_three_seeds_an_arm():
    """With two seeds both deviations from the median are |x1 - x2| / 2: no within-arm spread, and
    Brown-Forsythe's F is infinite in exact arithmetic (scipy: 6.6e29 from round-off, p = 1.5e-30),
    so "seed sd 0.0707 → 0.0071, p 1.52e-30" claimed a change of spread from four runs."""
    from tunelab.report.tune import _paired

    tuned, default = [0.80, 0.90], [0.850, 0.860]
    z = [np.abs(np.array(g) - np.median(g)) for g in (tuned, default)]
    assert all(np.ptp(g) < 1e-15 for g in z)  # the reference: no within-arm variation but round-off
    arm = _tune_arm(tuned, default)
    _paired(arm, 0.95)
    assert math.isnan(arm.spread_p)
    three = _tune_arm([0.80, 0.90, 0.86], [0.850, 0.860, 0.855])
    _paired(three, 0.95)
    assert three.spread_p == pytest.approx(st.levene([0.80, 0.90, 0.86], [0.850, 0.860, 0.855],
                                                     center="median").pvalue, rel=1e-12)


def test_a_p_value_below_the_smallest_double_is_not_printed_as_zero():
    """2000 examples right in A and wrong in B, one seed pair: the exact p is 2 * 2^-2000 = 10^-601.7
    and McNemar's χ² tail (scipy's logsf) 10^-435; both underflow to 0.0 and were printed 0.0000."""
    from tunelab.report.formatting import fmt_p
    from tunelab.report.paired import mcnemar, sign_flip

    flip = sign_flip(np.ones((1, 2000), bool), np.zeros((1, 2000), bool))
    chi = mcnemar(2000, 0)
    assert (1 - 2000) * math.log10(2) < -300 and st.chi2.logsf(chi.statistic, 1) / math.log(10) < -300
    assert fmt_p(flip.p) == fmt_p(chi.p) == "< 1e-300"
    assert fmt_p(2.5e-308) == "2.50e-308" and fmt_p(float("nan")) == "n/a" and fmt_p(0.0512) == "0.0512"


def test_expected_best_of_n_runs_of_a_lower_is_better_metric_is_the_minimum():
    """``--metrics test/ece``: the curve was E[max of n] — the expected *worst* ECE of n runs, ending
    at the worst run where the text says "n = N the observed best". Reference: the mean over every
    n-subset of the runs (Tang et al.'s estimator is that average) of its minimum."""
    ece = [0.031, 0.024, 0.045, 0.028, 0.052]
    groups = _groups({"a": ece}, "test/ece")
    val = [0.030, 0.025, 0.041, 0.028, 0.035]
    for j, v in zip(groups["a"], val):
        j.result["metrics"]["val/ece"] = v
    c = analysis.expected_max_metric(groups, "test/ece", 0.95, 200)["a"]
    want = [np.mean([min(s) for s in itertools.combinations(ece, n)]) for n in range(1, 6)]
    assert c["test"].mean == pytest.approx(want, rel=1e-12) and c["test"].mean[-1] == min(ece)
    assert c["val"].metric == "val/ece" and c["val"].mean[-1] == min(val)
    assert all(lo <= m <= hi for lo, m, hi in zip(c["test"].low, c["test"].mean, c["test"].high))
    acc = analysis.expected_max_metric(_groups({"a": ece}), "test/acc", 0.95, 200)["a"]["test"].mean
    assert acc == pytest.approx([np.mean([max(s) for s in itertools.combinations(ece, n)]) for n in range(1, 6)])


def test_pareto_front_of_a_lower_is_better_metric_keeps_the_lowest_scores():
    """By hand: ``cheap`` (ECE 0.02, 10 params) beats ``mid`` (0.05, 100) and ``big`` (0.03, 1000)
    on both, so it alone is on the ECE front; read as accuracy (higher is better) the same numbers
    put ``cheap`` and ``mid`` on the front (``mid`` dominates ``big``)."""
    from types import SimpleNamespace as NS

    from tunelab.report.pareto import fronts

    vals = {"cheap": (0.02, 10), "mid": (0.05, 100), "big": (0.03, 1000)}
    summary = {g: NS(all=NS(mean=v, sd=0.0)) for g, (v, _) in vals.items()}
    cost = {g: NS(trainable_params=p, cpu_s_mean=p) for g, (_, p) in vals.items()}
    report = NS(metrics={"test/ece": NS(summary=summary), "test/acc": NS(summary=summary)}, cost=cost, ood=None)
    assert fronts(report, "test/ece") == {"params": ["cheap"], "cpu_s": ["cheap"]}
    assert fronts(report, "test/acc") == {"params": ["cheap", "mid"], "cpu_s": ["cheap", "mid"]}
