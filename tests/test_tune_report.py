"""The tuning section of the report (``tunelab.report.tune``, ``render_tune``) on hand-made
studies: what moved when tuning changed a conclusion, and the default's vs the tuned recipe's
spread over test seeds, against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest


def test_a_changed_conclusion_says_what_moved_and_flags_picks_within_seed_noise():
    # hand-made study: a's 8 configurations spread 0.0031 on validation against a seed sd of 0.0066
    # (ratio 0.47 < 1: its pick is noise), b's 0.012 against 0.004 (ratio 3: the search told them
    # apart), c kept its default; tuning turned "b better than a" into "no difference"
    from tunelab.report.render_tune import tune_section
    from tunelab.report.tune import PairChange, TestScores, TuneArm, TuneStudy

    def arm(best, spread_sd, seed_sd, diff, p):
        return TuneArm(search={"optim.lr": "x"}, bounds={}, defaults={}, trials=[], best=best, chosen={},
                       val_default=0.8, val_best=0.81, spread_n=8, spread_sd=spread_sd, seed_sd=seed_sd,
                       tuned=TestScores(best, {0: 0.8, 1: 0.81}), default=TestScores(0, {0: 0.8, 1: 0.82}),
                       paired_n=2, paired_diff=diff, paired_p=p)

    study = TuneStudy(state_file="tune.json", metric="val/f1_macro", direction="maximize", test_metric="test/f1_macro",
                      settings={"trials": 8, "seeds_per_trial": 2}, method="m", done=True,
                      arms={"a": arm(3, 0.0031, 0.0066, -0.0086, 0.1673), "b": arm(5, 0.012, 0.004, 0.0043, 0.0581),
                            "c": arm(0, 0.01, 0.005, 0.0, 1.0)},
                      rank_tuned=["b", "a", "c"], rank_default=["a", "b", "c"],
                      changes=[PairChange("b", "a", -0.0121, 0.0123, 0.0008, 0.876, "B better", "no difference shown"),
                               PairChange("c", "a", -0.01, 0.01, 0.0, 0.9, "B better", "no difference shown")])
    text = tune_section(study)
    rows = [line for line in text.splitlines() if line.startswith("| `b` vs `a`") or line.startswith("| `c` vs `a`")]
    assert len(rows) == 2
    moved_ba, moved_ca = rows[0].split(" | ")[-1], rows[1].split(" | ")[-1]
    assert moved_ba == ("`b`: 0.0043 (p 0.0581); `a`: -0.0086 (p 0.1673), its configurations spread 0.47x the "
                        "seed sd: a pick within seed noise |")
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
