"""The tuning section of the report (``tunelab.report.tune``, ``render_tune``) on hand-made
studies: what moved when tuning changed a conclusion, and the default's vs the tuned recipe's
spread over test seeds, against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest


def test_a_changed_conclusion_says_what_moved_and_flags_picks_within_seed_noise():
    # hand-made study: a's 8 configurations do not differ beyond their seeds on validation (ANOVA
    # p 0.85: its pick is noise), b's do (p 0.001: the search told them apart), c kept its default;
    # tuning turned "b better than a" into "no difference"
    from tunelab.report.render_tune import tune_section
    from tunelab.report.tune import PairChange, TestScores, TuneArm, TuneStudy

    def arm(best, spread_sd, seed_sd, diff, p, configs_p):
        return TuneArm(search={"optim.lr": "x"}, bounds={}, defaults={}, trials=[], best=best, chosen={},
                       val_default=0.8, val_best=0.81, spread_n=8, spread_sd=spread_sd, seed_sd=seed_sd,
                       configs_p=configs_p,
                       tuned=TestScores(best, {0: 0.8, 1: 0.81}), default=TestScores(0, {0: 0.8, 1: 0.82}),
                       paired_n=2, paired_diff=diff, paired_p=p)

    study = TuneStudy(state_file="tune.json", metric="val/f1_macro", direction="maximize", test_metric="test/f1_macro",
                      settings={"trials": 8, "seeds_per_trial": 2}, method="m", done=True,
                      arms={"a": arm(3, 0.0031, 0.0066, -0.0086, 0.1673, 0.85),
                            "b": arm(5, 0.012, 0.004, 0.0043, 0.0581, 0.001), "c": arm(0, 0.01, 0.005, 0.0, 1.0, 0.2)},
                      rank_tuned=["b", "a", "c"], rank_default=["a", "b", "c"],
                      changes=[PairChange("b", "a", -0.0121, 0.0123, 0.0008, 0.876, "B better", "no difference shown"),
                               PairChange("c", "a", -0.01, 0.01, 0.0, 0.9, "B better", "no difference shown")])
    text = tune_section(study)
    rows = [line for line in text.splitlines() if line.startswith("| `b` vs `a`") or line.startswith("| `c` vs `a`")]
    assert len(rows) == 2
    moved_ba, moved_ca = rows[0].split(" | ")[-1], rows[1].split(" | ")[-1]
    assert moved_ba == ("`b`: 0.0043 (p 0.0581); `a`: -0.0086 (p 0.1673), its configurations do not differ beyond "
                        "seed noise on validation (ANOVA p 0.8500): a pick within seed noise |")
    assert moved_ca.startswith("`c`: default kept; `a`: -0.0086")


def test_default_vs_tuned_spread_is_brown_forsythe_by_hand():
    """The fair fight's LoRA: the default recipe's five test seeds (one half-collapsed) against the
    tuned recipe's. Brown-Forsythe = one-way ANOVA on each value's distance from its group's
    median, here by hand (scipy's f distribution only); the paired test is untouched."""
    from scipy import stats as st

    from tunelab.report.tune import TestScores, TuneArm, _paired

    default = [0.8314, 0.8416, 0.7403, 0.8259, 0.8387]
    tuned = [0.8523, 0.8474, 0.8520, 0.8497, 0.8508]
    arm = TuneArm(search={}, bounds={}, defaults={}, trials=[], best=2, chosen={}, val_default=None, val_best=None,
                  tuned=TestScores(2, dict(enumerate(tuned))), default=TestScores(0, dict(enumerate(default))))
    _paired(arm, 0.95)
    z = [np.abs(np.array(g) - np.median(g)) for g in (tuned, default)]
    grand = np.concatenate(z).mean()
    between = sum(len(g) * (g.mean() - grand) ** 2 for g in z) / (2 - 1)
    within = sum(((g - g.mean()) ** 2).sum() for g in z) / (10 - 2)
    assert arm.spread_p == pytest.approx(st.f.sf(between / within, 1, 8), rel=1e-9)
    assert 0.2 < arm.spread_p < 0.3  # one collapse in five seeds: not shown to be a change of spread
    assert arm.paired_p == pytest.approx(st.ttest_rel(tuned, default).pvalue, rel=1e-9)
    same = TuneArm(search={}, bounds={}, defaults={}, trials=[], best=0, chosen={}, val_default=None, val_best=None,
                   tuned=TestScores(0, dict(enumerate(tuned))), default=TestScores(0, dict(enumerate(tuned))))
    _paired(same, 0.95)
    assert math.isnan(same.spread_p)  # the default recipe was chosen: the same runs


def test_configurations_differ_is_the_one_way_anova_by_hand():
    """Whether a search could tell its configurations apart: Fisher's F over the trials' seeds.
    Two trials (1, 2) and (3, 4): between SS 2 * (1^2 + 1^2) = 4 on 1 df, within SS 0.5 + 0.5 = 1 on
    2 df, F = 4 / 0.5 = 8 = t^2 with t = sqrt(8) on 2 df, whose two-sided p is 1 - t / sqrt(t^2 + 2)."""
    from tunelab.stats import configs_differ_p

    t = math.sqrt(8)
    assert configs_differ_p([[1, 2], [3, 4]]) == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-12)
    # the fair fight's adapters: 8 configurations whose 2-seed means spread 0.47 seed sds: noise.
    # Means spread that little when nothing differs (1/sqrt(2) = 0.71 is the expectation), so p is large
    rng = np.random.default_rng(0)
    same = [list(0.88 + 0.01 * rng.standard_normal(2)) for _ in range(8)]
    apart = [[0.80 + 0.01 * i + 0.001, 0.80 + 0.01 * i - 0.001] for i in range(8)]
    assert configs_differ_p(same) > 0.05 and configs_differ_p(apart) < 1e-6
    # a deterministic arm (every seed the same run): differing means differ for sure, equal ones cannot tell
    assert configs_differ_p([[0.7, 0.7], [0.8, 0.8]]) == 0.0
    assert math.isnan(configs_differ_p([[0.7, 0.7], [0.7, 0.7]]))
    # one configuration, or no seed repeated: no test
    assert math.isnan(configs_differ_p([[1, 2]])) and math.isnan(configs_differ_p([[1], [2]]))


def test_the_arm_tests_its_complete_trials_only():
    """A pruned trial (stopped for its low first seed) and a repeat (the same runs) are not groups of
    the F test; a complete trial's failed seed is left out, not a NaN that poisons the test."""
    from scipy import stats as st

    from tunelab.report.tune import _arm

    trials = [{"trial": 0, "params": {}, "status": "complete", "values": [0.80, 0.82], "value": 0.81},
              {"trial": 1, "params": {"optim.lr": 1e-4}, "status": "complete", "values": [0.85, 0.86, None],
               "value": 0.855},
              {"trial": 2, "params": {"optim.lr": 1e-3}, "status": "pruned", "values": [0.5], "value": 0.5},
              {"trial": 3, "params": {}, "status": "complete", "values": [0.80, 0.82], "value": 0.81, "repeat_of": 0}]
    arm = _arm("a", {"trials": trials, "best": 1, "tests": None}, {}, {}, "val/acc", True, 0.95, 10)
    # by hand: groups (0.80, 0.82) and (0.85, 0.86); grand mean 0.8325
    between = 2 * (0.81 - 0.8325) ** 2 + 2 * (0.855 - 0.8325) ** 2
    within = (0.01 ** 2 * 2 + 0.005 ** 2 * 2) / 2
    assert arm.configs_p == pytest.approx(st.f.sf(between / within, 1, 2), rel=1e-9)
